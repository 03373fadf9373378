//! Hot elementwise kernels compiled a second time for AVX2 + FMA, chosen at run time.
//!
//! The binary targets baseline x86-64 (SSE2, 4 lanes) so that it runs on any x86-64 machine;
//! `widened!` gives a kernel an 8-lane twin where the CPU has AVX2. The results are the same
//! bit for bit: Rust never contracts a·b + c into an FMA on its own, so the wider code rounds
//! exactly as the narrow one does.

/// Whether this CPU runs the AVX2 + FMA twins (detected once; std caches it).
#[inline]
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `widened!(fn name<T: Bound>(args) [-> R] => body)` defines `name`, which calls `body(args)` compiled
/// with AVX2 + FMA enabled where the CPU has them, and as built otherwise. `body` should be
/// `#[inline(always)]` so that its loops are compiled inside the wide twin.
macro_rules! widened {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$T:ident: $B:path>($($a:ident: $t:ty),* $(,)?) => $body:path) => {
        $crate::wide::widened! { $(#[$m])* $vis fn $name<$T: $B>($($a: $t),*) -> () => $body }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident<$T:ident: $B:path>($($a:ident: $t:ty),* $(,)?) -> $r:ty => $body:path) => {
        $(#[$m])*
        $vis fn $name<$T: $B>($($a: $t),*) -> $r {
            #[cfg(target_arch = "x86_64")]
            {
                $(#[$m])*
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide<$T: $B>($($a: $t),*) -> $r {
                    $body($($a),*)
                }
                if $crate::wide::avx2_fma() {
                    // SAFETY: the CPU has the features `wide` is compiled for (just checked).
                    return unsafe { wide($($a),*) };
                }
            }
            $body($($a),*)
        }
    };
}
pub(crate) use widened;

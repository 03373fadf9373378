//! oneDNN, loaded at run time, for bf16 matrix products on the CPU (`--precision bf16`).
//!
//! [`ffi`] declares the C functions, [`matmul`] wraps the matmul primitive as a GEMM with a
//! primitive cache. [`get`] finds and opens the library once per process.
//!
//! Where the library is looked for, in order: `CAGEM_DNNL_LIB` (a path); `.venv-bf16/lib/` in
//! any folder above the executable (where `scripts/install-bf16.sh` puts it in this repository;
//! target/release/cagem and the test binaries find it so); the same folder of the source tree this
//! crate was built from; `libdnnl.so.3` by name (LD_LIBRARY_PATH and the system's library paths).

pub mod ffi;
pub mod matmul;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use matmul::{Inputs, Matmul};

const LIB_NAME: &str = "libdnnl.so.3";

/// The candidates for the library, in the order tried.
pub fn candidates() -> Vec<String> {
    if let Ok(p) = std::env::var("CAGEM_DNNL_LIB")
        && !p.is_empty()
    {
        return vec![p]; // an explicit choice: no fall-back to some other copy
    }
    let mut out = Vec::new();
    let rel = PathBuf::from(".venv-bf16").join("lib").join(LIB_NAME);
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let p = dir.join(&rel);
            if p.is_file() {
                out.push(p.display().to_string());
                break;
            }
        }
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&rel);
    if built.is_file() && !out.contains(&built.display().to_string()) {
        out.push(built.display().to_string());
    }
    out.push(LIB_NAME.to_string());
    out
}

/// Whether this CPU has bf16 dot products (AVX512_BF16 or AMX-BF16), without which oneDNN would
/// emulate bf16 slower than f32.
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // AMX detection is unstable in std: CPUID leaf 7, EDX bit 22 is AMX-BF16 (oneDNN itself
        // checks that the OS enabled the tiles).
        let amx_bf16 = std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 22) != 0;
        std::arch::is_x86_feature_detected!("avx512bf16") || amx_bf16
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The process's oneDNN, opened on first use; Err says why bf16 is unavailable (no bf16 on this
/// CPU, or no library: where it was looked for and how to install it).
pub fn get() -> Result<&'static Matmul, String> {
    static LIB: OnceLock<Result<Matmul, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        if !cpu_has_bf16() {
            return Err("this CPU has no bf16 arithmetic (neither avx512_bf16 nor amx_bf16)".into());
        }
        // libgomp spins its idle threads for a while after each parallel region by default; here
        // rayon's workers run the fused ops between products on the same cores, and the spinning
        // costs more than a wake-up (measured: a bf16 step 2–3× slower). libgomp reads this when
        // it loads, i.e. with libdnnl just below; a user's own setting is kept.
        if std::env::var_os("OMP_WAIT_POLICY").is_none() && std::env::var_os("GOMP_SPINCOUNT").is_none() {
            // SAFETY: set once, before the library that reads it loads; nothing else in cagem
            // reads or writes the environment concurrently.
            unsafe { std::env::set_var("OMP_WAIT_POLICY", "PASSIVE") };
        }
        let mut errors = Vec::new();
        for path in candidates() {
            match Matmul::open(&path) {
                Ok(m) => return Ok(m),
                Err(e) => errors.push(e),
            }
        }
        Err(format!(
            "oneDNN (libdnnl.so.3) not found: {}; install it with scripts/install-bf16.sh and/or set \
             CAGEM_DNNL_LIB to the library's path",
            errors.join("; ")
        ))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The convention of the bf16 tests: oneDNN, or None after printing why there is none so the test
/// can return early (skip). With CAGEM_REQUIRE_BF16=1 (CI, after scripts/install-bf16.sh) it
/// panics instead.
pub fn for_test(test: &str) -> Option<&'static Matmul> {
    let required = std::env::var("CAGEM_REQUIRE_BF16").is_ok_and(|v| v == "1");
    match get() {
        Ok(m) => Some(m),
        Err(e) if required => panic!("{test}: CAGEM_REQUIRE_BF16=1 but bf16 is unavailable: {e}"),
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

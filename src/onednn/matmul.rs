//! oneDNN's matmul primitive as a GEMM: C[m×n] (=|+=) op(A)·op(B), row-major, f32 output.
//!
//! Transposes are strides in the memory descriptors (no copies). Creating a primitive costs
//! milliseconds (oneDNN generates its kernel), so each (shape, transposes, accumulate, inputs) gets
//! one, cached for the life of the process, with its three memory objects: a call only swaps the
//! data pointers in. `accumulate` is a sum post-op (C = A·B + C), oneDNN's beta = 1.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::ptr::null_mut;
use std::sync::Mutex;

use super::ffi::{self, Api, ExecArg};
use crate::gemm::{GemmShape, Trans};

/// What the primitive reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Inputs {
    /// A and B are bf16 (`u16` bit patterns), accumulation and C f32.
    Bf16,
    /// A and B are f32 and oneDNN may round them to bf16 inside (`dnnl_fpmath_mode_bf16`).
    F32AsBf16,
    /// Plain f32 (`dnnl_fpmath_mode_strict`), for comparison only.
    F32,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    accumulate: bool,
    inputs: Inputs,
}

struct Prim {
    prim: ffi::Primitive,
    src: ffi::Memory,
    weights: ffi::Memory,
    dst: ffi::Memory,
    impl_name: String,
}

/// An engine, a stream and the primitive cache. One call runs at a time (the primitives use the
/// whole OpenMP team; two at once would only oversubscribe the cores).
pub struct Matmul {
    api: Api,
    engine: ffi::Engine,
    stream: ffi::Stream,
    cache: Mutex<HashMap<Key, Prim>>,
}

// SAFETY: oneDNN engines, streams and primitives may be used from any thread; every use of the
// mutable state (memory handles, the stream) goes through the cache's mutex.
unsafe impl Send for Matmul {}
unsafe impl Sync for Matmul {}

fn check(what: &str, status: ffi::Status) -> Result<(), String> {
    if status == ffi::SUCCESS { Ok(()) } else { Err(format!("oneDNN {what} failed (dnnl_status_t {status})")) }
}

/// The dims and strides of op(X) (rows × cols) for X stored row-major.
fn md_dims(t: Trans, rows: usize, cols: usize) -> (ffi::Dims, ffi::Dims) {
    let mut dims = [0i64; ffi::MAX_NDIMS];
    let mut strides = [0i64; ffi::MAX_NDIMS];
    dims[0] = rows as i64;
    dims[1] = cols as i64;
    let (rs, cs) = match t {
        Trans::N => (cols, 1),
        Trans::T => (1, rows),
    };
    strides[0] = rs as i64;
    strides[1] = cs as i64;
    (dims, strides)
}

impl Matmul {
    /// Loads the library and opens the CPU engine.
    pub fn open(path: &str) -> Result<Matmul, String> {
        let api = Api::load(path)?;
        let (mut engine, mut stream) = (null_mut(), null_mut());
        // SAFETY: out-pointers to locals; the engine outlives the stream (both live as long as self).
        unsafe {
            check("engine_create", (api.engine_create)(&mut engine, ffi::ENGINE_CPU, 0))?;
            check("stream_create", (api.stream_create)(&mut stream, engine, ffi::STREAM_IN_ORDER))?;
        }
        Ok(Matmul { api, engine, stream, cache: Mutex::new(HashMap::new()) })
    }

    /// "oneDNN 3.2.0 (hash)".
    pub fn version(&self) -> String {
        // SAFETY: dnnl_version returns a pointer to a static struct.
        let v = unsafe { &*(self.api.version)() };
        format!("oneDNN {}.{}.{}", v.major, v.minor, v.patch)
    }

    fn md(&self, dt: ffi::DataType, t: Trans, rows: usize, cols: usize) -> Result<ffi::MemoryDesc, String> {
        let (dims, strides) = md_dims(t, rows, cols);
        let mut md = null_mut();
        // SAFETY: dims and strides are int64_t[12] arrays, read for ndims = 2 entries.
        check("memory_desc_create_with_strides", unsafe {
            (self.api.memory_desc_create_with_strides)(&mut md, 2, dims.as_ptr(), dt, strides.as_ptr())
        })?;
        Ok(md)
    }

    fn create(&self, key: Key) -> Result<Prim, String> {
        let api = &self.api;
        let in_dt = if key.inputs == Inputs::Bf16 { ffi::DT_BF16 } else { ffi::DT_F32 };
        let ta = if key.ta { Trans::T } else { Trans::N };
        let tb = if key.tb { Trans::T } else { Trans::N };
        let src = self.md(in_dt, ta, key.m, key.k)?;
        let wei = self.md(in_dt, tb, key.k, key.n)?;
        let dst = self.md(ffi::DT_F32, Trans::N, key.m, key.n)?;
        let (mut attr, mut post_ops, mut pd, mut prim) = (null_mut(), null_mut(), null_mut(), null_mut());
        let (mut m_src, mut m_wei, mut m_dst) = (null_mut(), null_mut(), null_mut());
        // SAFETY: every handle is created here and destroyed below or kept in the returned Prim;
        // the descriptors are copied by the calls that take them.
        let result: Result<String, String> = unsafe {
            (|| {
                check("primitive_attr_create", (api.primitive_attr_create)(&mut attr))?;
                let mode = if key.inputs == Inputs::F32AsBf16 { ffi::FPMATH_BF16 } else { ffi::FPMATH_STRICT };
                check("set_fpmath_mode", (api.primitive_attr_set_fpmath_mode)(attr, mode))?;
                if key.accumulate {
                    check("post_ops_create", (api.post_ops_create)(&mut post_ops))?;
                    check("post_ops_append_sum", (api.post_ops_append_sum)(post_ops, 1.0, 0, ffi::DT_F32))?;
                    check("set_post_ops", (api.primitive_attr_set_post_ops)(attr, post_ops))?;
                }
                let s = (api.matmul_primitive_desc_create)(&mut pd, self.engine, src, wei, null_mut(), dst, attr);
                check("matmul_primitive_desc_create", s)?;
                check("primitive_create", (api.primitive_create)(&mut prim, pd))?;
                let none = null_mut::<c_void>(); // DNNL_MEMORY_NONE: the handle is set per call
                check("memory_create", (api.memory_create)(&mut m_src, src, self.engine, none))?;
                check("memory_create", (api.memory_create)(&mut m_wei, wei, self.engine, none))?;
                check("memory_create", (api.memory_create)(&mut m_dst, dst, self.engine, none))?;
                let mut name: *const c_char = std::ptr::null();
                let q = (api.primitive_desc_query_info)(pd, ffi::QUERY_IMPL_INFO_STR, 0, (&raw mut name).cast());
                let impl_name = if q == ffi::SUCCESS && !name.is_null() {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                } else {
                    "?".into()
                };
                Ok(impl_name)
            })()
        };
        // SAFETY: destroying what was created above (null handles are accepted by oneDNN).
        unsafe {
            (api.primitive_desc_destroy)(pd);
            (api.primitive_attr_destroy)(attr);
            if !post_ops.is_null() {
                (api.post_ops_destroy)(post_ops);
            }
            for md in [src, wei, dst] {
                (api.memory_desc_destroy)(md);
            }
        }
        match result {
            Ok(impl_name) => Ok(Prim { prim, src: m_src, weights: m_wei, dst: m_dst, impl_name }),
            Err(e) => {
                // SAFETY: as above; whichever of these exist are ours.
                unsafe {
                    for m in [m_src, m_wei, m_dst] {
                        if !m.is_null() {
                            (api.memory_destroy)(m);
                        }
                    }
                    if !prim.is_null() {
                        (api.primitive_destroy)(prim);
                    }
                }
                Err(format!("{e} for {key:?}", key = (key.m, key.n, key.k, key.ta, key.tb, key.inputs)))
            }
        }
    }

    /// The name of the implementation oneDNN picks for this product ("brg:avx512_core_bf16", …).
    pub fn impl_name(&self, s: GemmShape, accumulate: bool, inputs: Inputs) -> Result<String, String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self.cached(&mut cache, Self::key(s, accumulate, inputs))?.impl_name.clone())
    }

    /// The primitive for `key`, created on first use.
    fn cached<'c>(&self, cache: &'c mut HashMap<Key, Prim>, key: Key) -> Result<&'c Prim, String> {
        match cache.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => Ok(e.insert(self.create(key)?)),
        }
    }

    fn key(s: GemmShape, accumulate: bool, inputs: Inputs) -> Key {
        Key { m: s.m, n: s.n, k: s.k, ta: s.ta == Trans::T, tb: s.tb == Trans::T, accumulate, inputs }
    }

    /// C (=|+=) op(A)·op(B).
    ///
    /// # Safety
    /// `a`, `b` and `c` point to m·k, k·n and m·n elements of the types `inputs` names (bf16 as
    /// u16 or f32; C always f32), valid for the duration of the call; C does not overlap A or B.
    pub unsafe fn run(
        &self,
        s: GemmShape,
        a: *const c_void,
        b: *const c_void,
        c: *mut f32,
        accumulate: bool,
        inputs: Inputs,
    ) -> Result<(), String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let p = self.cached(&mut cache, Self::key(s, accumulate, inputs))?;
        let api = &self.api;
        // SAFETY: the caller guarantees the pointers; the memory objects belong to this primitive
        // and the mutex is held, so nobody else swaps their handles meanwhile.
        unsafe {
            if let Some(set) = api.omp_set_num_threads {
                set(rayon::current_num_threads() as i32);
            }
            check("memory_set_data_handle", (api.memory_set_data_handle)(p.src, a as *mut c_void))?;
            check("memory_set_data_handle", (api.memory_set_data_handle)(p.weights, b as *mut c_void))?;
            check("memory_set_data_handle", (api.memory_set_data_handle)(p.dst, c.cast()))?;
            let args = [
                ExecArg { arg: ffi::ARG_SRC, memory: p.src },
                ExecArg { arg: ffi::ARG_WEIGHTS, memory: p.weights },
                ExecArg { arg: ffi::ARG_DST, memory: p.dst },
            ];
            check("primitive_execute", (api.primitive_execute)(p.prim, self.stream, 3, args.as_ptr()))?;
            check("stream_wait", (api.stream_wait)(self.stream))?;
        }
        Ok(())
    }
}

//! oneDNN's matmul primitive as a GEMM: C[m×n] (=|+=) op(A)·op(B), row-major, f32 output.
//!
//! Transposes are strides in the memory descriptors (no copies). Creating a primitive costs
//! milliseconds (oneDNN generates its kernel), so each (shape, strides, accumulate, inputs) gets
//! one, cached for the life of the process, with its three memory objects: a call only swaps the
//! data pointers in. `accumulate` is a sum post-op (C = A·B + C), oneDNN's beta = 1.
//!
//! Threads: the model does not use oneDNN's OpenMP team (only the benchmarks' yardstick,
//! [`Matmul::run_team`], does). A product is cut into as many blocks of rows of C
//! as rayon has threads, and each block runs as a single-threaded oneDNN product on a rayon
//! worker, in its own lane (stream, primitives, memory objects). Between products the same
//! workers run the fused ops, so no second pool of threads sleeps and wakes around every product
//! (measured: see the README's "Precision" section).

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::ptr::null_mut;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::ffi::{self, Api, ExecArg};
use crate::gemm_shape::{GemmShape, Trans};

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

impl Inputs {
    /// Bytes per element of A and B.
    fn elem_bytes(self) -> usize {
        if self == Inputs::Bf16 { 2 } else { 4 }
    }
}

/// One operand as oneDNN sees it: op(X) is rows × cols, element (i, j) at i·rs + j·cs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Operand {
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl Operand {
    /// op(X) for X stored row-major, `rows × cols` after the transpose.
    fn whole(t: Trans, rows: usize, cols: usize) -> Operand {
        match t {
            Trans::N => Operand { rows, cols, rs: cols, cs: 1 },
            Trans::T => Operand { rows, cols, rs: 1, cs: rows },
        }
    }

    /// Rows r0.. (`rows` of them): the element offset of the block and its operand.
    fn row_block(self, r0: usize, rows: usize) -> (usize, Operand) {
        (r0 * self.rs, Operand { rows, ..self })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    a: Operand,
    b: Operand,
    c: Operand,
    accumulate: bool,
    inputs: Inputs,
    /// OpenMP threads the primitive was planned for: 1, except in [`Matmul::run_team`].
    team: usize,
}

struct Prim {
    prim: ffi::Primitive,
    src: ffi::Memory,
    weights: ffi::Memory,
    dst: ffi::Memory,
    impl_name: String,
}

/// What one block of a product runs with: a stream and the primitives (with their memory
/// objects, whose data pointers each call swaps in) for the block shapes this lane has seen.
struct Lane {
    stream: ffi::Stream,
    cache: HashMap<Key, Prim>,
    /// A block's product where it cannot be accumulated into C directly (see Matmul::run).
    scratch: Vec<f32>,
}

/// An engine and one lane per block of a split product, created as needed. Each lane is locked
/// while its block runs; blocks of one product use different lanes, so they run at once.
pub struct Matmul {
    api: Api,
    engine: ffi::Engine,
    lanes: Mutex<Vec<Arc<Mutex<Lane>>>>,
}

// SAFETY: oneDNN engines, streams and primitives may be used from any thread; every use of the
// mutable state (memory handles, a stream) goes through its lane's mutex.
unsafe impl Send for Matmul {}
unsafe impl Sync for Matmul {}
// SAFETY: a lane's handles are used only while its mutex is held, by one thread at a time.
unsafe impl Send for Lane {}

/// Products below this many flops run whole on the calling thread: splitting them would cost
/// more in hand-over than it saves.
const MIN_SPLIT_FLOPS: f64 = 2.0e6;

/// The pointers of one product, to be shared by the tasks that run its blocks.
#[derive(Clone, Copy)]
struct Ptrs {
    a: *const u8,
    b: *const u8,
    c: *mut f32,
}
// SAFETY: the blocks write disjoint parts of C and only read A and B (see Matmul::run).
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}

fn check(what: &str, status: ffi::Status) -> Result<(), String> {
    if status == ffi::SUCCESS { Ok(()) } else { Err(format!("oneDNN {what} failed (dnnl_status_t {status})")) }
}

/// Cuts 0..len into at most `parts` ranges of nearly equal length.
fn blocks(len: usize, parts: usize) -> Vec<(usize, usize)> {
    let per = len.div_ceil(parts.max(1)).max(1);
    (0..len).step_by(per).map(|s| (s, per.min(len - s))).collect()
}

impl Matmul {
    /// Loads the library and opens the CPU engine.
    pub fn open(path: &str) -> Result<Matmul, String> {
        let api = Api::load(path)?;
        let mut engine = null_mut();
        // SAFETY: an out-pointer to a local; the engine lives as long as self.
        unsafe { check("engine_create", (api.engine_create)(&mut engine, ffi::ENGINE_CPU, 0))? };
        Ok(Matmul { api, engine, lanes: Mutex::new(Vec::new()) })
    }

    /// "oneDNN 3.2.0 (hash)".
    pub fn version(&self) -> String {
        // SAFETY: dnnl_version returns a pointer to a static struct.
        let v = unsafe { &*(self.api.version)() };
        format!("oneDNN {}.{}.{}", v.major, v.minor, v.patch)
    }

    /// Lane `i`, created on first use.
    fn lane(&self, i: usize) -> Result<Arc<Mutex<Lane>>, String> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        while lanes.len() <= i {
            let mut stream = null_mut();
            // SAFETY: an out-pointer to a local; the engine outlives the stream (both live as long as self).
            check("stream_create", unsafe {
                (self.api.stream_create)(&mut stream, self.engine, ffi::STREAM_IN_ORDER)
            })?;
            lanes.push(Arc::new(Mutex::new(Lane { stream, cache: HashMap::new(), scratch: Vec::new() })));
        }
        Ok(lanes[i].clone())
    }

    fn md(&self, dt: ffi::DataType, op: Operand) -> Result<ffi::MemoryDesc, String> {
        let mut dims = [0i64; ffi::MAX_NDIMS];
        let mut strides = [0i64; ffi::MAX_NDIMS];
        (dims[0], dims[1]) = (op.rows as i64, op.cols as i64);
        (strides[0], strides[1]) = (op.rs as i64, op.cs as i64);
        let mut md = null_mut();
        // SAFETY: dims and strides are int64_t[12] arrays, read for ndims = 2 entries.
        check("memory_desc_create_with_strides", unsafe {
            (self.api.memory_desc_create_with_strides)(&mut md, 2, dims.as_ptr(), dt, strides.as_ptr())
        })?;
        Ok(md)
    }

    /// The primitive for `key`, for a single thread. Called with the OpenMP thread count of the
    /// calling thread at 1, which oneDNN reads when it plans the kernel.
    fn create(&self, key: Key) -> Result<Prim, String> {
        let api = &self.api;
        let in_dt = if key.inputs == Inputs::Bf16 { ffi::DT_BF16 } else { ffi::DT_F32 };
        let src = self.md(in_dt, key.a)?;
        let wei = self.md(in_dt, key.b)?;
        let dst = self.md(ffi::DT_F32, key.c)?;
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
                let (a, b) = (key.a, key.b);
                Err(format!("{e} for {}×{}·{}×{} ({:?})", a.rows, a.cols, b.rows, b.cols, key.inputs))
            }
        }
    }

    /// Sets the OpenMP team of the calling thread (1: oneDNN stays on this thread).
    fn team(&self, threads: usize) {
        if let Some(set) = self.api.omp_set_num_threads {
            // SAFETY: libgomp's omp_set_num_threads sets the calling thread's own ICV.
            unsafe { set(threads.max(1) as i32) };
        }
    }

    /// The name of the implementation oneDNN picks for this product, run whole on one thread
    /// ("brg:avx512_core_bf16", …).
    pub fn impl_name(&self, s: GemmShape, accumulate: bool, inputs: Inputs) -> Result<String, String> {
        let lane = self.lane(0)?;
        let mut lane = lane.lock().unwrap_or_else(|e| e.into_inner());
        let key = Self::whole(s, accumulate, inputs, 1);
        self.team(key.team);
        Ok(self.cached(&mut lane.cache, key)?.impl_name.clone())
    }

    /// The key of a product run whole by a team of `team` threads.
    fn whole(s: GemmShape, accumulate: bool, inputs: Inputs, team: usize) -> Key {
        Key {
            a: Operand::whole(s.ta, s.m, s.k),
            b: Operand::whole(s.tb, s.k, s.n),
            c: Operand::whole(Trans::N, s.m, s.n),
            accumulate,
            inputs,
            team,
        }
    }

    /// The primitive for `key`, created on first use.
    fn cached<'c>(&self, cache: &'c mut HashMap<Key, Prim>, key: Key) -> Result<&'c Prim, String> {
        match cache.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => Ok(e.insert(self.create(key)?)),
        }
    }

    /// Runs one block on the calling thread in lane `lane`: C block (offset `oc`) (=|+=) A block
    /// (element offset `oa`) · B. With `via_scratch` the block's product is written to the
    /// lane's scratch and then added to C: oneDNN 3.2 has only its reference kernel (≈ 100×
    /// slower) for a sum post-op on a strided A, which a row block of a transposed A is.
    ///
    /// # Safety
    /// As for [`Matmul::run`], for the block's elements.
    unsafe fn run_block(
        &self,
        lane: usize,
        key: Key,
        p: Ptrs,
        (oa, oc): (usize, usize),
        via_scratch: bool,
    ) -> Result<(), String> {
        let lane = self.lane(lane)?;
        let mut lane = lane.lock().unwrap_or_else(|e| e.into_inner());
        let lane = &mut *lane;
        self.team(key.team);
        let key = if via_scratch { Key { accumulate: false, ..key } } else { key };
        let prim = self.cached(&mut lane.cache, key)?;
        let api = &self.api;
        let eb = key.inputs.elem_bytes();
        let c_len = key.c.rows * key.c.cols;
        if via_scratch && lane.scratch.len() < c_len {
            lane.scratch.resize(c_len, 0.0);
        }
        // SAFETY: the caller guarantees the pointers and offsets; the memory objects belong to
        // this lane, whose mutex is held, so nobody else swaps their handles meanwhile.
        unsafe {
            let (a, c) = (p.a.add(oa * eb), p.c.add(oc));
            let dst = if via_scratch { lane.scratch.as_mut_ptr() } else { c };
            check("memory_set_data_handle", (api.memory_set_data_handle)(prim.src, a as *mut c_void))?;
            check("memory_set_data_handle", (api.memory_set_data_handle)(prim.weights, p.b as *mut c_void))?;
            check("memory_set_data_handle", (api.memory_set_data_handle)(prim.dst, dst.cast()))?;
            let args = [
                ExecArg { arg: ffi::ARG_SRC, memory: prim.src },
                ExecArg { arg: ffi::ARG_WEIGHTS, memory: prim.weights },
                ExecArg { arg: ffi::ARG_DST, memory: prim.dst },
            ];
            check("primitive_execute", (api.primitive_execute)(prim.prim, lane.stream, 3, args.as_ptr()))?;
            check("stream_wait", (api.stream_wait)(lane.stream))?;
            if via_scratch {
                // C's block is dense (whole rows of a row-major C).
                let c = std::slice::from_raw_parts_mut(c, c_len);
                c.iter_mut().zip(&lane.scratch[..c_len]).for_each(|(c, s)| *c += s);
            }
        }
        Ok(())
    }

    /// C (=|+=) op(A)·op(B), cut into blocks of rows of C run at once on rayon's threads, one
    /// single-threaded oneDNN product each (rows, not columns: a column block of C or B is a
    /// strided operand, for which oneDNN 3.2 falls back to slower kernels). A given shape and
    /// thread count always cuts the same way, so results repeat bit for bit.
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
        let whole = Self::whole(s, accumulate, inputs, 1);
        let threads = rayon::current_num_threads().max(1);
        let parts = if s.flops() < MIN_SPLIT_FLOPS { 1 } else { threads };
        let cuts = blocks(s.m, parts);
        let via_scratch = accumulate && s.ta == Trans::T && cuts.len() > 1;
        let p = Ptrs { a: a.cast(), b: b.cast(), c };
        let block = |i: usize| -> Result<(), String> {
            let (start, len) = cuts[i];
            let ((da, a), (dc, c)) = (whole.a.row_block(start, len), whole.c.row_block(start, len));
            // SAFETY: the block lies inside A and C as the caller promised for the whole product,
            // and blocks write disjoint rows of C.
            unsafe { self.run_block(i, Key { a, c, ..whole }, p, (da, dc), via_scratch) }
        };
        if cuts.len() == 1 {
            return block(0);
        }
        (0..cuts.len()).into_par_iter().map(block).collect::<Result<Vec<()>, String>>().map(|_| ())
    }

    /// The product whole, as one oneDNN call parallelised by the library itself over an OpenMP
    /// team of `threads` (the calling thread and `threads − 1` of libgomp's): the yardstick the
    /// benchmarks hold [`Matmul::run`] to. Not used by the model.
    ///
    /// # Safety
    /// As for [`Matmul::run`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run_team(
        &self,
        s: GemmShape,
        a: *const c_void,
        b: *const c_void,
        c: *mut f32,
        accumulate: bool,
        inputs: Inputs,
        threads: usize,
    ) -> Result<(), String> {
        let p = Ptrs { a: a.cast(), b: b.cast(), c };
        // SAFETY: as the caller promised.
        unsafe { self.run_block(0, Self::whole(s, accumulate, inputs, threads), p, (0, 0), false) }
    }
}

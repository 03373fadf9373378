//! The few functions of oneDNN's C API (3.x ABI) that cagem calls, loaded at run time.
//!
//! Declared by hand from `include/oneapi/dnnl/{dnnl.h, dnnl_types.h, dnnl_common_types.h}` at the
//! v3.2 tag (the PyPI wheel `onednn-cpu-gomp==2023.2.0` ships the library but no headers). Only
//! what the matmul primitive needs; every handle is an opaque pointer. Loading with `libloading`
//! keeps the default build pure Rust: without the library only `--precision bf16` fails.

use std::ffi::{c_char, c_int, c_uint, c_void};

use libloading::Library;

pub type Status = c_int; // dnnl_status_t
pub const SUCCESS: Status = 0; // dnnl_success

pub type DataType = c_int; // dnnl_data_type_t
pub const DT_BF16: DataType = 2; // dnnl_bf16
pub const DT_F32: DataType = 3; // dnnl_f32

pub type FpmathMode = c_int; // dnnl_fpmath_mode_t
pub const FPMATH_STRICT: FpmathMode = 0; // dnnl_fpmath_mode_strict
pub const FPMATH_BF16: FpmathMode = 1; // dnnl_fpmath_mode_bf16

pub const ENGINE_CPU: c_int = 1; // dnnl_engine_kind_t: dnnl_any_engine = 0, dnnl_cpu = 1
pub const STREAM_IN_ORDER: c_uint = 1; // dnnl_stream_in_order (= dnnl_stream_default_flags)

pub const ARG_SRC: c_int = 1; // DNNL_ARG_SRC_0
pub const ARG_DST: c_int = 17; // DNNL_ARG_DST_0
pub const ARG_WEIGHTS: c_int = 33; // DNNL_ARG_WEIGHTS_0

/// `DNNL_MAX_NDIMS`: `dnnl_dims_t` is `int64_t[12]`, passed as a pointer to its first element.
pub const MAX_NDIMS: usize = 12;
pub type Dims = [i64; MAX_NDIMS];

pub type Engine = *mut c_void; // dnnl_engine_t
pub type Stream = *mut c_void; // dnnl_stream_t
pub type MemoryDesc = *mut c_void; // dnnl_memory_desc_t (3.x: a pointer to an opaque struct)
pub type Memory = *mut c_void; // dnnl_memory_t
pub type PrimitiveDesc = *mut c_void; // dnnl_primitive_desc_t
pub type Primitive = *mut c_void; // dnnl_primitive_t
pub type Attr = *mut c_void; // dnnl_primitive_attr_t
pub type PostOps = *mut c_void; // dnnl_post_ops_t

/// `dnnl_exec_arg_t`: `{ int arg; dnnl_memory_t memory; }`.
#[repr(C)]
pub struct ExecArg {
    pub arg: c_int,
    pub memory: Memory,
}

/// `dnnl_version_t`.
#[repr(C)]
pub struct Version {
    pub major: c_int,
    pub minor: c_int,
    pub patch: c_int,
    pub hash: *const c_char,
    pub cpu_runtime: c_uint,
    pub gpu_runtime: c_uint,
}

/// The loaded library and its entry points (the `Library` must outlive the pointers, so it is
/// kept here and never unloaded).
pub struct Api {
    _lib: Library,
    pub version: unsafe extern "C" fn() -> *const Version,
    pub engine_create: unsafe extern "C" fn(*mut Engine, c_int, usize) -> Status,
    pub stream_create: unsafe extern "C" fn(*mut Stream, Engine, c_uint) -> Status,
    pub memory_desc_create_with_strides:
        unsafe extern "C" fn(*mut MemoryDesc, c_int, *const i64, DataType, *const i64) -> Status,
    pub memory_desc_destroy: unsafe extern "C" fn(MemoryDesc) -> Status,
    pub memory_create: unsafe extern "C" fn(*mut Memory, MemoryDesc, Engine, *mut c_void) -> Status,
    pub memory_set_data_handle: unsafe extern "C" fn(Memory, *mut c_void) -> Status,
    pub memory_destroy: unsafe extern "C" fn(Memory) -> Status,
    pub primitive_attr_create: unsafe extern "C" fn(*mut Attr) -> Status,
    pub primitive_attr_destroy: unsafe extern "C" fn(Attr) -> Status,
    pub primitive_attr_set_fpmath_mode: unsafe extern "C" fn(Attr, FpmathMode) -> Status,
    pub primitive_attr_set_post_ops: unsafe extern "C" fn(Attr, PostOps) -> Status,
    pub post_ops_create: unsafe extern "C" fn(*mut PostOps) -> Status,
    pub post_ops_append_sum: unsafe extern "C" fn(PostOps, f32, i32, DataType) -> Status,
    pub post_ops_destroy: unsafe extern "C" fn(PostOps) -> Status,
    pub matmul_primitive_desc_create: unsafe extern "C" fn(
        *mut PrimitiveDesc,
        Engine,
        MemoryDesc, // src
        MemoryDesc, // weights
        MemoryDesc, // bias (null: none)
        MemoryDesc, // dst
        Attr,
    ) -> Status,
    pub primitive_desc_query_info: unsafe extern "C" fn(PrimitiveDesc, c_int, c_int, *mut c_void) -> Status,
    pub primitive_desc_destroy: unsafe extern "C" fn(PrimitiveDesc) -> Status,
    pub primitive_create: unsafe extern "C" fn(*mut Primitive, PrimitiveDesc) -> Status,
    pub primitive_execute: unsafe extern "C" fn(Primitive, Stream, c_int, *const ExecArg) -> Status,
    pub primitive_destroy: unsafe extern "C" fn(Primitive) -> Status,
    pub stream_wait: unsafe extern "C" fn(Stream) -> Status,
    /// libgomp's `omp_set_num_threads` (the OpenMP runtime libdnnl runs on), if found: set to 1
    /// on each thread that runs a product, so that oneDNN stays on that thread (matmul.rs).
    pub omp_set_num_threads: Option<unsafe extern "C" fn(c_int)>,
    _gomp: Option<Library>,
}

/// `dnnl_query_impl_info_str` (dnnl_query_t), for naming the implementation oneDNN chose.
pub const QUERY_IMPL_INFO_STR: c_int = 8;

impl Api {
    /// Opens the library at `path` (a file name is searched for as the system loader does) and
    /// resolves every entry point.
    pub fn load(path: &str) -> Result<Api, String> {
        // SAFETY: loading runs the library's initialisers; libdnnl's are plain C++ statics.
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("cannot load {path}: {e}"))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the type of each field is the C prototype of the symbol of that name
                // (checked against the v3.2 headers); the Library is stored beside the pointers.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("{path} lacks {}: {e} (oneDNN 3.x needed)", $name))?
            };
        }
        // SAFETY: libgomp is already loaded as libdnnl's dependency; this only takes a handle.
        let gomp = unsafe { Library::new("libgomp.so.1") }.ok();
        // SAFETY: `void omp_set_num_threads(int)`; the handle is stored beside the pointer.
        let omp_set_num_threads =
            gomp.as_ref().and_then(|g| unsafe { g.get(b"omp_set_num_threads\0") }.ok().map(|f| *f));
        Ok(Api {
            omp_set_num_threads,
            _gomp: gomp,
            version: sym!("dnnl_version"),
            engine_create: sym!("dnnl_engine_create"),
            stream_create: sym!("dnnl_stream_create"),
            memory_desc_create_with_strides: sym!("dnnl_memory_desc_create_with_strides"),
            memory_desc_destroy: sym!("dnnl_memory_desc_destroy"),
            memory_create: sym!("dnnl_memory_create"),
            memory_set_data_handle: sym!("dnnl_memory_set_data_handle"),
            memory_destroy: sym!("dnnl_memory_destroy"),
            primitive_attr_create: sym!("dnnl_primitive_attr_create"),
            primitive_attr_destroy: sym!("dnnl_primitive_attr_destroy"),
            primitive_attr_set_fpmath_mode: sym!("dnnl_primitive_attr_set_fpmath_mode"),
            primitive_attr_set_post_ops: sym!("dnnl_primitive_attr_set_post_ops"),
            post_ops_create: sym!("dnnl_post_ops_create"),
            post_ops_append_sum: sym!("dnnl_post_ops_append_sum"),
            post_ops_destroy: sym!("dnnl_post_ops_destroy"),
            matmul_primitive_desc_create: sym!("dnnl_matmul_primitive_desc_create"),
            primitive_desc_query_info: sym!("dnnl_primitive_desc_query"),
            primitive_desc_destroy: sym!("dnnl_primitive_desc_destroy"),
            primitive_create: sym!("dnnl_primitive_create"),
            primitive_execute: sym!("dnnl_primitive_execute"),
            primitive_destroy: sym!("dnnl_primitive_destroy"),
            stream_wait: sym!("dnnl_stream_wait"),
            _lib: lib,
        })
    }
}

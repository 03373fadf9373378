//! One CUDA GPU: its context, the single stream all work is queued on, the kernels (loaded
//! from the PTX embedded at build time), and a cuBLAS handle bound to the stream.
//!
//! Memory is stream-ordered (cuMemAllocAsync / cuMemFreeAsync, through cudarc) from the
//! device's default pool, whose release threshold is raised so that freed blocks stay cached
//! for the next step instead of going back to the driver: allocation on the hot path is a
//! pool hit, not a cudaMalloc.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, sys};
use cudarc::nvrtc::Ptx;

use super::error::{self, describe};
use crate::device_error::DeviceError;

pub struct CudaDevice {
    ordinal: usize,
    name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    modules: Vec<(&'static str, Arc<CudaModule>)>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    pool: sys::CUmemoryPool,
    tf32: AtomicBool,
}

// SAFETY: the raw pool handle is only passed to thread-safe driver calls.
unsafe impl Send for CudaDevice {}
unsafe impl Sync for CudaDevice {}

fn driver_err(what: &str, e: cudarc::driver::DriverError) -> DeviceError {
    DeviceError::Cuda(format!("{what}: {}", describe(e.0)))
}

impl CudaDevice {
    /// Opens GPU `ordinal`. Every failure is an error, never a panic: no driver library, no
    /// cuBLAS, no GPU, a GPU older than the PTX target, or a driver too old for the PTX.
    pub fn open(ordinal: usize) -> Result<Arc<Self>, DeviceError> {
        // cudarc panics when it first touches a missing library, so check both first.
        if !unsafe { sys::is_culib_present() } {
            return Err(DeviceError::NoDriver(
                "the CUDA driver library (libcuda.so) was not found: this machine has no NVIDIA driver, \
                 or its folder is not on the library path"
                    .into(),
            ));
        }
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(DeviceError::NoDriver(
                "cuBLAS (libcublas.so.13 or .12) was not found: install the CUDA libraries, or add the \
                 folder holding libcublas to LD_LIBRARY_PATH"
                    .into(),
            ));
        }
        let count = CudaContext::device_count().map_err(|e| driver_err("no usable CUDA GPU (cuInit failed)", e))?;
        if count <= 0 {
            return Err(DeviceError::Cuda("the CUDA driver reports no GPU".into()));
        }
        if ordinal >= count as usize {
            return Err(DeviceError::Cuda(format!("cuda:{ordinal} was asked for, but there are {count} GPU(s)")));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| driver_err("cannot create a CUDA context", e))?;
        // One stream: cudarc's per-buffer events (for multi-stream safety) would only cost time.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| driver_err("cannot create a CUDA stream", e))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let pool = unsafe {
            let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
            sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
                .result()
                .map_err(|e| driver_err("no stream-ordered memory pool", e))?;
            let mut keep: u64 = u64::MAX;
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                &mut keep as *mut u64 as *mut _,
            )
            .result()
            .map_err(|e| driver_err("cannot configure the memory pool", e))?;
            pool
        };
        // Checked before loading: PTX for a newer GPU fails to load with a less telling error.
        let (major, minor) =
            ctx.compute_capability().map_err(|e| driver_err("cannot read the GPU's compute capability", e))?;
        error::check_capability(major, minor, error::PTX_ARCH)
            .map_err(|e| DeviceError::Cuda(format!("cuda:{ordinal} ({name}): {e}")))?;
        let mut modules = Vec::new();
        for &(module, src) in super::ptx::MODULES {
            let m = ctx
                .load_module(Ptx::from_src(src))
                .map_err(|e| DeviceError::Cuda(error::module_load_failure(module, e.0, &describe(e.0))))?;
            modules.push((module, m));
        }
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| DeviceError::Cuda(format!("cannot create a cuBLAS handle: {e:?}")))?;
        Ok(Arc::new(CudaDevice {
            ordinal,
            name,
            ctx,
            stream,
            blas,
            modules,
            functions: Mutex::new(HashMap::new()),
            pool,
            tf32: AtomicBool::new(false),
        }))
    }

    pub fn name(&self) -> String {
        format!("cuda:{} ({})", self.ordinal, self.name)
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn blas(&self) -> &CudaBlas {
        &self.blas
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Waits for all queued work; panics with the driver's message if any of it failed.
    pub fn synchronize(&self) {
        self.stream.synchronize().unwrap_or_else(|e| {
            panic!("{}", error::async_failure(&format!("work on {}", self.name()), e.0, &describe(e.0)))
        });
    }

    /// The kernel `name` from the embedded PTX (looked up once, then cached).
    pub fn function(&self, name: &str) -> CudaFunction {
        let mut cache = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = cache.get(name) {
            return f.clone();
        }
        let f = self
            .modules
            .iter()
            .find_map(|(_, m)| m.load_function(name).ok())
            .unwrap_or_else(|| panic!("kernel {name} is not in the embedded PTX (build.rs out of date?)"));
        cache.insert(name.to_string(), f.clone());
        f
    }

    /// At least one element: what the stream-ordered allocator does with 0 bytes is undocumented.
    /// Callers keep the logical length.
    pub(super) fn alloc_slice<T: DeviceRepr>(&self, len: usize) -> CudaSlice<T> {
        let n = len.max(1);
        unsafe { self.stream.alloc::<T>(n) }.unwrap_or_else(|e| {
            let bytes = n * std::mem::size_of::<T>();
            panic!("{}", error::alloc_failure(&self.name(), bytes, e.0, &describe(e.0)))
        })
    }

    /// The compute capability (major, minor).
    pub fn compute_capability(&self) -> Result<(i32, i32), DeviceError> {
        self.ctx.compute_capability().map_err(|e| driver_err("cannot read the compute capability", e))
    }

    /// Lets cuBLAS use TF32 tensor cores for f32 products (faster, ~1e-3 relative error).
    pub fn set_tf32(&self, on: bool) {
        use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode};
        let mode = if on { cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH } else { cublasMath_t::CUBLAS_DEFAULT_MATH };
        unsafe { cublasSetMathMode(*self.blas.handle(), mode) }
            .result()
            .unwrap_or_else(|e| panic!("cublasSetMathMode failed: {e:?}"));
        self.tf32.store(on, Ordering::Relaxed);
    }

    pub fn tf32(&self) -> bool {
        self.tf32.load(Ordering::Relaxed)
    }

    fn pool_attribute(&self, attr: sys::CUmemPool_attribute) -> u64 {
        let mut v: u64 = 0;
        unsafe { sys::cuMemPoolGetAttribute(self.pool, attr, &mut v as *mut u64 as *mut _) }
            .result()
            .unwrap_or_else(|e| panic!("cuMemPoolGetAttribute failed: {e:?}"));
        v
    }

    /// The most device memory in use at once since the last reset (bytes).
    pub fn peak_memory(&self) -> u64 {
        self.synchronize();
        self.pool_attribute(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)
    }

    pub fn reset_peak_memory(&self) {
        self.synchronize();
        let mut zero: u64 = 0;
        unsafe {
            sys::cuMemPoolSetAttribute(
                self.pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                &mut zero as *mut u64 as *mut _,
            )
        }
        .result()
        .unwrap_or_else(|e| panic!("cuMemPoolSetAttribute failed: {e:?}"));
    }
}

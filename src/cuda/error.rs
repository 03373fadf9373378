//! What the driver's failures mean, in words: pure functions of the CUresult (and the device's
//! compute capability), so that they are tested without a GPU.

use cudarc::driver::sys::CUresult;

/// The PTX target the kernels were compiled for (build.rs: `-arch`, $CAGEM_CUDA_ARCH).
pub const PTX_ARCH: &str = super::ptx::PTX_ARCH;

/// The error's name (`CUDA_ERROR_…`), with the driver's description when its library is there
/// (asking a missing libcuda would panic).
pub(crate) fn describe(code: CUresult) -> String {
    let name = format!("{code:?}");
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return name;
    }
    match cudarc::driver::DriverError(code).error_string() {
        Ok(s) => format!("{name}: {}", s.to_string_lossy()),
        Err(_) => name,
    }
}

/// A failed allocation of `bytes` on `device`. Only CUDA_ERROR_OUT_OF_MEMORY is "out of memory";
/// anything else (a sticky fault of earlier work, a lost context) is named as what it is.
pub(crate) fn alloc_failure(device: &str, bytes: usize, code: CUresult, detail: &str) -> String {
    match code {
        CUresult::CUDA_ERROR_OUT_OF_MEMORY => format!(
            "out of GPU memory on {device}: cannot allocate {bytes} bytes ({detail}); try a smaller batch or \
             fewer importance samples per chunk"
        ),
        _ => format!(
            "cannot allocate {bytes} bytes on {device}: {detail}{}",
            if earlier_fault(code) { EARLIER_FAULT } else { "" }
        ),
    }
}

const EARLIER_FAULT: &str = "; CUDA reports a fault of earlier asynchronous work at the next call, so it may come \
                             from an earlier kernel: rerun with CUDA_LAUNCH_BLOCKING=1 to find it";

/// True for errors that launch-time checks cannot produce: faults of work already queued.
fn earlier_fault(code: CUresult) -> bool {
    !matches!(
        code,
        CUresult::CUDA_ERROR_OUT_OF_MEMORY
            | CUresult::CUDA_ERROR_INVALID_VALUE
            | CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
            | CUresult::CUDA_ERROR_INVALID_HANDLE
            | CUresult::CUDA_ERROR_NOT_FOUND
    )
}

/// A failed launch of `kernel`. Configuration errors are the launch's own; any other error may
/// be an earlier kernel's fault that the driver reports at this call.
pub(crate) fn launch_failure(kernel: &str, code: CUresult, detail: &str) -> String {
    if earlier_fault(code) {
        format!(
            "CUDA error at the launch of {kernel}: {detail}. CUDA reports faults of earlier asynchronous launches \
             at the next call, so this may come from an earlier kernel: rerun with CUDA_LAUNCH_BLOCKING=1 to find it"
        )
    } else {
        format!("CUDA launch of {kernel} failed: {detail} (a bad launch configuration or argument)")
    }
}

/// A failure of other queued work (copies, synchronisation), reported where it surfaced.
pub(crate) fn async_failure(what: &str, code: CUresult, detail: &str) -> String {
    format!("CUDA {what} failed: {detail}{}", if earlier_fault(code) { EARLIER_FAULT } else { "" })
}

/// A PTX module that would not load (after the capability check has passed).
pub(crate) fn module_load_failure(module: &str, code: CUresult, detail: &str) -> String {
    let hint = match code {
        CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => {
            " — the driver is older than the CUDA 13.0 that compiled the PTX (ISA 9.0): update the NVIDIA driver \
             (580 or later), or build with an nvcc as old as the driver (NVCC=…)"
        }
        CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU | CUresult::CUDA_ERROR_INVALID_PTX => {
            " — the PTX does not suit this GPU: rebuild with CAGEM_CUDA_ARCH=compute_<its capability>"
        }
        _ => "",
    };
    format!("cannot load the PTX of kernels/{module}.cu: {detail}{hint}")
}

/// The (major, minor) compute capability a PTX target such as `compute_80` or `compute_90a` needs,
/// and whether it is architecture-specific (`a`: that exact GPU only; `f`: that family).
fn target_capability(target: &str) -> Option<(i32, i32, char)> {
    let digits = target.strip_prefix("compute_")?;
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    let n: i32 = digits[..end].parse().ok()?;
    let suffix = match &digits[end..] {
        "" => ' ',
        "a" => 'a',
        "f" => 'f',
        _ => return None,
    };
    Some((n / 10, n % 10, suffix))
}

/// Whether a GPU of compute capability `major.minor` can run PTX built for `target` (the
/// driver JIT-compiles PTX for its own GPU and newer ones, never older), and what to do if not.
pub fn check_capability(major: i32, minor: i32, target: &str) -> Result<(), String> {
    let Some((tmaj, tmin, suffix)) = target_capability(target) else {
        return Err(format!("the kernels were built for an unknown PTX target {target:?} (expected compute_XY)"));
    };
    let ok = match suffix {
        'a' => (major, minor) == (tmaj, tmin),
        'f' => major == tmaj && minor >= tmin,
        _ => (major, minor) >= (tmaj, tmin),
    };
    if ok {
        return Ok(());
    }
    let needs = match suffix {
        'a' => format!("exactly {tmaj}.{tmin}"),
        'f' => format!("{tmaj}.{tmin} to {tmaj}.9"),
        _ => format!("{tmaj}.{tmin} or newer"),
    };
    Err(format!(
        "this GPU has compute capability {major}.{minor}, but the kernels were built as PTX for {target} (which \
         needs {needs}): rebuild with CAGEM_CUDA_ARCH=compute_{major}{minor} cargo build --release --features cuda \
         (the kernels are tested on compute capability 8.0 and later)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_against_plain_target() {
        assert!(check_capability(8, 0, "compute_80").is_ok());
        assert!(check_capability(9, 0, "compute_80").is_ok());
        assert!(check_capability(12, 0, "compute_90").is_ok());
        let e = check_capability(7, 5, "compute_80").unwrap_err();
        assert!(e.contains("7.5") && e.contains("compute_80") && e.contains("CAGEM_CUDA_ARCH=compute_75"), "{e}");
        assert!(check_capability(8, 6, "compute_89").is_err());
        assert!(check_capability(10, 0, "compute_100").is_ok());
        assert!(check_capability(9, 0, "compute_100").is_err());
    }

    #[test]
    fn capability_against_specific_targets() {
        assert!(check_capability(9, 0, "compute_90a").is_ok());
        assert!(check_capability(10, 0, "compute_90a").is_err());
        assert!(check_capability(10, 3, "compute_100f").is_ok());
        assert!(check_capability(11, 0, "compute_100f").is_err());
        assert!(check_capability(9, 0, "sm_90").is_err());
        assert!(check_capability(9, 0, "compute_9x").is_err());
    }

    #[test]
    fn the_build_target_is_one_the_check_understands() {
        assert!(target_capability(PTX_ARCH).is_some(), "{PTX_ARCH}");
    }

    #[test]
    fn only_out_of_memory_is_called_out_of_memory() {
        let oom = alloc_failure("cuda:0 (X)", 4096, CUresult::CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY");
        assert!(oom.starts_with("out of GPU memory on cuda:0 (X)") && oom.contains("4096 bytes"), "{oom}");
        let fault = describe(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS);
        assert!(fault.starts_with("CUDA_ERROR_ILLEGAL_ADDRESS"), "{fault}");
        let e = alloc_failure("cuda:0 (X)", 4096, CUresult::CUDA_ERROR_ILLEGAL_ADDRESS, &fault);
        assert!(!e.contains("out of GPU memory"), "{e}");
        assert!(e.contains("CUDA_ERROR_ILLEGAL_ADDRESS") && e.contains("CUDA_LAUNCH_BLOCKING=1"), "{e}");
    }

    #[test]
    fn launch_errors_point_at_earlier_work_unless_the_launch_itself_was_bad() {
        let e = launch_failure("adam_f32", CUresult::CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS");
        assert!(e.contains("adam_f32") && e.contains("earlier") && e.contains("CUDA_LAUNCH_BLOCKING=1"), "{e}");
        let e = launch_failure("adam_f32", CUresult::CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE");
        assert!(e.contains("launch of adam_f32 failed") && !e.contains("CUDA_LAUNCH_BLOCKING"), "{e}");
    }

    #[test]
    fn old_drivers_and_wrong_targets_say_what_to_do() {
        let e = module_load_failure("adam", CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION, "x");
        assert!(e.contains("kernels/adam.cu") && e.contains("driver"), "{e}");
        let e = module_load_failure("adam", CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU, "x");
        assert!(e.contains("CAGEM_CUDA_ARCH"), "{e}");
    }
}

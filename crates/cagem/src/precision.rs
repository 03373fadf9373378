//! Choosing the arithmetic of the matrix products: checking that a requested precision can run
//! here (never a silent fall-back) and resolving `auto`.

use cagem_autodiff::Device;
pub use cagem_kernels::gemm::Precision;

use crate::error::{Error, Result};

/// Ok if `precision` can run on `device`; otherwise one line saying why not.
pub fn check(precision: Precision, device: &Device) -> Result<()> {
    match precision {
        Precision::F32 => Ok(()),
        Precision::Bf16 if !device.is_cpu() => {
            Err(Error::config("--precision bf16 is CPU-only for now (use --precision f32, or --tf32 on a GPU)"))
        }
        Precision::Bf16 => {
            Precision::bf16_available().map_err(|e| Error::config(format!("--precision bf16 is unavailable: {e}")))
        }
    }
}

/// A `--precision` value: f32, bf16, or auto (bf16 where it can run, else f32; the choice and its
/// reason go to stderr as one line).
pub fn resolve(name: &str, device: &Device) -> Result<Precision> {
    if name == "auto" {
        let p = if check(Precision::Bf16, device).is_ok() { Precision::Bf16 } else { Precision::F32 };
        let why = match check(Precision::Bf16, device) {
            Ok(()) => "bf16 products available here".to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!("precision: auto chose {} ({why})", p.name());
        return Ok(p);
    }
    let p = Precision::parse(name)
        .ok_or_else(|| Error::config(format!("unknown --precision '{name}': expected f32, bf16 or auto")))?;
    check(p, device)?;
    Ok(p)
}

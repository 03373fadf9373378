//! Choosing the arithmetic of the matrix products: checking that a requested precision can run
//! here (never a silent fall-back) and resolving `auto`.

use cagem_autodiff::Device;
pub use cagem_kernels::gemm::Precision;

use crate::error::{Error, Result};
use crate::timing::median_seconds;

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

/// The one place a command's precision is decided, from its `--precision` flag (f32, bf16, or
/// auto: the faster of the two here, the choice and its reason on stderr) and, on a resume, the
/// run's saved one: a resumed run keeps its own unless the flag names another (`auto` keeps it
/// too); a fresh one without the flag is f32. The model carries the result
/// (`Cagem::set_precision`); its graphs and its optimiser step read it there.
pub fn resolve(flag: Option<&str>, saved: Option<Precision>, device: &Device) -> Result<Precision> {
    let name = match (flag, saved) {
        (Some("auto") | None, Some(p)) => return check(p, device).map(|()| p),
        (Some(name), _) => name,
        (None, None) => return Ok(Precision::F32),
    };
    if name == "auto" {
        let (p, why) = match check(Precision::Bf16, device) {
            Err(e) => (Precision::F32, e.to_string()),
            Ok(()) => {
                let s = probe_speed();
                (s.choice(), s.describe())
            }
        };
        eprintln!("precision: auto chose {} ({why})", p.name());
        return Ok(p);
    }
    let p = Precision::parse(name)
        .ok_or_else(|| Error::config(format!("unknown --precision '{name}': expected f32, bf16 or auto")))?;
    check(p, device)?;
    Ok(p)
}

/// The model's most frequent large product (the K-fold hidden layer: 1000 rows, 1024 → 512) timed
/// in both arithmetics. bf16 products exist on every AVX512_BF16 CPU but are not always faster:
/// on Intel cores without AMX (or where a VM hides it) one bf16 dot product per cycle does no
/// more work than two f32 FMAs, and the rounding is extra, so a training step ran ≈ 1.5× slower
/// in bf16 (README, "Precision"). Measuring is cheaper than guessing from CPU flags (≈ 0.1 s).
#[derive(Clone, Copy, Debug)]
pub struct SpeedProbe {
    pub f32_gflops: f64,
    pub bf16_gflops: f64,
}

/// bf16 must beat f32 by this factor to be chosen: below it the gain is within run-to-run noise
/// and not worth bf16's rounding.
const BF16_MIN_GAIN: f64 = 1.1;

impl SpeedProbe {
    pub fn choice(&self) -> Precision {
        if self.bf16_gflops >= BF16_MIN_GAIN * self.f32_gflops { Precision::Bf16 } else { Precision::F32 }
    }

    pub fn describe(&self) -> String {
        format!(
            "bf16 products run here at {:.2}× the speed of f32: {:.0} against {:.0} GFLOP/s at 1000×1024×512",
            self.bf16_gflops / self.f32_gflops,
            self.bf16_gflops,
            self.f32_gflops
        )
    }
}

/// Times the probe product (median of 5 after 2 untimed) in f32 and in bf16. Needs oneDNN.
pub fn probe_speed() -> SpeedProbe {
    use cagem_kernels::bf16::Bf16Buf;
    use cagem_kernels::gemm::{GemmShape, Trans, cpu, gemm_bf16};
    let s = GemmShape::new(1000, 512, 1024, Trans::N, Trans::N);
    // Any finite values do: the speed of a product does not depend on them.
    let a: Vec<f32> = (0..s.m * s.k).map(|i| ((i % 97) as f32 - 48.0) / 64.0).collect();
    let b: Vec<f32> = (0..s.k * s.n).map(|i| ((i % 89) as f32 - 44.0) / 64.0).collect();
    let mut c = vec![0.0f32; s.m * s.n];
    let (a16, b16) = (Bf16Buf::from_f32(&a), Bf16Buf::from_f32(&b));
    let f32_s = median_seconds(|| cpu::gemm(s, &a, &b, &mut c, false));
    let bf16_s = median_seconds(|| gemm_bf16(s, &a16, &b16, &mut c, false));
    SpeedProbe { f32_gflops: s.flops() / f32_s / 1e9, bf16_gflops: s.flops() / bf16_s / 1e9 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_decides_from_the_flag_then_the_run() {
        let cpu = Device::Cpu;
        assert_eq!(resolve(None, None, &cpu).unwrap(), Precision::F32, "a fresh run without the flag");
        assert_eq!(resolve(None, Some(Precision::F32), &cpu).unwrap(), Precision::F32, "a resume keeps its own");
        assert_eq!(resolve(Some("auto"), Some(Precision::F32), &cpu).unwrap(), Precision::F32, "auto keeps it too");
        assert_eq!(
            resolve(Some("f32"), Some(Precision::Bf16), &cpu).unwrap(),
            Precision::F32,
            "the flag may change it"
        );
        let e = resolve(Some("f16"), None, &cpu).unwrap_err().to_string();
        assert!(e.contains("unknown --precision 'f16'"), "{e}");
    }

    #[test]
    fn auto_takes_bf16_only_when_clearly_faster() {
        let probe = |f32_gflops, bf16_gflops| SpeedProbe { f32_gflops, bf16_gflops };
        assert_eq!(probe(200.0, 400.0).choice(), Precision::Bf16);
        assert_eq!(probe(200.0, 215.0).choice(), Precision::F32);
        assert_eq!(probe(240.0, 150.0).choice(), Precision::F32);
        assert!(probe(240.0, 150.0).describe().contains("0.62× the speed of f32"));
    }
}

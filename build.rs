//! With the `cuda` feature, compiles every kernels/*.cu to PTX with nvcc and writes
//! $OUT_DIR/ptx.rs, which src/cuda/mod.rs includes, so the PTX is embedded in the binary.
//! Without the feature it does nothing: a CPU-only build needs nothing but Rust.
//!
//! nvcc is found as $NVCC, else `nvcc` on PATH, else the pinned one that
//! scripts/install-nvcc.sh puts in .venv-cuda/. $CAGEM_CUDA_ARCH overrides the virtual
//! architecture (default compute_80: PTX that the driver compiles for A100, H100 and later).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CAGEM_CUDA_ARCH");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let nvcc = find_nvcc(&root).unwrap_or_else(|| {
        fail(
            "the `cuda` feature compiles kernels/*.cu to PTX with nvcc, and no nvcc was found \
             (not in $NVCC, not on PATH, not in .venv-cuda/).\n\
             Install the pinned CUDA 13.0 compiler (no GPU needed, ~100 MB from PyPI) with\n    \
             scripts/install-nvcc.sh\n\
             or point NVCC at an nvcc of CUDA 13.0.",
        )
    });
    let arch = std::env::var("CAGEM_CUDA_ARCH").unwrap_or_else(|_| "compute_80".into());
    // A virtual architecture keeps the binary PTX-only (JIT-compiled by the driver), and is what
    // CudaDevice::open checks the GPU's compute capability against.
    let valid = arch.strip_prefix("compute_").is_some_and(|d| {
        let d = d.strip_suffix(['a', 'f']).unwrap_or(d);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
    });
    if !valid {
        fail(&format!("CAGEM_CUDA_ARCH={arch:?}: expected a virtual architecture such as compute_80 or compute_90a"));
    }
    let kernels = root.join("kernels");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&kernels)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", kernels.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();
    let mut listing = format!(
        "/// The -arch the PTX was compiled for.\npub const PTX_ARCH: &str = {arch:?};\n\
         /// (module name, PTX) of every kernels/*.cu.\npub const MODULES: &[(&str, &str)] = &[\n"
    );
    for src in &sources {
        let stem = src.file_stem().expect("file stem").to_string_lossy().into_owned();
        let ptx = out.join(format!("{stem}.ptx"));
        let result = Command::new(&nvcc)
            .args(["-ptx", &format!("-arch={arch}"), "-O3", "-fmad=false", "-std=c++17", "-I"])
            .arg(&kernels)
            .arg(src)
            .arg("-o")
            .arg(&ptx)
            .output()
            .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", nvcc.display())));
        if !result.status.success() {
            fail(&format!(
                "nvcc failed on {}:\n{}{}",
                src.display(),
                String::from_utf8_lossy(&result.stdout),
                String::from_utf8_lossy(&result.stderr)
            ));
        }
        listing += &format!("    ({stem:?}, include_str!({:?})),\n", ptx.display().to_string());
    }
    listing += "];\n";
    std::fs::write(out.join("ptx.rs"), listing).unwrap_or_else(|e| fail(&format!("cannot write ptx.rs: {e}")));
}

fn find_nvcc(root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NVCC") {
        return Some(PathBuf::from(p));
    }
    if Command::new("nvcc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some(PathBuf::from("nvcc"));
    }
    let site = root.join(".venv-cuda").join("lib");
    std::fs::read_dir(site).ok()?.filter_map(|e| e.ok()).find_map(|e| {
        let p = e.path().join("site-packages/nvidia/cu13/bin/nvcc");
        p.exists().then_some(p)
    })
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: cagem-kernels: {msg}\n");
    std::process::exit(1)
}

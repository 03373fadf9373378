//! MNIST. The four original files ship inside the binary (copied from ../shared/data/mnist,
//! byte-identical to the original distribution) and are checked against their published sha256
//! at load, so `cagem train` works anywhere with no download. `--data DIR` reads the same four
//! files (gzipped or not) from a folder instead.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Dataset;
use super::idx::{decompress_if_gz, parse_idx, read_maybe_gz};
use crate::error::{Error, Result};

/// (file name, sha256 of the .gz file as distributed).
pub const FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    ("train-labels-idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ("t10k-images-idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("t10k-labels-idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
];

const BUNDLED: [&[u8]; 4] = [
    include_bytes!("../../../../data/mnist/train-images-idx3-ubyte.gz"),
    include_bytes!("../../../../data/mnist/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../../../data/mnist/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../../../data/mnist/t10k-labels-idx1-ubyte.gz"),
];

pub const SIDE: usize = 28;
pub const CLASSES: usize = 10;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The MNIST bundled in this binary, verified.
pub fn bundled() -> Result<Dataset> {
    let mut raw = Vec::new();
    for ((name, sha), bytes) in FILES.iter().zip(BUNDLED) {
        let path = PathBuf::from(format!("<bundled>/data/mnist/{name}.gz"));
        let got = sha256_hex(bytes);
        if got != *sha {
            return Err(Error::data(
                &path,
                format!(
                    "sha256 {got} does not match the published {sha}: the bundled copy is damaged (a Git LFS pointer, or a bad checkout?)"
                ),
            ));
        }
        raw.push((path.clone(), decompress_if_gz(&path, bytes.to_vec())?));
    }
    assemble(raw, "MNIST bundled in the binary (sha256 verified against the published files)".into())
}

/// MNIST-format files from `dir`: each of the four names, with or without `.gz`.
pub fn from_dir(dir: &Path) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::data(dir, "not a folder (expected the four MNIST files in it)"));
    }
    let mut raw = Vec::new();
    let mut verified = true;
    for (name, sha) in FILES {
        let gz = dir.join(format!("{name}.gz"));
        let plain = dir.join(name);
        let path = if gz.exists() {
            gz
        } else if plain.exists() {
            plain
        } else {
            return Err(Error::data(dir, format!("missing {name}.gz (or {name}): expected the four MNIST files")));
        };
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, "read", e))?;
        verified &= sha256_hex(&bytes) == sha;
        raw.push((path.clone(), decompress_if_gz(&path, bytes)?));
    }
    let note = if verified {
        "sha256 matches the published MNIST"
    } else {
        "not the published MNIST files (no checksum match)"
    };
    assemble(raw, format!("{} ({note})", dir.display()))
}

/// Checks the four parsed files against each other and MNIST's shape.
fn assemble(raw: Vec<(PathBuf, Vec<u8>)>, provenance: String) -> Result<Dataset> {
    let images = |i: usize| -> Result<(usize, Vec<u8>)> {
        let (path, bytes) = &raw[i];
        let a = parse_idx(bytes, path)?;
        if a.dims.len() != 3 {
            return Err(Error::data(path, format!("expected images with dimensions (N, 28, 28), found {:?}", a.dims)));
        }
        if a.dims[1] != SIDE || a.dims[2] != SIDE {
            return Err(Error::data(
                path,
                format!("images are {}×{}, expected {SIDE}×{SIDE} (MNIST)", a.dims[1], a.dims[2]),
            ));
        }
        let n = a.dims[0];
        Ok((n, a.into_u8(path)?))
    };
    let labels = |i: usize| -> Result<Vec<u32>> {
        let (path, bytes) = &raw[i];
        let a = parse_idx(bytes, path)?;
        if a.dims.len() != 1 {
            return Err(Error::data(path, format!("expected labels with dimensions (N,), found {:?}", a.dims)));
        }
        let v = a.into_u8(path)?;
        if let Some((i, &l)) = v.iter().enumerate().find(|(_, l)| **l as usize >= CLASSES) {
            return Err(Error::data(path, format!("label {l} at index {i} is out of range 0..={}", CLASSES - 1)));
        }
        Ok(v.into_iter().map(u32::from).collect())
    };
    let (n_train, train_images) = images(0)?;
    let train_labels = labels(1)?;
    let (n_test, test_images) = images(2)?;
    let test_labels = labels(3)?;
    for (n_img, n_lab, i) in [(n_train, train_labels.len(), 1), (n_test, test_labels.len(), 3)] {
        if n_img != n_lab {
            return Err(Error::data(&raw[i].0, format!("{n_lab} labels for {n_img} images")));
        }
    }
    Ok(Dataset {
        name: "mnist".into(),
        provenance,
        height: SIDE,
        width: SIDE,
        n_classes: CLASSES,
        train_images,
        train_labels,
        test_images,
        test_labels,
        train_values: None,
        test_values: None,
        partial_labels: false,
    })
}

/// Reads a single IDX file (for tools and tests).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    read_maybe_gz(path)
}

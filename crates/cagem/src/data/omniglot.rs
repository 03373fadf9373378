//! OMNIGLOT (Lake et al.) at 28×28, derived from the original 105×105 images in
//! ../shared/data/omniglot (32,460 images: 1,623 characters × 20 drawers, 50 alphabets).
//!
//! Derivation (`cagem prepare-omniglot`, output bundled in data/omniglot/):
//! - **Downsampling**: exact area averaging 105 → 28. Output pixel (i, j) covers the source
//!   square [3.75i, 3.75(i+1)) × [3.75j, 3.75(j+1)); each source pixel counts with the area it
//!   shares with that square (edges fractional). The result is the ink fraction of the square,
//!   stored as round(255 · fraction).
//! - **Binarisation**: dynamic, as for MNIST: every time an image is drawn for training each
//!   pixel is a fresh Bernoulli(fraction) draw; the test set is binarised once with a fixed seed.
//! - **Split**: per character, drawers 1–15 to train (24,345 images) and drawers 16–20 to test
//!   (8,115 images), so no drawing of a character appears in both parts (every character does).
//! - **Labels**: the alphabet (50 classes) is the cluster information; the label files keep the
//!   character id and the drawer too (IDX i32, N × 3: character, alphabet, drawer).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Dataset;
use super::idx::{IdxArray, IdxData, decompress_if_gz, encode_idx, parse_idx, read_maybe_gz};
use super::mnist::sha256_hex;
use crate::error::{Error, Result};

pub const SOURCE_SIDE: usize = 105;
pub const SIDE: usize = 28;
pub const CLASSES: usize = 50;
pub const CHARACTERS: usize = 1623;
pub const DRAWERS: usize = 20;
/// Drawers 0..TRAIN_DRAWERS (1–15 in Lake's numbering) train; the rest test.
pub const TRAIN_DRAWERS: usize = 15;

/// Source files in ../shared/data/omniglot with their sha256 (shared/data/README.md).
pub const SOURCE_FILES: [(&str, &str); 4] = [
    ("omniglot_background-images-idx3-ubyte.gz", "3eac86d2973eaccaf421ec97f1f294ad810c50dd3b02809867ea0d8ba6d4e0af"),
    ("omniglot_background-labels-idx2-int.gz", "0f4881d08f0f4efaad1def6cb8be13e87a4ee9fda9a088195e53aec8753635ed"),
    ("omniglot_evaluation-images-idx3-ubyte.gz", "36e19dece66ccbd23511c40de28f9acf2b6db1806fe43b8ffec333789de00438"),
    ("omniglot_evaluation-labels-idx2-int.gz", "4ddebe870f37fdf463eb52f393f519c728a61a78457515bba01e60b14a10986a"),
];

/// The derived files, as named in data/omniglot/ (train images, train labels, test images,
/// test labels).
pub const FILES: [&str; 4] = [
    "omniglot28-train-images-idx3-ubyte.gz",
    "omniglot28-train-labels-idx2-int.gz",
    "omniglot28-test-images-idx3-ubyte.gz",
    "omniglot28-test-labels-idx2-int.gz",
];

/// Area weights: w[i][r] = length of [r, r+1) ∩ [i·s, (i+1)·s), s = 105/28.
fn area_weights() -> Vec<[f64; SOURCE_SIDE]> {
    let s = SOURCE_SIDE as f64 / SIDE as f64;
    (0..SIDE)
        .map(|i| {
            let (lo, hi) = (i as f64 * s, (i + 1) as f64 * s);
            let mut w = [0.0; SOURCE_SIDE];
            for (r, w) in w.iter_mut().enumerate() {
                *w = ((r + 1) as f64).min(hi) - (r as f64).max(lo);
                *w = w.max(0.0);
            }
            w
        })
        .collect()
}

/// Area-downsamples one 105×105 image (1 = ink) to 28×28 ink fractions × 255.
pub fn downsample(src: &[u8]) -> Vec<u8> {
    assert_eq!(src.len(), SOURCE_SIDE * SOURCE_SIDE);
    let w = area_weights();
    let area = (SOURCE_SIDE as f64 / SIDE as f64).powi(2);
    let mut out = vec![0u8; SIDE * SIDE];
    for i in 0..SIDE {
        for j in 0..SIDE {
            let mut ink = 0.0;
            for r in 0..SOURCE_SIDE {
                if w[i][r] == 0.0 {
                    continue;
                }
                for c in 0..SOURCE_SIDE {
                    if w[j][c] > 0.0 && src[r * SOURCE_SIDE + c] != 0 {
                        ink += w[i][r] * w[j][c];
                    }
                }
            }
            out[i * SIDE + j] = (255.0 * ink / area).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// One image's labels: (character id 0..1622, alphabet id 0..49, drawer 0..19).
pub type LabelRow = [i32; 3];

/// The derived 28×28 data set: images (N × 784) and labels (N × [character, alphabet, drawer]).
pub struct Derived {
    pub train_images: Vec<u8>,
    pub train_labels: Vec<LabelRow>,
    pub test_images: Vec<u8>,
    pub test_labels: Vec<LabelRow>,
}

fn labels_of(a: IdxArray, path: &Path) -> Result<Vec<LabelRow>> {
    if a.dims.len() != 2 || a.dims[1] != 3 {
        return Err(Error::data(path, format!("expected labels of dimensions (N, 3), found {:?}", a.dims)));
    }
    let v = a.into_i32(path)?;
    let rows: Vec<LabelRow> = v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    for (i, r) in rows.iter().enumerate() {
        let ok = (0..CHARACTERS as i32).contains(&r[0])
            && (0..CLASSES as i32).contains(&r[1])
            && (0..DRAWERS as i32).contains(&r[2]);
        if !ok {
            return Err(Error::data(path, format!("row {i}: (character, alphabet, drawer) = {r:?} out of range")));
        }
    }
    Ok(rows)
}

/// Reads the original 105×105 sets from `src`, checks their sha256, downsamples and splits.
pub fn derive(src: &Path) -> Result<Derived> {
    let mut parts = Vec::new();
    for (name, sha) in SOURCE_FILES {
        let path = src.join(name);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, "read", e))?;
        let got = sha256_hex(&bytes);
        if got != sha {
            return Err(Error::data(&path, format!("sha256 {got}, expected {sha} (shared/data/README.md)")));
        }
        parts.push((path.clone(), decompress_if_gz(&path, bytes)?));
    }
    let mut d = Derived {
        train_images: Vec::new(),
        train_labels: Vec::new(),
        test_images: Vec::new(),
        test_labels: Vec::new(),
    };
    for set in [0, 2] {
        let (ipath, ibytes) = &parts[set];
        let (lpath, lbytes) = &parts[set + 1];
        let images = parse_idx(ibytes, ipath)?;
        if images.dims.len() != 3 || images.dims[1] != SOURCE_SIDE || images.dims[2] != SOURCE_SIDE {
            return Err(Error::data(ipath, format!("expected (N, 105, 105) images, found {:?}", images.dims)));
        }
        let n = images.dims[0];
        let pixels = images.into_u8(ipath)?;
        let labels = labels_of(parse_idx(lbytes, lpath)?, lpath)?;
        if labels.len() != n {
            return Err(Error::data(lpath, format!("{} labels for {n} images", labels.len())));
        }
        for (img, lab) in pixels.chunks_exact(SOURCE_SIDE * SOURCE_SIDE).zip(labels) {
            let small = downsample(img);
            if (lab[2] as usize) < TRAIN_DRAWERS {
                d.train_images.extend_from_slice(&small);
                d.train_labels.push(lab);
            } else {
                d.test_images.extend_from_slice(&small);
                d.test_labels.push(lab);
            }
        }
    }
    Ok(d)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

/// The four derived files' bytes (gzipped IDX), in the order of FILES.
pub fn encode(d: &Derived) -> [Vec<u8>; 4] {
    let images = |v: &Vec<u8>| {
        gz(&encode_idx(&IdxArray { dims: vec![v.len() / (SIDE * SIDE), SIDE, SIDE], data: IdxData::U8(v.clone()) }))
    };
    let labels = |v: &Vec<LabelRow>| {
        gz(&encode_idx(&IdxArray { dims: vec![v.len(), 3], data: IdxData::I32(v.iter().flatten().copied().collect()) }))
    };
    [images(&d.train_images), labels(&d.train_labels), images(&d.test_images), labels(&d.test_labels)]
}

/// Writes the derived files into `out` and returns their paths and sha256.
pub fn write(d: &Derived, out: &Path) -> Result<Vec<(PathBuf, String)>> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, "create", e))?;
    let mut written = Vec::new();
    for (name, bytes) in FILES.iter().zip(encode(d)) {
        let path = out.join(name);
        crate::atomic::write_atomic(&path, &bytes)?;
        written.push((path, sha256_hex(&bytes)));
    }
    Ok(written)
}

/// Checks the four derived files against each other and builds the data set.
fn assemble(raw: Vec<(PathBuf, Vec<u8>)>, provenance: String) -> Result<Dataset> {
    let images = |i: usize| -> Result<(usize, Vec<u8>)> {
        let (path, bytes) = &raw[i];
        let a = parse_idx(bytes, path)?;
        if a.dims.len() != 3 || a.dims[1] != SIDE || a.dims[2] != SIDE {
            return Err(Error::data(path, format!("expected (N, 28, 28) images, found {:?}", a.dims)));
        }
        Ok((a.dims[0], a.into_u8(path)?))
    };
    let labels = |i: usize| labels_of(parse_idx(&raw[i].1, &raw[i].0)?, &raw[i].0);
    let (n_train, train_images) = images(0)?;
    let train = labels(1)?;
    let (n_test, test_images) = images(2)?;
    let test = labels(3)?;
    for (n, l, i) in [(n_train, train.len(), 1), (n_test, test.len(), 3)] {
        if n != l {
            return Err(Error::data(&raw[i].0, format!("{l} labels for {n} images")));
        }
    }
    Ok(Dataset {
        name: "omniglot".into(),
        provenance,
        height: SIDE,
        width: SIDE,
        n_classes: CLASSES,
        train_images,
        train_labels: train.iter().map(|r| r[1] as u32).collect(),
        test_images,
        test_labels: test.iter().map(|r| r[1] as u32).collect(),
        train_values: None,
        test_values: None,
        partial_labels: false,
    })
}

/// The derived files from a folder (as written by `cagem prepare-omniglot`).
pub fn from_dir(dir: &Path) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::data(dir, "not a folder (expected the four omniglot28-* files in it)"));
    }
    let mut raw = Vec::new();
    for name in FILES {
        let path = dir.join(name);
        if !path.exists() {
            return Err(Error::data(dir, format!("missing {name} (make it with `cagem prepare-omniglot`)")));
        }
        raw.push((path.clone(), read_maybe_gz(&path)?));
    }
    assemble(raw, format!("OMNIGLOT 28×28 from {}", dir.display()))
}

/// sha256 of the derived files as `cagem prepare-omniglot` wrote them (in the order of FILES).
pub const BUNDLED_SHA256: [&str; 4] = [
    "ec303649b0e9246955564fa13dc029e6acc6de2ed092568737303625253ab930",
    "49a863a1e59c1edf0a1b9e0c42e6126e1514e462cb968a8017bdf3f13dc584e6",
    "986f3077b08d44365da12a54396e069d42791db37a945aca8c898f15f97725fa",
    "0759fd171bdc5290b03002a48ade827cb6eee775b29d64a9d6313d9ceefb958c",
];

const BUNDLED: [&[u8]; 4] = [
    include_bytes!("../../../../data/omniglot/omniglot28-train-images-idx3-ubyte.gz"),
    include_bytes!("../../../../data/omniglot/omniglot28-train-labels-idx2-int.gz"),
    include_bytes!("../../../../data/omniglot/omniglot28-test-images-idx3-ubyte.gz"),
    include_bytes!("../../../../data/omniglot/omniglot28-test-labels-idx2-int.gz"),
];

fn bundled_raw() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut raw = Vec::new();
    for ((name, sha), bytes) in FILES.iter().zip(BUNDLED_SHA256).zip(BUNDLED) {
        let path = PathBuf::from(format!("<bundled>/data/omniglot/{name}"));
        let got = sha256_hex(bytes);
        if got != sha {
            return Err(Error::data(&path, format!("sha256 {got} does not match {sha}: the bundled copy is damaged")));
        }
        raw.push((path.clone(), decompress_if_gz(&path, bytes.to_vec())?));
    }
    Ok(raw)
}

/// The derived set bundled in this binary (data/omniglot/), checked against the sha256 it had
/// when `cagem prepare-omniglot` wrote it.
pub fn bundled() -> Result<Dataset> {
    assemble(
        bundled_raw()?,
        "OMNIGLOT 28×28 bundled in the binary (derived from Lake's 105×105 images; sha256 verified)".into(),
    )
}

/// The bundled label rows (character, alphabet, drawer) of the training and test parts.
pub fn bundled_labels() -> Result<(Vec<LabelRow>, Vec<LabelRow>)> {
    let raw = bundled_raw()?;
    let train = labels_of(parse_idx(&raw[1].1, &raw[1].0)?, &raw[1].0)?;
    let test = labels_of(parse_idx(&raw[3].1, &raw[3].0)?, &raw[3].0)?;
    Ok((train, test))
}

//! A data set of the user's own, as NumPy arrays in a folder (read with the `npyz` crate):
//!   train_x.npy   N×H×W or N×D; uint8 (intensities 0–255, scaled by 1/255) or float32/float64
//!   train_y.npy   optional, N integers: the class 0..C−1, or −1 for an unlabelled example
//!   test_x.npy    optional, M examples of the same shape
//!   test_y.npy    optional, M integers (−1 allowed)
//! Every check names the file and what was expected.

use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, Order, TypeChar};

use super::{Dataset, UNLABELLED};
use crate::config::Likelihood;
use crate::error::{Error, Result};

pub const TRAIN_X: &str = "train_x.npy";
pub const TRAIN_Y: &str = "train_y.npy";
pub const TEST_X: &str = "test_x.npy";
pub const TEST_Y: &str = "test_y.npy";

/// The elements of a .npy file, by kind.
pub enum NpyValues {
    U8(Vec<u8>),
    /// float32 or float64 (stored as f32: the model computes in f32).
    Float(Vec<f32>),
    /// Any other integer type (labels).
    Int(Vec<i64>),
}

/// One array read from a .npy file.
pub struct NpyArray {
    pub path: PathBuf,
    pub shape: Vec<usize>,
    pub values: NpyValues,
}

/// The largest class label cagem accepts (labels index per-class tables).
pub const MAX_CLASS: i64 = (1 << 20) - 1;

fn npy_err(path: &Path, e: std::io::Error) -> Error {
    // The parser's message may quote the header over several lines: its first line says it.
    let msg = e.to_string();
    let first = msg.lines().next().unwrap_or("").trim();
    Error::data(path, format!("not a readable .npy file: {first}"))
}

/// Where the data of a .npy file starts: after the 6-byte magic, the 2-byte version, the header
/// length (2 bytes in version 1, 4 in versions 2 and 3) and the header.
fn data_start(bytes: &[u8]) -> Option<usize> {
    let major = *bytes.get(6)?;
    let (len, at) = if major == 1 {
        (u16::from_le_bytes(bytes.get(8..10)?.try_into().ok()?) as usize, 10)
    } else {
        (u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize, 12)
    };
    len.checked_add(at)
}

/// The shape written in a .npy header's text (`'shape': (a, b, ...)`), if it can be read: looked
/// at before the parser, whose element count would overflow on a hostile shape.
fn declared_shape(bytes: &[u8]) -> Option<Vec<u64>> {
    let start = if bytes.get(6) == Some(&1) { 10 } else { 12 };
    let header = std::str::from_utf8(bytes.get(start..data_start(bytes)?.min(bytes.len()))?).ok()?;
    let after = &header[header.find("'shape'")? + 7..];
    let open = after.find('(')?;
    let close = after[open..].find(')')? + open;
    after[open + 1..close].split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| p.parse().ok()).collect()
}

/// Checks the shape a header declares against the bytes the file holds, before anything is
/// allocated: a lying header must not make cagem ask for more memory than the file's size.
fn check_declared_size(path: &Path, bytes: &[u8], shape: &[u64], item: usize) -> Result<()> {
    let data = data_start(bytes).map_or(0, |s| bytes.len().saturating_sub(s)) as u64;
    let need = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).and_then(|c| c.checked_mul(item as u64));
    match need {
        Some(need) if need <= data => Ok(()),
        Some(need) => Err(Error::data(
            path,
            format!(
                "declares shape {shape:?} of {item}-byte values ({need} bytes) but holds only {data} bytes of data \
                 (a truncated or damaged file)"
            ),
        )),
        None => Err(Error::data(path, format!("declares shape {shape:?}: more elements than any file can hold"))),
    }
}

fn unsupported_dtype(path: &Path, descr: &str) -> Error {
    Error::data(path, format!("has dtype '{descr}'; expected uint8 or float32/float64 (features), integers (labels)"))
}

/// float64 values as float32, refusing any that overflow it.
fn narrow(path: &Path, v: Vec<f64>) -> Result<Vec<f32>> {
    if let Some(i) = v.iter().position(|x| x.is_finite() && !(*x as f32).is_finite()) {
        return Err(Error::data(
            path,
            format!(
                "value {:e} at flat index {i} overflows float32 (largest ±3.4e38), which the model computes in",
                v[i]
            ),
        ));
    }
    Ok(v.into_iter().map(|x| x as f32).collect())
}

/// Reads a C-ordered .npy array of uint8, any integer type, float32 or float64.
pub fn read_array(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    if let Some(shape) = declared_shape(&bytes)
        && shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).is_none_or(|n| n > bytes.len() as u64)
    {
        // More elements than bytes: no dtype makes that fit (checked exactly below otherwise).
        check_declared_size(path, &bytes, &shape, 1)?;
    }
    let npy = NpyFile::new(&bytes[..]).map_err(|e| npy_err(path, e))?;
    let declared: Vec<u64> = npy.shape().to_vec();
    let shape: Vec<usize> = declared.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
    if npy.order() == Order::Fortran {
        return Err(Error::data(
            path,
            "is stored in Fortran order; expected C order (save np.ascontiguousarray(a) instead)",
        ));
    }
    let ts = match npy.dtype() {
        DType::Plain(ts) => ts,
        other => {
            return Err(Error::data(
                path,
                format!("has the structured dtype {}; expected uint8, float32/float64 or integers", other.descr()),
            ));
        }
    };
    let bad_dtype = || unsupported_dtype(path, &ts.to_string());
    let read = |e: std::io::Error| npy_err(path, e);
    if matches!(ts.type_char(), TypeChar::Uint | TypeChar::Int | TypeChar::Float) {
        check_declared_size(path, &bytes, &declared, ts.size_field() as usize)?;
    }
    let values = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Uint, 1) => NpyValues::U8(npy.into_vec::<u8>().map_err(read)?),
        (TypeChar::Float, 4) => NpyValues::Float(npy.into_vec::<f32>().map_err(read)?),
        (TypeChar::Float, 8) => NpyValues::Float(narrow(path, npy.into_vec::<f64>().map_err(read)?)?),
        (TypeChar::Int, 1) => NpyValues::Int(npy.into_vec::<i8>().map_err(read)?.into_iter().map(i64::from).collect()),
        (TypeChar::Int, 2) => NpyValues::Int(npy.into_vec::<i16>().map_err(read)?.into_iter().map(i64::from).collect()),
        (TypeChar::Int, 4) => NpyValues::Int(npy.into_vec::<i32>().map_err(read)?.into_iter().map(i64::from).collect()),
        (TypeChar::Int, 8) => NpyValues::Int(npy.into_vec::<i64>().map_err(read)?),
        (TypeChar::Uint, 2) => {
            NpyValues::Int(npy.into_vec::<u16>().map_err(read)?.into_iter().map(i64::from).collect())
        }
        (TypeChar::Uint, 4) => {
            NpyValues::Int(npy.into_vec::<u32>().map_err(read)?.into_iter().map(i64::from).collect())
        }
        (TypeChar::Uint, 8) => NpyValues::Int(
            npy.into_vec::<u64>().map_err(read)?.into_iter().map(|v| i64::try_from(v).unwrap_or(i64::MAX)).collect(),
        ),
        _ => return Err(bad_dtype()),
    };
    Ok(NpyArray { path: path.to_path_buf(), shape, values })
}

/// Features of one split: examples, their shape (H, W), and the values.
struct Features {
    path: PathBuf,
    n: usize,
    shape: (usize, usize),
    values: NpyValues,
}

/// Checks a feature array's shape and dtype (N×H×W or N×D; uint8 or float).
fn features(arr: NpyArray) -> Result<Features> {
    let shape = match arr.shape[..] {
        [_, d] => (1, d),
        [_, h, w] => (h, w),
        _ => {
            return Err(Error::data(
                &arr.path,
                format!("has shape {:?}; expected N×H×W (images) or N×D (feature vectors)", arr.shape),
            ));
        }
    };
    let n = arr.shape[0];
    if n == 0 || shape.0 * shape.1 == 0 {
        return Err(Error::data(
            &arr.path,
            format!("has shape {:?}; expected at least one non-empty example", arr.shape),
        ));
    }
    if let NpyValues::Int(_) = arr.values {
        return Err(Error::data(
            &arr.path,
            "holds integers other than uint8; expected uint8 (0–255) or float32/float64 features",
        ));
    }
    if let NpyValues::Float(v) = &arr.values
        && let Some(i) = v.iter().position(|x| !x.is_finite())
    {
        return Err(Error::data(&arr.path, format!("value {} at flat index {i} is not finite", v[i])));
    }
    Ok(Features { path: arr.path, n, shape, values: arr.values })
}

/// Checks a label array: N entries, −1 (unlabelled) or a class ≥ 0.
fn labels(arr: NpyArray, n: usize, features: &Path) -> Result<Vec<i64>> {
    let values = match arr.values {
        NpyValues::Int(v) => v,
        NpyValues::U8(v) => v.into_iter().map(i64::from).collect(),
        NpyValues::Float(_) => {
            return Err(Error::data(&arr.path, "holds floats; expected integer labels (the class, or −1 for none)"));
        }
    };
    if arr.shape.len() != 1 {
        return Err(Error::data(
            &arr.path,
            format!("has shape {:?}; expected one label per example, ({n},)", arr.shape),
        ));
    }
    if values.len() != n {
        return Err(Error::data(
            &arr.path,
            format!("has {} labels for the {n} examples of {}", values.len(), features.display()),
        ));
    }
    if let Some(i) = values.iter().position(|&l| l < -1) {
        return Err(Error::data(
            &arr.path,
            format!(
                "label {} at index {i} is invalid: expected a class 0..C−1, or −1 for an unlabelled example",
                values[i]
            ),
        ));
    }
    if let Some(i) = values.iter().position(|&l| l > MAX_CLASS) {
        return Err(Error::data(
            &arr.path,
            format!("label {} at index {i} is larger than any class cagem supports (0..{MAX_CLASS})", values[i]),
        ));
    }
    Ok(values)
}

/// Values as probabilities in [0, 1]: refuses anything outside (Bernoulli data).
fn check_unit_range(f: &Features) -> Result<()> {
    if let NpyValues::Float(v) = &f.values
        && let Some(i) = v.iter().position(|x| !(0.0..=1.0).contains(x))
    {
        return Err(Error::data(
            &f.path,
            format!(
                "value {} at flat index {i} is outside [0, 1], which the Bernoulli likelihood needs (floats must \
                 lie in [0, 1], uint8 is scaled by 1/255); use --likelihood gaussian for real-valued data",
                v[i]
            ),
        ));
    }
    Ok(())
}

fn as_floats(v: NpyValues) -> Vec<f32> {
    match v {
        NpyValues::U8(b) => b.into_iter().map(|p| p as f32 / 255.0).collect(),
        NpyValues::Float(f) => f,
        NpyValues::Int(_) => unreachable!("features() refuses integer features"),
    }
}

/// The labels as the model's classes (UNLABELLED for −1).
fn classes(v: &[i64]) -> Vec<u32> {
    v.iter().map(|&l| if l < 0 { UNLABELLED } else { l as u32 }).collect()
}

/// Reads and checks the folder's arrays for a model with `likelihood`.
pub fn from_dir(dir: &Path, likelihood: Likelihood) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            format!("not a folder (expected {TRAIN_X}, optionally {TRAIN_Y}, {TEST_X}, {TEST_Y})"),
        ));
    }
    let train_x = dir.join(TRAIN_X);
    if !train_x.exists() {
        return Err(Error::data(
            dir,
            format!("missing {TRAIN_X}: expected the training examples as an N×H×W or N×D array"),
        ));
    }
    let train = features(read_array(&train_x)?)?;
    let optional = |name: &str| {
        let p = dir.join(name);
        p.exists().then_some(p)
    };
    let test = match optional(TEST_X) {
        Some(p) => {
            let t = features(read_array(&p)?)?;
            if t.shape != train.shape {
                return Err(Error::data(
                    &p,
                    format!(
                        "examples are {}×{}, but those of {TRAIN_X} are {}×{}; expected the same shape",
                        t.shape.0, t.shape.1, train.shape.0, train.shape.1
                    ),
                ));
            }
            Some(t)
        }
        None => None,
    };
    if let (None, Some(p)) = (&test, optional(TEST_Y)) {
        return Err(Error::data(&p, format!("has no {TEST_X} to go with it")));
    }
    if likelihood == Likelihood::Bernoulli {
        check_unit_range(&train)?;
        if let Some(t) = &test {
            check_unit_range(t)?;
        }
    }
    let train_y = optional(TRAIN_Y).map(|p| read_array(&p).and_then(|a| labels(a, train.n, &train_x))).transpose()?;
    let test_y = match (&test, optional(TEST_Y)) {
        (Some(t), Some(p)) => Some(labels(read_array(&p)?, t.n, &t.path)?),
        _ => None,
    };

    // The classes are 0..C−1, every one of them with a labelled training example.
    let n_classes = match (&train_y, &test_y) {
        (Some(y), _) if y.iter().any(|&l| l >= 0) => {
            let c = (*y.iter().max().expect("non-empty") + 1) as usize;
            let mut seen = vec![false; c];
            y.iter().filter(|&&l| l >= 0).for_each(|&l| seen[l as usize] = true);
            if let Some(gap) = seen.iter().position(|s| !s) {
                return Err(Error::data(
                    dir.join(TRAIN_Y),
                    format!(
                        "class {gap} has no labelled example, but class {} does: expected the classes 0..{} without gaps",
                        c - 1,
                        c - 1
                    ),
                ));
            }
            c
        }
        (_, Some(y)) => y.iter().max().map_or(0, |&m| (m + 1).max(0) as usize),
        _ => 0,
    };
    if let (Some(y), Some(_)) = (&test_y, &train_y)
        && let Some(i) = y.iter().position(|&l| l >= n_classes as i64)
    {
        return Err(Error::data(
            dir.join(TEST_Y),
            format!("label {} at index {i} is not a class of {TRAIN_Y} (0..{})", y[i], n_classes.saturating_sub(1)),
        ));
    }
    let partial_labels = train_y.as_ref().is_some_and(|y| y.contains(&-1));
    let train_labels = train_y.as_deref().map_or(vec![UNLABELLED; train.n], classes);
    let n_test = test.as_ref().map_or(0, |t| t.n);
    let test_labels = test_y.as_deref().map_or(vec![UNLABELLED; n_test], classes);

    let (height, width) = train.shape;
    let any_float = matches!(train.values, NpyValues::Float(_))
        || test.as_ref().is_some_and(|t| matches!(t.values, NpyValues::Float(_)));
    let mut d = Dataset {
        name: "npy".into(),
        provenance: format!("NumPy arrays in {}", dir.display()),
        height,
        width,
        n_classes,
        train_images: Vec::new(),
        train_labels,
        test_images: Vec::new(),
        test_labels,
        train_values: None,
        test_values: None,
        partial_labels,
    };
    // 8-bit data stays 8-bit (as the bundled sets); floats anywhere make both splits floats.
    if any_float {
        d.train_values = Some(as_floats(train.values));
        d.test_values = Some(test.map_or(Vec::new(), |t| as_floats(t.values)));
    } else {
        if let NpyValues::U8(v) = train.values {
            d.train_images = v;
        }
        if let Some(Features { values: NpyValues::U8(v), .. }) = test {
            d.test_images = v;
        }
    }
    Ok(d)
}

/// New examples for a trained model (`--input F.npy`): N×H×W of the model's image shape, or N×D
/// with D its input size; uint8 (scaled by 1/255) or float; in [0, 1] for a Bernoulli model.
/// Returns the rows as floats in the data's units.
pub fn examples_for_model(path: &Path, height: usize, width: usize, likelihood: Likelihood) -> Result<Vec<f32>> {
    examples_from_array(read_array(path)?, height, width, likelihood)
}

/// `examples_for_model` on an array already in memory (its `path` names it in messages).
pub fn examples_from_array(arr: NpyArray, height: usize, width: usize, likelihood: Likelihood) -> Result<Vec<f32>> {
    let dim = height * width;
    let fits = match arr.shape[..] {
        [_, d] => d == dim,
        [_, h, w] => (h, w) == (height, width),
        _ => false,
    };
    if !fits {
        return Err(Error::data(
            &arr.path,
            format!(
                "has shape {:?}; the model expects examples of {height}×{width} (N×{height}×{width} or N×{dim})",
                arr.shape
            ),
        ));
    }
    let f = features(arr)?;
    if likelihood == Likelihood::Bernoulli {
        check_unit_range(&f)?;
    }
    Ok(as_floats(f.values))
}

impl NpyArray {
    /// An array from the raw little-endian bytes of a C-ordered buffer whose NumPy type string is
    /// `descr` ('|u1', '<f4', '<f8', '<i8', …), named `name` in messages: what another front end
    /// (the Python package) hands over instead of a file.
    pub fn from_le_bytes(name: &str, descr: &str, shape: Vec<usize>, bytes: &[u8]) -> Result<NpyArray> {
        let path = PathBuf::from(name);
        let bad = || unsupported_dtype(&path, descr);
        let (order, kind, size) = match descr.as_bytes() {
            [o @ (b'<' | b'|' | b'='), k, rest @ ..] => {
                (*o, *k, std::str::from_utf8(rest).ok().and_then(|r| r.parse::<usize>().ok()).ok_or_else(bad)?)
            }
            _ => return Err(bad()),
        };
        if order == b'=' && cfg!(target_endian = "big") {
            return Err(bad());
        }
        let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count.and_then(|c| c.checked_mul(size)) != Some(bytes.len()) {
            return Err(Error::data(
                &path,
                format!("has shape {shape:?} of {size}-byte values but {} bytes", bytes.len()),
            ));
        }
        fn each<const N: usize, T>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            b.chunks_exact(N).map(|c| f(c.try_into().expect("N bytes"))).collect()
        }
        let values = match (kind, size) {
            (b'u', 1) => NpyValues::U8(bytes.to_vec()),
            (b'f', 4) => NpyValues::Float(each(bytes, f32::from_le_bytes)),
            (b'f', 8) => NpyValues::Float(narrow(&path, each(bytes, f64::from_le_bytes))?),
            (b'i', 1) => NpyValues::Int(each(bytes, |b: [u8; 1]| i64::from(i8::from_le_bytes(b)))),
            (b'i', 2) => NpyValues::Int(each(bytes, |b| i64::from(i16::from_le_bytes(b)))),
            (b'i', 4) => NpyValues::Int(each(bytes, |b| i64::from(i32::from_le_bytes(b)))),
            (b'i', 8) => NpyValues::Int(each(bytes, i64::from_le_bytes)),
            (b'u', 2) => NpyValues::Int(each(bytes, |b| i64::from(u16::from_le_bytes(b)))),
            (b'u', 4) => NpyValues::Int(each(bytes, |b| i64::from(u32::from_le_bytes(b)))),
            (b'u', 8) => NpyValues::Int(each(bytes, |b| i64::try_from(u64::from_le_bytes(b)).unwrap_or(i64::MAX))),
            _ => return Err(bad()),
        };
        Ok(NpyArray { path, shape, values })
    }
}

/// The SHA-256 of each of the folder's data files that exists (file name → hex digest): what a
/// run records so that `--resume --data NEWDIR` can accept a moved folder holding the same files.
pub fn checksums(dir: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for name in [TRAIN_X, TRAIN_Y, TEST_X, TEST_Y] {
        let p = dir.join(name);
        if p.exists() {
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, "read", e))?;
            out.insert(name.to_string(), super::mnist::sha256_hex(&bytes));
        }
    }
    Ok(out)
}

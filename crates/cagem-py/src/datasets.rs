//! The data sets bundled in the binary, for `cagem.datasets`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::arrays::i64_bytes;
use crate::errors::to_py;

/// (train images, train labels, test images, test labels, height, width) of the bundled `name`
/// ("mnist" or "omniglot"): images as uint8 bytes (n × height × width), labels as int64 bytes.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn bundled<'py>(
    py: Python<'py>,
    name: &str,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, usize, usize)> {
    let data = match name {
        "mnist" => py.detach(cagem::data::mnist::bundled),
        "omniglot" => py.detach(cagem::data::omniglot::bundled),
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown data set '{other}' (expected mnist or omniglot)"
            )));
        }
    }
    .map_err(to_py)?;
    fn labels(l: &[u32]) -> impl Iterator<Item = i64> + '_ {
        l.iter().map(|&c| if c == cagem::data::UNLABELLED { -1 } else { i64::from(c) })
    }
    Ok((
        PyBytes::new(py, &data.train_images),
        i64_bytes(py, labels(&data.train_labels)),
        PyBytes::new(py, &data.test_images),
        i64_bytes(py, labels(&data.test_labels)),
        data.height,
        data.width,
    ))
}

//! `cagem._core`: the Rust side of the Python package `cagem` (python/cagem/ holds the
//! scikit-learn-style estimator). It adds nothing of its own to the model: training parses the
//! same options and runs the same code as `cagem train` (cagem_cli::train_cmd), and the fitted
//! model answers through the library's evaluation functions, as `cagem predict/encode/score` do.
//! Arrays cross as the raw bytes of C-ordered NumPy buffers.

mod arrays;
mod datasets;
mod errors;
mod model;
mod pools;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(datasets::bundled, m)?)?;
    m.add_class::<model::Model>()?;
    m.add("CHECKPOINT_FILE", cagem::checkpoint::CHECKPOINT_FILE)?;
    m.add("BEST_FILE", cagem::train::best::BEST_FILE)?;
    Ok(())
}

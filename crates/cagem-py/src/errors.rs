//! cagem's errors as Python exceptions, with the message the command line prints.

use pyo3::PyErr;
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};

/// Bad data, options or checkpoints are the caller's values: ValueError (as scikit-learn
/// raises); a file that cannot be read or written is an OSError; a run stopped by Ctrl-C is a
/// KeyboardInterrupt; a device that cannot be opened or a run that diverged, RuntimeError.
pub fn to_py(e: cagem::Error) -> PyErr {
    use cagem::Error as E;
    let msg = e.to_string();
    match e {
        E::Data { .. } | E::Config(_) | E::Checkpoint { .. } => PyValueError::new_err(msg),
        E::Io { .. } => PyOSError::new_err(msg),
        E::Interrupted(_) => PyKeyboardInterrupt::new_err(msg),
        E::Device(_) | E::Diverged(_) => PyRuntimeError::new_err(msg),
    }
}

/// An option clap refused, as the command line words it, without its "error: " prefix and its
/// pointer to --help.
pub fn usage_to_py(e: clap::Error) -> PyErr {
    let text = e.render().to_string();
    let lines: Vec<&str> =
        text.lines().map(str::trim_end).filter(|l| !l.is_empty() && !l.starts_with("For more information")).collect();
    let msg = lines.join("\n");
    PyValueError::new_err(msg.strip_prefix("error: ").unwrap_or(&msg).to_string())
}

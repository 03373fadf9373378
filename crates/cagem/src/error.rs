//! Errors a user can cause (bad files, bad options, unusable devices), with messages that say
//! what was wrong, where, and what was expected. Library code returns these instead of panicking.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// Reading or writing a file failed.
    Io { path: PathBuf, action: &'static str, source: std::io::Error },
    /// A data file is malformed: truncated, wrong magic, wrong shape, bad values.
    Data { path: PathBuf, detail: String },
    /// Options that cannot work together or are out of range.
    Config(String),
    /// A checkpoint is missing, corrupt or does not match the requested run.
    Checkpoint { path: PathBuf, detail: String },
    /// The requested device could not be opened.
    Device(cagem_kernels::DeviceError),
    /// Training diverged (non-finite losses or gradients, step after step).
    Diverged(String),
    /// Training was stopped by a signal, after writing a checkpoint.
    Interrupted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl AsRef<Path>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), action, source }
    }

    pub fn data(path: impl AsRef<Path>, detail: impl Into<String>) -> Self {
        Error::Data { path: path.as_ref().to_path_buf(), detail: detail.into() }
    }

    pub fn config(detail: impl Into<String>) -> Self {
        Error::Config(detail.into())
    }

    pub fn checkpoint(path: impl AsRef<Path>, detail: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.as_ref().to_path_buf(), detail: detail.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, action, source } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::Data { path, detail } => write!(f, "{}: {detail}", path.display()),
            Error::Config(detail) => write!(f, "{detail}"),
            Error::Checkpoint { path, detail } => write!(f, "checkpoint {}: {detail}", path.display()),
            Error::Device(e) => write!(f, "{e}"),
            Error::Diverged(detail) => write!(f, "training diverged: {detail}"),
            Error::Interrupted(detail) => write!(f, "interrupted: {detail}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Device(e) => Some(e),
            _ => None,
        }
    }
}

impl From<cagem_kernels::DeviceError> for Error {
    fn from(e: cagem_kernels::DeviceError) -> Self {
        Error::Device(e)
    }
}

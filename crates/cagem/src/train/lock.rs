//! One trainer per run folder: an advisory lock on RUN/train.lock, held while a `Run` lives.
//! The operating system drops it when the process ends, however it ends, so a lock left by a
//! killed trainer never blocks the resume that follows.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

pub const LOCK_FILE: &str = "train.lock";

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the folder's lock, or fails at once if another process holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "open the lock file", e))?;
        // Fully qualified: newer std has an inherent File::try_lock, which the MSRV lacks.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(fs4::TryLockError::WouldBlock) => Err(Error::config(format!(
                "{} is in use by another `cagem train` (it holds {}); wait for it to finish, or choose another --out",
                dir.display(),
                path.display()
            ))),
            Err(fs4::TryLockError::Error(e)) => Err(Error::io(&path, "lock", e)),
        }
    }
}

//! Atomic file replacement: write a temporary file in the same folder, sync it, rename it over
//! the target, sync the folder. A failure at any point (disk full, a folder turned read-only, a
//! crash) leaves the previous file as it was and removes the temporary one.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// A file being written that can be made durable (a real file; tests put failing ones in).
pub trait DurableWrite: Write {
    fn sync(&mut self) -> std::io::Result<()>;
}

impl DurableWrite for std::fs::File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_all()
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, |tmp| std::fs::File::create(tmp))
}

/// `write_atomic`, with the temporary file opened by `create`.
pub fn write_atomic_with<W: DurableWrite>(
    path: &Path,
    bytes: &[u8],
    create: impl FnOnce(&Path) -> std::io::Result<W>,
) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = create(&tmp)?;
        f.write_all(bytes)?;
        f.sync()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, "write", e)
    })
}

/// Removes the temporary files that writes interrupted by a crash or `kill -9` left in `dir`
/// (`.NAME.tmp-PID`). Call it only while holding the folder's lock: no live write is in progress.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stale_temporaries_go_and_nothing_else_does() {
        let dir = std::env::temp_dir().join(format!("cagem-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in [".checkpoint.safetensors.tmp-123", "checkpoint.safetensors", ".hidden", "metrics.jsonl"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        super::remove_stale_temporaries(&dir);
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, [".hidden", "checkpoint.safetensors", "metrics.jsonl"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

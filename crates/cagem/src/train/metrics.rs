//! Per-epoch metrics as JSON lines (RUN/metrics.jsonl), appended and synced after each epoch.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const METRICS_FILE: &str = "metrics.jsonl";

pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    pub fn new(dir: &Path) -> Self {
        MetricsLog { path: dir.join(METRICS_FILE) }
    }

    pub fn append(&self, record: &serde_json::Value) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "open", e))?;
        let line = format!("{record}\n");
        f.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, "write", e))?;
        f.sync_all().map_err(|e| Error::io(&self.path, "sync", e))
    }

    /// Drops records of epochs after `epochs_done` (written after the last checkpoint of a run
    /// that was then killed), so a resumed run does not repeat them.
    pub fn truncate_after(&self, epochs_done: usize) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(&self.path) else { return Ok(()) };
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()))
                    .is_some_and(|e| e as usize <= epochs_done)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        crate::atomic::write_atomic(&self.path, kept.as_bytes())
    }

    /// Appends `record`, the line of epoch `epoch` kept in the checkpoint, if the log lacks it (a
    /// crash between the checkpoint and its metrics line).
    pub fn restore_last(&self, epoch: usize, record: &serde_json::Value) -> Result<()> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let present = text.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok().is_some_and(|v| {
                v.get("event").is_none() && v.get("epoch").and_then(|e| e.as_u64()) == Some(epoch as u64)
            })
        });
        if present { Ok(()) } else { self.append(record) }
    }
}

//! A checkpoint write that fails (disk full, an I/O error at sync, a folder that cannot take
//! the file) is one clear error, leaves no temporary file, and leaves the previous checkpoint
//! intact and loadable.

use std::io::{self, Write};
use std::path::Path;

use cagem::atomic::{DurableWrite, write_atomic_with};
use cagem::checkpoint::{self, CHECKPOINT_FILE};
use cagem::data::{DeviceData, mnist};
use cagem::train::open_run;
use cagem::train::run::Quiet;
use cagem::{ModelConfig, TrainConfig};
use cagem_autodiff::Device;

/// Accepts `room` bytes, then fails like a full disk; or fails at sync.
struct Failing {
    room: usize,
    fail_sync: bool,
    file: std::fs::File,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        self.file.write(&buf[..n])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl DurableWrite for Failing {
    fn sync(&mut self) -> io::Result<()> {
        if self.fail_sync { Err(io::Error::from_raw_os_error(5)) } else { self.file.sync_all() } // EIO
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn a_failed_checkpoint_write_keeps_the_previous_one() {
    let data = mnist::bundled().unwrap().truncated(100, 10);
    let m = ModelConfig { z1: 3, z2: 2, q_hidden: [8, 6], p_hidden: [6, 8], ..ModelConfig::default() };
    let cfg = TrainConfig { labels: 0, epochs: 1, batch: 50, warmup: 1.0, ..TrainConfig::default() };
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let mut run = open_run::<f32>(tmp.path(), &m, &cfg, &data, &dev, false).unwrap();
    run.train(&data, &DeviceData::new(&dev, &data), &mut Quiet).unwrap();
    drop(run);
    let path = tmp.path().join(CHECKPOINT_FILE);
    let before = std::fs::read(&path).unwrap();
    let new_bytes = vec![7u8; before.len()];

    type Case = (&'static str, Box<dyn Fn(&Path) -> io::Result<Failing>>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "disk full at once",
            Box::new(|p| Ok(Failing { room: 0, fail_sync: false, file: std::fs::File::create(p)? })),
            "No space left",
        ),
        (
            "disk full midway",
            Box::new(|p| Ok(Failing { room: 4096, fail_sync: false, file: std::fs::File::create(p)? })),
            "No space left",
        ),
        (
            "sync fails",
            Box::new(|p| Ok(Failing { room: usize::MAX, fail_sync: true, file: std::fs::File::create(p)? })),
            "Input/output error",
        ),
        ("folder refuses the file", Box::new(|_| Err(io::Error::from_raw_os_error(30))), "Read-only file system"), // EROFS
    ];
    for (what, create, needle) in cases {
        let err = write_atomic_with(&path, &new_bytes, create).err().unwrap_or_else(|| panic!("{what}: no error"));
        let t = err.to_string();
        assert!(t.contains("cannot write") && t.contains(CHECKPOINT_FILE) && t.contains(needle), "{what}: {t}");
        assert!(!t.contains('\n'), "{what}: more than one line: {t}");
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "{what}: a temporary file was left");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{what}: the previous checkpoint changed");
        checkpoint::load::<f32>(tmp.path(), &dev)
            .unwrap_or_else(|e| panic!("{what}: previous checkpoint unloadable: {e}"));
    }
}

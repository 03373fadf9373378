//! The parsers of everything cagem reads (IDX files, gzipped or not, an MNIST folder,
//! checkpoints and the JSON in their metadata, and the run state they carry into a resume) end
//! in Ok or a clean error on damaged input, never a panic: seeded loops of truncations, byte
//! flips and extensions of valid files.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use cagem::checkpoint::{self, CHECKPOINT_FILE};
use cagem::data::idx::{IdxArray, IdxData, decompress_if_gz, encode_idx, parse_idx};
use cagem::data::{DeviceData, mnist};
use cagem::train::open_run;
use cagem::train::run::Quiet;
use cagem::{ModelConfig, TrainConfig};
use cagem_autodiff::Device;
use cagem_kernels::rng::HostRng;

/// A damaged copy of `bytes`: truncated, with bytes flipped, or extended (also in combination).
fn mutate(bytes: &[u8], rng: &mut HostRng) -> Vec<u8> {
    let mut v = bytes.to_vec();
    match rng.below(4) {
        0 => v.truncate(rng.below(v.len() as u64 + 1) as usize),
        1 => {
            for _ in 0..=rng.below(4) {
                if !v.is_empty() {
                    let i = rng.below(v.len() as u64) as usize;
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            for _ in 0..=rng.below(64) {
                v.push(rng.next_u32() as u8);
            }
        }
        _ => {
            // Flip one byte among the first 64 (headers, magic numbers, dimensions), then truncate.
            if !v.is_empty() {
                let i = rng.below(v.len().min(64) as u64) as usize;
                v[i] = rng.next_u32() as u8;
            }
            let keep = v.len() - rng.below(v.len() as u64 / 4 + 1) as usize;
            v.truncate(keep);
        }
    }
    v
}

#[track_caller]
fn no_panic<R>(what: &str, case: usize, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => panic!("{what}: case {case} panicked"),
    }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_files_and_mnist_folders() {
    let images =
        encode_idx(&IdxArray { dims: vec![6, 28, 28], data: IdxData::U8((0..6 * 784).map(|i| i as u8).collect()) });
    let labels = encode_idx(&IdxArray { dims: vec![6], data: IdxData::U8(vec![0, 1, 2, 3, 4, 5]) });
    let ints = encode_idx(&IdxArray { dims: vec![3, 2], data: IdxData::I32(vec![1, -2, 3, 4, -5, 6]) });
    let mut rng = HostRng::new(9, 1);
    let p = Path::new("case.idx");
    let mut errors = 0;
    for case in 0..300 {
        let base = [&images, &labels, &ints][case % 3];
        let raw = if case % 2 == 0 { base.clone() } else { gz(base) };
        let bad = mutate(&raw, &mut rng);
        let r = no_panic("IDX", case, || decompress_if_gz(p, bad).and_then(|b| parse_idx(&b, p).map(|_| ())));
        errors += r.is_err() as usize;
    }
    assert!(errors > 200, "only {errors} of 300 damaged IDX files were refused");

    // Whole folders: one of the four files damaged at a time.
    let tmp = tempfile::tempdir().unwrap();
    let names =
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
    let good = [&images, &labels, &images, &labels];
    for case in 0..60 {
        let dir = tmp.path().join(format!("c{case}"));
        std::fs::create_dir(&dir).unwrap();
        for (i, (n, b)) in names.iter().zip(good).enumerate() {
            let bytes = if i == case % 4 { mutate(&gz(b), &mut rng) } else { gz(b) };
            std::fs::write(dir.join(format!("{n}.gz")), bytes).unwrap();
        }
        if let Err(e) = no_panic("MNIST folder", case, || mnist::from_dir(&dir)) {
            assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
        }
    }
}

fn trained_run(dir: &Path) -> (cagem::data::Dataset, ModelConfig, TrainConfig) {
    let data = mnist::bundled().unwrap().truncated(60, 10);
    let m = ModelConfig { z1: 2, z2: 2, q_hidden: [6, 4], p_hidden: [4, 6], ..ModelConfig::default() };
    let cfg =
        TrainConfig { labels: 20, labelled_batch: 10, epochs: 1, batch: 20, warmup: 1.0, ..TrainConfig::default() };
    let dev = Device::Cpu;
    let mut run = open_run::<f32>(dir, &m, &cfg, &data, &dev, false).unwrap();
    run.train(&data, &DeviceData::new(&dev, &data), &mut Quiet).unwrap();
    (data, m, cfg)
}

#[test]
fn damaged_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    trained_run(tmp.path());
    let path = tmp.path().join(CHECKPOINT_FILE);
    let good = std::fs::read(&path).unwrap();
    let mut rng = HostRng::new(9, 2);
    let (mut refused, mut changed) = (0, 0);
    for case in 0..200 {
        let bad = mutate(&good, &mut rng);
        changed += (bad != good) as usize;
        std::fs::write(&path, &bad).unwrap();
        let loaded = no_panic("checkpoint", case, || checkpoint::load::<f32>(tmp.path(), &Device::Cpu).map(|_| ()));
        let meta = no_panic("checkpoint metadata", case, || checkpoint::load_meta(tmp.path()).map(|_| ()));
        refused += (loaded.is_err() && bad != good) as usize;
        if let Err(e) = loaded {
            assert!(e.to_string().contains(CHECKPOINT_FILE), "the error does not name the file: {e}");
        }
        let _ = meta;
    }
    // The checksums and the parser must catch every change.
    assert_eq!(refused, changed, "a damaged checkpoint loaded");
    assert!(changed > 150);
}

/// The JSON in a checkpoint's metadata (configurations, state, checksums), damaged while the
/// file itself stays well-formed: loading and resuming give clean errors.
#[test]
fn damaged_checkpoint_metadata_and_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, m, cfg) = trained_run(tmp.path());
    let path = tmp.path().join(CHECKPOINT_FILE);
    let good = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&good[8..8 + n]).unwrap();
    // Edited metadata fails the metadata checksum at once; without one (as in checkpoints from
    // before it existed) the JSON parsers and the state checks below are what must hold.
    {
        let mut h = header.clone();
        h["__metadata__"]["state"] =
            h["__metadata__"]["state"].as_str().unwrap().replace("\"epochs_done\":1", "\"epochs_done\":2").into();
        std::fs::write(&path, rebuild(&h, &good[8 + n..])).unwrap();
        let err = checkpoint::load_meta(tmp.path()).err().expect("edited metadata was accepted").to_string();
        assert!(err.contains("metadata fails its checksum"), "{err}");
    }
    header["__metadata__"].as_object_mut().unwrap().remove(checkpoint::META_CHECKSUM);
    let mut rng = HostRng::new(9, 3);
    for case in 0..240 {
        let key = ["model", "train", "state", "checksums", "format"][case % 5];
        let mut h = header.clone();
        let text = h["__metadata__"][key].as_str().unwrap().to_string();
        let bad = String::from_utf8_lossy(&mutate(text.as_bytes(), &mut rng)).into_owned();
        h["__metadata__"][key] = bad.into();
        std::fs::write(&path, rebuild(&h, &good[8 + n..])).unwrap();
        no_panic("metadata", case, || {
            let _ = checkpoint::load_meta(tmp.path());
            let _ = checkpoint::load::<f32>(tmp.path(), &Device::Cpu);
            // A resume indexes the data with the saved state: that must be checked first.
            if let Ok(meta) = checkpoint::load_meta(tmp.path()) {
                let (mm, tt) =
                    (meta.model.clone(), TrainConfig { epochs: meta.train.epochs.min(2), ..meta.train.clone() });
                if let Ok(mut run) = open_run::<f32>(tmp.path(), &mm, &tt, &data, &Device::Cpu, true) {
                    let _ = run.train(&data, &DeviceData::new(&Device::Cpu, &data), &mut Quiet);
                }
            }
        });
    }
    // Hand-made cases that parse but would index outside the data, or allocate without bound.
    type Edit = (&'static str, fn(&mut serde_json::Value), &'static str);
    let edits: [Edit; 3] = [
        ("state", |s| s["labelled"][0] = 1_000_000.into(), "outside the 60 training images"),
        ("state", |s| s["epoch_step"] = 99.into(), "past the end of an epoch"),
        ("model", |m| m["q_hidden"] = serde_json::json!([1u64 << 40, 4]), "too large"),
    ];
    for (key, edit, needle) in edits {
        let mut h = header.clone();
        let mut v: serde_json::Value = serde_json::from_str(h["__metadata__"][key].as_str().unwrap()).unwrap();
        edit(&mut v);
        h["__metadata__"][key] = v.to_string().into();
        std::fs::write(&path, rebuild(&h, &good[8 + n..])).unwrap();
        let meta = checkpoint::load_meta(tmp.path());
        let err = match meta {
            Err(e) => e.to_string(),
            Ok(meta) => match open_run::<f32>(tmp.path(), &meta.model, &meta.train, &data, &Device::Cpu, true) {
                Ok(_) => panic!("{key}: an unusable state was accepted"),
                Err(e) => e.to_string(),
            },
        };
        assert!(err.contains(needle), "{key}: {err}");
    }
    std::fs::write(&path, &good).unwrap();
    open_run::<f32>(tmp.path(), &m, &cfg, &data, &Device::Cpu, true).expect("the intact checkpoint resumes");
}

/// A safetensors file from a header and the tensors' bytes.
fn rebuild(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let hb = serde_json::to_vec(header).unwrap();
    let mut file = (hb.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&hb);
    file.extend_from_slice(data);
    file
}

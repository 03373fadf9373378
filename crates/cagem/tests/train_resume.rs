//! Runs and checkpoints: a run killed after an epoch and resumed ends bit-for-bit where an
//! uninterrupted run ends; what cannot work is refused with a clear error.

use std::path::Path;

use cagem::checkpoint::{self, CHECKPOINT_FILE};
use cagem::data::{Dataset, DeviceData, mnist};
use cagem::train::run::Quiet;
use cagem::train::{Run, open_run};
use cagem::{ModelConfig, TrainConfig};
use cagem_autodiff::Device;

fn small() -> (Dataset, ModelConfig, TrainConfig) {
    let data = mnist::bundled().unwrap().truncated(200, 40);
    let model = ModelConfig { z1: 4, z2: 2, q_hidden: [24, 12], p_hidden: [12, 24], ..ModelConfig::default() };
    let cfg = TrainConfig {
        labels: 20,
        labelled_batch: 10,
        epochs: 2,
        batch: 50,
        warmup: 1.0,
        seed: 5,
        ..TrainConfig::default()
    };
    (data, model, cfg)
}

fn train(dir: &Path, data: &Dataset, m: &ModelConfig, cfg: &TrainConfig, resume: bool) -> Run<f32> {
    let dev = Device::Cpu;
    let mut run = open_run::<f32>(dir, m, cfg, data, &dev, resume).expect("open run");
    run.train(data, &DeviceData::new(&dev, data), &mut Quiet).expect("train");
    run
}

fn params(run: &Run<f32>) -> Vec<Vec<f32>> {
    run.model.store.iter().map(|(_, e)| e.value.to_vec()).collect()
}

fn metric_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_none())
        .map(|mut v| {
            let o = v.as_object_mut().unwrap();
            for k in ["examples_per_s", "epoch_seconds", "seconds"] {
                o.remove(k);
            }
            v
        })
        .collect()
}

#[test]
fn resumed_run_matches_uninterrupted_run_exactly() {
    let (data, m, cfg) = small();
    let straight = tempfile::tempdir().unwrap();
    let a = train(straight.path(), &data, &m, &cfg, false);

    let split = tempfile::tempdir().unwrap();
    let first = TrainConfig { epochs: 1, ..cfg.clone() };
    train(split.path(), &data, &m, &first, false);
    // A crash after the metrics line of a later epoch but before its checkpoint leaves a stray
    // line; resuming must drop it.
    let metrics = split.path().join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text += "{\"epoch\": 2, \"loss\": 1.0}\n";
    std::fs::write(&metrics, text).unwrap();
    let b = train(split.path(), &data, &m, &cfg, true);

    assert_eq!(a.state.clone_with_seconds(0.0), b.state.clone_with_seconds(0.0));
    assert_eq!(params(&a), params(&b), "parameters differ after resuming");
    assert_eq!(metric_lines(straight.path()), metric_lines(split.path()));
    assert_eq!(metric_lines(split.path()).len(), 2);
    let (ma, mb) = (&a.adam, &b.adam);
    assert_eq!(ma.t, mb.t);
}

trait WithSeconds {
    fn clone_with_seconds(&self, s: f64) -> Self;
}
impl WithSeconds for cagem::train::TrainState {
    fn clone_with_seconds(&self, s: f64) -> Self {
        let mut c = self.clone();
        c.seconds = s;
        c.history.clear(); // the resumed run records its change of --epochs
        c.last_record = None; // holds timings
        c
    }
}

#[test]
fn refuses_what_cannot_work() {
    let (data, m, cfg) = small();
    let dev = Device::Cpu;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let err = |r: cagem::Result<Run<f32>>| match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };

    let t = err(open_run::<f32>(&dir, &m, &cfg, &data, &dev, true));
    assert!(t.contains("not found"), "{t}");

    let one = TrainConfig { epochs: 1, ..cfg.clone() };
    train(&dir, &data, &m, &one, false);
    let t = err(open_run::<f32>(&dir, &m, &cfg, &data, &dev, false));
    assert!(t.contains("already holds a run") && t.contains("--resume"), "{t}");

    let other = TrainConfig { labels: 40, ..cfg.clone() };
    let t = err(open_run::<f32>(&dir, &m, &other, &data, &dev, true));
    assert!(t.contains("different configuration") && t.contains("labels is 20 in the checkpoint, 40 requested"), "{t}");
    let other_model = ModelConfig { clusters: 12, ..m.clone() };
    let t = err(open_run::<f32>(&dir, &other_model, &cfg, &data, &dev, true));
    assert!(t.contains("clusters is 10 in the checkpoint, 12 requested"), "{t}");

    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let t = err(open_run::<f32>(&blocker.join("run"), &m, &cfg, &data, &dev, false));
    assert!(t.contains("cannot create the run folder"), "{t}");

    let few = ModelConfig { clusters: 5, ..m.clone() };
    let t = err(open_run::<f32>(&tmp.path().join("r2"), &few, &cfg, &data, &dev, false));
    assert!(t.contains("--clusters 5 is fewer than the 10 classes"), "{t}");

    let too_many = TrainConfig { labels: 1000, ..cfg.clone() };
    let t = err(open_run::<f32>(&tmp.path().join("r3"), &m, &too_many, &data, &dev, false));
    assert!(t.contains("only"), "{t}");

    // A damaged checkpoint is reported, not trusted.
    let ck = dir.join(CHECKPOINT_FILE);
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let t = match checkpoint::load::<f32>(&dir, &dev) {
        Ok(_) => panic!("loaded a truncated checkpoint"),
        Err(e) => e.to_string(),
    };
    assert!(t.contains("corrupt"), "{t}");
}

/// Where the tensors' bytes start in a safetensors file (after the 8-byte header length and the
/// JSON header).
fn data_start(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

#[test]
fn checksums_catch_flipped_bytes_and_plain_readers_still_read() {
    let (data, m, cfg) = small();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    train(&dir, &data, &m, &TrainConfig { epochs: 1, ..cfg }, false);
    let ck = dir.join(CHECKPOINT_FILE);
    let bytes = std::fs::read(&ck).unwrap();

    // A plain safetensors reader sees every tensor, and the stored checksums match them.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let sums: std::collections::HashMap<String, String> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()[checkpoint::CHECKSUMS]).unwrap();
    assert_eq!(sums.len(), st.len());
    for (name, view) in st.tensors() {
        assert_eq!(sums[&name], format!("{:08x}", crc32c::crc32c(view.data())), "{name}");
    }

    // One flipped byte anywhere in the tensors' data is caught, and the tensor named.
    let start = data_start(&bytes);
    for at in [start, start + (bytes.len() - start) / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        std::fs::write(&ck, &bad).unwrap();
        let t = match checkpoint::load::<f32>(&dir, &Device::Cpu) {
            Ok(_) => panic!("loaded a checkpoint with a flipped byte at {at}"),
            Err(e) => e.to_string(),
        };
        assert!(t.contains("fails its checksum") && t.contains(CHECKPOINT_FILE) && t.contains("tensor '"), "{t}");
    }
    std::fs::write(&ck, &bytes).unwrap();
    checkpoint::load::<f32>(&dir, &Device::Cpu).expect("the intact file loads");
}

/// The shared 100-epoch run was written before checkpoints carried checksums: it must still load
/// and resume (CI has ../shared beside the repository).
#[test]
fn checkpoint_without_checksums_still_loads_and_resumes() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/runs/cagem100-paper-e100");
    if !shared.join(CHECKPOINT_FILE).exists() {
        eprintln!("skipping: {} is not here", shared.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for f in [CHECKPOINT_FILE, "config.json", "metrics.jsonl"] {
        std::fs::copy(shared.join(f), tmp.path().join(f)).unwrap();
    }
    let meta = checkpoint::load_meta(tmp.path()).unwrap();
    assert_eq!(meta.state.epochs_done, 100);
    let data = mnist::bundled().unwrap();
    let run = open_run::<f32>(tmp.path(), &meta.model, &meta.train, &data, &Device::Cpu, true).expect("resume");
    assert_eq!(run.state.epochs_done, 100);
    assert_eq!(run.model.store.trainable_count(), 6_838_372);
}

fn bits(run: &Run<f32>) -> Vec<Vec<u32>> {
    run.model.store.iter().map(|(_, e)| e.value.to_vec().iter().map(|x| x.to_bits()).collect()).collect()
}

/// Steps with a non-finite loss are skipped without touching anything; after --max-skips of them
/// in a row the run stops with the last good checkpoint intact, and resumes with a smaller --lr.
#[test]
fn non_finite_steps_are_skipped_then_the_run_stops_and_resumes() {
    let (data, m, cfg) = small();
    let dev = Device::Cpu;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let one = TrainConfig { epochs: 1, max_skips: 3, ..cfg.clone() };
    train(&dir, &data, &m, &one, false);
    let ck_before = std::fs::read(dir.join(CHECKPOINT_FILE)).unwrap();

    let mut run = open_run::<f32>(&dir, &m, &TrainConfig { epochs: 2, ..one.clone() }, &data, &dev, true).unwrap();
    // A NaN weight makes every loss NaN.
    let id = run.model.store.ids().find(|&id| run.model.store.entry(id).trainable).unwrap();
    let mut w = run.model.store.get(id).to_vec();
    w[0] = f32::NAN;
    let shape = run.model.store.get(id).shape();
    *run.model.store.get_mut(id) = cagem_autodiff::Tensor::from_slice(&dev, shape.0, shape.1, &w);
    let (before, t_before) = (bits(&run), run.adam.t);
    let err = match run.train(&data, &DeviceData::new(&dev, &data), &mut Quiet) {
        Ok(()) => panic!("a run with NaN losses trained to the end"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("3 consecutive steps") && err.contains("skipped") && err.contains("--lr"), "{err}");
    assert!(err.contains("written before these steps and is intact"), "{err}");
    assert_eq!(bits(&run), before, "a skipped step changed a parameter or batch-norm statistic");
    assert_eq!(run.adam.t, t_before, "a skipped step advanced Adam");
    assert_eq!(run.state.skipped_steps, 3);
    drop(run);
    assert_eq!(std::fs::read(dir.join(CHECKPOINT_FILE)).unwrap(), ck_before, "the last good checkpoint changed");

    let calmer = TrainConfig { epochs: 2, lr: 1e-4, ..one };
    let b = train(&dir, &data, &m, &calmer, true);
    assert_eq!(b.state.epochs_done, 2);
    let last = metric_lines(&dir).pop().unwrap();
    assert_eq!(last["skipped_steps"], 0);
    assert_eq!(last["lr"], 1e-4);
}

/// Raises the run's stop flag (as the Ctrl-C handler does) after step `step` of epoch `epoch`.
struct StopAt {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    epoch: usize,
    step: usize,
}
impl cagem::train::Observer for StopAt {
    fn step(&mut self, r: &cagem::train::StepReport) {
        if (r.epoch, r.step) == (self.epoch, self.step) {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A run stopped mid-epoch, inside a labelled cycle (30 labels in batches of 10, 4 steps per
/// epoch, so no epoch boundary is a cycle boundary either), resumes bit for bit; so does one
/// resumed at epoch ends that fall mid-cycle.
#[test]
fn interrupted_mid_epoch_and_mid_cycle_resumes_exactly() {
    let (data, m, cfg) = small();
    let cfg = TrainConfig { labels: 30, epochs: 3, ..cfg };
    let dev = Device::Cpu;
    let straight = tempfile::tempdir().unwrap();
    let a = train(straight.path(), &data, &m, &cfg, false);

    let split = tempfile::tempdir().unwrap();
    let mut run = open_run::<f32>(split.path(), &m, &cfg, &data, &dev, false).unwrap();
    let mut obs = StopAt { stop: run.stop.clone(), epoch: 2, step: 1 };
    let err = match run.train(&data, &DeviceData::new(&dev, &data), &mut obs) {
        Ok(()) => panic!("the stop flag was ignored"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("stopped at step 1 of epoch 2") && err.contains("--resume"), "{err}");
    assert_eq!((run.state.epochs_done, run.state.epoch_step), (1, 1));
    drop(run);
    let meta = checkpoint::load_meta(split.path()).unwrap();
    // Five steps of 10 labelled rows: two thirds into the second cycle.
    assert_eq!((meta.state.epochs_done, meta.state.epoch_step, meta.state.label_cursor), (1, 1, 20));
    let b = train(split.path(), &data, &m, &cfg, true);
    assert_eq!(a.state.clone_with_seconds(0.0), b.state.clone_with_seconds(0.0));
    assert_eq!(params(&a), params(&b), "parameters differ after a mid-epoch resume");
    assert_eq!(metric_lines(straight.path()), metric_lines(split.path()));

    // Stopped at an epoch's last step: the epoch ends normally, then the run stops.
    let edge = tempfile::tempdir().unwrap();
    let mut run = open_run::<f32>(edge.path(), &m, &cfg, &data, &dev, false).unwrap();
    let mut obs = StopAt { stop: run.stop.clone(), epoch: 1, step: 4 };
    let err = run.train(&data, &DeviceData::new(&dev, &data), &mut obs).expect_err("stopped").to_string();
    assert!(err.contains("after epoch 1"), "{err}");
    drop(run);
    for epochs in [2, 3] {
        train(edge.path(), &data, &m, &TrainConfig { epochs, ..cfg.clone() }, true);
    }
    let c = train(edge.path(), &data, &m, &cfg, true);
    assert_eq!(params(&a), params(&c), "parameters differ after resumes at mid-cycle epoch ends");
    assert_eq!(metric_lines(straight.path()), metric_lines(edge.path()));
}

/// A crash between the checkpoint and its metrics line: the resume writes the line.
#[test]
fn a_metrics_line_lost_after_its_checkpoint_comes_back() {
    let (data, m, cfg) = small();
    let tmp = tempfile::tempdir().unwrap();
    train(tmp.path(), &data, &m, &cfg, false);
    let path = tmp.path().join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    std::fs::write(&path, format!("{}\n", lines[0])).unwrap();
    train(tmp.path(), &data, &m, &cfg, true);
    let back = std::fs::read_to_string(&path).unwrap();
    let epochs: Vec<&str> = back.lines().filter(|l| !l.contains("\"event\"")).collect();
    assert_eq!(epochs, lines, "the lost line did not come back as it was");
}

/// The bit-for-bit claim holds for a fixed thread count (chunking follows the thread count, so
/// 1 and 2 threads may round differently): straight and resumed runs in a 1-thread and in a
/// 2-thread pool.
#[test]
fn resume_is_exact_at_a_fixed_thread_count() {
    let (data, m, cfg) = small();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let straight = tempfile::tempdir().unwrap();
            let a = train(straight.path(), &data, &m, &cfg, false);
            let split = tempfile::tempdir().unwrap();
            train(split.path(), &data, &m, &TrainConfig { epochs: 1, ..cfg.clone() }, false);
            let b = train(split.path(), &data, &m, &cfg, true);
            assert_eq!(params(&a), params(&b), "{threads} threads: parameters differ after resuming");
            assert_eq!(metric_lines(straight.path()), metric_lines(split.path()), "{threads} threads");
        });
    }
}

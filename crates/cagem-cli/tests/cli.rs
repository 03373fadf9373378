//! The `cagem` binary: its contract (train → eval --json, bench --json, resume) and its answers
//! to bad input: a one-line error naming the problem, a non-zero exit, never a panic.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn cagem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cagem")).args(args).output().expect("run cagem")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts failure with a clean message containing every needle.
#[track_caller]
fn fails_with(args: &[&str], needles: &[&str]) {
    let o = cagem(args);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{args:?} succeeded:\n{out}\n{err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{args:?} panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: error lacks '{n}':\n{err}");
    }
}

/// A fresh folder `name` in `tmp` holding a small MNIST-format data set.
fn data_dir(tmp: &Path, name: &str) -> std::path::PathBuf {
    let d = tmp.join(name);
    std::fs::create_dir(&d).unwrap();
    mnist_like(&d, 120, 30, 28);
    d
}

fn idx(dims: &[usize], ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, ty, dims.len() as u8];
    for &d in dims {
        v.extend_from_slice(&(d as u32).to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A small MNIST-format folder: `n` train and `m` test images, labels cycling over 0..9.
fn mnist_like(dir: &Path, n: usize, m: usize, side: usize) {
    let img = |k: usize| -> Vec<u8> { (0..k * side * side).map(|i| ((i * 37 + i / 7) % 256) as u8).collect() };
    let lab = |k: usize| -> Vec<u8> { (0..k).map(|i| (i % 10) as u8).collect() };
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
    write("train-images-idx3-ubyte", idx(&[n, side, side], 8, &img(n)));
    write("train-labels-idx1-ubyte", idx(&[n], 8, &lab(n)));
    write("t10k-images-idx3-ubyte", idx(&[m, side, side], 8, &img(m)));
    write("t10k-labels-idx1-ubyte", idx(&[m], 8, &lab(m)));
}

/// A small, fast configuration; `extra` flags replace these defaults (clap refuses repeats).
const SMALL: [(&str, &str); 11] = [
    ("--labels", "20"),
    ("--epochs", "1"),
    ("--batch", "20"),
    ("--labelled-batch", "10"),
    ("--warmup", "1"),
    ("--q-hidden", "16,8"),
    ("--p-hidden", "8,16"),
    ("--z1", "4"),
    ("--z2", "2"),
    ("--clusters", "10"),
    ("--device", "cpu"),
];

fn train_args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--data", data, "--out", out, "--quiet"];
    for (flag, value) in SMALL {
        if !extra.contains(&flag) {
            a.extend([flag, value]);
        }
    }
    a.extend_from_slice(extra);
    a
}

#[test]
fn train_eval_resume_and_bench_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let r = run.to_str().unwrap();

    let o = cagem(&train_args(d, r, &[]));
    assert!(o.status.success(), "train failed: {:?}", text(&o));
    for f in ["checkpoint.safetensors", "config.json", "metrics.jsonl"] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().next().unwrap())
            .unwrap();
    assert_eq!(line["epoch"], 1);
    assert!(line["elbo"].as_f64().unwrap() < 0.0);

    let o = cagem(&["eval", "--run", r, "--k", "3", "--n-test", "10", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "eval failed: {err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).expect("last line is JSON");
    assert_eq!(last["iw_k"], 3);
    assert_eq!(last["n_test"], 10);
    assert!(last["log_likelihood"].as_f64().unwrap() < 0.0);
    for k in ["elbo", "error_p", "error_q"] {
        assert!(last[k].as_f64().is_some(), "{k} missing");
    }

    // Pictures: each command writes a PNG of the size it reports.
    for (args, size) in [
        (vec!["sample", "--n", "10", "--zoom", "1"], (4 * 30 + 2, 3 * 30 + 2)),
        (vec!["sample", "--n", "4", "--class", "3"], (2 * 58 + 2, 2 * 58 + 2)),
        (vec!["reconstruct", "--n", "6", "--zoom", "1"], (6 * 30 + 2, 2 * 30 + 2)),
        (vec!["grid", "--steps", "3", "--zoom", "1"], (2 * (3 * 30 + 2) + 16, 3 * 30 + 2)),
    ] {
        let png = tmp.path().join(format!("{}.png", args.join("_")));
        let mut a = args.clone();
        a.extend(["--run", r, "--out", png.to_str().unwrap()]);
        let o = cagem(&a);
        assert!(o.status.success(), "{a:?} failed: {:?}", text(&o));
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap())).read_info().unwrap();
        assert_eq!((dec.info().width as usize, dec.info().height as usize), size, "{a:?}");
    }
    let png = tmp.path().join("latent.png");
    let o = cagem(&["latent", "--run", r, "--out", png.to_str().unwrap(), "--n-test", "30"]);
    assert!(o.status.success(), "latent failed: {:?}", text(&o));
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap())).read_info().unwrap();
    assert_eq!((dec.info().width, dec.info().height), (1600, 800));
    let out_png = tmp.path().join("x.png");
    let op = out_png.to_str().unwrap();
    fails_with(&["sample", "--run", r, "--out", op, "--class", "10"], &["--class 10 is out of range"]);
    fails_with(&["sample", "--run", r, "--out", "/nonexistent-dir/x.png"], &["cannot write"]);

    let o = cagem(&["eval", "--run", r, "--k", "4", "--n-test", "5", "--estimator", "sample-y", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "eval --estimator sample-y failed: {err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(last["estimator"].as_str().unwrap().starts_with("y sampled"));

    // Every original option given again, unchanged, is accepted.
    let o = cagem(&train_args(d, r, &["--resume", "--epochs", "2"]));
    assert!(o.status.success(), "resume failed: {:?}", text(&o));
    assert_eq!(epoch_records(&run).len(), 2);

    // Resuming with another configuration, or starting over an existing run, is refused.
    fails_with(
        &train_args(d, r, &["--resume", "--epochs", "3", "--clusters", "12"]),
        &["different configuration", "clusters"],
    );
    fails_with(&train_args(d, r, &[]), &["already holds a run", "--resume"]);

    let o = cagem(&["bench", "--json", "--steps", "1", "--warmup", "0", "--batch", "4", "--labelled-batch", "2"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "bench failed: {err}");
    let b: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(b["train_examples_per_s"].as_f64().unwrap() > 0.0 && b["forward_examples_per_s"].as_f64().unwrap() > 0.0);
}

/// The per-epoch lines of a run's metrics.jsonl (events such as resumes left out).
fn epoch_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_none())
        .collect()
}

fn events(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_some())
        .collect()
}

/// A run's config.json.
fn run_config(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap()
}

/// The README's resume example: `--resume` takes the run's configuration, so only --out and what
/// changes need typing; what contradicts the run is listed and refused; --lr may change.
#[test]
fn resume_takes_the_runs_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("quick"));
    let r = run.to_str().unwrap();
    let o = cagem(&train_args(d, r, &["--n-train", "60", "--warmup", "3"]));
    assert!(o.status.success(), "train failed: {:?}", text(&o));

    let o = cagem(&["train", "--out", r, "--resume", "--epochs", "2", "--quiet"]);
    assert!(o.status.success(), "the README's resume failed: {:?}", text(&o));
    let recs = epoch_records(&run);
    assert_eq!(recs.iter().map(|v| v["epoch"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    // The run's own n_train (60 images, batch 20: 3 steps per epoch) and warm-up were kept.
    assert_eq!(recs[1]["steps"], 6);
    let cfg = run_config(&run);
    assert_eq!(cfg["train"]["n_train"], 60);
    assert_eq!(cfg["train"]["warmup"], 3.0);
    assert_eq!(cfg["train"]["epochs"], 2);
    let ev = events(&run);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["event"], "resume");
    assert_eq!(ev[0]["device"], "cpu");
    assert!(ev[0]["threads"].as_u64().unwrap() >= 1);
    assert_eq!(ev[0]["epoch"], 1);
    assert_eq!(ev[0]["changes"]["epochs"]["from"], 1);
    assert_eq!(ev[0]["changes"]["epochs"]["to"], 2);

    // Every contradiction is listed, not only the first.
    fails_with(
        &["train", "--out", r, "--resume", "--warmup", "1", "--seed", "7", "--z1", "4"],
        &[
            "different configuration",
            "warmup is 3.0 in the checkpoint, 1.0 requested",
            "seed is 0 in the checkpoint, 7",
        ],
    );
    let err = text(&cagem(&["train", "--out", r, "--resume", "--warmup", "1", "--seed", "7", "--z1", "4"])).1;
    assert!(!err.contains("z1"), "an unchanged option was listed: {err}");

    // Nothing to train: said so, and nothing is written.
    let before = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let o = cagem(&["train", "--out", r, "--resume", "--epochs", "2"]);
    assert!(o.status.success() && text(&o).0.contains("nothing to train"), "{:?}", text(&o));
    assert_eq!(before, std::fs::read_to_string(run.join("metrics.jsonl")).unwrap());

    // Another thread count continues, with a note that it is not bit for bit.
    let o = cagem(&["--threads", "1", "train", "--out", r, "--resume", "--epochs", "3", "--quiet"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let n_threads = ev[0]["threads"].as_u64().unwrap();
    assert_eq!(text(&o).1.contains("not bit for bit"), n_threads != 1, "{:?}", text(&o));

    // A new learning rate is accepted and recorded in metrics.jsonl and config.json's history.
    let o = cagem(&["train", "--out", r, "--resume", "--epochs", "4", "--lr", "0.0005", "--quiet"]);
    assert!(o.status.success(), "resume with --lr failed: {:?}", text(&o));
    let recs = epoch_records(&run);
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[3]["lr"], 0.0005);
    assert_eq!(recs[2]["lr"], 0.001);
    let ev = events(&run);
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[1]["threads"], 1);
    assert_eq!(ev[2]["changes"]["lr"]["from"], 0.001);
    assert_eq!(ev[2]["changes"]["lr"]["to"], 0.0005);
    let cfg = run_config(&run);
    assert_eq!(cfg["train"]["lr"], 0.0005);
    let h = cfg["history"].as_array().unwrap();
    assert_eq!(h.len(), 3, "{h:?}");
    assert_eq!(h[0]["epoch"], 1);
    assert_eq!(h[1]["epoch"], 2);
    assert_eq!(h[2]["epoch"], 3);
    assert_eq!(h[2]["changes"]["lr"]["to"], 0.0005);
}

#[test]
fn deviations_are_named_saved_and_kept_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let d = data.to_str().unwrap();
    let (paper, dev) = (tmp.path().join("paper"), tmp.path().join("dev"));
    let (p, r) = (paper.to_str().unwrap(), dev.to_str().unwrap());
    let o = cagem(&train_args(d, p, &["--n-train", "60"]));
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(!text(&o).1.contains("DEVIATION"), "the paper's run names a deviation: {:?}", text(&o));
    let flags = ["--n-train", "60", "--deviation", "no-skip-x-z2", "--deviation", "kl-warmup-gaussian-only"];
    let o = cagem(&train_args(d, r, &flags));
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).1.contains("DEVIATIONS from the paper: no-skip-x-z2, kl-warmup-gaussian-only"), "{:?}", text(&o));
    assert_eq!(run_config(&dev)["train"]["deviations"], serde_json::json!(["kl-warmup-gaussian-only"]));
    assert_eq!(run_config(&dev)["model"]["skip_x_to_z2"], false);
    assert_eq!(run_config(&paper)["model"]["skip_x_to_z2"], true);
    assert!(run_config(&paper)["train"].get("deviations").is_none(), "the paper's run lists deviations");
    // Without the skip connection q(z2|·) has no weights from x: 784 × 16 (--q-hidden 16,8) fewer.
    let count = |o: &Output| -> u64 {
        let e = text(o).1;
        let line = e.lines().find(|l| l.starts_with("model:")).unwrap().to_string();
        line.split(", ").find_map(|w| w.strip_suffix(" parameters")).unwrap().parse().unwrap()
    };
    // Not --quiet, which leaves out the model line.
    let with_skip = cagem(&["train", "--out", p, "--resume", "--epochs", "2"]);
    let without = cagem(&["train", "--out", r, "--resume", "--epochs", "2"]);
    assert!(without.status.success(), "a resume without the flags failed: {:?}", text(&without));
    assert!(text(&without).1.contains("DEVIATIONS from the paper"), "the resume forgot the deviations");
    assert_eq!(count(&with_skip) - count(&without), 784 * 16);
    fails_with(
        &["train", "--out", r, "--resume", "--epochs", "3", "--deviation", "hp-grad-to-z2"],
        &["different configuration", "deviations"],
    );
    fails_with(&["train", "--deviation", "better-results"], &["better-results"]);
    // Holding q's weights in a reweighting that is not there is refused before any data is read.
    fails_with(&["train", "--deviation", "log-py-qy-held"], &["log-py-qy-held", "--log-py-weight"]);
}

#[test]
fn a_recipe_fills_in_its_deviations_is_saved_and_kept_and_yields_to_explicit_options() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let d = data.to_str().unwrap();
    let (named, mixed) = (tmp.path().join("named"), tmp.path().join("mixed"));
    let (n, m) = (named.to_str().unwrap(), mixed.to_str().unwrap());
    let o = cagem(&train_args(d, n, &["--n-train", "60", "--recipe", "chosen-branch"]));
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).1.contains("DEVIATIONS from the paper (recipe chosen-branch): log-py-weight 3"), "{:?}", text(&o));
    assert_eq!(run_config(&named)["train"]["recipe"], "chosen-branch");
    assert_eq!(run_config(&named)["train"]["log_py_weight"], 3.0);
    let o = cagem(&train_args(d, m, &["--n-train", "60", "--recipe", "chosen-branch", "--log-py-weight", "5"]));
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(run_config(&mixed)["train"]["log_py_weight"], 5.0, "the explicit option lost to the recipe");
    // A resume keeps the recipe without being told, and refuses one that would change the run.
    let o = cagem(&["train", "--out", n, "--resume", "--epochs", "2"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).1.contains("recipe chosen-branch"), "the resume forgot the recipe: {:?}", text(&o));
    assert_eq!(run_config(&named)["train"]["recipe"], "chosen-branch");
    let plain = tmp.path().join("plain");
    assert!(cagem(&train_args(d, plain.to_str().unwrap(), &["--n-train", "60"])).status.success());
    fails_with(
        &["train", "--out", plain.to_str().unwrap(), "--resume", "--epochs", "2", "--recipe", "chosen-branch"],
        &["different configuration", "recipe"],
    );
    fails_with(&["train", "--recipe", "better-results"], &["better-results"]);
    // The CaGeM-0 recipe fills in its own deviation only.
    let spread = tmp.path().join("spread");
    let o = cagem(&train_args(
        d,
        spread.to_str().unwrap(),
        &["--n-train", "60", "--labels", "0", "--recipe", "spread-clusters"],
    ));
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).1.contains("(recipe spread-clusters): marginal-entropy-y 1"), "{:?}", text(&o));
    let t = &run_config(&spread)["train"];
    assert_eq!((t["recipe"].as_str(), t["marginal_entropy_y"].as_f64()), (Some("spread-clusters"), Some(1.0)));
    assert!(t["log_py_weight"].is_null(), "{t}");
    // A recipe with a named deviation adds it to the run's list, and a resume keeps it.
    let held = tmp.path().join("held");
    let h = held.to_str().unwrap();
    let o = cagem(&train_args(d, h, &["--n-train", "60", "--recipe", "chosen-branch-held"]));
    assert!(o.status.success(), "{:?}", text(&o));
    let said = "(recipe chosen-branch-held): log-py-qy-held, log-py-weight 3";
    assert!(text(&o).1.contains(said), "{:?}", text(&o));
    assert_eq!(run_config(&held)["train"]["deviations"], serde_json::json!(["log-py-qy-held"]));
    let o = cagem(&["train", "--out", h, "--resume", "--epochs", "2"]);
    assert!(o.status.success() && text(&o).1.contains(said), "{:?}", text(&o));
}

fn spawn_cagem(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cagem"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cagem")
}

/// Waits (up to a minute) until the run has `n` epoch lines in its metrics.
fn wait_for_epochs(run: &Path, n: usize, child: &mut std::process::Child) {
    for _ in 0..6000 {
        if run.join("metrics.jsonl").exists() && epoch_records(run).len() >= n {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "the trainer ended before epoch {n}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no epoch {n} after a minute");
}

/// Two trainers on one folder: the second is refused at once and the first runs undisturbed; a
/// trainer killed with SIGKILL leaves nothing that blocks the resume.
#[test]
fn one_trainer_per_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let r = run.to_str().unwrap();
    let epochs = "60";
    let mut first = spawn_cagem(&train_args(d, r, &["--epochs", epochs]));
    wait_for_epochs(&run, 1, &mut first);
    for extra in [&[][..], &["--resume"][..]] {
        let o = cagem(&train_args(d, r, extra));
        let err = text(&o).1;
        assert!(!o.status.success(), "a second trainer {extra:?} ran");
        assert!(err.contains("is in use by another `cagem train`") && err.contains("train.lock"), "{err}");
    }
    assert!(first.try_wait().unwrap().is_none(), "the first trainer ended too early for this test to mean anything");
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "the first trainer was disturbed: {:?}", text(&o));
    let epochs_seen: Vec<u64> = epoch_records(&run).iter().map(|v| v["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs_seen, (1..=60).collect::<Vec<_>>());

    let mut killed = spawn_cagem(&["train", "--out", r, "--resume", "--epochs", "100000", "--quiet"]);
    wait_for_epochs(&run, 62, &mut killed);
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let done = checkpoint_epochs(&run);
    let next = (done + 1).to_string();
    let o = cagem(&["train", "--out", r, "--resume", "--epochs", &next, "--quiet"]);
    assert!(o.status.success(), "resume after SIGKILL failed: {:?}", text(&o));
    let epochs_seen: Vec<u64> = epoch_records(&run).iter().map(|v| v["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs_seen, (1..=done + 1).collect::<Vec<_>>());
}

/// The training state stored in a run's checkpoint.
fn checkpoint_state(run: &Path) -> serde_json::Value {
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    serde_json::from_str(header["__metadata__"]["state"].as_str().unwrap()).unwrap()
}

/// Epochs done according to the run's checkpoint.
fn checkpoint_epochs(run: &Path) -> u64 {
    checkpoint_state(run)["epochs_done"].as_u64().unwrap()
}

/// The tensors' bytes of a run's checkpoint (everything after the safetensors header).
fn checkpoint_tensors(run: &Path) -> Vec<u8> {
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + n..].to_vec()
}

/// SIGINT (and SIGTERM) during training: the step finishes, a checkpoint is written, the run
/// says how to resume and exits 130; the resumed run ends with the same tensors as a run never
/// interrupted.
#[test]
fn ctrl_c_writes_a_checkpoint_that_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let d = data.to_str().unwrap();
    let mut ends = Vec::new();
    for signal in ["-INT", "-TERM"] {
        let run = tmp.path().join(format!("run{signal}"));
        let r = run.to_str().unwrap();
        let mut child = spawn_cagem(&train_args(d, r, &["--epochs", "100000"]));
        wait_for_epochs(&run, 2, &mut child);
        let ok = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        let o = child.wait_with_output().unwrap();
        let err = text(&o).1;
        assert_eq!(o.status.code(), Some(130), "{signal}: {err}");
        assert!(
            err.contains("interrupted: stopped") && err.contains(&format!("cagem train --out {r} --resume")),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        let state = checkpoint_state(&run);
        let (done, step) = (state["epochs_done"].as_u64().unwrap(), state["epoch_step"].as_u64().unwrap());
        let end = (done + 2).to_string();
        let o = cagem(&["train", "--out", r, "--resume", "--epochs", &end, "--quiet"]);
        assert!(o.status.success(), "resume after {signal} failed: {:?}", text(&o));
        ends.push((run, done + 2, step));
    }
    for (i, (run, epochs, step)) in ends.into_iter().enumerate() {
        // Both signals may land at the same position: one uninterrupted run folder each.
        let straight = tmp.path().join(format!("straight{i}-{epochs}-{step}"));
        let e = epochs.to_string();
        let o = cagem(&train_args(d, straight.to_str().unwrap(), &["--epochs", &e]));
        assert!(o.status.success(), "{:?}", text(&o));
        assert!(
            checkpoint_tensors(&run) == checkpoint_tensors(&straight),
            "{}: interrupted at step {step} and resumed, the tensors differ from an uninterrupted run",
            run.display()
        );
        let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
            v.into_iter()
                .map(|mut r| {
                    for k in ["examples_per_s", "epoch_seconds", "seconds"] {
                        r.as_object_mut().unwrap().remove(k);
                    }
                    r
                })
                .collect()
        };
        assert_eq!(strip(epoch_records(&run)), strip(epoch_records(&straight)));
    }
}

/// Ctrl-C during the periodic evaluation stops it at once (the finished epoch's checkpoint is on
/// disk); the resume redoes the evaluation, so the epoch keeps its test figures. A resume with
/// nothing to train says so and changes nothing.
#[test]
fn ctrl_c_during_the_periodic_evaluation_stops_it_and_the_resume_redoes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let r = run.to_str().unwrap();
    // An evaluation that would take minutes: 30 images × 10⁷ importance samples.
    let child = spawn_cagem(&train_args(d, r, &["--eval-every", "1", "--eval-k", "10000000"]));
    for _ in 0..6000 {
        if run.join("checkpoint.safetensors").exists() && checkpoint_state(&run)["pending_eval"] == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sent = std::time::Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let waited = sent.elapsed();
    assert_eq!(o.status.code(), Some(130), "{:?}", text(&o));
    assert!(waited < std::time::Duration::from_secs(20), "the interrupt took {waited:?}");
    assert_eq!(checkpoint_state(&run)["pending_eval"], true);
    assert!(
        !run.join("metrics.jsonl").exists() || epoch_records(&run).is_empty(),
        "a line without its test figures was written"
    );
    let o = cagem(&["train", "--out", r, "--resume", "--eval-k", "5", "--quiet"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let lines = epoch_records(&run);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["test_k"], 5, "{lines:?}");
    assert!(lines[0]["test_log_likelihood"].is_number(), "{lines:?}");
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let o = cagem(&["train", "--out", r, "--resume", "--epochs", "1"]);
    assert!(o.status.success() && text(&o).0.contains("nothing to train"), "{:?}", text(&o));
    assert_eq!(before, std::fs::read(run.join("checkpoint.safetensors")).unwrap());
    assert_eq!(epoch_records(&run).len(), 1);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let case = |name: &str| data_dir(tmp.path(), name);

    let d = case("missing");
    std::fs::remove_file(d.join("train-labels-idx1-ubyte.gz")).unwrap();
    fails_with(&train_args(d.to_str().unwrap(), o, &[]), &["missing train-labels-idx1-ubyte"]);

    let d = case("truncated");
    let raw = idx(&[120, 28, 28], 8, &vec![7u8; 120 * 28 * 28 - 100]);
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), gz(&raw)).unwrap();
    fails_with(&train_args(d.to_str().unwrap(), o, &[]), &["train-images-idx3-ubyte.gz", "truncated"]);

    let d = case("corrupt-gzip");
    let g = std::fs::read(d.join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(d.join("t10k-images-idx3-ubyte.gz"), &g[..g.len() / 2]).unwrap();
    fails_with(&train_args(d.to_str().unwrap(), o, &[]), &["t10k-images-idx3-ubyte.gz", "gzip"]);

    let d = case("magic");
    std::fs::write(d.join("train-labels-idx1-ubyte.gz"), gz(&[1, 2, 8, 1, 0, 0, 0, 1, 5])).unwrap();
    fails_with(&train_args(d.to_str().unwrap(), o, &[]), &["train-labels-idx1-ubyte.gz", "not an IDX file"]);

    let d = tmp.path().join("size");
    std::fs::create_dir(&d).unwrap();
    mnist_like(&d, 120, 30, 32);
    fails_with(&train_args(d.to_str().unwrap(), o, &[]), &["32×32, expected 28×28"]);

    let d = case("label-range");
    let mut labels: Vec<u8> = (0..120).map(|i| (i % 10) as u8).collect();
    labels[33] = 10;
    std::fs::write(d.join("train-labels-idx1-ubyte.gz"), gz(&idx(&[120], 8, &labels))).unwrap();
    fails_with(&train_args(d.to_str().unwrap(), o, &[]), &["label 10 at index 33", "out of range"]);

    let d = case("ok");
    let ds = d.to_str().unwrap();
    fails_with(&train_args(ds, o, &["--labels", "200"]), &["20 labelled examples of class", "only 12"]);
    fails_with(&train_args(ds, o, &["--labels", "25"]), &["multiple of 10"]);
    fails_with(&train_args(ds, o, &["--clusters", "5"]), &["--clusters 5 is fewer than the 10 classes"]);
    let blocker = tmp.path().join("plain-file");
    std::fs::write(&blocker, "x").unwrap();
    let unwritable = blocker.join("run");
    fails_with(&train_args(ds, unwritable.to_str().unwrap(), &[]), &["cannot create the run folder"]);
    fails_with(&train_args(ds, o, &["--resume"]), &["not found"]);
    fails_with(&train_args(ds, o, &["--device", "tpu"]), &["unknown device 'tpu'"]);
    #[cfg(not(feature = "cuda"))]
    fails_with(&train_args(ds, o, &["--device", "cuda"]), &["built without CUDA support"]);
    fails_with(&["eval", "--run", ds], &["checkpoint", "not found"]);
    fails_with(&["bench", "--batch", "1"], &["--batch", "outside 2..="]);
    fails_with(&["bench", "--clusters", "0"], &["--clusters", "outside 1..="]);
    fails_with(&train_args(ds, o, &["--z1", "0"]), &["--z1", "outside 1..="]);
    fails_with(&train_args(ds, o, &["--z2", "0"]), &["--z2", "outside 1..="]);
    fails_with(&train_args(ds, o, &["--tf32"]), &["--tf32 needs --device cuda"]);
    fails_with(&train_args(ds, o, &["--clip-norm", "0"]), &["--clip-norm", "0 is outside (0, ∞)"]);
    fails_with(&train_args(ds, o, &["--max-skips", "0"]), &["--max-skips", "0 is less than 1"]);
    fails_with(
        &["train", "--dataset", "omniglot", "--clusters", "10", "--out", o, "--quiet"],
        &["fewer than the 50 classes"],
    );
    fails_with(&train_args(ds, o, &["--dataset", "omniglot"]), &["missing omniglot28-train-images-idx3-ubyte.gz"]);

    // The z2 grid needs a two-dimensional z2.
    let run = tmp.path().join("z3run");
    let ok = cagem(&train_args(ds, run.to_str().unwrap(), &["--z2", "3", "--labels", "0"]));
    assert!(ok.status.success(), "{:?}", text(&ok));
    let png = tmp.path().join("g.png");
    fails_with(
        &["grid", "--run", run.to_str().unwrap(), "--out", png.to_str().unwrap()],
        &["needs a model trained with --z2 2"],
    );

    // A byte flipped inside a tensor of the checkpoint: eval refuses it, naming tensor and file.
    let ck = run.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&ck).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    std::fs::write(&ck, &bytes).unwrap();
    fails_with(
        &["eval", "--run", run.to_str().unwrap(), "--k", "2", "--n-test", "4"],
        &["checkpoint.safetensors", "fails its checksum", "tensor '"],
    );
}

#[test]
fn help_explains_the_commands() {
    let o = cagem(&["--help"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    for w in ["train", "eval", "bench"] {
        assert!(out.contains(w), "--help lacks {w}");
    }
    let o = cagem(&["train", "--help"]);
    let (out, _) = text(&o);
    for w in ["--labels", "--clusters", "--epochs", "--batch", "--warmup", "--seed", "--out", "--resume", "--device"] {
        assert!(out.contains(w), "train --help lacks {w}");
    }
}

/// Whether the binary can use a GPU here; prints why not (and fails under CAGEM_REQUIRE_GPU=1).
fn gpu_usable(test: &str) -> bool {
    let o =
        cagem(&["bench", "--device", "cuda", "--steps", "1", "--warmup", "0", "--batch", "4", "--labelled-batch", "2"]);
    if o.status.success() {
        return true;
    }
    let (_, err) = text(&o);
    assert!(
        !err.contains("internal error") && !err.contains("panicked"),
        "{test}: bench --device cuda crashed:\n{err}"
    );
    assert!(
        !std::env::var("CAGEM_REQUIRE_GPU").is_ok_and(|v| v == "1"),
        "{test}: CAGEM_REQUIRE_GPU=1 but the binary cannot use a GPU:\n{err}"
    );
    eprintln!("skipping {test}: {}", err.trim());
    false
}

#[test]
fn trains_and_evaluates_on_cuda() {
    if !gpu_usable("trains_and_evaluates_on_cuda") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let r = run.to_str().unwrap();
    let o = cagem(&train_args(d, r, &["--device", "cuda"]));
    assert!(o.status.success(), "train --device cuda failed: {:?}", text(&o));
    let o = cagem(&["eval", "--run", r, "--k", "3", "--n-test", "10", "--json", "--device", "cuda"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "eval --device cuda failed: {err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(last["log_likelihood"].as_f64().unwrap() < 0.0);
    let o = cagem(&[
        "bench",
        "--device",
        "cuda",
        "--tf32",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--batch",
        "4",
        "--labelled-batch",
        "2",
        "--json",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "bench --tf32 failed: {err}");
    let b: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(b["peak_device_memory_bytes"].as_u64().unwrap() > 0);
}

/// A real full disk (a small tmpfs; needs root and `mount`, skipped otherwise): the checkpoint
/// write fails with one line and a non-zero exit, and the previous checkpoint still evaluates
/// and resumes once there is room again.
#[test]
fn a_full_disk_during_a_checkpoint_keeps_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs", m]).output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping a_full_disk_during_a_checkpoint_keeps_the_previous_one: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(m.to_string());
    let data = data_dir(tmp.path(), "data");
    let d = data.to_str().unwrap();
    let run = mnt.join("run");
    let r = run.to_str().unwrap();
    let o = cagem(&train_args(d, r, &[]));
    assert!(o.status.success(), "{:?}", text(&o));
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    // Fill the disk but for 64 KiB: room for config.json and the metrics, not a checkpoint.
    let df = Command::new("df").args(["--output=avail", "-B1", m]).output().unwrap();
    let avail: u64 = String::from_utf8_lossy(&df.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(avail > before.len() as u64, "the tmpfs is too small for this test");
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; (avail - 65_536) as usize]).unwrap();
    fails_with(
        &["train", "--out", r, "--resume", "--epochs", "2", "--quiet"],
        &["cannot write", "checkpoint.safetensors", "No space left"],
    );
    let err = text(&cagem(&["train", "--out", r, "--resume", "--epochs", "2", "--quiet"])).1;
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    assert_eq!(std::fs::read(run.join("checkpoint.safetensors")).unwrap(), before, "the previous checkpoint changed");
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let o = cagem(&["eval", "--run", r, "--k", "2", "--n-test", "4"]);
    assert!(o.status.success(), "the previous checkpoint does not evaluate: {:?}", text(&o));
    std::fs::remove_file(&filler).unwrap();
    let o = cagem(&["train", "--out", r, "--resume", "--epochs", "2", "--quiet"]);
    assert!(o.status.success(), "resume once there is room failed: {:?}", text(&o));
    assert_eq!(epoch_records(&run).len(), 2);
}

/// --precision: refused clearly where bf16 cannot run; where it can, saved with the run, kept on
/// resume, f32 in eval unless asked, and reported by bench --json.
#[test]
fn precision_contract() {
    let bench = ["bench", "--json", "--steps", "1", "--warmup", "0", "--batch", "4", "--labelled-batch", "2"];
    let o = Command::new(env!("CARGO_BIN_EXE_cagem"))
        .args(bench)
        .args(["--precision", "bf16"])
        .env("CAGEM_DNNL_LIB", "/nonexistent/libdnnl.so.3")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success(), "bf16 without oneDNN succeeded: {err}");
    // Where the CPU has bf16 arithmetic the missing library is named; elsewhere the CPU is.
    let why = err.contains("CAGEM_DNNL_LIB") || err.contains("this CPU has no bf16 arithmetic");
    assert!(err.contains("--precision bf16 is unavailable") && why, "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_cagem"))
        .args(bench)
        .args(["--precision", "auto"])
        .env("CAGEM_DNNL_LIB", "/nonexistent/libdnnl.so.3")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success() && err.contains("precision: auto chose f32"), "{err}");
    let b: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(b["precision"], "f32");

    if cagem_kernels::onednn::for_test("precision_contract (bf16 half)").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), "data");
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let r = run.to_str().unwrap();
    let o = cagem(&train_args(d, r, &["--precision", "bf16"]));
    assert!(o.status.success(), "bf16 train failed: {:?}", text(&o));
    let cfg = run_config(&run);
    assert_eq!(cfg["train"]["precision"], "bf16");
    // (train_args runs --quiet, so the configuration, not the start-up line, says what ran.)
    let o = cagem(&train_args(d, r, &["--resume", "--epochs", "2"]));
    assert!(o.status.success(), "bf16 resume failed: {:?}", text(&o));
    let cfg = run_config(&run);
    assert_eq!(cfg["train"]["precision"], "bf16", "resume did not keep bf16");
    // A resume may change the arithmetic (it rounds the same products differently, the model and
    // objective are unchanged); the change is recorded.
    let o = cagem(&train_args(d, r, &["--resume", "--epochs", "3", "--precision", "f32"]));
    assert!(o.status.success(), "resume to f32: {:?}", text(&o));
    let resume = events(&run).into_iter().last().unwrap();
    assert_eq!(resume["changes"]["precision"], serde_json::json!({"from": "bf16", "to": "f32"}));
    let cfg = run_config(&run);
    assert_eq!(cfg["train"]["precision"], "f32");
    for (extra, want) in [(None, "f32"), (Some("bf16"), "bf16")] {
        let mut a = vec!["eval", "--run", r, "--k", "2", "--n-test", "5", "--json"];
        a.extend(extra.map(|p| ["--precision", p]).into_iter().flatten());
        let o = cagem(&a);
        let (out, err) = text(&o);
        assert!(o.status.success(), "eval failed: {err}");
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(v["precision"], want);
    }
    let o = cagem(&[&bench[..], &["--precision", "bf16"]].concat());
    let (out, err) = text(&o);
    assert!(o.status.success(), "bf16 bench failed: {err}");
    let b: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(b["precision"], "bf16");
    // With oneDNN present, auto measures both arithmetics, says so, and runs what it chose.
    let o = cagem(&[&bench[..], &["--precision", "auto"]].concat());
    let (out, err) = text(&o);
    let said = err.lines().find(|l| l.starts_with("precision: auto chose")).unwrap_or_else(|| panic!("{err}"));
    assert!(o.status.success() && said.contains("bf16 products run here at"), "{err}");
    let chose = if said.starts_with("precision: auto chose bf16") { "bf16" } else { "f32" };
    let b: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(b["precision"], chose);
}

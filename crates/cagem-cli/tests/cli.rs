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

    let o = cagem(&train_args(d, r, &["--resume", "--epochs", "2"]));
    assert!(o.status.success(), "resume failed: {:?}", text(&o));
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count(), 2);

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
    fails_with(&["bench", "--batch", "1"], &["--batch must be at least 2"]);
    fails_with(&["bench", "--clusters", "0"], &["--clusters must be at least 1"]);
    fails_with(&train_args(ds, o, &["--z1", "0"]), &["--z1 must be at least 1"]);
    fails_with(&train_args(ds, o, &["--z2", "0"]), &["--z2 must be at least 1"]);
    fails_with(&train_args(ds, o, &["--tf32"]), &["--tf32 needs --device cuda"]);
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
    assert!(err.contains("--precision bf16 is unavailable") && err.contains("CAGEM_DNNL_LIB"), "{err}");
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
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["train"]["precision"], "bf16");
    let o = cagem(&train_args(d, r, &["--resume", "--epochs", "2"]));
    let (_, err) = text(&o);
    assert!(o.status.success() && err.contains("bf16 matrix products"), "resume did not keep bf16: {err}");
    fails_with(&train_args(d, r, &["--resume", "--epochs", "3", "--precision", "f32"]), &["precision"]);
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
}

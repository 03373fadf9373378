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
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{args:?} panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: error lacks '{n}':\n{err}");
    }
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
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    mnist_like(&data, 120, 30, 28);
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
    let case = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir(&d).unwrap();
        mnist_like(&d, 120, 30, 28);
        d
    };

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

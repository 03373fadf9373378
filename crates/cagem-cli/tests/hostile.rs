//! Hostile and careless input (issue 32): every numeric option of every command at 0, −1, NaN,
//! ±∞ and a huge value, and NumPy files whose headers lie, end in one `error:` line with exit
//! status 2 (a usage error, from the option parser) or 1 (any other error), never a panic, an
//! abort or a backtrace; lying headers run under a memory limit far below what they declare.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cagem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cagem")).args(args).env_remove("RUST_BACKTRACE").output().expect("run cagem")
}

/// cagem under a limit of `mib` MiB of address space (`ulimit -v`).
fn cagem_limited(mib: usize, args: &[&str]) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!("ulimit -v {}; exec '{}' {}", mib * 1024, env!("CARGO_BIN_EXE_cagem"), quoted.join(" "));
    Command::new("sh").arg("-c").arg(script).env_remove("RUST_BACKTRACE").output().expect("run sh")
}

/// One `error:` line (clap adds usage hints after a blank line), exit 1 or 2, no panic.
#[track_caller]
fn clean_error(o: &Output, case: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let code = o.status.code();
    assert!(matches!(code, Some(1) | Some(2)), "{case}: exit {code:?}\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error") && !err.contains("stack backtrace"),
        "{case}:\n{err}"
    );
    let errors = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "{case}: expected one error line\n{err}");
    err
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cagem-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A .npy file with this header text and data.
fn npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend(data);
    std::fs::write(path, b).unwrap();
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Every numeric option of every command, with what else the command needs to get as far as
/// parsing it (a run or data folder that does not exist: a valid value then fails there, exit 1).
const OPTIONS: &[(&str, &[&str], &[&str])] = &[
    (
        "train",
        &["--dataset", "npy", "--data", "/nonexistent/cagem"],
        &[
            "--valid-fraction",
            "--labels",
            "--clusters",
            "--epochs",
            "--batch",
            "--labelled-batch",
            "--warmup",
            "--seed",
            "--lr",
            "--clip-norm",
            "--clip-value",
            "--routing-floor",
            "--free-bits-y",
            "--marginal-entropy-y",
            "--log-py-weight",
            "--max-skips",
            "--beta",
            "--z1",
            "--z2",
            "--n-train",
            "--eval-every",
            "--eval-k",
            "--eval-n",
            "--threads",
        ],
    ),
    ("eval", &["--run", "/nonexistent/cagem"], &["--k", "--n-test", "--chunk", "--threads"]),
    (
        "sample",
        &["--run", "/nonexistent/cagem", "--out", "/nonexistent/s.png"],
        &["--n", "--zoom", "--class", "--seed"],
    ),
    ("reconstruct", &["--run", "/nonexistent/cagem", "--out", "/nonexistent/r.png"], &["--n", "--zoom"]),
    ("latent", &["--run", "/nonexistent/cagem", "--out", "/nonexistent/l.png"], &["--n-test"]),
    (
        "grid",
        &["--run", "/nonexistent/cagem", "--out", "/nonexistent/g.png"],
        &["--steps", "--span", "--class", "--seed", "--zoom"],
    ),
    ("predict", &["--run", "/nonexistent/cagem", "--out", "/nonexistent/p.npz"], &["--samples"]),
    ("score", &["--run", "/nonexistent/cagem", "--out", "/nonexistent/s.npz"], &["--k", "--chunk"]),
    ("plot", &["--run", "/nonexistent/cagem", "--out", "/nonexistent/c.png"], &["--width", "--height"]),
    (
        "reproduce",
        &["table1", "--out", "/nonexistent/cagem", "--report"],
        &[
            "--epochs",
            "--n-train",
            "--warmup",
            "--seed",
            "--eval-every",
            "--eval-k",
            "--eval-n",
            "--final-k",
            "--final-n",
        ],
    ),
];

#[test]
fn every_numeric_option_at_every_hostile_value_fails_cleanly() {
    let values = ["0", "-1", "NaN", "nan", "inf", "-inf", "1e400", "18446744073709551616", "1.5", "x"];
    let mut cases = 0;
    for (cmd, base, opts) in OPTIONS {
        for opt in *opts {
            for v in values {
                let mut args = vec![*cmd];
                args.extend_from_slice(base);
                args.extend_from_slice(&[opt, v]);
                let o = cagem(&args);
                // A valid value may go on and succeed (reproduce --report gathers what exists).
                if !o.status.success() {
                    clean_error(&o, &args.join(" "));
                }
                cases += 1;
            }
        }
    }
    assert!(cases > 400, "{cases} cases");
}

#[test]
fn numeric_options_name_their_range() {
    for (args, needle) in [
        (vec!["train", "--warmup", "NaN"], "not a finite number"),
        (vec!["train", "--warmup", "-3"], "outside [0, ∞)"),
        (vec!["train", "--beta", "-1"], "outside (0, 10000]"),
        (vec!["train", "--lr", "1e30"], "outside (0, 1]"),
        (vec!["train", "--batch", "1"], "outside 2..="),
        (vec!["--threads", "100000", "train"], "twice this machine's logical cores"),
        (vec!["sample", "--run", "r", "--out", "s.jpg"], "does not end in .png"),
    ] {
        let o = cagem(&args);
        let err = clean_error(&o, &args.join(" "));
        assert_eq!(o.status.code(), Some(2), "{args:?}: a usage error");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn lying_npy_headers_never_allocate_what_they_declare() {
    let cases: Vec<(&str, &str, &str, Vec<u8>, &str)> = vec![
        ("overflow", "<f4", "(17179869184, 1073741824)", vec![0; 64], "more elements than any file"),
        ("huge", "<f4", "(268435456, 68719476736)", vec![0; 64], "more elements than any file"),
        ("short", "<f4", "(100000, 784)", floats(&[0.5; 16]), "holds only 64 bytes"),
        ("short-u8", "|u1", "(60000, 28, 28)", vec![7; 100], "holds only 100 bytes"),
        (
            "f64-overflow",
            "<f8",
            "(2, 2)",
            [1e300f64, 0.0, 0.0, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect(),
            "overflows float32",
        ),
    ];
    for (name, descr, shape, data, needle) in cases {
        let d = tmp(name);
        npy(&d.join("train_x.npy"), descr, shape, &data);
        let out = d.join("run");
        let args = [
            "train",
            "--dataset",
            "npy",
            "--likelihood",
            "gaussian",
            "--data",
            d.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
        ];
        let o = cagem_limited(1024, &args);
        let err = clean_error(&o, name);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!out.join("checkpoint.safetensors").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
    // Labels beyond any class count, and a malformed header: one line each.
    let d = tmp("labels");
    npy(&d.join("train_x.npy"), "<f4", "(4, 3)", &floats(&[0.5; 12]));
    let labels: Vec<u8> = [0i64, 1, i64::MAX, 0].iter().flat_map(|x| x.to_le_bytes()).collect();
    npy(&d.join("train_y.npy"), "<i8", "(4,)", &labels);
    let o = cagem_limited(
        1024,
        &["train", "--dataset", "npy", "--data", d.to_str().unwrap(), "--out", d.join("r").to_str().unwrap()],
    );
    assert!(clean_error(&o, "labels").contains("larger than any class"));
    std::fs::write(d.join("train_y.npy"), b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<\n").unwrap();
    let o =
        cagem(&["train", "--dataset", "npy", "--data", d.to_str().unwrap(), "--out", d.join("r").to_str().unwrap()]);
    let err = clean_error(&o, "malformed header");
    assert_eq!(err.lines().count(), 1, "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Every command after a tiny `train` on each kind of data source: MNIST (bundled), OMNIGLOT
/// (bundled), and NumPy arrays with and without labels, with and without a test set. Each ends
/// in success or one clean error line (e.g. "has no test set"), never a panic.
#[test]
fn every_command_with_every_data_source() {
    let root = tmp("sources");
    let (a, b) = (root.join("npy-labelled-test"), root.join("npy-unlabelled"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let x: Vec<f32> = (0..40 * 16).map(|i| ((i * 7919) % 97) as f32 / 97.0).collect();
    npy(&a.join("train_x.npy"), "<f4", "(40, 4, 4)", &floats(&x));
    let y: Vec<u8> = (0..40i64).flat_map(|i| (if i < 8 { i % 2 } else { -1 }).to_le_bytes()).collect();
    npy(&a.join("train_y.npy"), "<i8", "(40,)", &y);
    npy(&a.join("test_x.npy"), "<f4", "(10, 4, 4)", &floats(&x[..160]));
    npy(&b.join("train_x.npy"), "<f4", "(40, 16)", &floats(&x));
    let tiny = [
        "--z1",
        "2",
        "--z2",
        "2",
        "--q-hidden",
        "8,8",
        "--p-hidden",
        "8,8",
        "--epochs",
        "1",
        "--warmup",
        "1",
        "--quiet",
    ];
    let sources: Vec<(&str, Vec<String>)> = vec![
        (
            "mnist",
            vec![
                "--n-train".into(),
                "200".into(),
                "--labels".into(),
                "20".into(),
                "--batch".into(),
                "50".into(),
                "--labelled-batch".into(),
                "20".into(),
            ],
        ),
        (
            "omniglot",
            vec![
                "--dataset".into(),
                "omniglot".into(),
                "--n-train".into(),
                "100".into(),
                "--labels".into(),
                "0".into(),
                "--clusters".into(),
                "5".into(),
                "--batch".into(),
                "50".into(),
            ],
        ),
        (
            "npy-labelled-test",
            vec![
                "--dataset".into(),
                "npy".into(),
                "--data".into(),
                a.display().to_string(),
                "--clusters".into(),
                "2".into(),
                "--batch".into(),
                "20".into(),
                "--labelled-batch".into(),
                "8".into(),
            ],
        ),
        (
            "npy-unlabelled-no-test",
            vec![
                "--dataset".into(),
                "npy".into(),
                "--data".into(),
                b.display().to_string(),
                "--labels".into(),
                "0".into(),
                "--clusters".into(),
                "3".into(),
                "--batch".into(),
                "20".into(),
            ],
        ),
        (
            "npy-held-out",
            vec![
                "--dataset".into(),
                "npy".into(),
                "--data".into(),
                b.display().to_string(),
                "--labels".into(),
                "0".into(),
                "--clusters".into(),
                "3".into(),
                "--batch".into(),
                "20".into(),
                "--valid-fraction".into(),
                "0.25".into(),
            ],
        ),
    ];
    for (name, opts) in &sources {
        let run = root.join(format!("run-{name}"));
        let r = run.display().to_string();
        let mut args: Vec<&str> = vec!["train", "--out", &r];
        args.extend(opts.iter().map(|s| s.as_str()));
        args.extend(tiny);
        let o = cagem(&args);
        assert!(o.status.success(), "{name}: train failed: {}", String::from_utf8_lossy(&o.stderr));
        let out = |f: &str| root.join(format!("{name}-{f}")).display().to_string();
        let commands: Vec<Vec<String>> = vec![
            vec!["eval".into(), "--run".into(), r.clone(), "--k".into(), "2".into(), "--n-test".into(), "5".into()],
            vec![
                "predict".into(),
                "--run".into(),
                r.clone(),
                "--out".into(),
                out("p.npz"),
                "--samples".into(),
                "2".into(),
                "--quiet".into(),
            ],
            vec![
                "predict".into(),
                "--run".into(),
                r.clone(),
                "--out".into(),
                out("p-train.csv"),
                "--split".into(),
                "train".into(),
                "--quiet".into(),
            ],
            vec!["encode".into(), "--run".into(), r.clone(), "--out".into(), out("e.npz"), "--quiet".into()],
            vec![
                "score".into(),
                "--run".into(),
                r.clone(),
                "--out".into(),
                out("s.csv"),
                "--k".into(),
                "2".into(),
                "--quiet".into(),
            ],
            vec!["sample".into(), "--run".into(), r.clone(), "--out".into(), out("s.png"), "--n".into(), "4".into()],
            vec![
                "sample".into(),
                "--run".into(),
                r.clone(),
                "--out".into(),
                out("s1.png"),
                "--n".into(),
                "4".into(),
                "--class".into(),
                "1".into(),
            ],
            vec![
                "reconstruct".into(),
                "--run".into(),
                r.clone(),
                "--out".into(),
                out("r.png"),
                "--n".into(),
                "4".into(),
            ],
            vec![
                "latent".into(),
                "--run".into(),
                r.clone(),
                "--out".into(),
                out("l.png"),
                "--n-test".into(),
                "5".into(),
            ],
            vec!["grid".into(), "--run".into(), r.clone(), "--out".into(), out("g.png"), "--steps".into(), "3".into()],
            vec!["plot".into(), "--run".into(), r.clone(), "--out".into(), out("c.png")],
        ];
        for c in commands {
            let args: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
            let o = cagem(&args);
            if !o.status.success() {
                let err = clean_error(&o, &format!("{name}: {}", args.join(" ")));
                assert_eq!(o.status.code(), Some(1), "{name}: {args:?}: {err}");
            }
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Data the model cannot learn from (features of 1e30 under a Gaussian likelihood make every
/// step's loss non-finite): the run ends with an error saying why, not "trained 1 epochs".
#[test]
fn a_run_that_learns_nothing_fails() {
    let d = tmp("nothing");
    let x: Vec<f32> = (0..40 * 4).map(|i| if i % 2 == 0 { 1e30 } else { -1e30 }).collect();
    npy(&d.join("train_x.npy"), "<f4", "(40, 4)", &floats(&x));
    let r = d.join("run");
    let args = [
        "train",
        "--dataset",
        "npy",
        "--likelihood",
        "gaussian",
        "--labels",
        "0",
        "--data",
        d.to_str().unwrap(),
        "--out",
        r.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch",
        "10",
        "--z1",
        "2",
        "--z2",
        "2",
        "--q-hidden",
        "8,8",
        "--p-hidden",
        "8,8",
        "--clusters",
        "2",
        "--quiet",
    ];
    let o = cagem(&args);
    let err = clean_error(&o, "1e30 data");
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("not learning") && err.contains("no checkpoint"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("trained"), "claimed success");
    std::fs::remove_dir_all(&d).unwrap();
}

/// A NumPy data folder that moved continues by checksum; the same folder by a relative path is
/// the same folder; changed files are refused, naming them.
#[test]
fn moved_data_resumes_by_checksum() {
    let root = tmp("moved");
    let (a, b) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    let x: Vec<f32> = (0..40 * 4).map(|i| ((i * 7919) % 97) as f32 / 97.0).collect();
    npy(&a.join("train_x.npy"), "<f4", "(40, 4)", &floats(&x));
    let r = root.join("run");
    let (rs, as_) = (r.to_str().unwrap(), a.to_str().unwrap());
    let tiny = [
        "--z1",
        "2",
        "--z2",
        "2",
        "--q-hidden",
        "8,8",
        "--p-hidden",
        "8,8",
        "--clusters",
        "2",
        "--labels",
        "0",
        "--batch",
        "10",
        "--quiet",
    ];
    let mut args = vec!["train", "--dataset", "npy", "--data", as_, "--out", rs, "--epochs", "1"];
    args.extend(tiny);
    assert!(cagem(&args).status.success());
    // The same folder through a relative path (from the folder above it).
    let o = Command::new(env!("CARGO_BIN_EXE_cagem"))
        .current_dir(&root)
        .args(["train", "--out", "run", "--resume", "--epochs", "2", "--data", "a", "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // What `kill -9` during a checkpoint write leaves behind goes at the next start.
    let stale = r.join(".checkpoint.safetensors.tmp-999999");
    std::fs::write(&stale, vec![0u8; 4096]).unwrap();
    let o = cagem(&["train", "--out", rs, "--resume", "--epochs", "2", "--quiet"]);
    assert!(o.status.success() && !stale.exists(), "{}", String::from_utf8_lossy(&o.stderr));
    // Moved: accepted, and recorded.
    std::fs::rename(&a, &b).unwrap();
    let o = cagem(&["train", "--out", rs, "--resume", "--epochs", "3", "--data", b.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = std::fs::read_to_string(r.join("config.json")).unwrap();
    assert!(cfg.contains(b.to_str().unwrap()), "{cfg}");
    // Changed: refused, naming the file.
    let mut x2 = x.clone();
    x2[0] = 0.25;
    npy(&b.join("train_x.npy"), "<f4", "(40, 4)", &floats(&x2));
    let o = cagem(&["train", "--out", rs, "--resume", "--epochs", "4", "--quiet"]);
    let err = clean_error(&o, "changed data");
    assert!(err.contains("train_x.npy changed"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A one-epoch unsupervised run (folder `d/run`) on 40 real-valued examples of 4 features, with
/// a model small enough to train in a second: the checkpoint the tests below then damage.
fn tiny_npy_run(d: &std::path::Path) -> std::path::PathBuf {
    let x: Vec<f32> = (0..40 * 4).map(|i| ((i * 7919) % 97) as f32 / 97.0).collect();
    npy(&d.join("train_x.npy"), "<f4", "(40, 4)", &floats(&x));
    npy(&d.join("test_x.npy"), "<f4", "(10, 4)", &floats(&x[..40]));
    let r = d.join("run");
    let (data, out) = (d.to_str().unwrap(), r.to_str().unwrap());
    let tiny = ["--epochs", "1", "--batch", "10", "--z1", "2", "--z2", "2", "--q-hidden", "8,8", "--p-hidden", "8,8"];
    let mut args = vec!["train", "--dataset", "npy", "--labels", "0", "--data", data, "--out", out];
    args.extend(tiny);
    args.extend(["--clusters", "2", "--quiet"]);
    assert!(cagem(&args).status.success());
    r
}

/// A checkpoint whose model gives a bound that is not finite (a weight set to +∞ and saved
/// through the library, so its checksums are valid): `eval` prints it, flags it in its JSON
/// and exits 1 instead of reporting success.
#[test]
fn eval_refuses_a_bound_that_is_not_finite() {
    let d = tmp("nonfinite");
    let r = tiny_npy_run(&d);
    let dev = cagem_kernels::Device::Cpu;
    let (mut model, adam, meta) = cagem::checkpoint::load::<f32>(&r, &dev).unwrap();
    let id = model.store.find("p_x.logits.b").unwrap();
    let n = model.store.get(id).cols();
    *model.store.get_mut(id) = cagem_autodiff::Tensor::from_f64(&dev, 1, n, &vec![f64::INFINITY; n]);
    cagem::checkpoint::save(&r, &model, &adam, &meta.train, &meta.state).unwrap();
    let o = cagem(&["eval", "--run", r.to_str().unwrap(), "--k", "2", "--json"]);
    let err = clean_error(&o, "non-finite eval");
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("is not finite"), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    let json: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(json["finite"], false, "{out}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Checkpoints whose safetensors header lies (a header length of 2⁶², a tensor declared far
/// larger than the file): a clean error under a 1 GiB memory limit, never an allocation of what
/// they declare.
#[test]
fn lying_checkpoint_headers_never_allocate_what_they_declare() {
    let d = tmp("lying-ckpt");
    let r = tiny_npy_run(&d);
    let ck = r.join("checkpoint.safetensors");
    let good = std::fs::read(&ck).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let mut huge_len = good.clone();
    huge_len[..8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    // The first tensor's shape made enormous (same header length, so only the shape lies).
    let first_shape = header.find("\"shape\":[").unwrap() + 9;
    let end = header[first_shape..].find(']').unwrap() + first_shape;
    let lie = "4294967295,4294967295";
    let mut lying_shape = header.clone();
    if end - first_shape >= lie.len() {
        lying_shape.replace_range(first_shape..end, &format!("{lie:<width$}", width = end - first_shape));
    } else {
        lying_shape.replace_range(first_shape..end, &"9".repeat(end - first_shape));
    }
    let mut shape_bytes = good[..8].to_vec();
    shape_bytes.extend(lying_shape.as_bytes());
    shape_bytes.extend(&good[8 + n..]);
    for (name, bytes) in [("header length 2^62", huge_len), ("tensor shape", shape_bytes)] {
        std::fs::write(&ck, &bytes).unwrap();
        let o = cagem_limited(1024, &["eval", "--run", r.to_str().unwrap(), "--k", "2"]);
        let err = clean_error(&o, name);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        let o = cagem_limited(1024, &["train", "--out", r.to_str().unwrap(), "--resume", "--epochs", "2"]);
        clean_error(&o, name);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

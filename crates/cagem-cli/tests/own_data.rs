//! A NumPy data set of one's own through the binary: .npy files written here (npyz) go through
//! train → predict / encode / score, and the .npz and .csv files they write read back with the
//! crates; bad requests get a one-line error.

use std::path::Path;
use std::process::{Command, Output};

use npyz::WriterBuilder;

fn cagem<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cagem")).args(args).output().expect("run cagem")
}

#[track_caller]
fn ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let o = cagem(args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{args:?} failed:\n{out}\n{err}");
    out.into_owned()
}

#[track_caller]
fn fails_with<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S], needles: &[&str]) {
    let o = cagem(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked") && err.trim().lines().count() == 1, "{args:?}: not one clean line:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: error lacks '{n}':\n{err}");
    }
}

fn save<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(f).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// (shape, values) of the array `name` in an .npz file.
fn npz_array<T: npyz::Deserialize>(path: &Path, name: &str) -> (Vec<u64>, Vec<T>) {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let file = zip.by_name(&format!("{name}.npy")).unwrap_or_else(|_| panic!("{name} missing in {}", path.display()));
    let npy = npyz::NpyFile::new(file).unwrap();
    (npy.shape().to_vec(), npy.into_vec::<T>().unwrap())
}

/// A folder `data` in `tmp` with 3 real-valued clusters in 4 dimensions (N×2×2 "images"),
/// labels on 2 examples of each, and with `with_test` 30 labelled test examples.
fn data_folder(tmp: &Path, n: usize, with_test: bool) -> std::path::PathBuf {
    let dir = tmp.join("data");
    std::fs::create_dir(&dir).unwrap();
    let x = |n: usize, off: usize| -> Vec<f32> {
        (0..n * 4).map(|i| ((i / 4 + off) % 3) as f32 * 3.0 + ((i * 7919) % 13) as f32 / 13.0).collect()
    };
    save(&dir.join("train_x.npy"), &[n as u64, 2, 2], &x(n, 0));
    let y: Vec<i64> = (0..n).map(|i| if i < 6 { (i % 3) as i64 } else { -1 }).collect();
    save(&dir.join("train_y.npy"), &[n as u64], &y);
    if with_test {
        save(&dir.join("test_x.npy"), &[30, 2, 2], &x(30, 0));
        save(&dir.join("test_y.npy"), &[30], &(0..30i32).map(|i| i % 3).collect::<Vec<_>>());
    }
    dir
}

const TINY: [&str; 14] = [
    "--z1",
    "2",
    "--z2",
    "2",
    "--q-hidden",
    "8,8",
    "--p-hidden",
    "8,8",
    "--batch",
    "20",
    "--labelled-batch",
    "6",
    "--warmup",
    "1",
];

#[test]
fn numpy_data_round_trips_through_train_predict_encode_and_score() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run) = (data_folder(tmp.path(), 90, true), tmp.path().join("run"));
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
    let mut train = vec!["train", "--dataset", "npy", "--data", d, "--likelihood", "gaussian", "--standardize"];
    train.extend(["--clusters", "4", "--epochs", "2", "--out", r, "--quiet"]);
    train.extend(TINY);
    ok(&train);
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(config.contains("\"npy\"") && config.contains("\"gaussian\"") && config.contains("\"labels\": 6"));
    // A resumed run finds the same data, labels and standardisation (from its checkpoint).
    let mut resume = train.clone();
    let epochs = resume.iter().position(|a| *a == "--epochs").unwrap() + 1;
    resume[epochs] = "3";
    resume.push("--resume");
    ok(&resume);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    // Three epoch lines, and the resume's event line.
    assert_eq!(metrics.lines().filter(|l| !l.contains("\"event\"")).count(), 3, "{metrics}");

    // From another working folder: the run remembers where its data is.
    let out = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let (p_npz, p_csv, e_npz, s_npz, s_csv) = (out("p.npz"), out("p.csv"), out("e.npz"), out("s.npz"), out("s.csv"));
    let said = ok(&["predict", "--run", r, "--out", &p_npz, "--samples", "3", "--quiet"]);
    assert!(said.contains("error p(y|x)") && said.contains("over the 30 labelled examples"), "{said}");
    let (shape, p_y) = npz_array::<f64>(Path::new(&p_npz), "p_y");
    assert_eq!(shape, [30, 4]);
    let (_, q_y) = npz_array::<f64>(Path::new(&p_npz), "q_y");
    let (shape, pred_q) = npz_array::<i64>(Path::new(&p_npz), "pred_q");
    assert_eq!(shape, [30]);
    for i in 0..30 {
        let (p, q) = (&p_y[i * 4..i * 4 + 4], &q_y[i * 4..i * 4 + 4]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5 && (q.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        let best = (0..4).max_by(|&a, &b| q[a].total_cmp(&q[b])).unwrap();
        assert_eq!(pred_q[i], best as i64, "pred_q is the argmax of q_y");
    }
    let (_, pred_p) = npz_array::<i64>(Path::new(&p_npz), "pred_p");
    assert!(pred_p.iter().all(|&c| (0..4).contains(&c)));

    ok(&["predict", "--run", r, "--out", &p_csv, "--split", "train", "--quiet"]);
    let csv = std::fs::read_to_string(&p_csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "p_y_0,p_y_1,p_y_2,p_y_3,q_y_0,q_y_1,q_y_2,q_y_3,pred_p,pred_q,pred");
    assert_eq!(lines.count(), 90);

    ok(&["encode", "--run", r, "--out", &e_npz, "--quiet"]);
    assert_eq!(npz_array::<f64>(Path::new(&e_npz), "z1_mean").0, [30, 2]);
    let (shape, z2) = npz_array::<f64>(Path::new(&e_npz), "z2_mean");
    assert!(shape == [30, 2] && z2.iter().all(|v| v.is_finite()));

    ok(&["score", "--run", r, "--k", "5", "--out", &s_npz, "--quiet"]);
    let (shape, ll) = npz_array::<f64>(Path::new(&s_npz), "log_likelihood");
    assert!(shape == [30] && ll.iter().all(|v| v.is_finite()));
    // The same bound on new examples given as a file: the test set itself here.
    let test_x = data.join("test_x.npy");
    ok(&["score", "--run", r, "--k", "5", "--out", &s_csv, "--input", test_x.to_str().unwrap(), "--quiet"]);
    let again: Vec<f64> =
        std::fs::read_to_string(&s_csv).unwrap().lines().skip(1).map(|l| l.parse().unwrap()).collect();
    assert_eq!(again, ll, "--input of the test examples scores them exactly as --split test");
    let eval = ok(&["eval", "--run", r, "--k", "5", "--json"]);
    let report: serde_json::Value = serde_json::from_str(eval.lines().last().unwrap()).unwrap();
    assert!(report["log_likelihood"].as_f64().unwrap().is_finite() && report["error_q"].as_f64().is_some());

    // New examples of the wrong shape, and outputs of an unknown kind.
    let wrong = tmp.path().join("wrong.npy");
    save(&wrong, &[3, 5], &[0.5f32; 15]);
    let w = wrong.to_str().unwrap();
    fails_with(
        &["predict", "--run", r, "--out", &p_npz, "--input", w],
        &["wrong.npy", "the model expects examples of 2×2"],
    );
    fails_with(&["encode", "--run", r, "--out", "e.txt"], &["e.txt", "expected a file name ending in .npz or .csv"]);
}

#[test]
fn numpy_data_without_a_test_set_holds_one_out_or_says_there_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path(), 60, false);
    let d = data.to_str().unwrap();
    let runs: Vec<String> = ["r1", "r2", "r3"].iter().map(|r| tmp.path().join(r).display().to_string()).collect();
    let (r1, r2) = (runs[0].as_str(), runs[1].as_str());
    let base = |out: &str| -> Vec<String> {
        let mut v = vec!["train", "--dataset", "npy", "--data", d, "--likelihood", "gaussian", "--clusters", "3"];
        v.extend(["--epochs", "1", "--quiet", "--out", out]);
        v.extend(TINY);
        v.into_iter().map(String::from).collect()
    };
    ok(&base(r1));
    let p = tmp.path().join("p.npz");
    let p = p.to_str().unwrap();
    fails_with(&["eval", "--run", r1, "--k", "2"], &["has no test set", "--valid-fraction"]);
    fails_with(&["predict", "--run", r1, "--out", p], &["has no test set"]);
    ok(&["predict", "--run", r1, "--out", p, "--split", "train", "--quiet"]);
    assert_eq!(npz_array::<f64>(Path::new(p), "p_y").0, [60, 3]);

    let mut held = base(r2);
    held.extend(["--valid-fraction".to_string(), "0.25".to_string()]);
    ok(&held);
    ok(&["predict", "--run", r2, "--out", p, "--quiet"]);
    assert_eq!(npz_array::<f64>(Path::new(p), "q_y").0, [15, 3], "a quarter of the 60 examples held out");
    ok(&["predict", "--run", r2, "--out", p, "--split", "train", "--quiet"]);
    assert_eq!(npz_array::<f64>(Path::new(p), "q_y").0, [45, 3]);

    // Bernoulli needs [0, 1]: the range error names the file.
    let mut bern = base(&runs[2]);
    bern[6] = "bernoulli".into();
    fails_with(&bern, &["train_x.npy", "outside [0, 1]", "--likelihood gaussian"]);
    // Fewer clusters than classes; standardising Bernoulli data.
    let mut few = base(&runs[2]);
    few[8] = "2".into();
    fails_with(&few, &["--clusters 2 is fewer than the 3 classes"]);
    let unit = tmp.path().join("unit");
    std::fs::create_dir(&unit).unwrap();
    save(&unit.join("train_x.npy"), &[40, 4], &[0.5f32; 160]);
    let mut std_bern = base(&runs[2]);
    (std_bern[4], std_bern[6]) = (unit.display().to_string(), "bernoulli".into());
    std_bern.push("--standardize".into());
    fails_with(&std_bern, &["--standardize needs --likelihood gaussian"]);
    // --dataset npy without a folder.
    fails_with(&["train", "--dataset", "npy", "--epochs", "1"], &["--dataset npy needs --data DIR"]);
}

fn stderr_of<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> (String, String) {
    let o = cagem(args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.success(), "{args:?} failed:\n{out}\n{err}");
    (out, err)
}

fn config_of(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap()
}

fn epoch_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_none())
        .collect()
}

#[test]
fn clusters_labels_and_the_model_follow_the_data_unless_given() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path(), 90, true);
    let (d, r1, r2) = (data.to_str().unwrap(), tmp.path().join("r1"), tmp.path().join("r2"));
    let base = ["train", "--dataset", "npy", "--data", d, "--likelihood", "gaussian", "--epochs", "1"];
    let (_, err) = stderr_of(&[&base[..], &["--out", r1.to_str().unwrap()]].concat());
    assert!(err.contains("K = 3 clusters, the classes of train_y.npy"), "{err}");
    assert!(err.contains("model sized for 90 examples × 4 features: z1 2, z2 2, q-hidden 32,16"), "{err}");
    assert!(err.contains("--z1/--z2/--q-hidden/--p-hidden/--batch/--epochs/--warmup override"), "{err}");
    let c = config_of(&r1);
    assert_eq!(c["model"]["clusters"], 3);
    assert_eq!((c["model"]["z1"].as_u64(), c["model"]["q_hidden"][0].as_u64()), (Some(2), Some(32)));
    assert_eq!((c["train"]["batch"].as_u64(), c["train"]["epochs"].as_u64()), (Some(16), Some(1)), "--epochs wins");
    assert!(c["model"]["min_std"].as_f64().is_some_and(|s| s > 0.0), "a Gaussian run has a σ floor");
    // Explicit options win; more clusters than classes are said to get no labels.
    let mut given = base.to_vec();
    given.extend(["--clusters", "5", "--z1", "3", "--batch", "30", "--out", r2.to_str().unwrap(), "--min-std", "0.2"]);
    let (_, err) = stderr_of(&given);
    assert!(err.contains("K = 5 for 3 classes: clusters 3…4 get no labels"), "{err}");
    let c = config_of(&r2);
    assert_eq!((c["model"]["clusters"].as_u64(), c["model"]["z1"].as_u64()), (Some(5), Some(3)));
    assert_eq!((c["train"]["batch"].as_u64(), c["model"]["min_std"].as_f64()), (Some(30), Some(0.2)));
}

#[test]
fn without_train_labels_training_is_unsupervised_with_k_from_the_test_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path(), 60, true);
    std::fs::remove_file(data.join("train_y.npy")).unwrap();
    let run = tmp.path().join("run");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
    let (_, err) =
        stderr_of(&["train", "--dataset", "npy", "--data", d, "--likelihood", "gaussian", "--epochs", "1", "--out", r]);
    assert!(err.contains("training unsupervised (CaGeM-0)") && err.contains("K = 3 clusters"), "{err}");
    let c = config_of(&run);
    assert_eq!((c["train"]["labels"].as_u64(), c["model"]["clusters"].as_u64()), (Some(0), Some(3)));
}

#[test]
fn batches_larger_than_the_data_are_cut_with_a_note_and_quiet_runs_say_only_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path(), 40, false);
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let mut args = vec!["train", "--dataset", "npy", "--data", d, "--likelihood", "gaussian", "--epochs", "2"];
    args.extend(["--batch", "100", "--min-std", "0.1", "--out", run.to_str().unwrap()]);
    let (_, err) = stderr_of(&args);
    assert!(err.contains("--batch 100 is more than the 40 training examples: batches of 40"), "{err}");
    assert_eq!(config_of(&run)["train"]["batch"], 40);
    // Quiet: no notes, no epoch lines; the summary on stdout, without an eval suggestion (no test set).
    let quiet = tmp.path().join("quiet");
    let (out, err) = stderr_of(&[&args[..args.len() - 1], &[quiet.to_str().unwrap(), "--quiet"]].concat());
    assert!(err.trim().is_empty(), "quiet printed:\n{err}");
    assert!(out.contains("trained 2 epochs") && !out.contains("cagem eval"), "{out}");
    let every = tmp.path().join("every");
    let (_, err) =
        stderr_of(&[&args[..args.len() - 1], &[every.to_str().unwrap(), "--quiet", "--log-every", "1"]].concat());
    assert_eq!(err.lines().filter(|l| l.starts_with("epoch ")).count(), 2, "{err}");
}

#[test]
fn uint8_data_far_below_255_and_constant_features_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let x: Vec<u8> = (0..50 * 6).map(|i| if i % 6 == 5 { 3 } else { (i * 7 % 17) as u8 }).collect();
    save(&data.join("train_x.npy"), &[50, 6], &x);
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let (_, err) =
        stderr_of(&["train", "--dataset", "npy", "--data", d, "--epochs", "1", "--out", run.to_str().unwrap()]);
    assert!(err.contains("warning: train_x.npy is uint8 with values 0–16, far below 255"), "{err}");
    let gauss = tmp.path().join("gauss");
    let (_, err) = stderr_of(&[
        "train",
        "--dataset",
        "npy",
        "--data",
        d,
        "--epochs",
        "1",
        "--likelihood",
        "gaussian",
        "--quiet",
        "--out",
        gauss.to_str().unwrap(),
    ]);
    assert!(err.contains("1 feature(s) are constant in the training set (index 5)"), "{err}");
    assert!(err.contains("take at most 17 distinct values"), "{err}");
}

#[test]
fn a_validation_split_beside_the_test_set_chooses_the_best_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path(), 80, true);
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let r = run.to_str().unwrap();
    let mut args = vec!["train", "--dataset", "npy", "--data", d, "--likelihood", "gaussian", "--standardize"];
    args.extend(["--epochs", "4", "--eval-every", "1", "--eval-k", "3", "--valid-fraction", "0.25", "--out", r]);
    args.extend(TINY);
    let (out, _) = stderr_of(&args);
    assert!(run.join("best.safetensors").exists() && run.join("checkpoint.safetensors").exists());
    // 20 of the 80 held out: training sees 60, the test set keeps its own 30.
    let p = tmp.path().join("p.npz");
    let p = p.to_str().unwrap();
    ok(&["predict", "--run", r, "--out", p, "--split", "train", "--quiet"]);
    assert_eq!(npz_array::<f64>(Path::new(p), "q_y").0[0], 60);
    ok(&["predict", "--run", r, "--out", p, "--quiet", "--checkpoint", "best"]);
    assert_eq!(npz_array::<f64>(Path::new(p), "q_y").0[0], 30);
    // The evaluations are of the validation split, and the best is the one the rule picks.
    let recs = epoch_records(&run);
    assert_eq!(recs.len(), 4);
    assert!(recs.iter().all(|r| r.get("test_elbo").is_none() && r["valid_n"] == 20), "{recs:?}");
    let mut best: Option<(f64, f64, u64)> = None;
    for r in &recs {
        let (e, elbo) = (r["valid_error_q"].as_f64().unwrap(), r["valid_elbo"].as_f64().unwrap());
        if best.is_none_or(|(be, belbo, _)| e < be || (e == be && elbo > belbo)) {
            best = Some((e, elbo, r["epoch"].as_u64().unwrap()));
        }
        assert_eq!(r["best_epoch"].as_u64(), best.map(|b| b.2), "{r}");
        assert_eq!(r["best_by"], "valid_error_q");
    }
    let best_epoch = best.unwrap().2;
    assert!(out.contains(&format!("best checkpoint: epoch {best_epoch} by the validation error of q(y|x)")), "{out}");
    let said = ok(&["eval", "--run", r, "--k", "2", "--checkpoint", "best"]);
    assert!(said.contains(&format!("trained epochs    {best_epoch} (the best checkpoint)")), "{said}");
    // A resume keeps the best so far.
    let mut resume = args.clone();
    let at = resume.iter().position(|a| *a == "4").unwrap();
    resume[at] = "5";
    resume.push("--resume");
    ok(&resume);
    let last = epoch_records(&run).pop().unwrap();
    assert!(last["best_epoch"].as_u64().unwrap() >= best_epoch, "{last}");
    // Early stopping needs the validation split; a run without one has no best checkpoint.
    let other = tmp.path().join("other");
    let mut patient = args[..args.len()].to_vec();
    let at = patient.iter().position(|a| *a == "--valid-fraction").unwrap();
    patient.drain(at..at + 2);
    let at = patient.iter().position(|a| *a == r).unwrap();
    patient[at] = other.to_str().unwrap();
    fails_with(&[&patient[..], &["--patience", "2"]].concat(), &["--patience", "--valid-fraction"]);
    ok(&patient);
    fails_with(
        &["eval", "--run", other.to_str().unwrap(), "--checkpoint", "best"],
        &["best.safetensors", "--valid-fraction"],
    );
}

/// `--patience N` stops a run N evaluations after its best validation figure, says so, and the
/// metrics show where: the last evaluated epoch is the best one plus N evaluations.
#[test]
fn patience_stops_n_evaluations_after_the_best() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path(), 80, true);
    let (d, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let r = run.to_str().unwrap();
    let mut args = vec!["train", "--dataset", "npy", "--data", d, "--likelihood", "gaussian", "--standardize"];
    args.extend(["--epochs", "60", "--eval-every", "1", "--eval-k", "3", "--valid-fraction", "0.25"]);
    args.extend(["--patience", "2", "--out", r]);
    args.extend(TINY);
    let (out, _) = stderr_of(&args);
    let recs = epoch_records(&run);
    let last = recs.last().unwrap();
    let (done, best) = (last["epoch"].as_u64().unwrap(), last["best_epoch"].as_u64().unwrap());
    if done < 60 {
        assert_eq!(done, best + 2, "stopped {done} epochs in, best at {best}: {last}");
        assert!(out.contains("stopped early: 2 evaluations without a better validation figure"), "{out}");
    } else {
        // Improving at every one of the last evaluations is the only way to run to the end.
        assert!(best + 2 > done, "ran to the end although the best was at {best}: {last}");
    }
    assert!(recs.len() as u64 == done, "one metrics line per epoch");
}

#[test]
fn grey_data_are_taken_as_they_are_and_binary_data_binarised_unless_given() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // 40 grey 2×3 images (a third of the values strictly between 0 and 1) with a test set.
    let x: Vec<f32> = (0..40 * 6).map(|i| [0.0, 1.0, 0.5][(i + i / 6) % 3]).collect();
    save(&data.join("train_x.npy"), &[40, 2, 3], &x);
    save(&data.join("test_x.npy"), &[10, 2, 3], &x[..60]);
    let d = data.to_str().unwrap();
    let run = |name: &str, extra: &[&str]| -> (std::path::PathBuf, String) {
        let r = tmp.path().join(name);
        let mut args = vec!["train", "--dataset", "npy", "--data", d, "--epochs", "1", "--out", r.to_str().unwrap()];
        args.extend(extra);
        let (_, err) = stderr_of(&args);
        (r, err)
    };
    let (grey, err) = run("grey", &[]);
    assert!(err.contains("train_x.npy is grey (33.3 % of its values within [0.1, 0.9])"), "{err}");
    assert!(err.contains("--binarize dynamic"), "{err}");
    assert_eq!(config_of(&grey)["model"]["binarize"], false);
    // Every command on the run sees the grey values as the model was trained on them.
    let score = tmp.path().join("s.npz");
    ok(&["score", "--run", grey.to_str().unwrap(), "--k", "3", "--out", score.to_str().unwrap(), "--quiet"]);
    assert!(npz_array::<f64>(&score, "log_likelihood").1.iter().all(|v| v.is_finite()));

    // Asked for: binarised as for MNIST (the key is written only when off, as in older runs).
    let (asked, err) = run("asked", &["--binarize", "dynamic"]);
    assert!(!err.contains("is grey"), "{err}");
    assert!(config_of(&asked)["model"].get("binarize").is_none());
    // Nearly black-and-white data (as MNIST's strokes): the paper's way stays and nothing is said.
    let binary: Vec<f32> = x.iter().map(|&v| if v > 0.5 { 0.95 } else { 0.0 }).collect();
    save(&data.join("train_x.npy"), &[40, 2, 3], &binary);
    let (bin, err) = run("binary", &[]);
    assert!(!err.contains("is grey"), "{err}");
    assert!(config_of(&bin)["model"].get("binarize").is_none());
    // The option is the model's: a Gaussian likelihood never binarises.
    fails_with(
        &["train", "--dataset", "npy", "--data", d, "--likelihood", "gaussian", "--binarize", "none", "--epochs", "1"],
        &["--binarize none needs --likelihood bernoulli"],
    );
    let o = cagem(&["train", "--binarize", "sometimes"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("[possible values: dynamic, none]"), "{err}");
}

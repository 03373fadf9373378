//! Periodic test evaluation (`train --eval-every`) and the paper's tables (`cagem reproduce`),
//! on the bundled MNIST with tiny schedules.

use std::path::Path;
use std::process::{Command, Output};

fn cagem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cagem")).args(args).output().expect("run cagem")
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = cagem(args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{args:?} failed:\n{out}\n{err}");
    out.into_owned()
}

fn epoch_lines(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_none())
        .collect()
}

fn last_json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn periodic_test_metrics_equal_a_separate_eval_of_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let common = ["--n-train", "600", "--labels", "20", "--labelled-batch", "20", "--warmup", "1", "--quiet"];
    let mut args = vec!["train", "--out", r, "--epochs", "3", "--eval-every", "2", "--eval-k", "4", "--eval-n", "60"];
    args.extend(common);
    ok(&args);
    let lines = epoch_lines(&run);
    assert_eq!(lines.len(), 3);
    // Every 2nd epoch and the last.
    let evaluated: Vec<bool> = lines.iter().map(|l| l.get("test_log_likelihood").is_some()).collect();
    assert_eq!(evaluated, [false, true, true]);
    let last = &lines[2];
    for key in [
        "test_elbo",
        "test_error_p",
        "test_error_q",
        "test_kl_z2",
        "test_active_units_z1",
        "test_active_units_z2",
        "test_seconds",
    ] {
        assert!(last.get(key).is_some_and(|v| !v.is_null()), "{key} missing from {last}");
    }
    assert_eq!((last["test_k"].as_u64(), last["test_n"].as_u64()), (Some(4), Some(60)));
    // The checkpoint is the model of the last line: `eval` of the same images, k and seed agrees.
    let e = last_json(&ok(&["eval", "--run", r, "--k", "4", "--n-test", "60", "--spread", "--json"]));
    for (ours, theirs) in [
        ("test_log_likelihood", "log_likelihood"),
        ("test_elbo", "elbo"),
        ("test_error_p", "error_p"),
        ("test_error_q", "error_q"),
        ("test_kl_z2", "kl_z2"),
        ("test_active_units_z1", "active_units_z1"),
    ] {
        assert_eq!(last[ours], e[theirs], "{ours} differs from eval's {theirs}");
    }
    // The first 60 test images are not the spread ones: a different figure.
    let first = last_json(&ok(&["eval", "--run", r, "--k", "4", "--n-test", "60", "--json"]));
    assert_ne!(first["log_likelihood"], e["log_likelihood"]);

    // Evaluation does not change training: the same run without it has the same weights.
    let plain = tmp.path().join("plain");
    let mut args = vec!["train", "--out", plain.to_str().unwrap(), "--epochs", "3"];
    args.extend(common);
    ok(&args);
    let elbo = |lines: &[serde_json::Value]| lines.iter().map(|l| l["elbo"].clone()).collect::<Vec<_>>();
    assert_eq!(elbo(&epoch_lines(&plain)), elbo(&lines));
    let plain_eval =
        last_json(&ok(&["eval", "--run", plain.to_str().unwrap(), "--k", "4", "--n-test", "60", "--spread", "--json"]));
    assert_eq!(plain_eval["log_likelihood"], e["log_likelihood"]);

    // A resume may switch the evaluation on, off or change it.
    ok(&["train", "--out", r, "--resume", "--epochs", "4", "--eval-every", "1", "--eval-k", "2", "--quiet"]);
    let lines = epoch_lines(&run);
    assert_eq!(lines[3]["test_k"].as_u64(), Some(2));
}

#[test]
fn reproduce_table3_on_a_tiny_schedule_writes_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t3");
    let o = out.to_str().unwrap();
    let args = [
        "reproduce",
        "table3",
        "--out",
        o,
        "--n-train",
        "2000",
        "--epochs",
        "1",
        "--eval-k",
        "2",
        "--eval-n",
        "50",
        "--final-k",
        "3",
        "--final-n",
        "100",
        "--quiet",
    ];
    ok(&args);
    let md = std::fs::read_to_string(out.join("table3.md")).unwrap();
    assert!(md.contains("SHORTENED"), "{md}");
    for (row, paper) in [("cagem20", "15.86 %"), ("cagem50", "2.42 %"), ("cagem100", "1.16 %")] {
        let line = md.lines().find(|l| l.starts_with(&format!("| {row} |"))).unwrap_or_else(|| panic!("{md}"));
        assert!(line.contains(paper), "{line}");
        assert!(line.contains("(IW-3, 100 images)"), "{line}");
        // A normal run folder with periodic test figures.
        let lines = epoch_lines(&out.join(row));
        assert!(lines[0].get("test_log_likelihood").is_some());
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("table3.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["status"] == "evaluated" && r["ours"]["error_p"].is_number()));
    assert_eq!(rows[2]["paper"]["error_p"].as_f64(), Some(0.0116));
    // Again: everything is done, nothing is retrained; --report gathers the same table.
    let before = std::fs::read(out.join("cagem20/checkpoint.safetensors")).unwrap();
    ok(&args);
    assert_eq!(std::fs::read(out.join("cagem20/checkpoint.safetensors")).unwrap(), before);
    ok(&["reproduce", "table3", "--out", o, "--epochs", "1", "--n-train", "2000", "--report"]);
    assert_eq!(std::fs::read_to_string(out.join("table3.md")).unwrap(), md);
}

#[test]
fn slurm_array_tasks_cover_every_configuration_once() {
    let tmp = tempfile::tempdir().unwrap();
    for (table, rows) in [("table1", 6), ("table2", 1), ("table3", 3)] {
        let out = tmp.path().join(table);
        let o = out.to_str().unwrap();
        let script = tmp.path().join(format!("{table}.sbatch"));
        ok(&["reproduce", table, "--out", o, "--epochs", "7", "--emit-slurm", script.to_str().unwrap()]);
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.contains(&format!("#SBATCH --array=0-{}", rows - 1)), "{text}");
        assert!(text.contains("--task \"$SLURM_ARRAY_TASK_ID\"") && text.contains("--dependency=afterany"));
        if let Ok(o) = Command::new("bash").arg("-n").arg(&script).output() {
            assert!(o.status.success(), "bash -n: {}", String::from_utf8_lossy(&o.stderr));
        }
        // Each task index names one configuration; together they are the table, each once.
        let mut names: Vec<String> = (0..rows)
            .map(|i| {
                let s = ok(&["reproduce", table, "--out", o, "--epochs", "7", "--task", &i.to_string(), "--dry-run"]);
                s.lines().next().unwrap().split(':').next().unwrap().to_string()
            })
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), rows, "{table}: {names:?}");
        submits_itself_and_the_report(&script, tmp.path());
        let past = cagem(&["reproduce", table, "--out", o, "--task", &rows.to_string(), "--dry-run"]);
        assert!(!past.status.success() && String::from_utf8_lossy(&past.stderr).contains("--task"));
    }
}

/// `bash SCRIPT` off the cluster: with a stand-in `sbatch` that logs its arguments, the script
/// submits itself as the array and then the report, depending on the array's job id.
#[cfg(unix)]
fn submits_itself_and_the_report(script: &Path, tmp: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let bin = tmp.join("fake-slurm");
    std::fs::create_dir_all(&bin).unwrap();
    let log = bin.join("sbatch.log");
    let _ = std::fs::remove_file(&log);
    let fake = bin.join("sbatch");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$*\" >> '{}'\necho 4242\n", log.display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let Ok(o) = Command::new("bash").arg(script).env("PATH", path).env_remove("SLURM_ARRAY_TASK_ID").output() else {
        eprintln!("skipping the submission check: no bash");
        return;
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].contains("--parsable") && calls[0].ends_with(script.to_str().unwrap()), "{calls:?}");
    assert!(calls[1].contains("--dependency=afterany:4242") && calls[1].contains("--report"), "{calls:?}");
}

#[cfg(not(unix))]
fn submits_itself_and_the_report(_script: &Path, _tmp: &Path) {}

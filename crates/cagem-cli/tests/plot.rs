//! `cagem plot`: learning curves of synthetic run folders, and its errors for missing folders and
//! malformed metrics lines.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

fn cagem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cagem")).args(args).output().expect("run cagem")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A run folder `name` in `tmp`: config.json of an MNIST run with `labels` labels and K = 10,
/// and `epochs` epoch lines with test metrics every 5th epoch when `tests` (and a resume event).
fn run_dir(tmp: &Path, name: &str, labels: usize, epochs: usize, tests: bool) -> std::path::PathBuf {
    let d = tmp.join(name);
    std::fs::create_dir(&d).unwrap();
    let config = serde_json::json!({
        "model": { "clusters": 10, "z1": 64, "z2": 32 },
        "train": { "dataset": "mnist", "labels": labels },
        "history": [],
    });
    std::fs::write(d.join("config.json"), config.to_string()).unwrap();
    let mut text = String::new();
    for e in 1..=epochs {
        let elbo = -90.0 - 140.0 * (-(e as f64) / 8.0).exp();
        let mut r = serde_json::json!({
            "epoch": e, "elbo": elbo, "loss": -elbo, "recon": elbo + 20.0, "neg_kl": -20.0,
            "lr": 1e-3 * 0.75f64.powi((e / 20) as i32), "temperature": (e as f64 / 30.0).min(1.0),
            "examples_per_s": 1000.0, "epoch_seconds": 50.0, "seconds": 50.0 * e as f64,
        });
        if tests && e % 5 == 0 {
            let m = r.as_object_mut().unwrap();
            m.insert("test_elbo".into(), (elbo - 2.0).into());
            m.insert("test_log_likelihood".into(), (elbo + 4.0).into());
            m.insert("test_k".into(), 100.into());
            m.insert("test_error_p".into(), (0.05 + 0.2 / e as f64).into());
            m.insert("test_error_q".into(), serde_json::Value::Null);
            m.insert("test_kl_z2".into(), (12.0 + 10.0 / e as f64).into());
            m.insert("test_active_units_z1".into(), 50.into());
            m.insert("test_active_units_z2".into(), 12.into());
        }
        writeln!(text, "{r}").unwrap();
        if e == 10 {
            writeln!(text, "{}", serde_json::json!({ "event": "resume", "epoch": 10, "changes": {} })).unwrap();
        }
    }
    std::fs::write(d.join("metrics.jsonl"), text).unwrap();
    d
}

/// Width, height and RGB(A) pixels of a PNG.
fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let mut reader =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn plot_draws_two_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let a = run_dir(tmp.path(), "cagem100-a", 100, 40, true);
    let b = run_dir(tmp.path(), "cagem0-b", 0, 25, false);
    // Evaluations saved by `cagem eval --json` are test points too.
    std::fs::create_dir(b.join("eval")).unwrap();
    let eval = serde_json::json!({
        "log_likelihood": -95.0, "elbo": -99.0, "error_p": null, "error_q": null, "kl_z2": 13.0,
        "active_units_z1": 40, "active_units_z2": 9, "iw_k": 10, "epochs": 20,
    });
    std::fs::write(b.join("eval/epoch20.json"), eval.to_string()).unwrap();
    let png = tmp.path().join("curves.png");
    let (ra, rb, out) = (a.to_str().unwrap(), b.to_str().unwrap(), png.to_str().unwrap());

    let o = cagem(&["plot", "--run", ra, "--run", rb, "--out", out]);
    assert!(o.status.success(), "plot failed: {}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("40 epochs, 8 with test metrics") && said.contains("1 evaluations"), "{said}");
    let (w, h, pixels) = read_png(&png);
    assert_eq!((w, h), (1600, 1600));
    assert!(pixels.iter().any(|&p| p != 255), "the picture is all white");
    // Both runs' colours (tab10 blue and orange) are drawn.
    let has = |rgb: [u8; 3]| pixels.chunks(3).any(|p| p == rgb);
    assert!(has([31, 119, 180]) && has([255, 127, 14]), "a run's colour is missing");
    // The CaGeM-100 MNIST run gets the authors' ADGM log beside its q(y|x) (bluish grey crosses;
    // its first point, epoch 10, lies within the 40 epochs drawn); a CaGeM-0 run alone does not.
    let authors_log = [120, 120, 136];
    assert!(has(authors_log), "the ADGM log is not drawn beside the CaGeM-100 run");
    let o = cagem(&["plot", "--run", rb, "--out", out]);
    assert!(o.status.success(), "plot of the CaGeM-0 run failed: {}", stderr(&o));
    let (_, _, pixels) = read_png(&png);
    assert!(!pixels.chunks(3).any(|p| p == authors_log), "the ADGM log drawn beside a CaGeM-0 run");

    let o = cagem(&["plot", "--run", ra, "--out", out, "--width", "900", "--height", "700"]);
    assert!(o.status.success(), "plot --width failed: {}", stderr(&o));
    let (w, h, _) = read_png(&png);
    assert_eq!((w, h), (900, 700));
}

#[test]
fn plot_names_the_bad_line_and_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.png");
    let out = out.to_str().unwrap();
    let fails_with = |args: &[&str], needles: &[&str]| {
        let o = cagem(args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked") && !err.contains("internal error"), "{args:?} panicked:\n{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: error lacks '{n}':\n{err}");
        }
    };

    let bad = run_dir(tmp.path(), "bad", 100, 3, false);
    let metrics = bad.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("{\"epoch\": 4, \"elbo\": -100.0\n");
    std::fs::write(&metrics, text).unwrap();
    fails_with(&["plot", "--run", bad.to_str().unwrap(), "--out", out], &["metrics.jsonl", "line 4"]);

    let missing = tmp.path().join("no-such-run");
    fails_with(&["plot", "--run", missing.to_str().unwrap(), "--out", out], &["no-such-run"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails_with(&["plot", "--run", empty.to_str().unwrap(), "--out", out], &["empty/metrics.jsonl"]);
    let good = run_dir(tmp.path(), "good", 100, 3, true);
    fails_with(
        &["plot", "--run", good.to_str().unwrap(), "--out", out, "--width", "10"],
        &["--width", "10 is outside 200..="],
    );
    assert!(!Path::new(out).exists());
}

//! `cagem plot`: learning curves of run folders as one PNG (cagem_report::curves).

use cagem::{Error, Result};
use cagem_report::curves;

use crate::args::PlotArgs;

pub fn run(a: PlotArgs) -> Result<()> {
    for (v, name) in [(a.width, "--width"), (a.height, "--height")] {
        if !(400..=8000).contains(&v) {
            return Err(Error::config(format!("{name} {v} must be between 400 and 8000 pixels")));
        }
    }
    let runs = a.runs.iter().map(|r| curves::read_run(r)).collect::<Result<Vec<_>>>()?;
    for r in &runs {
        let tests = r.epochs.iter().filter(|e| e.keys().any(|k| k.starts_with("test_"))).count();
        println!(
            "{}: {} epochs, {} with test metrics, {} evaluations in eval/",
            r.dir.display(),
            r.epochs.len(),
            tests,
            r.evals.len()
        );
        if r.epochs.is_empty() && r.evals.is_empty() {
            eprintln!("warning: {} has no epochs yet", r.dir.display());
        }
    }
    curves::draw(&a.out, &runs, (a.width, a.height))?;
    println!("wrote {} ({} × {} pixels)", a.out.display(), a.width, a.height);
    Ok(())
}

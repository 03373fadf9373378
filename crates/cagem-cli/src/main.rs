//! `cagem`: train, evaluate and benchmark the Cluster-aware Generative Model.

mod args;
mod bench;
mod bench_cmd;
mod data_source;
mod eval_cmd;
mod outputs_cmd;
mod pictures_cmd;
mod plot_cmd;
mod prepare_cmd;
mod progress;
mod ranges;
mod reproduce;
mod train_cmd;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use args::{Cli, Command};

/// Stack of each worker thread: 8 MiB, what Linux gives a main thread (Rust's spawned threads
/// get 2 MiB).
const MAIN_STACK: usize = 8 << 20;

fn main() {
    install_panic_hook();
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Train(a), Some(sub)) = (&mut cli.command, matches.subcommand_matches("train")) {
        a.given = sub
            .ids()
            .filter(|id| sub.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.as_str().to_string())
            .collect();
    }
    // The command runs on one of these threads (on_worker): give them the main thread's stack.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(cli.threads.unwrap_or(0)).stack_size(MAIN_STACK);
    if let Err(e) = pool.build_global() {
        let n = cli.threads.map_or_else(|| "the worker".to_string(), |n| n.to_string());
        eprintln!("error: cannot start {n} threads: {e}");
        std::process::exit(1);
    }
    let result = on_worker(move || match cli.command {
        Command::Train(a) => train_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Bench(a) => bench_cmd::run(a),
        Command::Sample(a) => pictures_cmd::sample(a),
        Command::Reconstruct(a) => pictures_cmd::reconstruct(a),
        Command::Latent(a) => pictures_cmd::latent(a),
        Command::Grid(a) => pictures_cmd::grid(a),
        Command::Predict(a) => outputs_cmd::predict(a),
        Command::Encode(a) => outputs_cmd::encode(a),
        Command::Score(a) => outputs_cmd::score(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::PrepareOmniglot(a) => prepare_cmd::run(a),
        Command::Plot(a) => plot_cmd::run(a),
    });
    match result {
        Ok(()) => {}
        // 128 + SIGINT, as a shell reports a run stopped by Ctrl-C.
        Err(e @ cagem::Error::Interrupted(_)) => {
            eprintln!("{e}");
            std::process::exit(130);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs `f` on one of rayon's worker threads rather than the main thread. Each parallel op then
/// starts from a worker, which takes a share of the work itself; from the main thread it would
/// hand all of it to the pool and sleep until woken (≈ 3 % of a training step, measured).
fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    out.expect("ran")
}

/// Runtime failures that cannot be returned as errors (a CUDA launch or allocation failing deep in
/// a kernel) end the program with one line on stderr rather than a backtrace, which
/// RUST_BACKTRACE=1 still shows.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            default(info);
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        let at = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error: {msg}{at}; run with RUST_BACKTRACE=1 for details");
    }));
}

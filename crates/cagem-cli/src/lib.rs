//! The cagem command line as a library. The `cagem` binary (`main.rs`) and the Python package
//! (`crates/cagem-py`) parse and run the very same commands, so that their options, defaults,
//! messages and run folders agree.

pub mod args;
pub mod bench;
pub mod bench_cmd;
pub mod data_source;
pub mod eval_cmd;
pub mod outputs_cmd;
pub mod pictures_cmd;
pub mod plot_cmd;
pub mod prepare_cmd;
pub mod progress;
pub mod ranges;
pub mod reproduce;
pub mod train_cmd;

use args::{Cli, Command};

/// Stack of each worker thread: 8 MiB, what Linux gives a main thread (Rust's spawned threads
/// get 2 MiB).
pub const WORKER_STACK: usize = 8 << 20;

/// Runs one parsed command (on the calling thread; see `on_worker`).
pub fn run_command(command: Command) -> cagem::Result<()> {
    match command {
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
    }
}

/// Parses a full command line (program name first), recording which `train` options were given.
pub fn parse<I, S>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let (Command::Train(a), Some(sub)) = (&mut cli.command, matches.subcommand_matches("train")) {
        a.given = sub
            .ids()
            .filter(|id| sub.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.as_str().to_string())
            .collect();
    }
    Ok(cli)
}

/// Runs `f` on one of rayon's worker threads rather than the calling thread. Each parallel op then
/// starts from a worker, which takes a share of the work itself; from outside the pool it would
/// hand all of it to the pool and sleep until woken (≈ 3 % of a training step, measured).
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    out.expect("ran")
}

//! `cagem`: train, evaluate and benchmark the Cluster-aware Generative Model.

mod args;
mod bench_cmd;
mod data_source;
mod eval_cmd;
mod progress;
mod train_cmd;

use clap::Parser;

use args::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(n).build_global() {
            eprintln!("error: cannot start {n} threads: {e}");
            std::process::exit(1);
        }
    }
    let result = match cli.command {
        Command::Train(a) => train_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Bench(a) => bench_cmd::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

//! `cagem`: train, evaluate and benchmark the Cluster-aware Generative Model.

use cagem_cli::{WORKER_STACK, on_worker, parse, run_command};

fn main() {
    install_panic_hook();
    let cli = parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    // The command runs on one of these threads (on_worker): give them the main thread's stack.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(cli.threads.unwrap_or(0)).stack_size(WORKER_STACK);
    if let Err(e) = pool.build_global() {
        let n = cli.threads.map_or_else(|| "the worker".to_string(), |n| n.to_string());
        eprintln!("error: cannot start {n} threads: {e}");
        std::process::exit(1);
    }
    let result = on_worker(move || run_command(cli.command));
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

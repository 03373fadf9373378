//! Training from Python: the options of `cagem train` (an argument list built by the estimator),
//! the same code, and a reporter object (python/cagem/_progress.py) in place of the terminal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cagem::train::{EpochReport, Observer, StepReport};
use cagem_cli::args::Command;
use cagem_cli::train_cmd::TrainUi;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;

use crate::errors::{to_py, usage_to_py};
use crate::pools;

/// Forwards what `train` reports to the Python reporter, and stops the run when the main thread
/// saw Ctrl-C or the reporter raised.
struct PyUi {
    reporter: Py<PyAny>,
    /// Raised by the waiting main thread on Ctrl-C.
    interrupted: Arc<AtomicBool>,
    run_stop: Option<Arc<AtomicBool>>,
    /// The first exception the reporter raised.
    failure: Option<PyErr>,
}

impl PyUi {
    fn call<A: for<'py> pyo3::call::PyCallArgs<'py> + Send>(&mut self, method: &str, args: A) {
        if self.failure.is_some() {
            return;
        }
        let result = Python::attach(|py| self.reporter.call_method1(py, method, args).map(|_| ()));
        if let Err(e) = result {
            self.failure = Some(e);
        }
        self.poll_stop();
    }

    fn poll_stop(&self) {
        if (self.interrupted.load(Ordering::SeqCst) || self.failure.is_some())
            && let Some(stop) = &self.run_stop
        {
            stop.store(true, Ordering::SeqCst);
        }
    }
}

impl TrainUi for PyUi {
    fn note(&mut self, line: &str) {
        self.call("note", (line.to_string(),));
    }
    fn warn(&mut self, line: &str) {
        self.call("warn", (line.to_string(),));
    }
    fn result(&mut self, line: &str) {
        self.call("result", (line.to_string(),));
    }
    fn observer(&mut self) -> &mut dyn Observer {
        self
    }
    fn stop_with(&mut self, stop: Arc<AtomicBool>) {
        self.run_stop = Some(stop);
        self.poll_stop();
    }
}

impl Observer for PyUi {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.call("epoch_start", (epoch, epochs, steps));
    }
    fn step(&mut self, r: &StepReport) {
        self.call("step", (r.step, r.steps_per_epoch, r.scalars.loss, r.scalars.elbo, r.examples_per_s));
    }
    fn evaluating(&mut self, done: usize, total: usize) {
        self.call("evaluating", (done, total));
    }
    fn epoch_end(&mut self, r: &EpochReport) {
        self.call("epoch_end", (r.record.to_string(),));
    }
}

/// Trains as `cagem train ARGV...` does (`--threads` aside: `threads` workers, None for one per
/// core) and returns the run folder. The GIL is released meanwhile; the calling thread waits and
/// watches for Ctrl-C, which stops the run after the current step with a checkpoint written,
/// then raises KeyboardInterrupt.
#[pyfunction]
#[pyo3(signature = (argv, reporter, threads=None))]
pub fn train(py: Python<'_>, argv: Vec<String>, reporter: Py<PyAny>, threads: Option<usize>) -> PyResult<String> {
    let full = ["cagem".to_string(), "train".to_string()].into_iter().chain(argv);
    let cli = cagem_cli::parse(full).map_err(usage_to_py)?;
    let Command::Train(args) = cli.command else { unreachable!("the argument list starts with `train`") };
    let pool = pools::pool(threads)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let mut ui = PyUi { reporter, interrupted: interrupted.clone(), run_stop: None, failure: None };
    let (outcome, ctrl_c) = std::thread::scope(|s| {
        let ui = &mut ui;
        let worker = s.spawn(move || pool.install(move || cagem_cli::train_cmd::train(args, ui)));
        // Python runs signal handlers on its main thread only: this thread waits there.
        let mut ctrl_c = None;
        while !worker.is_finished() {
            py.detach(|| std::thread::sleep(Duration::from_millis(20)));
            if ctrl_c.is_none()
                && let Err(e) = py.check_signals()
            {
                interrupted.store(true, Ordering::SeqCst);
                ctrl_c = Some(e);
            }
        }
        (worker.join(), ctrl_c)
    });
    if let Some(e) = ui.failure.take() {
        return Err(e);
    }
    match outcome {
        Ok(Ok(dir)) => match ctrl_c {
            // Ctrl-C after the last step: the run is complete, the interrupt still stands.
            Some(e) => Err(e),
            None => Ok(dir.display().to_string()),
        },
        Ok(Err(e @ cagem::Error::Interrupted(_))) => Err(PyKeyboardInterrupt::new_err(e.to_string())),
        Ok(Err(e)) => Err(to_py(e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown failure".into());
            Err(PyRuntimeError::new_err(format!("internal error: {msg}")))
        }
    }
}

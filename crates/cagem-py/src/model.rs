//! A trained model for Python: loaded from a run folder as `cagem predict/encode/score` load it,
//! answering with the library's evaluation functions (cagem::eval, cagem::model::generate).

use std::path::PathBuf;
use std::sync::Arc;

use cagem::Cagem;
use cagem::checkpoint::{self, CheckpointMeta};
use cagem::eval::{EVAL_SEED, EvalOptions, class_probabilities, iw_per_example, posterior_means};
use cagem::model::{ClusterChoice, NoiseStreams};
use cagem_autodiff::Tensor;
use cagem_cli::args::checkpoint_file;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rayon::ThreadPool;

use crate::arrays::{Incoming, f64_bytes, i64_bytes};
use crate::errors::to_py;
use crate::pools;

/// Stream number of generation noise under the caller's seed (as `cagem sample`'s pictures).
const SAMPLE_STREAM_BASE: u64 = 0x5049_4354; // "PICT"
/// Rows per chunk of the evaluations (as the command line's default).
const CHUNK_ROWS: usize = 1000;

#[pyclass(module = "cagem._core")]
pub struct Model {
    model: Cagem<f32>,
    meta: CheckpointMeta,
    run: PathBuf,
    pool: Arc<ThreadPool>,
}

type Bytes<'py> = Bound<'py, PyBytes>;

/// Calls Python's `progress(done)` (examples done so far), if given, from the worker thread.
fn reporter(progress: Option<Py<PyAny>>) -> impl FnMut(usize) + Send {
    move |done| {
        if let Some(cb) = &progress {
            // A progress display that fails must not stop the computation.
            let _ = Python::attach(|py| cb.call1(py, (done,)));
        }
    }
}

impl Model {
    fn run_on<R: Send>(&mut self, py: Python<'_>, f: impl FnOnce(&mut Cagem<f32>) -> R + Send) -> R {
        let pool = self.pool.clone();
        let model = &mut self.model;
        pools::on_pool(py, &pool, move || f(model))
    }

    /// `f` on the examples handed over as X (checked as `--input F.npy` is), on the pool.
    fn on_examples<R: Send>(
        &mut self,
        py: Python<'_>,
        x: Incoming<'_>,
        f: impl FnOnce(&mut Cagem<f32>, &Tensor<f32>) -> R + Send,
    ) -> PyResult<R> {
        self.run_on(py, |m| x.examples(m).map(|x| f(m, &x))).map_err(to_py)
    }
}

#[pymethods]
impl Model {
    /// Loads `checkpoint` ("last" or "best") of the run folder `run`, to compute with `threads`
    /// workers (None: one per core).
    #[staticmethod]
    #[pyo3(signature = (run, checkpoint="last", threads=None))]
    fn open(py: Python<'_>, run: PathBuf, checkpoint: &str, threads: Option<usize>) -> PyResult<Model> {
        if !["last", "best"].contains(&checkpoint) {
            return Err(PyValueError::new_err(format!("checkpoint='{checkpoint}': expected 'last' or 'best'")));
        }
        let pool = pools::pool(threads)?;
        let file = checkpoint_file(checkpoint);
        let (model, _, meta) =
            py.detach(|| checkpoint::load_file::<f32>(&run, file, &cagem_kernels::Device::Cpu)).map_err(to_py)?;
        Ok(Model { model, meta, run, pool })
    }

    /// The model's and the schedule's configuration, as config.json holds them.
    #[getter]
    fn config_json(&self) -> String {
        serde_json::json!({ "model": self.meta.model, "train": self.meta.train }).to_string()
    }

    #[getter]
    fn epochs_done(&self) -> usize {
        self.meta.state.epochs_done
    }

    /// Whether `pred` should follow p(y|x), and why (the rule of `cagem predict`).
    fn preferred_classifier(&self) -> (bool, String) {
        cagem_cli::outputs_cmd::classifier_choice(&self.run, &self.meta)
    }

    /// p(y|x) from `samples` draws of z1 and z2 per example, and q(y|x): two n × K float64 buffers.
    #[pyo3(signature = (x, descr, shape, samples, progress=None))]
    fn class_probabilities<'py>(
        &mut self,
        py: Python<'py>,
        x: &[u8],
        descr: &str,
        shape: Vec<usize>,
        samples: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Bytes<'py>, Bytes<'py>)> {
        if samples == 0 {
            return Err(PyValueError::new_err("samples must be at least 1"));
        }
        let x = Incoming { name: "X", descr, shape, bytes: x };
        let (p, q) = self.on_examples(py, x, |m, x| {
            let mut noise = NoiseStreams::new(EVAL_SEED);
            class_probabilities(m, x, samples, CHUNK_ROWS, &mut noise, &mut reporter(progress))
        })?;
        Ok((f64_bytes(py, &p), f64_bytes(py, &q)))
    }

    /// E[z1|x] and E[z2|x]: n × z1 and n × z2 float64 buffers.
    #[pyo3(signature = (x, descr, shape, progress=None))]
    fn posterior_means<'py>(
        &mut self,
        py: Python<'py>,
        x: &[u8],
        descr: &str,
        shape: Vec<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Bytes<'py>, Bytes<'py>)> {
        let x = Incoming { name: "X", descr, shape, bytes: x };
        let (z1, z2) = self.on_examples(py, x, |m, x| posterior_means(m, x, &mut reporter(progress)))?;
        Ok((f64_bytes(py, &z1), f64_bytes(py, &z2)))
    }

    /// The IW-k bound on log p(x) of each example, in nats (y summed exactly): n float64.
    #[pyo3(signature = (x, descr, shape, k, progress=None))]
    fn iw_bound<'py>(
        &mut self,
        py: Python<'py>,
        x: &[u8],
        descr: &str,
        shape: Vec<usize>,
        k: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bytes<'py>> {
        if k == 0 {
            return Err(PyValueError::new_err("k must be at least 1"));
        }
        let x = Incoming { name: "X", descr, shape, bytes: x };
        let iw = self.on_examples(py, x, |m, x| {
            let opts = EvalOptions { k, chunk_rows: CHUNK_ROWS, ..EvalOptions::default() };
            let mut noise = NoiseStreams::new(opts.seed);
            iw_per_example(m, x, &opts, &mut noise, &mut reporter(progress))
        })?;
        Ok(f64_bytes(py, &iw.log_likelihood))
    }

    /// `n` generations (the means of p(x|y,z1), n × features) and their y: z2 from the prior and
    /// y ~ p(y|z2), or with `cls` z2 ~ p(z2|y=cls) and y = cls (as `cagem sample --class`).
    #[pyo3(signature = (n, cls=None, seed=0))]
    fn sample<'py>(
        &mut self,
        py: Python<'py>,
        n: usize,
        cls: Option<u32>,
        seed: u64,
    ) -> PyResult<(Bytes<'py>, Bytes<'py>, usize)> {
        let k = self.model.cfg.clusters;
        if n == 0 {
            return Err(PyValueError::new_err("n must be at least 1"));
        }
        if let Some(c) = cls
            && c as usize >= k
        {
            return Err(PyValueError::new_err(format!(
                "cls={c} is out of range: the model has {k} clusters (0..={})",
                k - 1
            )));
        }
        let (generated, inexact) = self.run_on(py, |m| {
            let mut noise = NoiseStreams { seed, next: SAMPLE_STREAM_BASE };
            let (z2, inexact, choice) = match cls {
                None => (m.prior_z2(n, &mut noise), 0, ClusterChoice::Sample),
                Some(c) => {
                    let (z2, inexact) = m.class_z2(n, c, 100 * n * k, &mut noise);
                    (z2, inexact, ClusterChoice::Fixed(c))
                }
            };
            (m.generate(&z2, choice, &mut noise), inexact)
        });
        Ok((f64_bytes(py, &generated.x), i64_bytes(py, generated.y.iter().map(|&y| i64::from(y))), inexact))
    }

    /// Reconstructions through the bottom layer (z1 = mean of q(z1|x), y = argmax q(y|z1,x)),
    /// n × features float64, in the data's units.
    fn reconstruct<'py>(&mut self, py: Python<'py>, x: &[u8], descr: &str, shape: Vec<usize>) -> PyResult<Bytes<'py>> {
        let x = Incoming { name: "X", descr, shape, bytes: x };
        let out = self.on_examples(py, x, |m, x| {
            let mut out = Vec::new();
            for start in (0..x.rows()).step_by(CHUNK_ROWS) {
                let len = CHUNK_ROWS.min(x.rows() - start);
                let rows: Vec<usize> = (start..start + len).collect();
                out.extend(m.reconstruct(&cagem::eval::select_rows(x, &rows)));
            }
            out
        })?;
        Ok(f64_bytes(py, &out))
    }
}

//! `decompute._native`: the Python extension. A thin layer over the `decompute` library —
//! the same crate the CLI is built from — so nothing is implemented twice: `Tracker` is
//! `decompute::track::Tracker`, the estimates are the CLI's `estimate train|infer` with their
//! arguments parsed by the same parser. Errors arrive as Python exceptions carrying
//! decompute's one-line messages. The Python API around it is `decompute/__init__.py`.

use clap::Parser;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::time::Duration;

/// A tracker of the calling process; see `decompute.track`.
#[pyclass(module = "decompute._native")]
struct Tracker {
    opts: decompute::track::Options,
    inner: Option<decompute::track::Tracker>,
}

#[pymethods]
impl Tracker {
    #[new]
    #[pyo3(signature = (project=None, tags=None, ledger=None, record=true, interval=1.0, budget=None, zone=None, pue=None, command=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        project: Option<String>,
        tags: Option<Vec<(String, String)>>,
        ledger: Option<String>,
        record: bool,
        interval: f64,
        budget: Option<String>,
        zone: Option<String>,
        pue: Option<String>,
        command: Option<Vec<String>>,
    ) -> PyResult<Self> {
        if !(interval.is_finite() && (0.1..=60.0).contains(&interval)) {
            return Err(PyValueError::new_err(format!(
                "interval {interval} is not between 0.1 and 60 seconds"
            )));
        }
        if let Some(b) = &budget {
            decompute::govern::budget::parse_budget(b).map_err(PyValueError::new_err)?;
        }
        Ok(Tracker {
            opts: decompute::track::Options {
                project,
                tags: tags.unwrap_or_default(),
                ledger,
                no_ledger: !record,
                interval: Duration::from_secs_f64(interval),
                budget,
                zone,
                pue,
                command: command.unwrap_or_default(),
            },
            inner: None,
        })
    }

    /// Starts measuring (the GIL is released meanwhile).
    fn start(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.inner.is_some() {
            return Err(PyRuntimeError::new_err("this tracker is already running"));
        }
        let opts = self.opts.clone();
        let t = py
            .allow_threads(move || decompute::track::Tracker::start(&opts))
            .map_err(PyRuntimeError::new_err)?;
        self.inner = Some(t);
        Ok(())
    }

    /// The budget found used up, in words, or None.
    fn exceeded(&self) -> Option<String> {
        self.inner.as_ref().and_then(|t| t.exceeded())
    }

    /// The workload's energy up to the last sampling interval, in joules.
    fn energy_j(&self) -> f64 {
        self.inner.as_ref().map(|t| t.energy_j()).unwrap_or(0.0)
    }

    /// The workload's energy up to this call, in joules: the counters are read now (a
    /// fresh, partial interval), so consecutive calls split the run without a gap. The GIL
    /// is released while the sampling thread reads them.
    fn energy_now_j(&self, py: Python<'_>) -> f64 {
        match self.inner.as_ref() {
            Some(t) => py.allow_threads(|| t.energy_now_j(std::time::Duration::from_secs(2))),
            None => 0.0,
        }
    }

    #[getter]
    fn id(&self) -> Option<String> {
        self.inner.as_ref().map(|t| t.id().to_string())
    }

    #[getter]
    fn nested(&self) -> bool {
        self.inner.as_ref().is_some_and(|t| t.nested())
    }

    /// Stops, records the run (unless record=False) and returns (report JSON, where it was
    /// recorded or None).
    #[pyo3(signature = (failed=false))]
    fn stop(&mut self, py: Python<'_>, failed: bool) -> PyResult<(String, Option<String>)> {
        let t = self
            .inner
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this tracker is not running"))?;
        let (report, recorded) = py
            .allow_threads(move || t.stop(failed))
            .map_err(PyRuntimeError::new_err)?;
        let json =
            serde_json::to_string(&report).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok((json, recorded))
    }
}

#[derive(Parser)]
#[command(name = "decompute estimate", no_binary_name = true)]
struct Estimate {
    #[command(subcommand)]
    what: decompute::cli::estimate::What,
}

/// Runs `estimate` with CLI-style arguments and returns the JSON document.
#[pyfunction]
fn estimate(py: Python<'_>, args: Vec<String>) -> PyResult<String> {
    py.allow_threads(move || {
        let e = Estimate::try_parse_from(&args).map_err(|e| {
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_string();
            PyValueError::new_err(first)
        })?;
        let v =
            match e.what {
                decompute::cli::estimate::What::Train(t) => {
                    let r = decompute::cli::estimate::train_estimate(&t)
                        .map_err(|e| PyValueError::new_err(format!("{e:#}")))?;
                    serde_json::to_string(&r)
                }
                decompute::cli::estimate::What::Infer(i) => {
                    let r = decompute::cli::estimate::infer_estimate(&i)
                        .map_err(|e| PyValueError::new_err(format!("{e:#}")))?;
                    serde_json::to_string(&r)
                }
                decompute::cli::estimate::What::Site(_) => return Err(PyValueError::new_err(
                    "site estimates are not offered in Python yet; use `decompute estimate site`",
                )),
            };
        v.map_err(|e| PyRuntimeError::new_err(e.to_string()))
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tracker>()?;
    m.add_function(wrap_pyfunction!(estimate, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

//! `decompute._native`: the Python extension. A thin layer over the `decompute` library —
//! the same crate the CLI is built from — so nothing is implemented twice: `Tracker` is
//! `decompute::track::Tracker`, the estimates are the CLI's `estimate train|infer` with their
//! arguments parsed by the same parser. Errors arrive as Python exceptions carrying
//! decompute's one-line messages. The Python API around it is `decompute/__init__.py`.

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
        let interval = Duration::try_from_secs_f64(interval).map_err(|_| {
            PyValueError::new_err(format!("interval {interval} is not a number of seconds"))
        })?;
        // The CLI's rules, in the library: the same refusals as `decompute run`.
        let opts = decompute::track::Options {
            project,
            tags: tags.unwrap_or_default(),
            ledger,
            no_ledger: !record,
            interval,
            budget,
            zone,
            pue,
            command: command.unwrap_or_default(),
        }
        .checked()
        .map_err(PyValueError::new_err)?;
        Ok(Tracker { opts, inner: None })
    }

    /// Starts measuring (the GIL is released meanwhile).
    fn start(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.inner.is_some() {
            return Err(PyRuntimeError::new_err("this tracker is already running"));
        }
        let opts = self.opts.clone();
        let t = py
            .detach(move || decompute::track::Tracker::start(&opts))
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
            Some(t) => py.detach(|| t.energy_now_j(std::time::Duration::from_secs(2))),
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
    /// recorded or None). `stopped_by_budget`: the block ended because a budget was used up
    /// (recorded `stopped`, never `finished`).
    #[pyo3(signature = (failed=false, stopped_by_budget=false))]
    fn stop(
        &mut self,
        py: Python<'_>,
        failed: bool,
        stopped_by_budget: bool,
    ) -> PyResult<(String, Option<String>)> {
        let t = self
            .inner
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this tracker is not running"))?;
        let end = if stopped_by_budget {
            decompute::track::End::StoppedByBudget
        } else if failed {
            decompute::track::End::Failed
        } else {
            decompute::track::End::Finished
        };
        let (report, recorded) = py
            .detach(move || t.stop(end))
            .map_err(PyRuntimeError::new_err)?;
        let json =
            serde_json::to_string(&report).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok((json, recorded))
    }
}

/// Runs `estimate` with CLI-style arguments and returns the JSON document.
#[pyfunction]
fn estimate(py: Python<'_>, args: Vec<String>) -> PyResult<String> {
    use decompute::cli::estimate::{json_from_args, ArgsError};
    py.detach(move || {
        json_from_args(&args).map_err(|e| match e {
            ArgsError::Usage(m) | ArgsError::Refused(m) => PyValueError::new_err(keywords(&m)),
        })
    })
}

/// An estimate's message in the Python caller's words: each command-line flag
/// (`--device-hours`) named as the keyword that sets it (`device_hours`).
fn keywords(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("--") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.push_str(&name.replace('-', "_"));
        } else {
            out.push_str("--");
            out.push_str(name);
        }
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}

/// Raises `exc` in thread `thread_id` at its next bytecode, unless one of the code objects in
/// `guarded` (the tracker's own stop and exit) is on that thread's stack; returns whether it
/// raised. The look and the raise happen under the GIL with no Python bytecode between them,
/// so the thread cannot enter `stop()` in between: a budget's exception lands in the user's
/// code, never half-way through stopping (where it would lose the run).
#[pyfunction]
fn raise_unless_stopping(
    py: Python<'_>,
    thread_id: u64,
    exc: &Bound<'_, PyAny>,
    guarded: Vec<Bound<'_, PyAny>>,
) -> PyResult<bool> {
    let frames = PyModule::import(py, "sys")?
        .getattr("_current_frames")?
        .call0()?;
    let mut frame = match frames.get_item(thread_id) {
        Ok(f) => f,
        // The thread has ended: nothing to raise in.
        Err(_) => return Ok(false),
    };
    loop {
        let code = frame.getattr("f_code")?;
        if guarded.iter().any(|g| g.is(&code)) {
            return Ok(false);
        }
        let back = frame.getattr("f_back")?;
        if back.is_none() {
            break;
        }
        frame = back;
    }
    let id = std::os::raw::c_long::try_from(thread_id)
        .map_err(|_| PyValueError::new_err("thread id out of range"))?;
    // SAFETY: the GIL is held; `exc` is a live object for the duration of the call.
    let n = unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(id, exc.as_ptr()) };
    Ok(n == 1)
}

/// A tracker's report (`Track.report`, as JSON) as one row of CodeCarbon's `emissions.csv`:
/// (the 38 column names, the cells), CodeCarbon's meanings, the figures of `tracking_mode`
/// `"machine"` (the host's) or `"process"` (the tracked process tree's).
#[pyfunction]
fn codecarbon_row(report_json: &str, tracking_mode: &str) -> PyResult<(Vec<String>, Vec<String>)> {
    use decompute::ledger::codecarbon::{cells_of, Scope, COLUMNS};
    let scope = Scope::parse(tracking_mode).ok_or_else(|| {
        PyValueError::new_err(format!(
            "tracking_mode={tracking_mode:?} is not one of 'machine', 'process'"
        ))
    })?;
    let report: decompute::report::RunReport = serde_json::from_str(report_json)
        .map_err(|e| PyValueError::new_err(format!("not a decompute run report: {e}")))?;
    let record =
        decompute::ledger::RunRecord::from_report(report).map_err(PyValueError::new_err)?;
    Ok((
        COLUMNS.iter().map(|c| c.to_string()).collect(),
        cells_of(&record, scope),
    ))
}

/// The hosted-AI request book of `decompute.api`: settings resolved once (factors, policy,
/// ledger, project); each request estimated and recorded as `scope=estimated`.
#[pyclass(module = "decompute._native")]
struct Api {
    book: decompute::hosted::Book,
}

#[pymethods]
impl Api {
    #[new]
    #[pyo3(signature = (project=None, tags=None, ledger=None, record=true, zone=None, pue=None))]
    fn new(
        py: Python<'_>,
        project: Option<String>,
        tags: Option<Vec<(String, String)>>,
        ledger: Option<String>,
        record: bool,
        zone: Option<String>,
        pue: Option<String>,
    ) -> PyResult<Self> {
        let o = decompute::hosted::Options {
            project,
            tags: tags.unwrap_or_default(),
            ledger,
            no_ledger: !record,
            zone,
            pue,
        };
        let book = py
            .detach(move || decompute::hosted::Book::open(&o))
            .map_err(PyValueError::new_err)?;
        Ok(Api { book })
    }

    #[getter]
    fn project(&self) -> String {
        self.book.project().to_string()
    }

    #[getter]
    fn ledger(&self) -> Option<String> {
        self.book.ledger_shown()
    }

    /// Estimates a request (JSON of `decompute::hosted::Request`) and records it unless
    /// `record=False`; returns the estimate as JSON (with the ledger id when recorded).
    #[pyo3(signature = (request_json, tags=None, record=true))]
    fn request(
        &self,
        py: Python<'_>,
        request_json: &str,
        tags: Option<Vec<(String, String)>>,
        record: bool,
    ) -> PyResult<String> {
        let r: decompute::hosted::Request = serde_json::from_str(request_json)
            .map_err(|e| PyValueError::new_err(format!("not a request: {e}")))?;
        let known = decompute::hosted::known(&r);
        let tags = tags.unwrap_or_default();
        let out = py.detach(|| {
            if record {
                self.book.record(&r, &tags)
            } else {
                self.book
                    .estimate(&r)
                    .map(|(e, _)| decompute::hosted::estimated(&r, &e, None))
            }
        });
        // An unknown model is a LookupError (Python maps it to `models=`), the rest ValueError.
        let e = out.map_err(|e| {
            if known {
                PyValueError::new_err(e)
            } else {
                pyo3::exceptions::PyLookupError::new_err(e)
            }
        })?;
        serde_json::to_string(&e).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// The policy budget of `project` (default: the book's) found used up: (message,
    /// `stop`|`pause`|`warn`), or None.
    #[pyo3(signature = (project=None))]
    fn exceeded(
        &self,
        py: Python<'_>,
        project: Option<String>,
    ) -> PyResult<Option<(String, String)>> {
        let out = py
            .detach(|| self.book.exceeded(project.as_deref()))
            .map_err(PyRuntimeError::new_err)?;
        Ok(out.map(|(m, a)| (m, format!("{a:?}").to_lowercase())))
    }
}

/// `energy=500Wh,carbon=200g,water=3L,time=2h` as [(metric, amount in J, g, L or s)], by
/// the rules of `--budget`.
#[pyfunction]
fn parse_budget(text: &str) -> PyResult<Vec<(String, f64)>> {
    decompute::govern::budget::parse_budget(text)
        .map(|v| {
            v.into_iter()
                .map(|l| (l.metric.name().to_string(), l.value))
                .collect()
        })
        .map_err(PyValueError::new_err)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tracker>()?;
    m.add_class::<Api>()?;
    m.add_function(wrap_pyfunction!(estimate, m)?)?;
    m.add_function(wrap_pyfunction!(raise_unless_stopping, m)?)?;
    m.add_function(wrap_pyfunction!(codecarbon_row, m)?)?;
    m.add_function(wrap_pyfunction!(parse_budget, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

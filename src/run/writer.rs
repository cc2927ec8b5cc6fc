//! The ledger as a run writes it: on a thread of its own, so a slow disk or a distant
//! database never delays a sample. The run sends what to record (start, checkpoints, how to
//! thaw, the end) and reads back, without waiting, what the ledger knows that the run needs:
//! the limits the other runs of its project have left it. A failed write is retried with the
//! next message (power rows are kept until they land) and said once; a budget read the
//! ledger refuses is asked again after growing waits, then said once; the measurement never
//! stops for either.

use crate::govern::budget::Share;
use crate::ledger::{Ledger, Monitor, RunIdentity, Status, Thaw};
use crate::report::RunReport;
use crate::sample::PowerRow;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many times one refresh asks a busy ledger before the run goes on without it.
const REFRESH_TRIES: u32 = 5;

/// The wait before try `tries + 1`: 0.25 s, doubling (3.75 s over five tries), stretched by
/// up to half by `spread` (0 to 1, this process's own), so the many runs a full server
/// refused at once do not all ask again at the same instants.
fn backoff(tries: u32, spread: f64) -> Duration {
    let base = 250u64.saturating_mul(1u64 << tries.saturating_sub(1).min(6));
    Duration::from_millis(base).mul_f64(1.0 + 0.5 * spread.clamp(0.0, 1.0))
}

/// This process's spread of its retry waits (0 to 1), from its pid: runs started together
/// have different pids.
fn spread() -> f64 {
    f64::from(std::process::id() % 1000) / 1000.0
}

/// A refresh that failed on the ledger and will be asked again.
struct Retry {
    at: Instant,
    tries: u32,
    started: Instant,
    policy: PathBuf,
    project: String,
}

/// Why a refresh got no limits: the policy file (not worth asking again soon) or the
/// ledger (busy, perhaps, for a moment).
enum Unread {
    Policy(String),
    Ledger(String),
}

fn read_limits(
    l: &dyn Ledger,
    policy: &std::path::Path,
    project: &str,
    id: Option<&str>,
) -> Result<Vec<Share>, Unread> {
    let p = crate::govern::policy::load(policy).map_err(|e| Unread::Policy(e.to_string()))?;
    crate::govern::usage::project_limits(&p, project, crate::timefmt::now_s() as i64, l, id)
        .map(|(_, lim)| lim)
        .map_err(Unread::Ledger)
}

enum Msg {
    Begin(Box<(RunIdentity, Monitor, RunReport, Option<Thaw>)>),
    Checkpoint(Box<RunReport>, Vec<PowerRow>),
    Thaw(Option<Thaw>),
    Refresh {
        policy: PathBuf,
        project: String,
    },
    Finish(
        Status,
        Box<RunReport>,
        Vec<PowerRow>,
        Sender<Result<(), String>>,
    ),
}

/// What the writer thread tells the run.
#[derive(Debug, Default)]
pub struct Shared {
    /// The latest shares of the project's budgets left to this run (after a refresh).
    pub limits: Option<Vec<Share>>,
    /// Set while writes fail (the message of the first failure of the streak).
    pub failing: Option<String>,
    /// Refreshes asked for and not yet answered.
    pub pending_refresh: bool,
    /// Set while budget refreshes fail (said once).
    pub refresh_failing: bool,
}

/// The handle a run holds.
pub struct Writer {
    tx: Option<Sender<Msg>>,
    handle: Option<JoinHandle<()>>,
    pub shared: Arc<Mutex<Shared>>,
}

impl Writer {
    /// Starts the thread that owns `ledger`.
    pub fn start(ledger: Box<dyn Ledger>) -> Writer {
        let (tx, rx) = channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let sh = shared.clone();
        let handle = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || work(ledger, rx, sh))
            .ok();
        Writer {
            tx: Some(tx),
            handle,
            shared,
        }
    }

    fn send(&self, m: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(m);
        }
    }

    pub fn begin(
        &self,
        id: &RunIdentity,
        monitor: Monitor,
        report: &RunReport,
        thaw: Option<Thaw>,
    ) {
        self.send(Msg::Begin(Box::new((
            id.clone(),
            monitor,
            report.clone(),
            thaw,
        ))));
    }

    pub fn checkpoint(&self, report: RunReport, rows: Vec<PowerRow>) {
        self.send(Msg::Checkpoint(Box::new(report), rows));
    }

    pub fn thaw(&self, thaw: Option<Thaw>) {
        self.send(Msg::Thaw(thaw));
    }

    /// Asks for the limits the project's budgets now leave this run (answered in `shared`).
    pub fn refresh(&self, policy: PathBuf, project: String) {
        if let Ok(mut s) = self.shared.lock() {
            if s.pending_refresh {
                return;
            }
            s.pending_refresh = true;
        }
        self.send(Msg::Refresh { policy, project });
    }

    /// Takes the newest shares, if a refresh was answered since the last call.
    pub fn take_limits(&self) -> Option<Vec<Share>> {
        self.shared.lock().ok().and_then(|mut s| s.limits.take())
    }

    /// Records the end and waits for it (and everything before it) to be written.
    pub fn finish(
        mut self,
        status: Status,
        report: RunReport,
        rows: Vec<PowerRow>,
    ) -> Result<(), String> {
        let (done, wait) = channel();
        self.send(Msg::Finish(status, Box::new(report), rows, done));
        self.tx = None;
        let r = wait
            .recv()
            .unwrap_or_else(|_| Err("the ledger thread ended early".into()));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        r
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn work(mut l: Box<dyn Ledger>, rx: Receiver<Msg>, shared: Arc<Mutex<Shared>>) {
    let mut begun: Option<(RunIdentity, Monitor, RunReport, Option<Thaw>)> = None;
    let mut written = false;
    let mut pending: Vec<PowerRow> = Vec::new();
    let fail = |shared: &Arc<Mutex<Shared>>, e: String| {
        if let Ok(mut s) = shared.lock() {
            if s.failing.is_none() {
                crate::say!("decompute: warning: cannot write to the ledger ({e}); measuring on, retrying with the next checkpoint");
                s.failing = Some(e);
            }
        }
    };
    let ok = |shared: &Arc<Mutex<Shared>>| {
        if let Ok(mut s) = shared.lock() {
            if s.failing.take().is_some() {
                crate::say!(
                    "decompute: note: the ledger can be written again; nothing measured was lost"
                );
            }
        }
    };
    // The row must exist before a checkpoint can update it.
    let ensure_begun = |l: &mut Box<dyn Ledger>,
                        begun: &Option<(RunIdentity, Monitor, RunReport, Option<Thaw>)>,
                        written: &mut bool|
     -> Result<(), String> {
        if *written {
            return Ok(());
        }
        let Some((id, m, r, thaw)) = begun else {
            return Err("no run begun".into());
        };
        l.begin(id, *m, r).map_err(|e| format!("{e:#}"))?;
        if thaw.is_some() {
            l.set_thaw(&id.id, thaw.as_ref())
                .map_err(|e| format!("{e:#}"))?;
        }
        *written = true;
        Ok(())
    };
    // A budget refresh to ask again, after a wait.
    let mut retry: Option<Retry> = None;
    loop {
        let msg = match &retry {
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
            Some(r) => match rx.recv_timeout(r.at.saturating_duration_since(Instant::now())) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => match &retry {
                    Some(r) => Msg::Refresh {
                        policy: r.policy.clone(),
                        project: r.project.clone(),
                    },
                    None => continue,
                },
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        match msg {
            Msg::Begin(b) => {
                begun = Some(*b);
                match ensure_begun(&mut l, &begun, &mut written) {
                    Ok(()) => ok(&shared),
                    Err(e) => fail(&shared, e),
                }
            }
            Msg::Checkpoint(report, rows) => {
                pending.extend(rows);
                let r = ensure_begun(&mut l, &begun, &mut written).and_then(|()| {
                    let id = begun.as_ref().map(|b| b.0.id.clone()).unwrap_or_default();
                    l.checkpoint(&id, &report, &pending)
                        .map_err(|e| format!("{e:#}"))
                });
                match r {
                    Ok(()) => {
                        pending.clear();
                        ok(&shared);
                    }
                    Err(e) => fail(&shared, e),
                }
            }
            Msg::Thaw(t) => {
                if let Some(b) = begun.as_mut() {
                    b.3 = t.clone();
                }
                if written {
                    let id = begun.as_ref().map(|b| b.0.id.clone()).unwrap_or_default();
                    if let Err(e) = l.set_thaw(&id, t.as_ref()) {
                        fail(&shared, format!("{e:#}"));
                    }
                }
            }
            Msg::Refresh { policy, project } => {
                let id = begun.as_ref().map(|b| b.0.id.clone());
                let tries = retry.as_ref().map_or(0, |r| r.tries) + 1;
                let started = retry.as_ref().map_or_else(Instant::now, |r| r.started);
                retry = None;
                match read_limits(l.as_ref(), &policy, &project, id.as_deref()) {
                    Ok(lim) => {
                        if let Ok(mut s) = shared.lock() {
                            s.pending_refresh = false;
                            s.limits = Some(lim);
                            if s.refresh_failing {
                                s.refresh_failing = false;
                                crate::say!("decompute: note: the project budgets can be read again; the run is held to their new standing");
                            }
                        }
                    }
                    // A busy ledger (a full server, a locked file) is asked again after a
                    // growing wait, on this thread: no sample waits for it.
                    Err(Unread::Ledger(_)) if tries < REFRESH_TRIES => {
                        retry = Some(Retry {
                            at: Instant::now() + backoff(tries, spread()),
                            tries,
                            started,
                            policy,
                            project,
                        });
                    }
                    // The run carries on under the last standing known; said once until a
                    // refresh succeeds again.
                    Err(e) => {
                        if let Ok(mut s) = shared.lock() {
                            s.pending_refresh = false;
                            if !s.refresh_failing {
                                s.refresh_failing = true;
                                let e = match e {
                                    Unread::Ledger(e) => format!(
                                        "{e}; asked {tries} times over {:.1} s",
                                        started.elapsed().as_secs_f64()
                                    ),
                                    Unread::Policy(e) => e,
                                };
                                crate::say!("decompute: warning: the project budgets could not be read again ({e}); the run goes on under the last standing, asking again at the next refresh");
                            }
                        }
                    }
                }
            }
            Msg::Finish(status, report, rows, done) => {
                pending.extend(rows);
                let r = ensure_begun(&mut l, &begun, &mut written).and_then(|()| {
                    let id = begun.as_ref().map(|b| b.0.id.clone()).unwrap_or_default();
                    l.finish(&id, status, &report, &pending)
                        .map_err(|e| format!("{e:#}"))
                });
                let _ = done.send(r);
                return;
            }
        }
        // Nothing held between messages: a run of hours holds no server connection
        // between its checkpoints.
        l.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::sqlite::SqliteLedger;
    use crate::ledger::{
        Filter, GroupBy, Imported, LedgerError, Recovered, RunRecord, RunRow, SummaryRow,
    };
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A real SQLite ledger whose totals fail, as a full server refuses, for the first
    /// `busy` asks.
    struct Busy {
        inner: SqliteLedger,
        busy: Arc<AtomicU32>,
        asked: Arc<AtomicU32>,
    }

    impl Ledger for Busy {
        fn begin(
            &mut self,
            id: &RunIdentity,
            m: Monitor,
            r: &RunReport,
        ) -> Result<(), LedgerError> {
            self.inner.begin(id, m, r)
        }
        fn checkpoint(
            &mut self,
            id: &str,
            r: &RunReport,
            rows: &[PowerRow],
        ) -> Result<(), LedgerError> {
            self.inner.checkpoint(id, r, rows)
        }
        fn finish(
            &mut self,
            id: &str,
            s: Status,
            r: &RunReport,
            rows: &[PowerRow],
        ) -> Result<(), LedgerError> {
            self.inner.finish(id, s, r, rows)
        }
        fn set_thaw(&mut self, id: &str, t: Option<&Thaw>) -> Result<(), LedgerError> {
            self.inner.set_thaw(id, t)
        }
        fn recover(&mut self) -> Result<Vec<Recovered>, LedgerError> {
            self.inner.recover()
        }
        fn list(&self, f: &Filter) -> Result<Vec<RunRow>, LedgerError> {
            self.inner.list(f)
        }
        fn get_prefix(&self, p: &str, prefix: &str) -> Result<RunRecord, LedgerError> {
            self.inner.get_prefix(p, prefix)
        }
        fn summary(&self, by: &GroupBy, f: &Filter) -> Result<Vec<SummaryRow>, LedgerError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            if self.busy.load(Ordering::SeqCst) > 0 {
                self.busy.fetch_sub(1, Ordering::SeqCst);
                return Err(LedgerError::Db {
                    path: "postgresql://ledger".into(),
                    message: "FATAL: sorry, too many clients already".into(),
                });
            }
            self.inner.summary(by, f)
        }
        fn export(
            &self,
            f: &Filter,
            each: &mut dyn FnMut(RunRecord) -> Result<(), LedgerError>,
        ) -> Result<usize, LedgerError> {
            self.inner.export(f, each)
        }
        fn import(&mut self, r: &[RunRecord]) -> Result<Imported, LedgerError> {
            self.inner.import(r)
        }
    }

    fn writer(busy: u32) -> (Writer, Arc<AtomicU32>, PathBuf, tempfile::TempDir) {
        let d = tempfile::tempdir().expect("tmp");
        let policy = d.path().join("decompute.toml");
        std::fs::write(&policy, "[project.p]\nenergy = \"1 kWh / day\"\n").expect("w");
        let asked = Arc::new(AtomicU32::new(0));
        let l = Busy {
            inner: SqliteLedger::open(&d.path().join("l.sqlite")).expect("open"),
            busy: Arc::new(AtomicU32::new(busy)),
            asked: asked.clone(),
        };
        (Writer::start(Box::new(l)), asked, policy, d)
    }

    fn answered(w: &Writer, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if !w.shared.lock().expect("lock").pending_refresh {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn a_busy_ledger_is_asked_again_with_growing_waits() {
        let (w, asked, policy, _d) = writer(2);
        let t = Instant::now();
        w.refresh(policy, "p".into());
        assert!(answered(&w, Duration::from_secs(30)), "never answered");
        // Two refusals, then the answer: after waits of 0.25 and 0.5 s.
        assert!(
            t.elapsed() >= Duration::from_millis(700),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(asked.load(Ordering::SeqCst), 3);
        let lim = w.take_limits().expect("limits after the retries");
        assert_eq!(lim.len(), 1);
        assert!(!w.shared.lock().expect("lock").refresh_failing);
    }

    #[test]
    fn a_ledger_busy_past_the_tries_leaves_the_run_its_last_standing() {
        let (w, asked, policy, _d) = writer(u32::MAX);
        w.refresh(policy.clone(), "p".into());
        assert!(answered(&w, Duration::from_secs(60)), "never gave up");
        assert_eq!(asked.load(Ordering::SeqCst), REFRESH_TRIES);
        assert!(w.take_limits().is_none());
        assert!(w.shared.lock().expect("lock").refresh_failing);
        // A broken policy file is not asked again: one read, no wait.
        std::fs::write(&policy, "[project.p]\nenergy = \"lots\"\n").expect("w");
        w.refresh(policy, "p".into());
        assert!(answered(&w, Duration::from_secs(5)));
        assert_eq!(asked.load(Ordering::SeqCst), REFRESH_TRIES);
    }

    #[test]
    fn backoff_doubles_from_a_quarter_second() {
        let waits: Vec<u128> = (1..REFRESH_TRIES)
            .map(|t| backoff(t, 0.0).as_millis())
            .collect();
        assert_eq!(waits, vec![250, 500, 1000, 2000]);
        assert_eq!(backoff(u32::MAX, 0.0), Duration::from_millis(250 * 64));
        // Spread by the process: at most half as long again, never shorter.
        assert_eq!(backoff(1, 1.0), Duration::from_millis(375));
        assert_eq!(backoff(1, 7.0), Duration::from_millis(375));
        assert!((0.0..1.0).contains(&spread()));
    }
}

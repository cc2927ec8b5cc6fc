//! The ledger as a run writes it: on a thread of its own, so a slow disk or a distant
//! database never delays a sample. The run sends what to record (start, checkpoints, how to
//! thaw, the end) and reads back, without waiting, what the ledger knows that the run needs:
//! the limits the other runs of its project have left it. A failed write is retried with the
//! next message (power rows are kept until they land) and said once; the measurement never
//! stops for it.

use crate::govern::budget::Share;
use crate::ledger::{Ledger, Monitor, RunIdentity, Status, Thaw};
use crate::report::RunReport;
use crate::sample::PowerRow;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
    for msg in rx {
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
                let limits = crate::govern::policy::load(&policy)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        crate::govern::usage::project_limits(
                            &p,
                            &project,
                            crate::timefmt::now_s() as i64,
                            l.as_ref(),
                            id.as_deref(),
                        )
                    });
                if let Ok(mut s) = shared.lock() {
                    s.pending_refresh = false;
                    match limits {
                        Ok((_, lim)) => {
                            s.limits = Some(lim);
                            s.refresh_failing = false;
                        }
                        // The run carries on under the last standing known; said once
                        // until a refresh succeeds again.
                        Err(e) if !s.refresh_failing => {
                            s.refresh_failing = true;
                            crate::say!("decompute: warning: the project budgets could not be read again ({e}); the run goes on under the last standing, asking again at the next refresh");
                        }
                        Err(_) => {}
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

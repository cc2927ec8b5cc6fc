//! The observer of a `decompute run`: it records the run in the ledger (through the writer
//! thread, never waiting on it), shows the live status line, and lets the governor limit the
//! workload, feeding it the grid signal's newest reading and the limits the other runs of
//! its project left, as the ledger thread reports them. While a project budget is near its
//! end it checkpoints every interval, so concurrent runs see each other's use promptly.

use super::{Observer, RunState};
use crate::factors::Factor;
use crate::govern::governor::{Directive, Governor, Record};
use crate::ledger::{self, RunIdentity, Thaw};
use crate::report::RunReport;
use crate::run::writer::Writer;
use crate::signal::reader::Reader;
use crate::term::Caps;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Recorder {
    pub governor: Option<Box<Governor>>,
    pub writer: Option<Writer>,
    pub identity: RunIdentity,
    pub monitor: ledger::Monitor,
    pub checkpoint: Duration,
    pub caps: Caps,
    /// Show the live line (a terminal that takes it, and not --quiet).
    pub live: bool,
    pub measured_cpu: bool,
    pub grid: Option<Reader>,
    /// Policy file and project whose budgets are re-read during the run.
    pub refresh: Option<(PathBuf, String)>,
    /// How to thaw the workload if this process dies (its cgroup, when it has one).
    pub thaw_base: Thaw,
    /// The zone's grid factor (cited when a signal priced only part of the energy).
    pub zone_grid: Factor,
    last_checkpoint: Instant,
    line_shown: bool,
}

impl Recorder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        governor: Option<Box<Governor>>,
        writer: Option<Writer>,
        identity: RunIdentity,
        monitor: ledger::Monitor,
        checkpoint: Duration,
        live: bool,
        measured_cpu: bool,
        grid: Option<Reader>,
        refresh: Option<(PathBuf, String)>,
        thaw_base: Thaw,
        zone_grid: Factor,
    ) -> Recorder {
        Recorder {
            governor,
            writer,
            identity,
            monitor,
            checkpoint,
            caps: Caps::stderr(),
            live,
            measured_cpu,
            grid,
            refresh,
            thaw_base,
            zone_grid,
            last_checkpoint: Instant::now(),
            line_shown: false,
        }
    }

    /// Clears the live line before other output.
    pub fn clear_line(&mut self) {
        if self.line_shown {
            crate::term::say_raw("\r\x1b[2K");
            self.line_shown = false;
        }
    }

    fn say(&mut self, msgs: Vec<String>) {
        if msgs.is_empty() {
            return;
        }
        self.clear_line();
        for m in msgs {
            crate::say!("decompute: {m}");
        }
    }
}

impl Recorder {
    /// What thaws the workload's cgroup if this monitor dies, when it is frozen in one.
    fn cgroup_thaw(&self) -> Option<Thaw> {
        self.thaw_base
            .cgroup
            .is_some()
            .then(|| self.thaw_base.clone())
    }
}

impl Observer for Recorder {
    fn started(&mut self, initial: &RunReport) {
        if let Some(w) = &self.writer {
            w.begin(&self.identity, self.monitor, initial, self.cgroup_thaw());
        }
        self.last_checkpoint = Instant::now();
    }

    fn tick(&mut self, st: &mut RunState, snapshot: &dyn Fn(&RunState) -> RunReport) -> Directive {
        let mut directive = Directive::Continue;
        let mut msgs = Vec::new();
        let mut fresh = false;
        let mut publish = false;
        let mut project = false;
        if let Some(g) = self.governor.as_mut() {
            if let Some(shares) = self.writer.as_ref().and_then(|w| w.take_limits()) {
                msgs.extend(g.update_project(shares));
            }
            let reading = self.grid.as_mut().and_then(|r| r.take_new());
            let (d, m) = g.tick(
                crate::timefmt::now_s(),
                st.elapsed().0,
                st.totals.workload().0,
                reading,
            );
            msgs.extend(m);
            directive = d;
            fresh = g.needs_fresh_usage();
            publish = g.publish_due();
            project = g.has_project_limits();
        }
        self.say(msgs);
        if self.live {
            let mut line = crate::render::status::line(
                st.elapsed(),
                st.workload_power(),
                st.totals.workload(),
                self.measured_cpu,
            );
            if let Some(w) = self.caps.width {
                line = crate::term::fit(&line, w.saturating_sub(1));
            }
            crate::term::say_raw(&format!("\r\x1b[2K{line}"));
            self.line_shown = true;
        }
        let due = self.last_checkpoint.elapsed() >= self.checkpoint;
        if let Some(w) = &self.writer {
            if due || fresh || publish {
                self.last_checkpoint = Instant::now();
                let rows = st.take_unsaved();
                let mut report = snapshot(st);
                report.governance = self.governor.as_ref().map(|g| g.record.clone());
                w.checkpoint(report, rows);
                if let Some(g) = self.governor.as_mut() {
                    g.published();
                }
            }
            // The other runs' use is re-read every interval while a project budget applies
            // (on the ledger thread; the answer is taken at a later tick).
            if project {
                if let Some((policy, name)) = &self.refresh {
                    w.refresh(policy.clone(), name.clone());
                }
            }
        }
        directive
    }

    fn deadline(&self) -> Option<f64> {
        self.governor.as_ref().and_then(|g| g.deadline())
    }

    fn freezing(&mut self, pids: &[(i32, u64)]) {
        if let Some(w) = &self.writer {
            let mut t = self.thaw_base.clone();
            t.pids = pids.to_vec();
            w.thaw(Some(t));
        }
    }

    fn thawed(&mut self) {
        if let Some(w) = &self.writer {
            w.thaw(self.cgroup_thaw());
        }
    }

    fn finish(&mut self, st: &RunState) -> (Option<Record>, Option<Factor>) {
        self.clear_line();
        let reading = self.grid.as_mut().and_then(|r| r.take_new());
        // The grid thread stops here: nothing more will be read.
        self.grid = None;
        let Some(g) = self.governor.as_mut() else {
            return (None, None);
        };
        let msgs = g.last(
            crate::timefmt::now_s(),
            st.elapsed().0,
            st.totals.workload().0,
            reading,
        );
        let record = g.finish(st.elapsed().0);
        let grid = g.grid_factor(&self.zone_grid);
        self.say(msgs);
        (Some(record), grid)
    }
}

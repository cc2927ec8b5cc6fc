//! Driver 1 of the sampling core: one measured run. It spawns the command (the monitor a
//! child subreaper, so the workload is the command and everything it starts, wherever it
//! re-parents), ticks the [`Sampler`] every interval — and earlier when a limit's own
//! deadline comes (a time budget, a budget that will run out at the present power, the end
//! of a grace period) — forwards SIGINT, SIGTERM and SIGHUP to the whole workload, freezes,
//! thaws and stops it as the observer directs, and assembles the report. When the command
//! exits, processes it left behind are reported (or, with `--wait-all`, followed and
//! measured until the last exits); after a signal or a budget stop they are ended too.
//! Printing and storage are left to the [`Observer`] and the caller.

pub mod recorder;
pub mod setup;
pub mod writer;

use crate::child::{self, Exit, Reaped, SpawnError};
use crate::consumer::tree::ProcessTree;
use crate::detect::Detection;
use crate::factors::{Conversion, Factor};
use crate::govern::freeze::{signal_all, Freezer};
use crate::govern::governor::{Directive, Record};
use crate::procfs::ProcRoot;
use crate::report::{self, HostInfo, Leftover, RunMeta, RunReport};
use crate::sample::{Consumer, PowerRow, PowerSeries, Totals};
use crate::sampler::Sampler;
use crate::signal::command::Helpers;
use std::ffi::OsString;
use std::time::{Duration, Instant, SystemTime};

/// At most this many power rows are kept; longer runs are stored at a coarser step.
pub const SERIES_CAP: usize = 20_000;
/// The shortest gap between two samples when a deadline comes early (no busy loop).
const MIN_GAP: Duration = Duration::from_millis(20);
/// How often a killed workload is looked at until its last process has ended.
const KILLED_LOOK: Duration = Duration::from_millis(50);

/// Where the workload stands with SIGKILL.
#[derive(Clone, Copy, PartialEq)]
enum Kill {
    /// Not asked to stop, or stopping on its own (no grace running).
    No,
    /// SIGKILL comes at this instant, when the grace ends.
    At(Instant),
    /// Sent: sent again at each tick to anything the workload started meanwhile, never in a
    /// loop that does nothing else.
    Sent,
}

pub struct RunOptions {
    pub argv: Vec<OsString>,
    pub interval: Duration,
    pub procfs_root: ProcRoot,
    /// How to freeze the workload, when something may ask for it (budgets, grid).
    pub freezer: Option<Freezer>,
    /// Follow processes the command leaves behind until the last exits.
    pub wait_all: bool,
    /// Time between SIGTERM and SIGKILL when the workload must end.
    pub grace: Duration,
    /// decompute's helper processes (never workload).
    pub helpers: Helpers,
}

pub struct RunOutcome {
    pub report: RunReport,
    /// Formula lines of each modelled source, keyed by its label, for `--explain`.
    pub model_lines: Vec<(String, Vec<String>)>,
    pub exit_code: i32,
    /// Power rows not yet handed to an observer's ledger.
    pub unsaved: Vec<PowerRow>,
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

pub use crate::host::hostname;

/// The measuring state of a run, handed to the observer at each tick.
pub struct RunState {
    pub sampler: Sampler<ProcessTree>,
    pub totals: Totals,
    pub series: PowerSeries,
    pub last_row: PowerRow,
    /// The workload's pids at the last tick.
    pub pids: Vec<i32>,
    /// Rows not yet handed to a ledger (full resolution, unlike `series`).
    unsaved: Vec<PowerRow>,
}

impl RunState {
    fn tick(&mut self, reaped: &Reaped) {
        self.sampler.consumers.add_reaped(reaped);
        let iv = self.sampler.tick();
        for s in iv.samples() {
            if matches!(s.consumer, Consumer::Host | Consumer::Workload) {
                self.totals.add(&s);
            }
        }
        let row = iv.power_row(&Consumer::Workload);
        self.series.push(row);
        self.unsaved.push(row);
        self.last_row = row;
        self.pids = iv
            .consumers
            .iter()
            .find(|c| c.usage.consumer == Consumer::Workload)
            .map(|c| c.usage.pids.clone())
            .unwrap_or_default();
    }

    /// Power rows since the last call, for a ledger checkpoint.
    pub fn take_unsaved(&mut self) -> Vec<PowerRow> {
        std::mem::take(&mut self.unsaved)
    }

    pub fn elapsed(&self) -> crate::units::Seconds {
        self.sampler.elapsed()
    }

    /// Workload power over the last interval.
    pub fn workload_power(&self) -> crate::units::Watts {
        crate::units::Watts(self.last_row.workload_w)
    }
}

/// Watches a run as it goes: a ledger records it, a live line shows it, a governor limits it.
pub trait Observer {
    /// The command has started; `initial` is the report with nothing measured yet.
    fn started(&mut self, _initial: &RunReport) {}
    /// An interval has closed. `snapshot` builds the report of the run so far.
    fn tick(
        &mut self,
        _run: &mut RunState,
        _snapshot: &dyn Fn(&RunState) -> RunReport,
    ) -> Directive {
        Directive::Continue
    }
    /// Seconds from now until the observer needs a sample (a limit's own deadline).
    fn deadline(&self) -> Option<f64> {
        None
    }
    /// The workload is about to be frozen; these processes (pid, start time) will stop.
    fn freezing(&mut self, _pids: &[(i32, u64)]) {}
    /// The workload was thawed.
    fn thawed(&mut self) {}
    /// The run is over: what governance did, and the grid factor to use instead of the
    /// zone's yearly one (a time-varying signal's energy-weighted mean).
    fn finish(&mut self, _run: &RunState) -> (Option<Record>, Option<Factor>) {
        (None, None)
    }
}

/// What is fixed once the command starts; builds reports from the run's totals.
struct Context<'a> {
    argv: Vec<String>,
    interval_s: f64,
    host: HostInfo,
    notes: Vec<String>,
    started_at: SystemTime,
    conv: &'a Conversion,
}

impl Context<'_> {
    fn report(
        &self,
        st: &RunState,
        exit: Option<Exit>,
        ended: SystemTime,
        extra_notes: Vec<String>,
        samples: Vec<PowerRow>,
        leftovers: Vec<Leftover>,
    ) -> RunReport {
        let mut notes = self.notes.clone();
        notes.extend(extra_notes);
        let meta = RunMeta {
            command: self.argv.clone(),
            exit_code: exit.map(Exit::code),
            killed_by_signal: match exit {
                Some(Exit::Signal(s)) => Some(s),
                _ => None,
            },
            interrupted_by: child::received_signal().map(signal_name),
            started_at: crate::timefmt::rfc3339(self.started_at),
            ended_at: crate::timefmt::rfc3339(ended),
            // The window the energy was measured over: up to the last closed interval, so
            // duration, samples and energy cover the same span (work done after the last
            // tick, such as writing the record, is no part of the run).
            duration_s: st.last_row.t_s,
            interval_s: self.interval_s,
            host: self.host.clone(),
            processes_followed: st.sampler.consumers.processes_seen().max(1),
            cpu_time_s: st.sampler.consumers.cpu_s(),
            notes,
            leftover_processes: leftovers,
        };
        report::build(meta, &st.totals, samples, self.conv)
    }
}

/// The host as the report describes it.
pub fn host_info(d: &Detection) -> HostInfo {
    HostInfo {
        hostname: hostname(),
        cpu_model: d.cpu.model_name.clone().unwrap_or_else(|| "unknown".into()),
        logical_cpus: d.cpu.logical_cpus,
        memory_gb: d.mem_total_bytes as f64 / (1u64 << 30) as f64,
        virtual_machine: d.cpu.hypervisor,
        gpus: d
            .gpu
            .as_ref()
            .map(|g| {
                g.devices()
                    .into_iter()
                    .map(|d| report::GpuInfo {
                        index: d.index,
                        name: d.name,
                        bus_id: d.bus_id,
                        energy_method: if d.energy_counter { "counter" } else { "power" }.into(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The workload's live processes now: its cgroup's members and the monitor's descendants.
fn workload_pids(st: &mut RunState, freezer: &Option<Freezer>) -> Vec<i32> {
    let mut pids = st.sampler.consumers.scan().pids;
    if let Some(Freezer::Cgroup(c)) = freezer {
        for p in c.pids() {
            if !pids.contains(&p) {
                pids.push(p);
            }
        }
    }
    pids
}

/// Sends `sig` to the whole workload (what the signal handler has not already reached).
fn forward(sig: i32, pids: &[i32], direct_child: i32) {
    let from_tty = child::last_from_kernel();
    // SAFETY: getpgrp has no preconditions.
    let my_group = unsafe { libc::getpgrp() };
    let targets: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|p| *p != direct_child)
        .filter(|p| {
            // A terminal already delivered it to our foreground process group.
            // SAFETY: getpgid has no memory-safety preconditions.
            !from_tty || unsafe { libc::getpgid(*p) } != my_group
        })
        .collect();
    signal_all(&targets, sig);
}

/// SIGKILLs the whole workload: through the cgroup when there is one, else pid by pid.
fn kill_all(freezer: &Option<Freezer>, pids: &[i32]) {
    if let Some(Freezer::Cgroup(c)) = freezer {
        c.kill_all();
    }
    signal_all(pids, libc::SIGKILL);
}

/// When the next interval closes: when the ticker says (`due`), or earlier when a limit's
/// deadline comes (`deadline`, seconds, reckoned from the usage at the last tick), but never
/// sooner than `MIN_GAP` after that tick. The deadline counts from the last tick, whatever
/// the time is now: counted from now, every wake-up before it pushed it on (a 1 s time
/// budget ran 2–5 s on a loaded machine).
fn next_tick(due: Instant, last_tick: Instant, deadline: Option<f64>) -> Instant {
    match deadline {
        Some(d) => {
            let d = Duration::try_from_secs_f64(d.max(0.0)).unwrap_or(Duration::MAX);
            let at = last_tick.checked_add(d).unwrap_or(due);
            due.min(at.max(last_tick + MIN_GAP))
        }
        None => due,
    }
}

/// Runs the command and measures it, telling `observer` as it goes.
pub fn execute(
    mut opts: RunOptions,
    mut detection: Detection,
    conv: &Conversion,
    observer: &mut dyn Observer,
) -> Result<RunOutcome, SpawnError> {
    let host = host_info(&detection);
    let mut notes: Vec<String> = detection.warnings.clone();
    notes.extend(conv.notes.iter().cloned());
    let me = std::process::id() as i32;
    let slots = detection.slots();
    let mut tree = ProcessTree::new(opts.procfs_root.clone(), me);
    tree.excluded = opts.helpers.pgids.clone();
    let join = match &opts.freezer {
        Some(Freezer::Cgroup(c)) => {
            tree.cgroup_dir = Some(c.dir.clone());
            Some(c.procs_file())
        }
        _ => None,
    };
    let sampler = Sampler::new(
        opts.procfs_root.clone(),
        slots,
        tree,
        detection.mem_total_bytes,
        detection.cpu.logical_cpus,
    );
    // decompute's own secrets stay with decompute: a ledger URL that holds a password is
    // not handed to the workload (a nested run finds the ledger through PGPASSWORD,
    // ~/.pgpass or the policy file instead).
    let withheld: Vec<&str> = std::env::var("DECOMPUTE_LEDGER")
        .is_ok_and(|v| crate::ledger::url_has_password(&v))
        .then_some("DECOMPUTE_LEDGER")
        .into_iter()
        .collect();
    let started_at = SystemTime::now();
    let mut running = match child::spawn(
        &opts.argv,
        join.as_deref(),
        opts.helpers.clone(),
        &withheld,
    ) {
        Ok(r) => r,
        // Joining the workload's cgroup can fail where the hierarchy forbids it (controllers
        // enabled above us): run without it and freeze with signals instead.
        Err(
            child::SpawnError::Other(..)
            | child::SpawnError::NotExecutable(_)
            | child::SpawnError::Setup(_),
        ) if join.is_some() => {
            if let Some(Freezer::Cgroup(c)) = &opts.freezer {
                c.remove();
            }
            opts.freezer = Some(Freezer::Signals);
            notes.push("could not place the workload in its own cgroup; freezing with SIGSTOP/SIGCONT instead".into());
            child::spawn(&opts.argv, None, opts.helpers.clone(), &withheld)?
        }
        Err(e) => {
            if let Some(Freezer::Cgroup(c)) = &opts.freezer {
                c.remove();
            }
            return Err(e);
        }
    };
    let mut st = RunState {
        sampler,
        totals: Totals::default(),
        series: PowerSeries::new(SERIES_CAP),
        last_row: PowerRow::default(),
        pids: vec![running.pid],
        unsaved: Vec::new(),
    };
    st.sampler.consumers.cgroup_dir = match &opts.freezer {
        Some(Freezer::Cgroup(c)) => Some(c.dir.clone()),
        _ => None,
    };
    let ctx = Context {
        argv: opts
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        interval_s: opts.interval.as_secs_f64(),
        host,
        notes,
        started_at,
        conv,
    };
    observer.started(&ctx.report(&st, None, started_at, Vec::new(), Vec::new(), Vec::new()));
    let snapshot = |s: &RunState| {
        ctx.report(
            s,
            None,
            SystemTime::now(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        )
    };
    let mut ticker = crate::ticker::Ticker::new(Instant::now(), opts.interval);
    let mut reaped = Reaped::default();
    let mut frozen = false;
    // The workload's processes stopped by the signal method (recorded for a thaw).
    let mut frozen_pids: Vec<i32> = Vec::new();
    let mut kill = Kill::No;
    let mut stop_sent = false;
    let mut seen_signals = child::signal_count();
    let mut last_tick = Instant::now();
    loop {
        let tick_at = next_tick(ticker.due(), last_tick, observer.deadline());
        let wake = match kill {
            Kill::No => tick_at,
            Kill::At(k) => tick_at.min(k),
            // Killed processes end at once; look for the last of them often, without a tick.
            Kill::Sent => tick_at.min(Instant::now() + KILLED_LOOK),
        };
        reaped.add(running.wait_until(wake));
        let count = child::signal_count();
        if count != seen_signals {
            seen_signals = count;
            if let Some(sig) = child::received_signal() {
                let pids = workload_pids(&mut st, &opts.freezer);
                if frozen {
                    // Thaw first so the signal is delivered and acted on.
                    if let Some(f) = &opts.freezer {
                        f.set(false, &pids);
                    }
                    frozen = false;
                    observer.thawed();
                }
                forward(sig, &pids, child::child_pid());
                let deadline = Instant::now().checked_add(opts.grace);
                kill = match kill {
                    Kill::No => Kill::At(deadline.unwrap_or_else(Instant::now)),
                    // A second signal: no more waiting.
                    _ => Kill::At(Instant::now()),
                };
                stop_sent = true;
            }
        }
        if let Kill::At(t) = kill {
            if Instant::now() >= t {
                let pids = workload_pids(&mut st, &opts.freezer);
                kill_all(&opts.freezer, &pids);
                kill = Kill::Sent;
            }
        }
        if running.exit().is_some() {
            let left = workload_pids(&mut st, &opts.freezer);
            if left.is_empty() || !(opts.wait_all || stop_sent) {
                break;
            }
        }
        let now = Instant::now();
        if now >= tick_at || ticker.is_due(now) {
            if kill == Kill::Sent {
                let pids = workload_pids(&mut st, &opts.freezer);
                kill_all(&opts.freezer, &pids);
            }
            st.tick(&std::mem::take(&mut reaped));
            last_tick = now;
            match observer.tick(&mut st, &snapshot) {
                Directive::Continue => {}
                Directive::Freeze if child::received_signal().is_none() => {
                    if let Some(f) = &opts.freezer {
                        let pids = workload_pids(&mut st, &opts.freezer);
                        observer.freezing(&crate::govern::freeze::with_start_times(
                            &pids,
                            &opts.procfs_root.0,
                        ));
                        f.set(true, &pids);
                        frozen_pids = pids;
                        frozen = true;
                    }
                }
                Directive::Freeze => {}
                Directive::Thaw => {
                    if let Some(f) = &opts.freezer {
                        f.set(false, &workload_pids(&mut st, &opts.freezer));
                    }
                    frozen = false;
                    observer.thawed();
                }
                Directive::Stop { grace } => {
                    let pids = workload_pids(&mut st, &opts.freezer);
                    if let Some(f) = &opts.freezer {
                        f.set(false, &pids);
                    }
                    if frozen {
                        observer.thawed();
                    }
                    frozen = false;
                    if !stop_sent {
                        signal_all(&pids, libc::SIGTERM);
                        stop_sent = true;
                        kill = Kill::At(
                            Instant::now()
                                .checked_add(grace)
                                .unwrap_or_else(Instant::now),
                        );
                    }
                }
            }
            if frozen {
                // Catch children started since the last scan (signal method), and record
                // them for whoever thaws the workload if this monitor dies: a child stopped
                // but left out of the record would keep its parent waiting forever.
                if let Some(f @ Freezer::Signals) = &opts.freezer {
                    let pids = workload_pids(&mut st, &opts.freezer);
                    f.set(true, &pids);
                    let new: Vec<i32> = pids
                        .iter()
                        .copied()
                        .filter(|p| !frozen_pids.contains(p))
                        .collect();
                    if !new.is_empty() {
                        frozen_pids.extend(new);
                        observer.freezing(&crate::govern::freeze::with_start_times(
                            &frozen_pids,
                            &opts.procfs_root.0,
                        ));
                    }
                }
            }
            if ticker.is_due(now) {
                ticker.fired(now);
            }
        }
    }
    reaped.add(running.reap());
    if frozen {
        if let Some(f) = &opts.freezer {
            f.set(false, &workload_pids(&mut st, &opts.freezer));
        }
        observer.thawed();
    }
    st.tick(&reaped);
    let exit = running.exit().unwrap_or(Exit::Code(0));
    let ended_at = SystemTime::now();
    let mut extra = Vec::new();
    // What the command left behind: reported, and moved out of its cgroup so none outlives
    // the run (they keep running, thawed; --wait-all follows them instead).
    let left = workload_pids(&mut st, &opts.freezer);
    let leftovers: Vec<Leftover> = left
        .iter()
        .map(|p| Leftover {
            pid: *p,
            command: std::fs::read_to_string(opts.procfs_root.path(&format!("{p}/comm")))
                .map(|c| c.trim().to_string())
                .unwrap_or_default(),
        })
        .collect();
    if !leftovers.is_empty() {
        extra.push(format!(
            "{} process(es) the command started were still running when it exited (pids {}); they were not measured after it; use --wait-all to follow them",
            leftovers.len(),
            left.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(Freezer::Cgroup(c)) = &opts.freezer {
        c.release();
    }
    extra.extend(st.sampler.warnings.iter().cloned());
    extra.extend(
        st.sampler
            .consumers
            .unreadable
            .iter()
            .map(|u| format!("unparsable {u}")),
    );
    let model_lines = st.sampler.model_lines();
    let (governance, grid) = observer.finish(&st);
    let conv_final;
    let ctx = match grid {
        Some(g) => {
            let mut c = conv.clone();
            c.grid = g;
            conv_final = c;
            Context {
                conv: &conv_final,
                ..ctx
            }
        }
        None => ctx,
    };
    let mut report = ctx.report(
        &st,
        Some(exit),
        ended_at,
        extra,
        st.series.rows.clone(),
        leftovers,
    );
    report.governance = governance;
    Ok(RunOutcome {
        exit_code: exit.code(),
        report,
        model_lines,
        unsaved: st.take_unsaved(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limits_deadline_counts_from_the_last_tick_not_from_now() {
        let tick = Instant::now();
        let due = tick + Duration::from_secs(5);
        // A 1 s time budget with nothing used at the last tick closes the interval 1 s after
        // it, however often the loop wakes meanwhile (the answer does not depend on now).
        assert_eq!(
            next_tick(due, tick, Some(1.0)),
            tick + Duration::from_secs(1)
        );
        // Never sooner than the shortest gap, never later than the ticker, none without one.
        assert_eq!(next_tick(due, tick, Some(0.0)), tick + MIN_GAP);
        assert_eq!(next_tick(due, tick, Some(-3.0)), tick + MIN_GAP);
        assert_eq!(next_tick(due, tick, Some(60.0)), due);
        assert_eq!(next_tick(due, tick, Some(f64::INFINITY)), due);
        assert_eq!(next_tick(due, tick, Some(f64::NAN)), tick + MIN_GAP);
        assert_eq!(next_tick(due, tick, None), due);
    }
}

//! One measured run: spawn the command, tick the monitor every interval until it exits
//! (waking early on its exit or a signal), close the final partial interval, and assemble
//! the report. Printing and storage are left to callbacks and the caller.

use crate::child::{self, Exit, SpawnError};
use crate::detect::Detection;
use crate::factors::{Conversion, Factor};
use crate::govern::freeze::{signal_all, Freezer};
use crate::govern::governor::{Directive, Record};
use crate::monitor::Monitor;
use crate::procfs::ProcRoot;
use crate::report::{self, HostInfo, RunMeta, RunReport};
use std::time::{Duration, Instant, SystemTime};

pub struct RunOptions {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub procfs_root: ProcRoot,
    /// How to freeze the workload, when something may ask for it (budgets, grid).
    pub freezer: Option<Freezer>,
}

pub struct RunOutcome {
    pub report: RunReport,
    /// Formula lines of each modelled source, keyed by its label, for `--explain`.
    pub model_lines: Vec<(String, Vec<String>)>,
    pub exit_code: i32,
    /// Power rows not yet handed to an observer's ledger.
    pub unsaved: Vec<crate::sample::PowerRow>,
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Watches a run as it goes: a ledger records it, a live line shows it, a governor limits it.
pub trait Observer {
    /// The command has started; `initial` is the report with nothing measured yet.
    fn started(&mut self, _initial: &RunReport) {}
    /// An interval has closed. `snapshot` builds the report of the run so far.
    fn tick(
        &mut self,
        _monitor: &mut Monitor,
        _snapshot: &dyn Fn(&Monitor) -> RunReport,
    ) -> Directive {
        Directive::Continue
    }
    /// The run is over: what governance did, and the grid factor to use instead of the
    /// zone's yearly one (a time-varying signal's energy-weighted mean).
    fn finish(&mut self, _monitor: &Monitor) -> (Option<Record>, Option<Factor>) {
        (None, None)
    }
}

/// What is fixed once the command starts; builds reports from the monitor's totals.
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
        m: &Monitor,
        exit: Option<Exit>,
        ended: SystemTime,
        extra_notes: Vec<String>,
        samples: Vec<crate::sample::PowerRow>,
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
            duration_s: m.elapsed().0,
            interval_s: self.interval_s,
            host: self.host.clone(),
            processes_followed: m.tree.processes_seen().max(1),
            cpu_time_s: m.tree_cpu_s(),
            notes,
        };
        report::build(meta, &m.totals, samples, self.conv)
    }
}

/// Runs the command and measures it, telling `observer` as it goes.
pub fn execute(
    mut opts: RunOptions,
    detection: Detection,
    conv: &Conversion,
    observer: &mut dyn Observer,
) -> Result<RunOutcome, SpawnError> {
    let host = HostInfo {
        hostname: hostname(),
        cpu_model: detection
            .cpu
            .model_name
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        logical_cpus: detection.cpu.logical_cpus,
        memory_gb: detection.mem_total_bytes as f64 / (1u64 << 30) as f64,
        virtual_machine: detection.cpu.hypervisor,
        gpus: detection
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
    };
    let mut notes: Vec<String> = detection.warnings.clone();
    notes.extend(conv.notes.iter().cloned());
    let me = std::process::id() as i32;
    let mut monitor = Monitor::new(detection, opts.procfs_root.clone(), me);
    let started_at = SystemTime::now();
    let join = match &opts.freezer {
        Some(Freezer::Cgroup(c)) => {
            monitor.tree.cgroup_dir = Some(c.dir.clone());
            Some(c.procs_file())
        }
        _ => None,
    };
    let mut running = match child::spawn(&opts.argv, join.as_deref()) {
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
            monitor.tree.cgroup_dir = None;
            notes.push("could not place the workload in its own cgroup; freezing with SIGSTOP/SIGCONT instead".into());
            child::spawn(&opts.argv, None)?
        }
        Err(e) => return Err(e),
    };
    let ctx = Context {
        argv: opts.argv.clone(),
        interval_s: opts.interval.as_secs_f64(),
        host,
        notes,
        started_at,
        conv,
    };
    observer.started(&ctx.report(&monitor, None, started_at, Vec::new(), Vec::new()));
    let snapshot = |m: &Monitor| ctx.report(m, None, SystemTime::now(), Vec::new(), Vec::new());
    let mut next = Instant::now() + opts.interval;
    let mut reaped = child::Reaped::default();
    let mut frozen = false;
    let mut kill_at: Option<Instant> = None;
    let mut stop_sent = false;
    let tree_pids = |m: &Monitor, r: &child::Running| {
        let mut p = m.tree_pids();
        if r.exit().is_none() && !p.contains(&r.pid) {
            p.push(r.pid);
        }
        p
    };
    loop {
        reaped.add(running.wait_until(next));
        if frozen && child::received_signal().is_some() {
            // A signal for a frozen workload: thaw first so it is delivered and acted on.
            if let Some(f) = &opts.freezer {
                f.set(false, &tree_pids(&monitor, &running));
            }
            frozen = false;
        }
        if running.exit().is_some() {
            break;
        }
        if let Some(t) = kill_at {
            if Instant::now() >= t {
                kill_tree(&opts.freezer, &tree_pids(&monitor, &running));
            }
        }
        if Instant::now() >= next {
            monitor.tick(std::mem::take(&mut reaped));
            match observer.tick(&mut monitor, &snapshot) {
                Directive::Continue => {}
                Directive::Freeze if child::received_signal().is_none() => {
                    if let Some(f) = &opts.freezer {
                        f.set(true, &tree_pids(&monitor, &running));
                        frozen = true;
                    }
                }
                Directive::Freeze => {}
                Directive::Thaw => {
                    if let Some(f) = &opts.freezer {
                        f.set(false, &tree_pids(&monitor, &running));
                    }
                    frozen = false;
                }
                Directive::Stop { grace } => {
                    let pids = tree_pids(&monitor, &running);
                    if let Some(f) = &opts.freezer {
                        f.set(false, &pids);
                    }
                    frozen = false;
                    if !stop_sent {
                        signal_all(&pids, libc::SIGTERM);
                        stop_sent = true;
                        kill_at = Some(Instant::now() + grace);
                    }
                }
            }
            if frozen {
                // Catch children started since the last scan (signal method).
                if let Some(f @ Freezer::Signals) = &opts.freezer {
                    f.set(true, &tree_pids(&monitor, &running));
                }
            }
            next += opts.interval;
            let now = Instant::now();
            if next <= now {
                next = now + opts.interval;
            }
        }
    }
    reaped.add(running.reap());
    monitor.tick(reaped);
    if let Some(deadline) = kill_at {
        // The command is gone; its tree gets the rest of the grace period, then SIGKILL.
        while !monitor.tree_pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let r = running.reap();
            monitor.tree.add_reaped(r.cpu_s, &r.pids);
            monitor.refresh_tree();
        }
        if !monitor.tree_pids().is_empty() {
            kill_tree(&opts.freezer, &monitor.tree_pids());
            std::thread::sleep(Duration::from_millis(50));
            let r = running.reap();
            monitor.tree.add_reaped(r.cpu_s, &r.pids);
            monitor.refresh_tree();
        }
    }
    if frozen {
        if let Some(f) = &opts.freezer {
            f.set(false, &monitor.tree_pids());
        }
    }
    let exit = running.exit().unwrap_or(Exit::Code(0));
    let ended_at = SystemTime::now();
    let mut extra = Vec::new();
    let live_left = monitor.last_tree_pids();
    if live_left > 0 {
        extra.push(format!("{live_left} process(es) of the tree still running after the command exited; not followed further"));
    }
    if let Some(Freezer::Cgroup(c)) = &opts.freezer {
        if !c.remove() {
            extra.push(format!(
                "cgroup {} left in place: processes of the tree still run in it",
                c.dir.display()
            ));
        }
    }
    extra.extend(monitor.warnings.iter().cloned());
    extra.extend(
        monitor
            .tree
            .unreadable
            .iter()
            .map(|u| format!("unparsable {u}")),
    );
    let model_lines = vec![
        (
            monitor.cpu_model().label().to_string(),
            monitor.cpu_model().explain(),
        ),
        (
            "model:dram-per-gb".to_string(),
            monitor.dram_model().explain(),
        ),
    ];
    let (governance, grid) = observer.finish(&monitor);
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
        &monitor,
        Some(exit),
        ended_at,
        extra,
        monitor.series.rows.clone(),
    );
    report.governance = governance;
    Ok(RunOutcome {
        exit_code: exit.code(),
        report,
        model_lines,
        unsaved: monitor.take_unsaved(),
    })
}

/// SIGKILLs the whole tree: through the cgroup when there is one (it catches everything in
/// it at once), else pid by pid.
fn kill_tree(freezer: &Option<Freezer>, pids: &[i32]) {
    match freezer {
        Some(Freezer::Cgroup(c)) => c.kill_all(),
        _ => signal_all(pids, libc::SIGKILL),
    }
}

//! One measured run: spawn the command, tick the monitor every interval until it exits
//! (waking early on its exit or a signal), close the final partial interval, and assemble
//! the report. Printing and storage are left to callbacks and the caller.

use crate::child::{self, Exit, SpawnError};
use crate::detect::Detection;
use crate::factors::Conversion;
use crate::monitor::Monitor;
use crate::procfs::ProcRoot;
use crate::report::{self, HostInfo, RunMeta, RunReport};
use crate::units::Seconds;
use std::time::{Duration, Instant, SystemTime};

pub struct RunOptions {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub procfs_root: ProcRoot,
}

pub struct RunOutcome {
    pub report: RunReport,
    /// Formula lines of each modelled source, keyed by its label, for `--explain`.
    pub model_lines: Vec<(String, Vec<String>)>,
    pub exit_code: i32,
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the command and measures it. `on_tick` sees the monitor after every interval.
pub fn execute(
    opts: &RunOptions,
    detection: Detection,
    conv: &Conversion,
    mut on_tick: impl FnMut(&Monitor),
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
    let started_at = SystemTime::now();
    let me = std::process::id() as i32;
    let mut monitor = Monitor::new(detection, opts.procfs_root.clone(), me);
    let mut running = child::spawn(&opts.argv)?;
    let mut next = Instant::now() + opts.interval;
    let mut reaped = child::Reaped::default();
    loop {
        reaped.add(running.wait_until(next));
        if running.exit().is_some() {
            break;
        }
        if Instant::now() >= next {
            monitor.tick(std::mem::take(&mut reaped));
            on_tick(&monitor);
            next += opts.interval;
            let now = Instant::now();
            if next <= now {
                next = now + opts.interval;
            }
        }
    }
    reaped.add(running.reap());
    monitor.tick(reaped);
    let exit = running.exit().unwrap_or(Exit::Code(0));
    let duration = monitor.elapsed();
    let ended_at = SystemTime::now();
    let live_left = monitor.last_tree_pids();
    if live_left > 0 {
        notes.push(format!(
            "{live_left} process(es) of the tree still running after the command exited; not followed further"
        ));
    }
    notes.extend(monitor.warnings.iter().cloned());
    notes.extend(
        monitor
            .tree
            .unreadable
            .iter()
            .map(|u| format!("unparsable {u}")),
    );
    let mut model_lines = vec![(
        monitor.cpu_model().label().to_string(),
        monitor.cpu_model().explain(),
    )];
    model_lines.push((
        "model:dram-per-gb".to_string(),
        monitor.dram_model().explain(),
    ));
    let meta = RunMeta {
        command: opts.argv.clone(),
        exit_code: exit.code(),
        killed_by_signal: match exit {
            Exit::Signal(s) => Some(s),
            Exit::Code(_) => None,
        },
        interrupted_by: child::received_signal().map(signal_name),
        started_at: crate::timefmt::rfc3339(started_at),
        ended_at: crate::timefmt::rfc3339(ended_at),
        duration_s: Seconds(duration.0).0,
        interval_s: opts.interval.as_secs_f64(),
        host,
        processes_followed: monitor.tree.processes_seen().max(1),
        cpu_time_s: monitor.tree_cpu_s(),
        notes,
    };
    let report = report::build(meta, &monitor.totals, monitor.series.rows.clone(), conv);
    Ok(RunOutcome {
        exit_code: exit.code(),
        report,
        model_lines,
    })
}

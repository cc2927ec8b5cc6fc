//! The sampling core: at each tick it reads the meters (or models), the system CPU split
//! and the workload's process tree, turns them into host and workload [`Sample`]s for the
//! interval just ended (measured on the monotonic clock, never assumed), and keeps running
//! totals and a bounded power series. No I/O beyond reading counters happens here.

use crate::attribution;
use crate::child::Reaped;
use crate::detect::{Detection, DramSource};
use crate::procfs::{stat, stat::CpuTimes, ProcRoot};
use crate::sample::{Component, Consumer, Method, PowerRow, PowerSeries, Resource, Sample, Totals};
use crate::source::cpu_model::CpuModel;
use crate::source::dram_model::DramModel;
use crate::source::nvml::{GpuBackend, GpuMeter};
use crate::source::rapl::RaplMeter;
use crate::tree::ProcessTree;
use crate::units::{Joules, Seconds, Watts};
use std::time::Instant;

/// At most this many power rows are kept; longer runs are stored at a coarser step.
pub const SERIES_CAP: usize = 20_000;

pub struct Monitor {
    proc_root: ProcRoot,
    rapl: Option<RaplMeter>,
    cpu_model: CpuModel,
    dram_model: DramModel,
    dram_source: DramSource,
    gpu: Option<GpuMeter<Box<dyn GpuBackend>>>,
    mem_total: u64,
    ncpus: f64,
    ticks_per_s: f64,
    pub tree: ProcessTree,
    start: Instant,
    last: Instant,
    last_sys: Option<CpuTimes>,
    last_tree_cpu_s: f64,
    pub totals: Totals,
    pub series: PowerSeries,
    /// Problems met while sampling, each reported once.
    pub warnings: Vec<String>,
    pub last_row: PowerRow,
    last_pids: Vec<i32>,
    /// Rows not yet handed to a ledger (full resolution, unlike `series`).
    unsaved: Vec<PowerRow>,
}

impl Monitor {
    /// Takes the baselines. `monitor_pid` is the process whose descendants are the workload.
    pub fn new(d: Detection, proc_root: ProcRoot, monitor_pid: i32) -> Monitor {
        let dram_source = d.dram_source();
        let ncpus = d.cpu.logical_cpus.max(1) as f64;
        let last_sys = proc_root.parse("stat", stat::parse).ok();
        let ncpus = last_sys.map(|s| s.cpus as f64).unwrap_or(ncpus);
        let now = Instant::now();
        let rapl = d.rapl.filter(|r| r.has_cpu() || r.has_dram());
        Monitor {
            tree: ProcessTree::new(proc_root.clone(), monitor_pid),
            proc_root,
            rapl,
            cpu_model: d.cpu_model,
            dram_model: d.dram_model,
            dram_source,
            gpu: d.gpu,
            mem_total: d.mem_total_bytes,
            ncpus,
            ticks_per_s: crate::procfs::clock_ticks_per_second(),
            start: now,
            last: now,
            last_sys,
            last_tree_cpu_s: 0.0,
            totals: Totals::default(),
            series: PowerSeries::new(SERIES_CAP),
            warnings: Vec::new(),
            last_row: PowerRow::default(),
            last_pids: Vec::new(),
            unsaved: Vec::new(),
        }
    }

    pub fn elapsed(&self) -> Seconds {
        Seconds(self.start.elapsed().as_secs_f64())
    }

    /// Labels of the sources in use, for reports: (cpu, dram).
    pub fn cpu_source(&self) -> String {
        match &self.rapl {
            Some(r) if r.has_cpu() => r.selection.cpu_label(),
            _ => self.cpu_model.label().to_string(),
        }
    }

    pub fn cpu_model(&self) -> &CpuModel {
        &self.cpu_model
    }

    pub fn dram_model(&self) -> &DramModel {
        &self.dram_model
    }

    fn warn_once(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// Closes the interval ending now. `reaped` is what tree processes reaped since the
    /// last tick used (their CPU time counts; their peak memory stands in for the resident
    /// memory of a tree that ended before it could be scanned).
    pub fn tick(&mut self, reaped: Reaped) -> Vec<Sample> {
        let now = Instant::now();
        let dt = Seconds((now - self.last).as_secs_f64());
        self.last = now;
        let t_end = Seconds((now - self.start).as_secs_f64());
        self.tree.add_reaped(reaped.cpu_s, &reaped.pids);
        let mut snap = self.tree.scan();
        snap.rss_bytes = snap.rss_bytes.max(reaped.max_rss_bytes);
        self.last_pids = snap.pids.clone();
        let tree_cpu_s = (snap.cpu_s - self.last_tree_cpu_s).max(0.0);
        self.last_tree_cpu_s = snap.cpu_s;

        let sys = match self.proc_root.parse("stat", stat::parse) {
            Ok(s) => Some(s),
            Err(e) => {
                self.warn_once(format!("{e}; CPU load taken from the workload alone"));
                None
            }
        };
        let (busy_s, total_s) = match (sys, self.last_sys) {
            (Some(a), Some(b)) => (
                a.busy.saturating_sub(b.busy) as f64 / self.ticks_per_s,
                a.total.saturating_sub(b.total) as f64 / self.ticks_per_s,
            ),
            _ => (0.0, 0.0),
        };
        if sys.is_some() {
            self.last_sys = sys;
        }
        let workload_load = if dt.0 > 0.0 {
            tree_cpu_s / (dt.0 * self.ncpus)
        } else {
            0.0
        };
        let system_load = if total_s > 0.0 { busy_s / total_s } else { 0.0 };
        let load = system_load.max(workload_load).clamp(0.0, 1.0);

        let mut samples = Vec::with_capacity(6);
        let mut push =
            |resource: Resource, method: Method, host: (Joules, Joules, Joules), share: f64| {
                let (w, _) = attribution::split(host.0, share);
                for (consumer, e, lo, hi) in [
                    (Consumer::Host, host.0, host.1, host.2),
                    (Consumer::Workload, w, host.1 * share, host.2 * share),
                ] {
                    samples.push(Sample {
                        t_end,
                        dt,
                        resource: resource.clone(),
                        consumer,
                        method,
                        energy: e,
                        low: lo,
                        high: hi,
                    });
                }
            };

        // RAPL (CPU and DRAM), falling back to the models if a counter turns unreadable.
        let mut rapl_cpu = None;
        let mut rapl_dram = None;
        if let Some(r) = &mut self.rapl {
            match r.read() {
                Ok(d) => {
                    if r.has_cpu() {
                        rapl_cpu = Some((d.cpu, r.selection.cpu_label()));
                    }
                    rapl_dram = d.dram.map(|e| (e, r.selection.dram_label()));
                }
                Err(e) => {
                    let msg = format!("{e}; switching to the models for the rest of the run");
                    self.rapl = None;
                    self.dram_source = DramSource::Model;
                    if !self.warnings.contains(&msg) {
                        self.warnings.push(msg);
                    }
                }
            }
        }
        let cpu_share = attribution::cpu_share(tree_cpu_s, busy_s);
        match rapl_cpu {
            Some((e, label)) => push(
                Resource {
                    component: Component::Cpu,
                    source: label,
                },
                Method::Measured,
                (e, e, e),
                cpu_share,
            ),
            None => push(
                Resource {
                    component: Component::Cpu,
                    source: self.cpu_model.label().into(),
                },
                Method::Modelled,
                self.cpu_model.energy(load, dt),
                cpu_share,
            ),
        }
        let mem_share = attribution::memory_share(snap.rss_bytes, self.mem_total);
        match (rapl_dram, self.dram_source) {
            (Some((e, label)), _) => push(
                Resource {
                    component: Component::Dram,
                    source: label,
                },
                Method::Measured,
                (e, e, e),
                mem_share,
            ),
            (None, DramSource::InPsys) => {}
            (None, _) => push(
                Resource {
                    component: Component::Dram,
                    source: "model:dram-per-gb".into(),
                },
                Method::Modelled,
                self.dram_model.energy(dt),
                mem_share,
            ),
        }
        if let Some(g) = &mut self.gpu {
            for gi in g.read(dt, &snap.pids) {
                let e = gi.energy;
                push(
                    Resource {
                        component: Component::Gpu,
                        source: format!("nvml:{}", gi.device.bus_id),
                    },
                    Method::Measured,
                    (e, e, e),
                    if gi.workload_holds_context { 1.0 } else { 0.0 },
                );
            }
            let errs: Vec<String> = g.errors.drain(..).collect();
            for e in errs {
                self.warn_once(e);
            }
        }
        for s in &samples {
            self.totals.add(s);
        }
        let row = PowerRow::from_samples(t_end, dt, &samples);
        self.series.push(row);
        self.unsaved.push(row);
        self.last_row = row;
        samples
    }

    /// Power rows since the last call, for a ledger checkpoint.
    pub fn take_unsaved(&mut self) -> Vec<PowerRow> {
        std::mem::take(&mut self.unsaved)
    }

    /// How many processes of the tree were alive at the last tick.
    pub fn last_tree_pids(&self) -> usize {
        self.last_pids.len()
    }

    /// The tree's pids at the last scan.
    pub fn tree_pids(&self) -> Vec<i32> {
        self.last_pids.clone()
    }

    /// Rescans the tree without closing an interval (while waiting for it to drain).
    pub fn refresh_tree(&mut self) {
        self.last_pids = self.tree.scan().pids;
    }

    /// CPU time of the whole tree so far, seconds.
    pub fn tree_cpu_s(&self) -> f64 {
        self.last_tree_cpu_s
    }

    /// Workload power over the last interval.
    pub fn workload_power(&self) -> Watts {
        Watts(self.last_row.workload_w)
    }
}

//! The sampling core shared by every driver (`run`, `serve`, the Python tracker): it owns the
//! sources, the system CPU split and the clock. Each [`Sampler::tick`] closes the interval
//! ending now (its length measured on the monotonic clock, never assumed), polls every
//! source, scans the consumers, and attributes each resource's host energy to them: CPU by
//! share of busy CPU time, DRAM by share of installed memory held, a GPU among the consumers
//! holding a context on it. What no consumer used is idle, so for every resource
//! host = Σ consumers + idle, exactly. A source that fails is covered by its fallback model
//! for that interval, retried, and replaced by the model for good after repeated failures.
//! Nothing here is process-global and nothing blocks but reading counters, so two samplers
//! can live in one process and a tick never waits on a database or a network.

use crate::consumer::{Consumers, Usage};
use crate::procfs::{stat, stat::CpuTimes, ProcRoot};
use crate::sample::{Component, Consumer, Method, PowerRow, Resource, Sample};
use crate::source::{PollContext, Reading, ShareBy, Source, SourceError};
use crate::units::{Joules, Seconds};
use std::time::Instant;

/// Failed reads in a row after which a source is replaced by its fallback for good.
pub const MAX_FAILURES: u32 = 3;

/// A source and the models that stand in for it when it fails.
pub struct Slot {
    pub source: Box<dyn Source>,
    pub fallback: Vec<Box<dyn Source>>,
    failures: u32,
}

impl Slot {
    pub fn new(source: Box<dyn Source>, fallback: Vec<Box<dyn Source>>) -> Slot {
        Slot {
            source,
            fallback,
            failures: 0,
        }
    }
}

/// One consumer's share of one resource in an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    /// Index into [`Interval::host`].
    pub resource: usize,
    pub energy: Joules,
    pub low: Joules,
    pub high: Joules,
}

/// One consumer's energy in an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerEnergy {
    pub usage: Usage,
    pub parts: Vec<Part>,
}

impl ConsumerEnergy {
    pub fn total(&self) -> Joules {
        self.parts.iter().map(|p| p.energy).sum()
    }
}

/// Everything measured and attributed over one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// End of the interval, from the sampler's start.
    pub t_end: Seconds,
    pub dt: Seconds,
    /// Busy share of all CPUs, 0–1.
    pub load: f64,
    /// The host's reading of each resource.
    pub host: Vec<Reading>,
    pub consumers: Vec<ConsumerEnergy>,
}

impl Interval {
    /// Energy of resource `i` that no consumer used: host − Σ consumers (never negative:
    /// shares are normalised so they never add up to more than the host).
    pub fn idle(&self, i: usize) -> Joules {
        let used: Joules = self
            .consumers
            .iter()
            .flat_map(|c| c.parts.iter())
            .filter(|p| p.resource == i)
            .map(|p| p.energy)
            .sum();
        self.host[i].energy - used
    }

    /// The interval as samples: host, each consumer and idle, per resource.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(self.host.len() * (self.consumers.len() + 2));
        for (i, h) in self.host.iter().enumerate() {
            let sample = |consumer, energy, low, high| Sample {
                t_end: self.t_end,
                dt: self.dt,
                resource: h.resource.clone(),
                consumer,
                method: h.method,
                energy,
                low,
                high,
            };
            out.push(sample(Consumer::Host, h.energy, h.low, h.high));
            let mut used = (Joules(0.0), Joules(0.0), Joules(0.0));
            for c in &self.consumers {
                if let Some(p) = c.parts.iter().find(|p| p.resource == i) {
                    out.push(sample(c.usage.consumer.clone(), p.energy, p.low, p.high));
                    used = (used.0 + p.energy, used.1 + p.low, used.2 + p.high);
                }
            }
            out.push(sample(
                Consumer::Idle,
                h.energy - used.0,
                h.low - used.1,
                h.high - used.2,
            ));
        }
        out
    }

    /// The power row of this interval, with `consumer`'s power as the workload column.
    pub fn power_row(&self, consumer: &Consumer) -> PowerRow {
        let dt = self.dt.0.max(1e-9);
        // Folded from +0.0: `f64::sum` of nothing is -0.0, which would be stored and shown.
        let host = |c: Component| {
            self.host
                .iter()
                .filter(|h| h.resource.component == c)
                .fold(0.0, |a, h| a + h.energy.0)
                / dt
        };
        let workload = self
            .consumers
            .iter()
            .filter(|c| &c.usage.consumer == consumer)
            .fold(0.0, |a, c| a + c.total().0)
            / dt;
        PowerRow {
            t_s: self.t_end.0,
            dt_s: self.dt.0,
            cpu_w: host(Component::Cpu),
            dram_w: host(Component::Dram),
            gpu_w: host(Component::Gpu),
            workload_w: workload,
        }
    }
}

/// Attributes one reading to consumers: the parts each receives (pure; tested by table).
pub fn attribute(
    r: &Reading,
    index: usize,
    usage: &[Usage],
    busy_s: f64,
    mem_total: u64,
) -> Vec<(usize, Part)> {
    let shares: Vec<f64> = match &r.share {
        ShareBy::CpuTime => {
            let sum: f64 = usage.iter().map(|u| u.cpu_s.max(0.0)).sum();
            // The clock-tick counters can lag a short burst: never hand out more than all.
            let denom = busy_s.max(sum);
            usage
                .iter()
                .map(|u| {
                    if denom > 0.0 {
                        u.cpu_s.max(0.0) / denom
                    } else {
                        0.0
                    }
                })
                .collect()
        }
        ShareBy::Memory => {
            let sum: f64 = usage.iter().map(|u| u.rss_bytes as f64).sum();
            let denom = (mem_total as f64).max(sum);
            usage
                .iter()
                .map(|u| {
                    if denom > 0.0 {
                        u.rss_bytes as f64 / denom
                    } else {
                        0.0
                    }
                })
                .collect()
        }
        ShareBy::Weights(weights) => {
            // Each process counts once, for the first consumer that has it.
            let mut given: Vec<i32> = Vec::new();
            usage
                .iter()
                .map(|u| {
                    let mut share = 0.0;
                    for (p, w) in weights {
                        if u.pids.contains(p) && !given.contains(p) {
                            given.push(*p);
                            share += w.clamp(0.0, 1.0);
                        }
                    }
                    f64::min(share, 1.0)
                })
                .collect()
        }
    };
    shares
        .into_iter()
        .enumerate()
        .filter(|(_, s)| *s > 0.0)
        .map(|(i, s)| {
            let s = s.clamp(0.0, 1.0);
            (
                i,
                Part {
                    resource: index,
                    energy: r.energy * s,
                    low: r.low * s,
                    high: r.high * s,
                },
            )
        })
        .collect()
}

/// The sampling core.
pub struct Sampler<C: Consumers> {
    proc_root: ProcRoot,
    slots: Vec<Slot>,
    pub consumers: C,
    mem_total: u64,
    ncpus: f64,
    ticks_per_s: f64,
    start: Instant,
    last: Instant,
    last_sys: Option<CpuTimes>,
    /// Problems met while sampling, each reported once.
    pub warnings: Vec<String>,
    /// Duration of the last tick's own work (for a daemon's self-metrics).
    pub last_tick_cost: std::time::Duration,
}

impl<C: Consumers> Sampler<C> {
    /// Takes the baselines now.
    pub fn new(
        proc_root: ProcRoot,
        slots: Vec<Slot>,
        consumers: C,
        mem_total: u64,
        logical_cpus: usize,
    ) -> Sampler<C> {
        let last_sys = proc_root.parse("stat", stat::parse).ok();
        let ncpus = last_sys.map(|s| s.cpus).unwrap_or(logical_cpus).max(1) as f64;
        let now = Instant::now();
        Sampler {
            proc_root,
            slots,
            consumers,
            mem_total,
            ncpus,
            ticks_per_s: crate::procfs::clock_ticks_per_second(),
            start: now,
            last: now,
            last_sys,
            warnings: Vec::new(),
            last_tick_cost: std::time::Duration::ZERO,
        }
    }

    pub fn elapsed(&self) -> Seconds {
        Seconds(self.start.elapsed().as_secs_f64())
    }

    /// When the sampler started (its clock's zero).
    pub fn started(&self) -> Instant {
        self.start
    }

    /// The sources now in use (after any fallback).
    pub fn sources(&self) -> impl Iterator<Item = &dyn Source> {
        self.slots.iter().map(|s| s.source.as_ref())
    }

    fn warn_once(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// Closes the interval ending now.
    pub fn tick(&mut self) -> Interval {
        let now = Instant::now();
        let dt = Seconds((now - self.last).as_secs_f64());
        self.last = now;
        let t_end = Seconds((now - self.start).as_secs_f64());
        let usage = self.consumers.scan();

        let sys = match self.proc_root.parse("stat", stat::parse) {
            Ok(s) => Some(s),
            Err(e) => {
                self.warn_once(format!("{e}; CPU load taken from the consumers alone"));
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
        let used_s: f64 = usage.iter().map(|u| u.cpu_s).sum();
        let consumer_load = if dt.0 > 0.0 {
            used_s / (dt.0 * self.ncpus)
        } else {
            0.0
        };
        let system_load = if total_s > 0.0 { busy_s / total_s } else { 0.0 };
        let load = system_load.max(consumer_load).clamp(0.0, 1.0);
        let ctx = PollContext { dt, load };

        let mut host: Vec<Reading> = Vec::new();
        let mut notes = Vec::new();
        let mut i = 0;
        while i < self.slots.len() {
            let slot = &mut self.slots[i];
            let got = slot.source.poll(&ctx);
            notes.extend(slot.source.warnings());
            match got {
                Ok(r) => {
                    slot.failures = 0;
                    host.extend(r);
                }
                Err(e) => {
                    let give_up = match &e {
                        SourceError::Baseline => false,
                        SourceError::Retry(_) => {
                            slot.failures += 1;
                            slot.failures >= MAX_FAILURES
                        }
                        SourceError::Fallback(_) | SourceError::Stop(_) => true,
                    };
                    // The fallback covers this interval in any case.
                    for f in &mut slot.fallback {
                        if let Ok(r) = f.poll(&ctx) {
                            host.extend(r);
                        }
                    }
                    match e {
                        SourceError::Retry(m) if !give_up => notes.push(format!(
                            "{m}; this interval is modelled, retrying next interval"
                        )),
                        SourceError::Baseline => {}
                        SourceError::Stop(m) => {
                            notes.push(format!("{m}; {} is no longer read", slot.source.label()))
                        }
                        SourceError::Retry(m) | SourceError::Fallback(m) => notes.push(format!(
                            "{m}; switching {} to the models for the rest of the run",
                            slot.source.label()
                        )),
                    }
                    if give_up {
                        let old = self.slots.remove(i);
                        for f in old.fallback {
                            self.slots.insert(i, Slot::new(f, Vec::new()));
                            i += 1;
                        }
                        continue;
                    }
                }
            }
            i += 1;
        }
        for n in notes {
            self.warn_once(n);
        }

        let mut consumers: Vec<ConsumerEnergy> = usage
            .into_iter()
            .map(|u| ConsumerEnergy {
                usage: u,
                parts: Vec::new(),
            })
            .collect();
        let usages: Vec<Usage> = consumers.iter().map(|c| c.usage.clone()).collect();
        for (idx, r) in host.iter().enumerate() {
            for (ci, part) in attribute(r, idx, &usages, busy_s, self.mem_total) {
                consumers[ci].parts.push(part);
            }
        }
        self.last_tick_cost = now.elapsed();
        Interval {
            t_end,
            dt,
            load,
            host,
            consumers,
        }
    }

    /// The formula lines of every modelled source in use, by label, for `--explain`.
    pub fn model_lines(&self) -> Vec<(String, Vec<String>)> {
        self.slots
            .iter()
            .map(|s| (s.source.label(), s.source.explain()))
            .filter(|(_, l)| !l.is_empty())
            .collect()
    }
}

/// Whether a reading of `component` by `method` is among `host`.
pub fn has(host: &[Reading], component: Component, method: Method) -> bool {
    host.iter()
        .any(|h| h.resource.component == component && h.method == method)
}

/// A resource label, for tests and reports.
pub fn resource(component: Component, source: &str) -> Resource {
    Resource {
        component,
        source: source.to_string(),
    }
}

/// An interval of one measured CPU package shared by cgroup consumers given as (path,
/// energy J, CPU s): a fixture for the tests of what consumes intervals (the agent's
/// counters, the Slurm accountant).
#[cfg(test)]
pub(crate) fn cgroup_interval(parts: &[(&str, f64, f64)], host: f64) -> Interval {
    Interval {
        t_end: Seconds(1.0),
        dt: Seconds(1.0),
        load: 0.5,
        host: vec![Reading {
            resource: Resource {
                component: Component::Cpu,
                source: "rapl:package-0".into(),
            },
            method: Method::Measured,
            energy: Joules(host),
            low: Joules(host),
            high: Joules(host),
            share: ShareBy::CpuTime,
        }],
        consumers: parts
            .iter()
            .map(|(p, e, cpu)| ConsumerEnergy {
                usage: Usage {
                    consumer: Consumer::Cgroup(p.to_string()),
                    cpu_s: *cpu,
                    rss_bytes: 0,
                    pids: vec![],
                },
                parts: vec![Part {
                    resource: 0,
                    energy: Joules(*e),
                    low: Joules(*e),
                    high: Joules(*e),
                }],
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu_s: f64, rss: u64, pids: &[i32]) -> Usage {
        Usage {
            consumer: Consumer::Cgroup(format!("/c{cpu_s}")),
            cpu_s,
            rss_bytes: rss,
            pids: pids.to_vec(),
        }
    }

    fn reading(share: ShareBy, e: f64) -> Reading {
        Reading {
            resource: resource(Component::Cpu, "x"),
            method: Method::Measured,
            energy: Joules(e),
            low: Joules(e),
            high: Joules(e),
            share,
        }
    }

    #[test]
    fn an_absent_component_is_plus_zero() {
        let iv = Interval {
            t_end: Seconds(1.0),
            dt: Seconds(1.0),
            load: 0.0,
            host: vec![reading(ShareBy::CpuTime, 1.0)],
            consumers: vec![],
        };
        let row = iv.power_row(&Consumer::Workload);
        assert!(row.gpu_w == 0.0 && row.gpu_w.is_sign_positive());
        assert!(row.workload_w.is_sign_positive());
    }

    #[test]
    fn shares_by_cpu_memory_and_context() {
        let u = [usage(0.5, 1 << 30, &[1]), usage(1.5, 0, &[2, 3])];
        let p = attribute(&reading(ShareBy::CpuTime, 100.0), 0, &u, 4.0, 0);
        assert_eq!(p.len(), 2);
        assert!((p[0].1.energy.0 - 12.5).abs() < 1e-12);
        assert!((p[1].1.energy.0 - 37.5).abs() < 1e-12);
        // Counters that lag: consumers used more than "busy"; they get all, never more.
        let p = attribute(&reading(ShareBy::CpuTime, 100.0), 0, &u, 1.0, 0);
        let sum: f64 = p.iter().map(|x| x.1.energy.0).sum();
        assert!((sum - 100.0).abs() < 1e-9);
        let p = attribute(&reading(ShareBy::Memory, 40.0), 0, &u, 0.0, 4 << 30);
        assert_eq!(p.len(), 1);
        assert!((p[0].1.energy.0 - 10.0).abs() < 1e-12);
        // A device by process: pid 3 (consumer 1) has 60 %, pid 9 (no consumer here, as
        // another run's process) 40 %, which stays no one's.
        let p = attribute(
            &reading(ShareBy::Weights(vec![(3, 0.6), (9, 0.4)]), 300.0),
            0,
            &u,
            0.0,
            0,
        );
        assert_eq!((p.len(), p[0].0), (1, 1));
        assert!((p[0].1.energy.0 - 180.0).abs() < 1e-9);
        // A consumer's share is the sum of its processes'.
        let p = attribute(
            &reading(
                ShareBy::Weights(vec![(1, 0.5), (2, 0.25), (3, 0.25)]),
                300.0,
            ),
            0,
            &u,
            0.0,
            0,
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1.energy, Joules(150.0));
        assert_eq!(p[1].1.energy, Joules(150.0));
        assert!(attribute(&reading(ShareBy::Weights(vec![]), 1.0), 0, &u, 0.0, 0).is_empty());
    }

    #[test]
    fn host_is_the_sum_of_consumers_and_idle() {
        let u = [usage(0.5, 1 << 30, &[1]), usage(1.5, 1 << 29, &[2])];
        let host = vec![
            reading(ShareBy::CpuTime, 100.0),
            Reading {
                resource: resource(Component::Dram, "y"),
                share: ShareBy::Memory,
                ..reading(ShareBy::Memory, 7.0)
            },
        ];
        let mut consumers: Vec<ConsumerEnergy> = u
            .iter()
            .map(|x| ConsumerEnergy {
                usage: x.clone(),
                parts: vec![],
            })
            .collect();
        for (i, r) in host.iter().enumerate() {
            for (ci, p) in attribute(r, i, &u, 3.0, 8 << 30) {
                consumers[ci].parts.push(p);
            }
        }
        let iv = Interval {
            t_end: Seconds(1.0),
            dt: Seconds(1.0),
            load: 0.5,
            host,
            consumers,
        };
        for i in 0..2 {
            let s: f64 = iv
                .samples()
                .iter()
                .filter(|s| s.consumer != Consumer::Host && s.resource == iv.host[i].resource)
                .map(|s| s.energy.0)
                .sum();
            assert!((s - iv.host[i].energy.0).abs() < 1e-9, "resource {i}: {s}");
            assert!(iv.idle(i).0 >= 0.0);
        }
        assert!((iv.idle(0).0 - 100.0 / 3.0).abs() < 1e-9);
    }

    /// A source that fails on demand, to drive the retry and fallback logic.
    struct Flaky {
        script: std::collections::VecDeque<Result<f64, SourceError>>,
    }

    impl Source for Flaky {
        fn label(&self) -> String {
            "flaky".into()
        }
        fn poll(&mut self, _: &PollContext) -> Result<Vec<Reading>, SourceError> {
            match self.script.pop_front() {
                Some(Ok(e)) => Ok(vec![reading(ShareBy::CpuTime, e)]),
                Some(Err(e)) => Err(e),
                None => Ok(vec![reading(ShareBy::CpuTime, 1.0)]),
            }
        }
    }

    struct Model;

    impl Source for Model {
        fn label(&self) -> String {
            "model".into()
        }
        fn poll(&mut self, _: &PollContext) -> Result<Vec<Reading>, SourceError> {
            Ok(vec![Reading {
                method: Method::Modelled,
                ..reading(ShareBy::CpuTime, 5.0)
            }])
        }
    }

    struct Nobody;

    impl Consumers for Nobody {
        fn scan(&mut self) -> Vec<Usage> {
            Vec::new()
        }
    }

    #[test]
    fn a_failing_source_is_covered_retried_then_replaced() {
        let retry = || Err(SourceError::Retry("read failed".into()));
        let flaky = Flaky {
            script: vec![
                Ok(10.0),
                retry(),
                Err(SourceError::Baseline),
                Ok(10.0),
                retry(),
                retry(),
                retry(),
            ]
            .into(),
        };
        let mut s = Sampler::new(
            ProcRoot::new("/nonexistent"),
            vec![Slot::new(Box::new(flaky), vec![Box::new(Model)])],
            Nobody,
            0,
            1,
        );
        let methods: Vec<Method> = (0..9).map(|_| s.tick().host[0].method).collect();
        use Method::{Measured as M, Modelled as X};
        assert_eq!(methods, vec![M, X, X, M, X, X, X, X, X]);
        assert_eq!(
            s.sources().next().map(|x| x.label()).as_deref(),
            Some("model")
        );
        assert!(s.warnings.iter().any(|w| w.contains("retrying")));
        assert!(s.warnings.iter().any(|w| w.contains("rest of the run")));
    }

    #[test]
    fn two_samplers_live_in_one_process() {
        let mk = || {
            Sampler::new(
                ProcRoot::new("/proc"),
                vec![Slot::new(Box::new(Model), vec![])],
                Nobody,
                0,
                1,
            )
        };
        let (mut a, mut b) = (mk(), mk());
        assert_eq!(a.tick().host.len(), 1);
        assert_eq!(b.tick().host.len(), 1);
        let t = std::thread::spawn(move || a.tick().host.len());
        assert_eq!(t.join().expect("thread"), 1);
    }
}

//! The one sample type of decompute: energy over one interval, for one resource (CPU
//! packages, DRAM, a GPU by bus id), charged to one consumer (the whole host, a run's
//! process tree, a cgroup, or nobody: idle), with the method (measured or modelled) and a
//! low/high band. Totals, report components, ledger rows and exported metrics are
//! projections of it.

use crate::units::{Joules, Seconds};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Cpu,
    Dram,
    Gpu,
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Component::Cpu => "cpu",
            Component::Dram => "dram",
            Component::Gpu => "gpu",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Measured,
    Modelled,
    /// Reported by another tool whose file was imported (CodeCarbon): decompute cannot say
    /// whether it was measured, so it is never counted as measured.
    Reported,
    /// Played from a script (`DECOMPUTE_NVML_SCRIPT`) for tests and demonstrations: never a
    /// measurement.
    Scripted,
    /// Estimated from what a provider reported (a hosted model's tokens): nothing of it
    /// was measured by anyone decompute can read.
    Estimated,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Measured => "measured",
            Method::Modelled => "modelled",
            Method::Reported => "reported",
            Method::Scripted => "scripted",
            Method::Estimated => "estimated",
        })
    }
}

/// Who used the energy. For every resource and interval,
/// host = Σ consumers + idle, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consumer {
    /// The whole machine (what the meter or model read).
    Host,
    /// A run's workload: the command and everything it started.
    Workload,
    /// A control group, by its path as the kernel shows it (`/system.slice/x.service`).
    Cgroup(String),
    /// Energy no consumer used in the interval (idle power, unclaimed shares).
    Idle,
}

/// The resource a sample measures: a component and the source that read it
/// (`rapl:package-0+package-1`, `model:tdp`, `nvml:0000:17:00.0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    pub component: Component,
    pub source: String,
}

/// Energy used by one consumer of one resource over one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// End of the interval, from the start of the run (monotonic clock).
    pub t_end: Seconds,
    pub dt: Seconds,
    pub resource: Resource,
    pub consumer: Consumer,
    pub method: Method,
    pub energy: Joules,
    pub low: Joules,
    pub high: Joules,
}

/// Running totals for one resource: host and workload energy with their bands.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentTotal {
    pub resource: Resource,
    pub method: Method,
    pub host: Joules,
    pub workload: Joules,
    pub low: Joules,
    pub high: Joules,
    pub host_low: Joules,
    pub host_high: Joules,
}

/// Accumulates samples into per-resource totals, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub components: Vec<ComponentTotal>,
}

impl Totals {
    pub fn add(&mut self, s: &Sample) {
        let idx = match self
            .components
            .iter()
            .position(|c| c.resource == s.resource)
        {
            Some(i) => i,
            None => {
                self.components.push(ComponentTotal {
                    resource: s.resource.clone(),
                    method: s.method,
                    host: Joules(0.0),
                    workload: Joules(0.0),
                    low: Joules(0.0),
                    high: Joules(0.0),
                    host_low: Joules(0.0),
                    host_high: Joules(0.0),
                });
                self.components.len() - 1
            }
        };
        let c = &mut self.components[idx];
        if s.method == Method::Modelled {
            c.method = Method::Modelled;
        }
        match &s.consumer {
            Consumer::Host => {
                c.host += s.energy;
                c.host_low += s.low;
                c.host_high += s.high;
            }
            Consumer::Workload => {
                c.workload += s.energy;
                c.low += s.low;
                c.high += s.high;
            }
            Consumer::Cgroup(_) | Consumer::Idle => {}
        }
    }

    pub fn host(&self) -> Joules {
        self.components.iter().map(|c| c.host).sum()
    }

    pub fn workload(&self) -> Joules {
        self.components.iter().map(|c| c.workload).sum()
    }

    pub fn workload_low(&self) -> Joules {
        self.components.iter().map(|c| c.low).sum()
    }

    pub fn workload_high(&self) -> Joules {
        self.components.iter().map(|c| c.high).sum()
    }

    /// Share of the workload's energy that was modelled rather than measured.
    pub fn modelled_share(&self) -> f64 {
        let w = self.workload().0;
        if w <= 0.0 {
            return 0.0;
        }
        self.components
            .iter()
            .filter(|c| c.method == Method::Modelled)
            .map(|c| c.workload.0)
            .sum::<f64>()
            / w
    }
}

/// Power by component over one interval: the time series kept for reports and the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PowerRow {
    pub t_s: f64,
    pub dt_s: f64,
    /// Host power per component, W (what the meters or models read).
    pub cpu_w: f64,
    pub dram_w: f64,
    pub gpu_w: f64,
    /// Power charged to the workload, all components, W.
    pub workload_w: f64,
}

impl PowerRow {
    /// Builds the row for one interval from its samples.
    pub fn from_samples(t_end: Seconds, dt: Seconds, samples: &[Sample]) -> PowerRow {
        let sum = |pred: &dyn Fn(&Sample) -> bool| -> f64 {
            samples
                .iter()
                .filter(|s| pred(s))
                .map(|s| s.energy.0)
                .sum::<f64>()
                / dt.0.max(1e-9)
        };
        PowerRow {
            t_s: t_end.0,
            dt_s: dt.0,
            cpu_w: sum(&|s| s.consumer == Consumer::Host && s.resource.component == Component::Cpu),
            dram_w: sum(&|s| {
                s.consumer == Consumer::Host && s.resource.component == Component::Dram
            }),
            gpu_w: sum(&|s| s.consumer == Consumer::Host && s.resource.component == Component::Gpu),
            workload_w: sum(&|s| s.consumer == Consumer::Workload),
        }
    }

    /// Merges two adjacent rows into one, time-weighted (energy is conserved).
    pub fn merge(a: &PowerRow, b: &PowerRow) -> PowerRow {
        let dt = a.dt_s + b.dt_s;
        let w = |x: f64, y: f64| {
            if dt > 0.0 {
                (x * a.dt_s + y * b.dt_s) / dt
            } else {
                0.0
            }
        };
        PowerRow {
            t_s: b.t_s,
            dt_s: dt,
            cpu_w: w(a.cpu_w, b.cpu_w),
            dram_w: w(a.dram_w, b.dram_w),
            gpu_w: w(a.gpu_w, b.gpu_w),
            workload_w: w(a.workload_w, b.workload_w),
        }
    }
}

/// A bounded power series: past `cap` rows, adjacent pairs are merged so a week-long run
/// keeps its whole span at a coarser step instead of growing without limit.
#[derive(Debug, Clone, Default)]
pub struct PowerSeries {
    pub rows: Vec<PowerRow>,
    cap: usize,
}

impl PowerSeries {
    pub fn new(cap: usize) -> PowerSeries {
        PowerSeries {
            rows: Vec::new(),
            cap: cap.max(2),
        }
    }

    pub fn push(&mut self, r: PowerRow) {
        self.rows.push(r);
        if self.rows.len() >= self.cap {
            self.rows = self
                .rows
                .chunks(2)
                .map(|c| {
                    if c.len() == 2 {
                        PowerRow::merge(&c[0], &c[1])
                    } else {
                        c[0]
                    }
                })
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(component: Component, consumer: Consumer, method: Method, j: f64) -> Sample {
        Sample {
            t_end: Seconds(1.0),
            dt: Seconds(1.0),
            resource: Resource {
                component,
                source: "x".into(),
            },
            consumer,
            method,
            energy: Joules(j),
            low: Joules(j * 0.5),
            high: Joules(j * 1.5),
        }
    }

    #[test]
    fn totals_and_modelled_share() {
        let mut t = Totals::default();
        for x in [
            s(Component::Cpu, Consumer::Host, Method::Modelled, 10.0),
            s(Component::Cpu, Consumer::Workload, Method::Modelled, 6.0),
            s(Component::Gpu, Consumer::Host, Method::Measured, 100.0),
            s(Component::Gpu, Consumer::Workload, Method::Measured, 94.0),
        ] {
            t.add(&x);
        }
        assert_eq!(t.host(), Joules(110.0));
        assert_eq!(t.workload(), Joules(100.0));
        assert!((t.modelled_share() - 0.06).abs() < 1e-12);
        assert_eq!(t.workload_low(), Joules(50.0));
    }

    #[test]
    fn series_decimation_conserves_energy() {
        let mut p = PowerSeries::new(4);
        let mut energy = 0.0;
        for i in 0..10 {
            let r = PowerRow {
                t_s: i as f64 + 1.0,
                dt_s: 1.0,
                cpu_w: i as f64,
                dram_w: 1.0,
                gpu_w: 0.0,
                workload_w: 2.0 * i as f64,
            };
            energy += r.cpu_w * r.dt_s;
            p.push(r);
        }
        assert!(p.rows.len() < 4);
        let kept: f64 = p.rows.iter().map(|r| r.cpu_w * r.dt_s).sum();
        assert!((kept - energy).abs() < 1e-9);
        assert_eq!(p.rows.last().map(|r| r.t_s), Some(10.0));
    }
}

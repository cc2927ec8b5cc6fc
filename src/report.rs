//! The `decompute.run/1` report: what a run cost, built from the monitor's totals and the
//! resolved conversion factors. Carbon and water are computed from the workload's energy
//! (the host's are given beside them); every component says how it was obtained.
//! The schema is documented in docs/report-schema.md.

use crate::factors::{Conversion, Factor};
use crate::sample::{Component, Method, PowerRow, Totals};
use crate::units::{GramsCo2e, Joules, Litres};
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "decompute.run/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComponentReport {
    pub component: Component,
    pub method: Method,
    pub source: String,
    pub host_energy_j: f64,
    pub workload_energy_j: f64,
    /// Band of the workload figure (equal to it when measured).
    pub low_j: f64,
    pub high_j: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnergySplit {
    pub host: f64,
    pub workload: f64,
    /// host − workload: the rest of the machine (other processes, idle).
    pub rest: f64,
    pub workload_low: f64,
    pub workload_high: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ranged {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub host: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FactorRef {
    pub value: f64,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub year: Option<u32>,
    /// Where the value came from (flag, environment, config, policy, data file, shipped
    /// table, grid signal, default). Absent in records written before it existed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub origin: Option<crate::factors::Origin>,
}

impl FactorRef {
    /// A short label for one-line summaries: the year of a table value, or its origin.
    pub fn label(&self) -> String {
        use crate::factors::Origin;
        match (&self.origin, self.year) {
            (Some(Origin::Signal(s)), _) => format!("grid signal {s}"),
            (Some(o), _) if o.given() => format!("user value, {o}"),
            (Some(Origin::DataDir(p)), Some(y)) => format!("{y}, from {p}"),
            (Some(Origin::DataDir(p)), None) => format!("from {p}"),
            (_, Some(y)) => y.to_string(),
            (Some(Origin::Default), None) => "default".into(),
            (Some(o), None) => o.to_string(),
            (None, None) => "no year".into(),
        }
    }
}

impl From<&Factor> for FactorRef {
    fn from(f: &Factor) -> FactorRef {
        FactorRef {
            value: f.value,
            source: f.source.clone(),
            year: f.year,
            origin: Some(f.origin.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FactorsUsed {
    pub zone: String,
    pub zone_name: String,
    pub grid_gco2_per_kwh: FactorRef,
    pub pue: FactorRef,
    pub wue_l_per_kwh: FactorRef,
    pub ewif_l_per_kwh: FactorRef,
    /// The cloud region the zone named (`--zone aws:eu-west-3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<crate::factors::cloud::Region>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostInfo {
    pub hostname: String,
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub memory_gb: f64,
    pub virtual_machine: bool,
    /// GPUs found through NVML (all of them, used by the workload or not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuInfo>,
}

impl HostInfo {
    /// A host as another tool's file describes it: no GPU list, not known to be virtual.
    pub fn described(
        hostname: String,
        cpu_model: String,
        logical_cpus: usize,
        memory_gb: f64,
    ) -> HostInfo {
        HostInfo {
            hostname,
            cpu_model,
            logical_cpus,
            memory_gb,
            virtual_machine: false,
            gpus: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GpuInfo {
    pub index: u32,
    pub name: String,
    pub bus_id: String,
    /// `counter` (total-energy counter) or `power` (sampled power, integrated).
    pub energy_method: String,
}

/// A process the command started that was still running when the command exited.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Leftover {
    pub pid: i32,
    pub command: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    pub schema: String,
    pub decompute_version: String,
    pub command: Vec<String>,
    /// The command's exit code; null while it runs (a checkpoint) or if it was never seen.
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub killed_by_signal: Option<i32>,
    /// A signal decompute received and forwarded (the run was interrupted).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub interrupted_by: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: f64,
    pub interval_s: f64,
    pub host: HostInfo,
    pub processes_followed: usize,
    /// CPU time (user + system) of the whole process tree, seconds.
    pub cpu_time_s: f64,
    pub components: Vec<ComponentReport>,
    pub energy_j: EnergySplit,
    /// Share of the workload's energy that is modelled, 0–1.
    pub modelled_share: f64,
    pub pue: f64,
    pub facility_energy_j: Ranged,
    pub carbon_g: Ranged,
    pub water_l: Ranged,
    pub factors: FactorsUsed,
    pub notes: Vec<String>,
    /// Processes the command started that still ran when it exited (not followed after
    /// it, unless `--wait-all` was given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftover_processes: Vec<Leftover>,
    /// Budgets, pauses and grid signal, when the run was governed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<Record>,
    /// Who ran it, where, under which id: in the `--json` report (so `ledger import` of
    /// it can fill a ledger that missed the run), not in the ledger's own copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunIdentity>,
    /// Set on a record imported from another tool's file (CodeCarbon's `emissions.csv`) or
    /// from a CSV export: which tool and version, and the row's cells as they were, so the
    /// figures are shown and exported as that tool printed them, never recomputed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<ImportedFrom>,
    pub samples: Vec<PowerRow>,
}

/// The file a record was imported from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImportedFrom {
    /// `codecarbon`, or `decompute-csv` (decompute's own CSV export).
    pub tool: String,
    /// The tool's version as the row gives it (`3.3.2`); empty if it gives none.
    pub version: String,
    /// Every cell of the row by column name, as written.
    pub cells: std::collections::BTreeMap<String, String>,
}

/// Facility energy, carbon and water of an IT energy figure.
pub fn convert(it: Joules, c: &Conversion) -> (Joules, GramsCo2e, Litres) {
    let facility = it * c.pue.value;
    let carbon = c.grid_intensity().of(facility);
    let water = c.wue().of(it) + c.ewif().of(facility);
    (facility, carbon, water)
}

/// Everything about a run except the measurements themselves.
pub struct RunMeta {
    pub command: Vec<String>,
    pub exit_code: Option<i32>,
    pub killed_by_signal: Option<i32>,
    pub interrupted_by: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: f64,
    pub interval_s: f64,
    pub host: HostInfo,
    pub processes_followed: usize,
    pub cpu_time_s: f64,
    pub notes: Vec<String>,
    pub leftover_processes: Vec<Leftover>,
}

impl RunReport {
    /// The status a finished report stands for.
    pub fn status(&self) -> Status {
        if self
            .governance
            .as_ref()
            .is_some_and(|g| g.stopped_by.is_some())
        {
            Status::StoppedByBudget
        } else if self.interrupted_by.is_some() || self.exit_code.is_none() {
            Status::Interrupted
        } else if self.exit_code == Some(0) {
            Status::Finished
        } else {
            Status::Failed
        }
    }
}

pub fn build(
    meta: RunMeta,
    totals: &Totals,
    samples: Vec<PowerRow>,
    conv: &Conversion,
) -> RunReport {
    let components = totals
        .components
        .iter()
        .map(|c| ComponentReport {
            component: c.resource.component,
            method: c.method,
            source: c.resource.source.clone(),
            host_energy_j: c.host.0,
            workload_energy_j: c.workload.0,
            low_j: c.low.0,
            high_j: c.high.0,
        })
        .collect();
    let (host, work) = (totals.host(), totals.workload());
    let (lo, hi) = (totals.workload_low(), totals.workload_high());
    let (hf, hc, hw) = convert(host, conv);
    let (wf, wc, ww) = convert(work, conv);
    let (lf, lc, lw) = convert(lo, conv);
    let (uf, uc, uw) = convert(hi, conv);
    RunReport {
        schema: SCHEMA.into(),
        decompute_version: env!("CARGO_PKG_VERSION").into(),
        command: meta.command,
        exit_code: meta.exit_code,
        killed_by_signal: meta.killed_by_signal,
        interrupted_by: meta.interrupted_by,
        started_at: meta.started_at,
        ended_at: meta.ended_at,
        duration_s: meta.duration_s,
        interval_s: meta.interval_s,
        host: meta.host,
        processes_followed: meta.processes_followed,
        cpu_time_s: meta.cpu_time_s,
        components,
        energy_j: EnergySplit {
            host: host.0,
            workload: work.0,
            rest: (host - work).0,
            workload_low: lo.0,
            workload_high: hi.0,
        },
        modelled_share: totals.modelled_share(),
        pue: conv.pue.value,
        facility_energy_j: Ranged {
            value: wf.0,
            low: lf.0,
            high: uf.0,
            host: hf.0,
        },
        carbon_g: Ranged {
            value: wc.0,
            low: lc.0,
            high: uc.0,
            host: hc.0,
        },
        water_l: Ranged {
            value: ww.0,
            low: lw.0,
            high: uw.0,
            host: hw.0,
        },
        factors: FactorsUsed {
            zone: conv.zone.clone(),
            zone_name: conv.zone_name.clone(),
            grid_gco2_per_kwh: (&conv.grid).into(),
            pue: (&conv.pue).into(),
            wue_l_per_kwh: (&conv.wue).into(),
            ewif_l_per_kwh: (&conv.ewif).into(),
            cloud: conv.cloud.clone(),
        },
        notes: meta.notes,
        leftover_processes: meta.leftover_processes,
        governance: None,
        run: None,
        imported: None,
        samples,
    }
}

/// How a run ended (or that it is still running), as the ledger keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Finished,
    Failed,
    Interrupted,
    StoppedByBudget,
    /// A Slurm job cancelled (scancel, preemption, deadline).
    Cancelled,
    /// A Slurm job that ran out of its time limit.
    TimedOut,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Finished => "finished",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::StoppedByBudget => "stopped-by-budget",
            Status::Cancelled => "cancelled",
            Status::TimedOut => "timed-out",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Running,
            Status::Finished,
            Status::Failed,
            Status::Interrupted,
            Status::StoppedByBudget,
            Status::Cancelled,
            Status::TimedOut,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// The nouns a report carries from the layers that fill them in (the governor, the ledger),
// defined here so that the report is a model that depends on nothing above it.

/// One frozen stretch of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    pub start_s: f64,
    pub end_s: f64,
    /// `grid` or `budget`.
    pub cause: String,
    pub reason: String,
    /// Carbon not emitted because the deferred work ran at a cleaner grid afterwards:
    /// deferred energy × (mean intensity while paused − intensity at resumption), never
    /// negative; zero for budget pauses and for work that resumed on a grid as dirty, g.
    pub avoided_g: f64,
}

/// The budget used against its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitUse {
    pub metric: crate::units::Metric,
    pub limit: f64,
    pub used: f64,
    /// When the limit is what a project budget had left for this run: that budget's whole
    /// amount (the limit is it less the other runs' use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_budget: Option<f64>,
}

/// What the governor did, stored in the report and the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Record {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budget: Vec<LimitUse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exceed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<LimitUse>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_signal: Option<String>,
    /// How the workload was (or would have been) frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_method: Option<String>,
    /// Energy-weighted mean intensity the carbon was computed with, g/kWh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_mean_gco2_per_kwh: Option<f64>,
    /// Share of the energy whose carbon came from the signal (the rest used the zone's
    /// yearly value, while the signal had not been read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_signal_share: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<Pause>,
    pub paused_s: f64,
    pub carbon_avoided_g: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub max_pause_reached: bool,
}

/// Who is running what, where: known when a run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub id: String,
    pub project: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub user: String,
    pub host: String,
    pub cwd: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factors::{resolve, ConversionRequest, FactorData, Given};

    #[test]
    fn conversion_chain_by_hand() {
        let d = FactorData::embedded().expect("data");
        let c = resolve(
            &d,
            &ConversionRequest {
                zone: Some(Given::flag("FR".into(), "--zone")),
                pue: Some(Given::flag("1.5".into(), "--pue")),
                wue: Some(Given::flag(2.0, "--wue")),
                ewif: Some(Given::flag(4.0, "--ewif")),
                grid_intensity: Some(Given::flag(100.0, "--grid-intensity")),
            },
        )
        .expect("factors");
        let (f, g, l) = convert(Joules::from_kwh(2.0), &c);
        assert!((f.kwh() - 3.0).abs() < 1e-12);
        assert!((g.0 - 300.0).abs() < 1e-9);
        assert!((l.0 - (2.0 * 2.0 + 3.0 * 4.0)).abs() < 1e-9);
    }
}

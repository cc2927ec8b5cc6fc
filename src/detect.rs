//! Finds what this machine can measure and decides, for each component, which source to
//! use (RAPL or the CPU model, RAPL dram or the DRAM model, NVML or nothing), recording why
//! each alternative was not taken. `decompute detect` prints this; `run` uses it.

use crate::factors::FactorData;
use crate::procfs::{cpuinfo, cpuinfo::CpuInfo, meminfo, ProcRoot};
use crate::source::cpu_model::CpuModel;
use crate::source::dram_model::DramModel;
use crate::source::nvml::{GpuBackend, GpuMeter, NvmlBackend};
use crate::source::rapl::{RaplError, RaplMeter};
use crate::units::Watts;
use std::path::PathBuf;

/// Where to look and what the user overrode.
#[derive(Debug, Clone)]
pub struct Probe {
    pub sysfs_root: PathBuf,
    pub procfs_root: PathBuf,
    pub cpu_tdp: Option<crate::factors::Given<Watts>>,
    pub gpu: bool,
}

/// The chosen sources, with notes (what was found and why not) and warnings (fallbacks a
/// user should act on, printed at the start of a run).
pub struct Detection {
    pub rapl: Option<RaplMeter>,
    pub rapl_error: Option<RaplError>,
    /// Always prepared: used for CPU when RAPL gives no CPU zone, and as a fallback if a
    /// counter becomes unreadable mid-run.
    pub cpu_model: CpuModel,
    pub dram_model: DramModel,
    pub gpu: Option<GpuMeter<Box<dyn GpuBackend>>>,
    pub cpu: CpuInfo,
    pub mem_total_bytes: u64,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

impl Detection {
    pub fn run(probe: &Probe, data: &FactorData) -> Detection {
        let proc = ProcRoot::new(&probe.procfs_root);
        let mut notes = Vec::new();
        let mut warnings = Vec::new();
        let cpu = match proc.read("cpuinfo") {
            Ok(t) => cpuinfo::parse(&t),
            Err(e) => {
                warnings.push(format!("{e}; CPU model unknown"));
                CpuInfo::default()
            }
        };
        let mem_total_bytes = match proc.parse("meminfo", meminfo::parse) {
            Ok(m) => m.total_bytes,
            Err(e) => {
                warnings.push(format!("{e}; DRAM is modelled for 0 GB"));
                0
            }
        };
        let (rapl, rapl_error) = match RaplMeter::open(&probe.sysfs_root) {
            Ok(m) => {
                notes.push(format!(
                    "RAPL: CPU {} / DRAM {}",
                    if m.has_cpu() {
                        m.selection.cpu_label()
                    } else {
                        "none".into()
                    },
                    if m.selection.psys_only {
                        "inside psys".into()
                    } else if m.has_dram() {
                        m.selection.dram_label()
                    } else {
                        "no dram zone (modelled)".into()
                    }
                ));
                notes.extend(m.selection.notes.iter().map(|n| format!("RAPL: {n}")));
                (Some(m), None)
            }
            Err(e) => {
                match &e {
                    RaplError::Absent(_) => {
                        notes.push(format!("RAPL: {e}; CPU and DRAM are modelled"))
                    }
                    _ => warnings.push(format!("{e}; falling back to the CPU model")),
                }
                (None, Some(e))
            }
        };
        let (cpu_model, w) =
            CpuModel::choose(&cpu, &data.cpu_tdp, &data.constants, probe.cpu_tdp.clone());
        if rapl.as_ref().map(|r| r.has_cpu()) != Some(true) {
            warnings.extend(w);
        }
        let dram_model = DramModel {
            gb: mem_total_bytes as f64 / (1u64 << 30) as f64,
            w_per_gb: data.constants.dram_w_per_gb.clone(),
        };
        let gpu = if !probe.gpu {
            notes.push("GPU: disabled by --no-gpu".into());
            None
        } else {
            // A scripted NVML replaces the driver when asked for (tests, demonstrations).
            let backend: Result<Box<dyn GpuBackend>, _> =
                match std::env::var_os("DECOMPUTE_NVML_SCRIPT").filter(|v| !v.is_empty()) {
                    Some(p) => crate::source::nvml_script::ScriptBackend::open(
                        std::path::Path::new(&p),
                        &probe.procfs_root,
                    )
                    .map(|b| {
                        warnings.push(format!(
                            "GPU figures are played from {}, not measured (DECOMPUTE_NVML_SCRIPT)",
                            b.label()
                        ));
                        Box::new(b) as Box<dyn GpuBackend>
                    }),
                    None => NvmlBackend::open().map(|b| Box::new(b) as Box<dyn GpuBackend>),
                };
            match backend {
                Ok(b) => {
                    let label = b.label();
                    let meter = GpuMeter::new(b);
                    let devs = meter.devices();
                    if devs.is_empty() {
                        notes.push("GPU: NVML loaded, no NVIDIA GPU present".into());
                        None
                    } else {
                        for d in &devs {
                            notes.push(format!(
                                "GPU {}: {} at {} ({}, {label})",
                                d.index,
                                d.name,
                                d.bus_id,
                                if d.energy_counter {
                                    "total-energy counter"
                                } else {
                                    "power sampling, integrated"
                                }
                            ));
                        }
                        Some(meter)
                    }
                }
                // A script the user asked for and that cannot be played is said on every run.
                Err(e @ crate::source::nvml::GpuError::Script(_)) => {
                    warnings.push(format!("GPU: {e}; no GPU component"));
                    None
                }
                Err(e) => {
                    notes.push(format!("GPU: {e}; no GPU component"));
                    None
                }
            }
        };
        Detection {
            rapl,
            rapl_error,
            cpu_model,
            dram_model,
            gpu,
            cpu,
            mem_total_bytes,
            notes,
            warnings,
        }
    }

    /// Whether CPU energy will be measured.
    pub fn cpu_measured(&self) -> bool {
        self.rapl.as_ref().is_some_and(|r| r.has_cpu())
    }

    /// The sampler's sources, each with the models that stand in for it: RAPL (CPU and
    /// DRAM, falling back to the CPU and DRAM models), else the models; NVML when present.
    /// Takes the meters out of the detection (call once).
    pub fn slots(&mut self) -> Vec<crate::sampler::Slot> {
        use crate::sampler::Slot;
        use crate::source::Source;
        let mut slots = Vec::new();
        let dram_source = self.dram_source();
        let rapl = self.rapl.take().filter(|r| r.has_cpu() || r.has_dram());
        let (rapl_cpu, rapl_dram) = rapl
            .as_ref()
            .map(|r| (r.has_cpu(), r.has_dram() || r.selection.psys_only))
            .unwrap_or((false, false));
        if let Some(r) = rapl {
            let mut fallback: Vec<Box<dyn Source>> = Vec::new();
            if rapl_cpu {
                fallback.push(Box::new(self.cpu_model.clone()));
            }
            if rapl_dram {
                fallback.push(Box::new(self.dram_model.clone()));
            }
            slots.push(Slot::new(Box::new(r), fallback));
        }
        if !rapl_cpu {
            slots.push(Slot::new(Box::new(self.cpu_model.clone()), Vec::new()));
        }
        if dram_source == DramSource::Model {
            slots.push(Slot::new(Box::new(self.dram_model.clone()), Vec::new()));
        }
        if let Some(g) = self.gpu.take() {
            slots.push(Slot::new(Box::new(g), Vec::new()));
        }
        slots
    }

    /// Whether DRAM energy is measured (or covered by psys and so not reported apart).
    pub fn dram_source(&self) -> DramSource {
        match &self.rapl {
            Some(r) if r.selection.psys_only => DramSource::InPsys,
            Some(r) if r.has_dram() => DramSource::Rapl,
            _ => DramSource::Model,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DramSource {
    Rapl,
    InPsys,
    Model,
}

//! `decompute detect`: what this machine can measure, what will be modelled, and why.

use super::{print_stdout, FactorArgs, MachineArgs};
use crate::detect::{Detection, DramSource};
use clap::Args;

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub machine: MachineArgs,
    #[command(flatten)]
    pub factors: FactorArgs,
}

pub fn main(a: DetectArgs) -> anyhow::Result<()> {
    let settings = super::settings(super::said(
        crate::settings::PolicyChoice::NotRead,
        &[&a.factors, &a.machine],
    ))?;
    let data = settings.factor_data()?;
    let d = Detection::run(&settings.probe()?, &data);
    if a.json {
        return print_stdout(&(serde_json::to_string_pretty(&json(&d))? + "\n"));
    }
    print_stdout(&render(&d))
}

/// The same facts as [`render`], as JSON (`decompute.detect/1`).
pub fn json(d: &Detection) -> serde_json::Value {
    let rapl = d.rapl.as_ref();
    let (cpu_method, cpu_source, cpu_explain) = if d.cpu_measured() {
        (
            "measured",
            rapl.map(|r| r.selection.cpu_label()).unwrap_or_default(),
            Vec::new(),
        )
    } else {
        (
            "modelled",
            d.cpu_model.label().to_string(),
            d.cpu_model.explain(),
        )
    };
    let (dram_method, dram_source, dram_explain) = match d.dram_source() {
        DramSource::Rapl => (
            "measured",
            rapl.map(|r| r.selection.dram_label()).unwrap_or_default(),
            Vec::new(),
        ),
        DramSource::InPsys => ("measured-in-psys", "psys".to_string(), Vec::new()),
        DramSource::Model => (
            "modelled",
            "model:dram-per-gb".to_string(),
            d.dram_model.explain(),
        ),
    };
    let gpus: Vec<serde_json::Value> = d
        .gpu
        .as_ref()
        .map(|g| {
            g.devices()
                .iter()
                .map(|dev| {
                    serde_json::json!({
                        "bus_id": dev.bus_id,
                        "name": dev.name,
                        "method": g.method().to_string(),
                        "source": format!("{}:{}", g.backend_label(), dev.bus_id),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "schema": "decompute.detect/1",
        "cpu_model": d.cpu.model_name,
        "logical_cpus": d.cpu.logical_cpus,
        "packages": d.cpu.packages,
        "virtual_machine": d.cpu.hypervisor,
        "memory_bytes": d.mem_total_bytes,
        "cpu": {"method": cpu_method, "source": cpu_source, "explain": cpu_explain},
        "dram": {"method": dram_method, "source": dram_source, "explain": dram_explain},
        "gpus": gpus,
        "notes": d.notes,
        "warnings": d.warnings,
    })
}

pub fn render(d: &Detection) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "machine: {} ({} logical CPUs, {} package{}{}), {:.1} GB memory\n",
        d.cpu.model_name.as_deref().unwrap_or("unknown CPU"),
        d.cpu.logical_cpus,
        d.cpu.packages,
        if d.cpu.packages == 1 { "" } else { "s" },
        if d.cpu.hypervisor {
            ", virtual machine"
        } else {
            ""
        },
        d.mem_total_bytes as f64 / (1u64 << 30) as f64
    ));
    let cpu = if d.cpu_measured() {
        format!(
            "measured ({})",
            d.rapl
                .as_ref()
                .map(|r| r.selection.cpu_label())
                .unwrap_or_default()
        )
    } else {
        format!("modelled ({})", d.cpu_model.label())
    };
    o.push_str(&format!("cpu:  {cpu}\n"));
    if !d.cpu_measured() {
        for l in d.cpu_model.explain() {
            o.push_str(&format!("      {l}\n"));
        }
    }
    let dram = match d.dram_source() {
        DramSource::Rapl => format!(
            "measured ({})",
            d.rapl
                .as_ref()
                .map(|r| r.selection.dram_label())
                .unwrap_or_default()
        ),
        DramSource::InPsys => "measured inside psys (not reported apart)".into(),
        DramSource::Model => "modelled (model:dram-per-gb)".into(),
    };
    o.push_str(&format!("dram: {dram}\n"));
    if d.dram_source() == DramSource::Model {
        for l in d.dram_model.explain() {
            o.push_str(&format!("      {l}\n"));
        }
    }
    match &d.gpu {
        Some(g) => {
            for dev in g.devices() {
                o.push_str(&format!(
                    "gpu:  {} ({}:{}) {}\n",
                    g.method(),
                    g.backend_label(),
                    dev.bus_id,
                    dev.name
                ));
            }
        }
        None => o.push_str("gpu:  none\n"),
    }
    o.push_str(
        "process tracking: /proc scan of descendants (child subreaper keeps daemonised descendants), keyed by (pid, start time)\n",
    );
    for n in &d.notes {
        o.push_str(&format!("note: {n}\n"));
    }
    for w in &d.warnings {
        o.push_str(&format!("warning: {w}\n"));
    }
    o
}

//! `decompute detect`: what this machine can measure, what will be modelled, and why.

use super::{print_stdout, FactorArgs, MachineArgs};
use crate::detect::{Detection, DramSource};
use clap::Args;

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    #[command(flatten)]
    pub factors: FactorArgs,
}

pub fn main(a: DetectArgs) -> anyhow::Result<()> {
    let cfg = a.factors.load_config()?;
    let data = a.factors.data()?;
    let d = Detection::run(&a.machine.probe(&cfg)?, &data);
    print_stdout(&render(&d))
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
                    "gpu:  measured (nvml:{}) {}\n",
                    dev.bus_id, dev.name
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

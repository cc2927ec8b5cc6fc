//! `decompute factors [ZONE]`: the conversion factors that would apply, each with its
//! source and year; `--zones` lists every zone of the shipped tables.

use super::{print_stdout, FactorArgs};
use crate::factors::{self, FactorData};
use clap::Args;

#[derive(Debug, Args)]
pub struct FactorsArgs {
    /// Zone to show (ISO 3166 code or WORLD) [default: --zone, DECOMPUTE_ZONE or WORLD]
    #[arg(value_name = "ZONE")]
    pub zone_arg: Option<String>,
    /// List every zone with its grid and water intensity
    #[arg(long)]
    pub zones: bool,
    #[command(flatten)]
    pub factors: FactorArgs,
}

pub fn main(a: FactorsArgs) -> anyhow::Result<()> {
    let data = a.factors.data()?;
    if a.zones {
        return print_stdout(&render_zones(&data));
    }
    let cfg = a.factors.load_config()?;
    let mut req = a.factors.request(&cfg);
    if let Some(z) = &a.zone_arg {
        req.zone = Some(crate::factors::Given::new(
            z.clone(),
            crate::factors::Origin::Flag("ZONE argument".into()),
        ));
    }
    let conv = factors::resolve(&data, &req)?;
    let mut o = String::new();
    o.push_str(&format!("zone {} ({})\n", conv.zone, conv.zone_name));
    let line = |name: &str, f: &factors::Factor| {
        format!("  {name:<22} {} {}  — {}\n", f.value, f.unit, f.cite())
    };
    o.push_str(&line("grid intensity", &conv.grid));
    o.push_str(&line("water (EWIF, off-site)", &conv.ewif));
    o.push_str(&line("WUE (on-site)", &conv.wue));
    o.push_str(&line("PUE", &conv.pue));
    for n in &conv.notes {
        o.push_str(&format!("  note: {n}\n"));
    }
    o.push_str("PUE presets\n");
    for p in &data.pue {
        o.push_str(&format!(
            "  {:<22} {}  — {}\n",
            p.name,
            p.factor.value,
            p.factor.cite()
        ));
    }
    let k = &data.constants;
    o.push_str("power models\n");
    o.push_str(&line("DRAM", &k.dram_w_per_gb));
    o.push_str(&line("CPU default TDP", &k.cpu_default_tdp_w));
    o.push_str(&line("vCPU min", &k.vcpu_min_w));
    o.push_str(&line("vCPU max", &k.vcpu_max_w));
    o.push_str(&format!(
        "  {:<22} {}  — {}\n",
        "CPU load curve",
        k.cpu_curve
            .iter()
            .map(|(l, f)| format!("{:.0}%→{f}", l * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
        k.cpu_curve_source.cite()
    ));
    o.push_str(&format!(
        "  {:<22} {} CPU models in data/cpu_tdp.csv (CodeCarbon, MIT)\n",
        "CPU TDP table",
        data.cpu_tdp.table().len()
    ));
    print_stdout(&o)
}

fn render_zones(data: &FactorData) -> String {
    let mut o = String::from("zone  a2  grid gCO2e/kWh (year)  water L/kWh  name\n");
    for g in data.grid.rows() {
        let w = data.water.get(&g.code).ok();
        o.push_str(&format!(
            "{:<5} {:<3} {:>8} ({})          {:<12} {}\n",
            g.code,
            g.alpha2,
            g.value,
            g.year.map(|y| y.to_string()).unwrap_or_default(),
            w.map(|w| format!(
                "{}{}",
                w.value,
                if w.basis == "world-default" { "*" } else { "" }
            ))
            .unwrap_or_else(|| "-".into()),
            g.name
        ));
    }
    o.push_str("* world value: WRI publishes none for that country\n");
    o
}

//! `decompute factors [ZONE]`: the conversion factors that would apply, each with its
//! source and year; `--zones` lists every zone of the shipped tables and every cloud region
//! they can be named by. `--json` prints either as JSON.

use super::{print_stdout, FactorArgs};
use crate::factors::{self, FactorData};
use clap::Args;

#[derive(Debug, Args)]
pub struct FactorsArgs {
    /// Zone to show (ISO 3166 code, US-XX, aws:REGION, azure:REGION, gcp:REGION or WORLD)
    /// [default: --zone, DECOMPUTE_ZONE or WORLD]
    #[arg(value_name = "ZONE")]
    pub zone_arg: Option<String>,
    /// List every zone with its grid and water intensity, and the cloud regions
    #[arg(long)]
    pub zones: bool,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub factors: FactorArgs,
}

pub fn main(a: FactorsArgs) -> anyhow::Result<()> {
    let settings = super::settings(super::said(
        crate::settings::PolicyChoice::NotRead,
        &[&a.factors],
    ))?;
    let data = settings.factor_data()?;
    if a.zones {
        if a.json {
            return print_stdout(&(serde_json::to_string_pretty(&zones_json(&data))? + "\n"));
        }
        return print_stdout(&render_zones(&data));
    }
    let mut req = settings.conversion_request();
    if let Some(z) = &a.zone_arg {
        req.zone = Some(crate::factors::Given::new(
            z.clone(),
            crate::factors::Origin::Flag("ZONE argument".into()),
        ));
    }
    let conv = factors::resolve(&data, &req)?;
    if a.json {
        let j = serde_json::json!({
            "schema": "decompute.factors/1",
            "conversion": conv,
            "pue_presets": data.pue.iter().map(|p| serde_json::json!({"name": p.name, "factor": p.factor})).collect::<Vec<_>>(),
            "power_models": {
                "dram_w_per_gb": data.constants.dram_w_per_gb,
                "cpu_default_tdp_w": data.constants.cpu_default_tdp_w,
                "vcpu_min_w": data.constants.vcpu_min_w,
                "vcpu_max_w": data.constants.vcpu_max_w,
                "cpu_curve": data.constants.cpu_curve,
                "cpu_curve_source": data.constants.cpu_curve_source,
                "cpu_tdp_models": data.cpu_tdp.table().len(),
            },
        });
        return print_stdout(&(serde_json::to_string_pretty(&j)? + "\n"));
    }
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
    o.push_str("\ncloud regions (--zone PROVIDER:REGION, or the bare region name)\n");
    for r in &data.cloud.regions {
        o.push_str(&format!(
            "{:<32} {:<6} {}\n",
            r.key(),
            r.grid_zone(),
            r.location
        ));
    }
    o.push_str("provider PUE and WUE (used unless --pue / --wue are given)\n");
    for p in &data.cloud.providers {
        let fig = |f: &Option<(f64, u32, String)>| match f {
            Some((v, y, _)) => format!("{v} ({y})"),
            None => "-".to_string(),
        };
        o.push_str(&format!(
            "{:<6} PUE {:<12} WUE {:<12} {}\n",
            p.key,
            fig(&p.pue),
            fig(&p.wue),
            p.name
        ));
    }
    o
}

fn zones_json(data: &FactorData) -> serde_json::Value {
    let zones: Vec<serde_json::Value> = data
        .grid
        .rows()
        .iter()
        .map(|g| {
            let country = match g.code.split_once('-') {
                Some((a2, _)) if g.basis == "subdivision" => a2.to_string(),
                _ => g.code.clone(),
            };
            let w = data.water.get(&country).ok();
            serde_json::json!({
                "zone": g.code,
                "alpha2": g.alpha2,
                "name": g.name,
                "grid_g_co2e_per_kwh": g.value,
                "grid_year": g.year,
                "grid_basis": g.basis,
                "water_l_per_kwh": w.as_ref().map(|w| w.value),
                "water_basis": w.as_ref().map(|w| w.basis.clone()),
            })
        })
        .collect();
    let providers: Vec<serde_json::Value> = data
        .cloud
        .providers
        .iter()
        .map(|p| {
            let fig = |f: &Option<(f64, u32, String)>| {
                f.as_ref()
                    .map(|(v, y, s)| serde_json::json!({"value": v, "year": y, "source": s}))
            };
            serde_json::json!({"provider": p.key, "name": p.name, "pue": fig(&p.pue), "wue": fig(&p.wue), "missing": p.missing})
        })
        .collect();
    serde_json::json!({
        "schema": "decompute.zones/1",
        "zones": zones,
        "cloud_regions": data.cloud.regions,
        "cloud_providers": providers,
    })
}

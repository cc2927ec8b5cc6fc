//! `--explain`: the whole chain from joules to grams and litres, with each formula, each
//! input and each factor's source and year, so any figure can be checked by hand.

use crate::report::RunReport;
use crate::units::{num, GramsCo2e, Joules, Litres};

/// Model details (formula lines per modelled source) come from the caller, which knows the
/// models used; the rest is read off the report.
pub fn render(r: &RunReport, model_lines: &[(String, Vec<String>)]) -> String {
    let j = |x: f64| Joules(x).to_string();
    let mut o = String::from("How these figures were obtained\n");
    o.push_str(&format!(
        "1. Energy by component over {} s (sampled every {} s on a monotonic clock; the last partial interval counts)\n",
        num(r.duration_s), r.interval_s
    ));
    for c in &r.components {
        o.push_str(&format!(
            "   {} [{} via {}]: host {} J, workload {} J (band {}–{} J)\n",
            c.component,
            c.method,
            c.source,
            num(c.host_energy_j),
            num(c.workload_energy_j),
            num(c.low_j),
            num(c.high_j)
        ));
        if let Some((_, lines)) = model_lines.iter().find(|(s, _)| *s == c.source) {
            for l in lines {
                o.push_str(&format!("      {l}\n"));
            }
        }
    }
    o.push_str("   Attribution to the workload, per interval:\n");
    o.push_str(
        "      cpu:  host × (workload CPU time / busy CPU time of all processes, /proc/stat)\n",
    );
    o.push_str("      dram: host × (workload resident memory / installed memory)\n");
    o.push_str("      gpu:  the device's idle floor shared by the processes holding a context, the rest by their SM utilisation; the workload's processes' shares (docs/methodology.md, \"A shared GPU\")\n");
    let e = &r.energy_j;
    o.push_str(&format!(
        "   IT energy: workload {} J + rest {} J = host {} J ({})\n",
        num(e.workload),
        num(e.rest),
        num(e.host),
        j(e.workload)
    ));
    let f = &r.factors;
    o.push_str(&format!(
        "2. Facility energy = IT × PUE = {} J × {} = {} J ({})\n   PUE {}: {}\n",
        num(e.workload),
        f.pue.value,
        num(r.facility_energy_j.value),
        j(r.facility_energy_j.value),
        f.pue.value,
        cite(&f.pue.source, f.pue.year)
    ));
    o.push_str(&format!(
        "3. Carbon = facility kWh × grid intensity = {} kWh × {} gCO2e/kWh = {} g ({})\n   grid intensity of {} ({}), location-based: {}\n",
        num(r.facility_energy_j.value / 3.6e6),
        f.grid_gco2_per_kwh.value,
        num(r.carbon_g.value),
        GramsCo2e(r.carbon_g.value),
        f.zone,
        f.zone_name,
        cite(&f.grid_gco2_per_kwh.source, f.grid_gco2_per_kwh.year)
    ));
    o.push_str(&format!(
        "4. Water = IT kWh × WUE + facility kWh × EWIF = {} × {} + {} × {} = {} L ({})\n   WUE (on-site): {}\n   EWIF (off-site, electricity generation): {}\n",
        num(e.workload / 3.6e6),
        f.wue_l_per_kwh.value,
        num(r.facility_energy_j.value / 3.6e6),
        f.ewif_l_per_kwh.value,
        num(r.water_l.value),
        Litres(r.water_l.value),
        cite(&f.wue_l_per_kwh.source, f.wue_l_per_kwh.year),
        cite(&f.ewif_l_per_kwh.source, f.ewif_l_per_kwh.year)
    ));
    o.push_str("   Bands carry the energy bands of modelled components through the same factors; the factors' own uncertainty is not included.\n");
    o
}

fn cite(source: &str, year: Option<u32>) -> String {
    match year {
        Some(y) => format!("{source} ({y})"),
        None => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::snapshot::{check, demo_records, real_record};

    #[test]
    fn the_chain_matches_its_snapshots() {
        check("explain-real.txt", &render(&real_record().report, &[]));
        let lines = vec![(
            "model:dram-per-gb".to_string(),
            vec!["P = 0.375 W per GB × 24 GB".to_string()],
        )];
        check(
            "explain-demo.txt",
            &render(&demo_records()[3].report, &lines),
        );
    }

    #[test]
    fn every_factor_is_cited_with_its_year() {
        let r = real_record().report;
        let t = render(&r, &[]);
        for f in [
            &r.factors.grid_gco2_per_kwh,
            &r.factors.pue,
            &r.factors.ewif_l_per_kwh,
        ] {
            assert!(t.contains(&f.source), "{} missing from\n{t}", f.source);
        }
        assert!(t.contains("(2023)"), "{t}");
    }
}

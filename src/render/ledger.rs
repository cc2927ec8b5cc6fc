//! Renderers for the ledger: the `list` and `summary` tables, the `show` page with a power
//! sparkline, and the CodeCarbon-compatible CSV of `export --format csv`. Pure functions of
//! ledger records; docs/ledger.md documents the CSV columns.

use crate::csvdata::{quote, text_cell};
use crate::ledger::{RunRecord, RunRow, SummaryRow};
use crate::render::summary::shell_words;
use crate::sample::{Component, PowerRow};
use crate::term::escape;
use crate::units::{GramsCo2e, Joules, Litres, Seconds, Watts, J_PER_KWH};

pub fn list(rows: &[RunRow]) -> String {
    let mut o = format!(
        "{:<26}  {:<16}  {:<19}  {:>9}  {:<17}  {:>10}  {:>13}  {:>9}  {}\n",
        "id",
        "project",
        "started (UTC)",
        "duration",
        "status",
        "energy",
        "carbon",
        "water",
        "command"
    );
    for r in rows {
        let status = match r.exit_code {
            Some(c) if c != 0 => format!("{} ({c})", r.status),
            _ => r.status.to_string(),
        };
        let mut cmd = escape(&shell_words(&r.command));
        if cmd.chars().count() > 40 {
            cmd = cmd.chars().take(39).collect::<String>() + "…";
        }
        o.push_str(&format!(
            "{:<26}  {:<16}  {:<19}  {:>9}  {:<17}  {:>10}  {:>13}  {:>9}  {}\n",
            r.id,
            truncate(&escape(&r.project), 16),
            r.started_at
                .get(..19)
                .unwrap_or(&r.started_at)
                .replace('T', " "),
            Seconds(r.duration_s).to_string(),
            status,
            format!(
                "{}{}",
                Joules(r.energy_j),
                if r.modelled_share > 0.5 { "*" } else { "" }
            ),
            GramsCo2e(r.carbon_g).to_string(),
            Litres(r.water_l).to_string(),
            cmd
        ));
    }
    if rows.iter().any(|r| r.modelled_share > 0.5) {
        o.push_str("* mostly modelled energy\n");
    }
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        s.chars().take(n - 1).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

pub fn summary(by: &str, rows: &[SummaryRow]) -> String {
    let mut o = format!(
        "{:<20}  {:>6}  {:>10}  {:>10}  {:>9}  {:>13}  {:>9}\n",
        by, "runs", "duration", "energy", "modelled", "carbon", "water"
    );
    let mut total = SummaryRow {
        key: "total".into(),
        runs: 0,
        duration_s: 0.0,
        energy_j: 0.0,
        modelled_j: 0.0,
        carbon_g: 0.0,
        water_l: 0.0,
    };
    for r in rows {
        total.runs += r.runs;
        total.duration_s += r.duration_s;
        total.energy_j += r.energy_j;
        total.modelled_j += r.modelled_j;
        total.carbon_g += r.carbon_g;
        total.water_l += r.water_l;
    }
    let line = |r: &SummaryRow| {
        format!(
            "{:<20}  {:>6}  {:>10}  {:>10}  {:>8.0}%  {:>13}  {:>9}\n",
            truncate(&escape(&r.key), 20),
            r.runs,
            Seconds(r.duration_s).to_string(),
            Joules(r.energy_j).to_string(),
            if r.energy_j > 0.0 {
                100.0 * r.modelled_j / r.energy_j
            } else {
                0.0
            },
            GramsCo2e(r.carbon_g).to_string(),
            Litres(r.water_l).to_string()
        )
    };
    for r in rows {
        o.push_str(&line(r));
    }
    if rows.len() > 1 {
        o.push_str(&line(&total));
    }
    o
}

/// A one-line chart of workload power over time, `width` characters wide.
pub fn sparkline(rows: &[PowerRow], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if rows.is_empty() || width == 0 {
        return String::new();
    }
    let total: f64 = rows.iter().map(|r| r.dt_s).sum();
    let buckets = width.min(rows.len());
    let mut energy = vec![0.0; buckets];
    let mut time = vec![0.0; buckets];
    let mut t = 0.0;
    for r in rows {
        let b = if total > 0.0 {
            ((t / total) * buckets as f64) as usize
        } else {
            0
        }
        .min(buckets - 1);
        energy[b] += (r.cpu_w + r.dram_w + r.gpu_w) * r.dt_s;
        time[b] += r.dt_s;
        t += r.dt_s;
    }
    let power: Vec<f64> = energy
        .iter()
        .zip(&time)
        .map(|(e, t)| if *t > 0.0 { e / t } else { 0.0 })
        .collect();
    let max = power.iter().cloned().fold(0.0, f64::max);
    power
        .iter()
        .map(|p| {
            if max > 0.0 {
                BARS[((p / max) * 7.0).round() as usize]
            } else {
                BARS[0]
            }
        })
        .collect()
}

pub fn show(r: &RunRecord) -> String {
    let p = &r.report;
    let id = &r.identity;
    let mut o = format!("run {}  ({})\n", id.id, r.status);
    o.push_str(&format!("  project   {}\n", escape(&id.project)));
    if !id.tags.is_empty() {
        o.push_str(&format!(
            "  tags      {}\n",
            id.tags
                .iter()
                .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    o.push_str(&format!(
        "  command   {}\n  in        {}\n",
        escape(&shell_words(&p.command)),
        escape(&id.cwd)
    ));
    o.push_str(&format!(
        "  by        {} on {} ({}, {} CPUs{})\n",
        escape(&id.user),
        escape(&id.host),
        escape(&p.host.cpu_model),
        p.host.logical_cpus,
        if p.host.virtual_machine { ", VM" } else { "" }
    ));
    o.push_str(&format!(
        "  started   {}\n  ended     {}\n  duration  {}   exit {}\n",
        p.started_at,
        p.ended_at,
        Seconds(p.duration_s),
        p.exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "unknown".into())
    ));
    o.push_str("  energy    component  method    workload        host          source\n");
    for c in &p.components {
        o.push_str(&format!(
            "            {:<9}  {:<8}  {:<14}  {:<12}  {}\n",
            c.component.to_string(),
            c.method.to_string(),
            Joules(c.workload_energy_j).to_string(),
            Joules(c.host_energy_j).to_string(),
            c.source
        ));
    }
    o.push_str(&format!(
        "  total     {} (band {}–{}), host {}, {:.0} % modelled\n",
        Joules(p.energy_j.workload),
        Joules(p.energy_j.workload_low),
        Joules(p.energy_j.workload_high),
        Joules(p.energy_j.host),
        p.modelled_share * 100.0
    ));
    o.push_str(&format!(
        "  carbon    {}   water {}\n",
        GramsCo2e(p.carbon_g.value),
        Litres(p.water_l.value)
    ));
    if let Some((flop, how)) = crate::estimate::run_flop(&id.tags) {
        let models = crate::estimate::models::embedded();
        o.push_str(&format!(
            "  compute   {flop:.2e} FLOP ({how}): {}\n",
            crate::estimate::models::compare(flop, &models)
        ));
    }
    let f = &p.factors;
    o.push_str(&format!("  factors   zone {} ({})\n", f.zone, f.zone_name));
    for (name, x) in [
        ("grid gCO2e/kWh", &f.grid_gco2_per_kwh),
        ("PUE", &f.pue),
        ("WUE L/kWh", &f.wue_l_per_kwh),
        ("EWIF L/kWh", &f.ewif_l_per_kwh),
    ] {
        o.push_str(&format!(
            "            {:<15} {:<8} {}{}\n",
            name,
            x.value,
            x.source,
            x.year.map(|y| format!(" ({y})")).unwrap_or_default()
        ));
    }
    if !p.samples.is_empty() {
        let peak = p
            .samples
            .iter()
            .map(|s| s.cpu_w + s.dram_w + s.gpu_w)
            .fold(0.0, f64::max);
        o.push_str(&format!(
            "  power     {}  host, peak {}\n",
            sparkline(&p.samples, 60),
            Watts(peak)
        ));
    }
    if let Some(g) = &p.governance {
        for l in crate::render::summary::governance_lines(g) {
            o.push_str(&format!("  limits    {l}\n"));
        }
        for pause in &g.pauses {
            o.push_str(&format!(
                "  pause     {:.1}–{:.1} s, {}: {}\n",
                pause.start_s, pause.end_s, pause.cause, pause.reason
            ));
        }
    }
    for n in &p.notes {
        o.push_str(&format!("  note      {}\n", escape(n)));
    }
    o
}

/// The CSV header: CodeCarbon's `emissions.csv` columns in its order and units, then ours.
pub const CSV_COLUMNS: &[&str] = &[
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
    // decompute's own
    "status",
    "exit_code",
    "user",
    "host",
    "command",
    "host_energy_consumed",
    "energy_low",
    "energy_high",
    "modelled_share",
    "cpu_method",
    "cpu_source",
    "grid_intensity_g_per_kwh",
    "grid_intensity_source",
    "ewif_l_per_kwh",
    "tags",
    "decompute_version",
];

fn kwh(j: f64) -> f64 {
    j / J_PER_KWH
}

/// One CSV line for a record (no trailing newline).
pub fn csv_row(r: &RunRecord) -> String {
    let p = &r.report;
    let comp = |c: Component| {
        p.components
            .iter()
            .filter(|x| x.component == c)
            .fold(0.0, |a, x| a + x.workload_energy_j)
    };
    let avg_w = |j: f64| {
        if p.duration_s > 0.0 {
            j / p.duration_s
        } else {
            0.0
        }
    };
    let (cpu_j, gpu_j, ram_j) = (
        comp(Component::Cpu),
        comp(Component::Gpu),
        comp(Component::Dram),
    );
    let cpu = p.components.iter().find(|c| c.component == Component::Cpu);
    let gpu_models: Vec<&str> = p.host.gpus.iter().map(|g| g.name.as_str()).collect();
    let emissions_kg = p.carbon_g.value / 1000.0;
    let cells: Vec<String> = vec![
        p.ended_at.clone(),
        text_cell(&r.identity.project),
        text_cell(&r.identity.id),
        String::new(),
        p.duration_s.to_string(),
        emissions_kg.to_string(),
        (if p.duration_s > 0.0 {
            emissions_kg / p.duration_s
        } else {
            0.0
        })
        .to_string(),
        avg_w(cpu_j).to_string(),
        avg_w(gpu_j).to_string(),
        avg_w(ram_j).to_string(),
        kwh(cpu_j).to_string(),
        kwh(gpu_j).to_string(),
        kwh(ram_j).to_string(),
        kwh(p.energy_j.workload).to_string(),
        p.water_l.value.to_string(),
        text_cell(&p.factors.zone_name),
        text_cell(&p.factors.zone),
        String::new(),
        String::new(),
        String::new(),
        std::env::consts::OS.to_string(),
        String::new(),
        String::new(),
        p.host.logical_cpus.to_string(),
        text_cell(&p.host.cpu_model),
        p.host.gpus.len().to_string(),
        text_cell(&gpu_models.join(", ")),
        String::new(),
        String::new(),
        p.host.memory_gb.to_string(),
        "process".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        "N".into(),
        p.pue.to_string(),
        p.factors.wue_l_per_kwh.value.to_string(),
        r.status.to_string(),
        p.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        text_cell(&r.identity.user),
        text_cell(&r.identity.host),
        text_cell(&shell_words(&p.command)),
        kwh(p.energy_j.host).to_string(),
        kwh(p.energy_j.workload_low).to_string(),
        kwh(p.energy_j.workload_high).to_string(),
        p.modelled_share.to_string(),
        cpu.map(|c| c.method.to_string()).unwrap_or_default(),
        text_cell(&cpu.map(|c| c.source.clone()).unwrap_or_default()),
        p.factors.grid_gco2_per_kwh.value.to_string(),
        text_cell(&p.factors.grid_gco2_per_kwh.source),
        p.factors.ewif_l_per_kwh.value.to_string(),
        // A JSON object: any key or value (commas, semicolons, '=') reads back exactly.
        if r.identity.tags.is_empty() {
            String::new()
        } else {
            text_cell(&serde_json::to_string(&r.identity.tags).unwrap_or_default())
        },
        p.decompute_version.clone(),
    ];
    cells
        .iter()
        .map(|c| {
            // Text cells are already made safe; the rest are numbers or fixed words.
            if c.starts_with(['"', '\'']) {
                c.clone()
            } else {
                quote(c)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn csv_header() -> String {
    CSV_COLUMNS.join(",")
}

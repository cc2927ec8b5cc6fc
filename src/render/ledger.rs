//! Renderers for the ledger: the `list` and `summary` tables, the `show` page with a power
//! sparkline. Pure functions of ledger records.

use crate::ledger::{RunRecord, RunRow, SummaryRow};
use crate::render::summary::shell_words;
use crate::sample::PowerRow;
use crate::term::escape;
use crate::units::{GramsCo2e, Joules, Litres, Seconds, Watts};

pub fn list(rows: &[RunRow]) -> String {
    // Run ids are ULIDs (26), or an imported tool's own (CodeCarbon's UUIDs, 36).
    let w = rows
        .iter()
        .map(|r| r.id.chars().count())
        .max()
        .unwrap_or(0)
        .max(26);
    let mut o = format!(
        "{:<w$}  {:<16}  {:<19}  {:>9}  {:<17}  {:>10}  {:>13}  {:>9}  {}\n",
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
        let mut cmd = if r.command.is_empty() {
            "(imported: no command)".to_string()
        } else {
            escape(&shell_words(&r.command))
        };
        if cmd.chars().count() > 40 {
            cmd = cmd.chars().take(39).collect::<String>() + "…";
        }
        o.push_str(&format!(
            "{:<w$}  {:<16}  {:<19}  {:>9}  {:<17}  {:>10}  {:>13}  {:>9}  {}\n",
            escape(&r.id),
            truncate(&escape(&r.project), 16),
            r.started_at
                .get(..19)
                .unwrap_or(&r.started_at)
                .replace('T', " "),
            Seconds(r.duration_s).to_string(),
            status,
            format!("{}{}", Joules(r.energy_j), mark(r)),
            GramsCo2e(r.carbon_g).to_string(),
            Litres(r.water_l).to_string(),
            cmd
        ));
    }
    if rows.iter().any(|r| mark(r) == "*") {
        o.push_str(
            "* mostly not measured by decompute (modelled, or reported by an imported tool)\n",
        );
    }
    if rows.iter().any(|r| mark(r) == "~") {
        o.push_str("~ a hosted-AI request, estimated from its tokens (the provider's data centre; not a measurement)\n");
    }
    if rows.iter().any(|r| mark(r) == "^") {
        o.push_str("^ a whole machine's figures, imported (not one workload's)\n");
    }
    o
}

/// The mark after a row's energy: `~` estimated hosted-AI use, `^` imported whole-machine
/// figures, `*` mostly not measured by decompute.
fn mark(r: &RunRow) -> &'static str {
    match r.scope.as_str() {
        crate::ledger::ESTIMATED_SCOPE => "~",
        crate::ledger::MACHINE_SCOPE => "^",
        _ if r.modelled_share > 0.5 => "*",
        _ => "",
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        s.chars().take(n - 1).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

/// `ledger summary --format csv`: one row per group, SI units named in the header.
pub fn summary_csv(by: &str, rows: &[SummaryRow]) -> String {
    let mut o = format!(
        "{},runs,duration_s,energy_j,modelled_j,carbon_g,water_l,scope\n",
        crate::csvdata::quote(by)
    );
    for r in rows {
        o.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            crate::csvdata::text_cell(&r.key),
            r.runs,
            r.duration_s,
            r.energy_j,
            r.modelled_j,
            r.carbon_g,
            r.water_l,
            r.scope
        ));
    }
    o
}

pub fn summary(by: &str, rows: &[SummaryRow]) -> String {
    let head = |by: &str| {
        format!(
            "{:<20}  {:>6}  {:>10}  {:>10}  {:>9}  {:>13}  {:>9}\n",
            by, "runs", "duration", "energy", "modelled", "carbon", "water"
        )
    };
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
    let section = |rows: &[&SummaryRow]| {
        let mut o = String::new();
        let mut total = SummaryRow {
            key: "total".into(),
            scope: String::new(),
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
            o.push_str(&line(r));
        }
        if rows.len() > 1 {
            o.push_str(&line(&total));
        }
        o
    };
    let (machine, rest): (Vec<&SummaryRow>, Vec<&SummaryRow>) = rows
        .iter()
        .partition(|r| r.scope == crate::ledger::MACHINE_SCOPE);
    let (estimated, workload): (Vec<&SummaryRow>, Vec<&SummaryRow>) = rest
        .into_iter()
        .partition(|r| r.scope == crate::ledger::ESTIMATED_SCOPE);
    let mut o = head(by);
    if !workload.is_empty() || (machine.is_empty() && estimated.is_empty()) {
        o.push_str(&section(&workload));
    } else {
        o.push_str("(no measured runs)\n");
    }
    if !machine.is_empty() {
        // Another tool's whole-machine figures are not a workload's: never in the total above.
        o.push_str(&format!(
            "\nwhole machine, imported (another tool's machine-level figures: not added to the workloads above)\n{}{}",
            head(by),
            section(&machine)
        ));
    }
    if !estimated.is_empty() {
        // Requests to hosted models: estimated from tokens, not measured; apart.
        o.push_str(&format!(
            "\nhosted AI requests, estimated (from each response's tokens and the model's size; provider's data centre, PUE included: not added to the workloads above)\n{}{}",
            head(by),
            section(&estimated)
        ));
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
    let reported = p
        .components
        .iter()
        .any(|c| c.method == crate::sample::Method::Reported);
    o.push_str(&format!(
        "  total     {} (band {}–{}), host {}, {:.0} % {}\n",
        Joules(p.energy_j.workload),
        Joules(p.energy_j.workload_low),
        Joules(p.energy_j.workload_high),
        Joules(p.energy_j.host),
        p.modelled_share * 100.0,
        if reported {
            "not measured by decompute (reported by the imported tool)"
        } else {
            "modelled"
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Status;
    use crate::render::snapshot::{check, demo_records, real_record};

    fn row(r: &RunRecord) -> RunRow {
        RunRow {
            id: r.identity.id.clone(),
            project: r.identity.project.clone(),
            started_at: r.report.started_at.clone(),
            duration_s: r.report.duration_s,
            status: r.status,
            exit_code: r.report.exit_code,
            energy_j: r.report.energy_j.workload,
            modelled_share: r.report.modelled_share,
            carbon_g: r.report.carbon_g.value,
            water_l: r.report.water_l.value,
            command: r.report.command.clone(),
            scope: r
                .identity
                .tags
                .get(crate::ledger::SCOPE_TAG)
                .cloned()
                .unwrap_or_else(|| "workload".into()),
        }
    }

    #[test]
    fn list_show_and_summary_match_their_snapshots() {
        let recs = demo_records();
        let rows: Vec<RunRow> = recs.iter().take(6).map(row).collect();
        check("ledger-list.txt", &list(&rows));
        check("ledger-show-real.txt", &show(&real_record()));
        check("ledger-show-paused.txt", &show(&recs[0]));
        let by = |p: &str| {
            let of: Vec<&RunRecord> = recs.iter().filter(|r| r.identity.project == p).collect();
            let sum = |f: fn(&RunRecord) -> f64| of.iter().map(|r| f(r)).sum();
            SummaryRow {
                key: p.into(),
                scope: "workload".into(),
                runs: of.len() as u64,
                duration_s: sum(|r| r.report.duration_s),
                energy_j: sum(|r| r.report.energy_j.workload),
                modelled_j: 0.0,
                carbon_g: sum(|r| r.report.carbon_g.value),
                water_l: 0.5,
            }
        };
        // Whole-machine figures imported from CodeCarbon: a section of their own.
        let machine = SummaryRow {
            scope: crate::ledger::MACHINE_SCOPE.into(),
            ..by("eval")
        };
        let sums = vec![by("ci"), by("eval"), by("llm-finetune"), machine];
        check("ledger-summary.txt", &summary("project", &sums));
        check("ledger-summary.csv", &summary_csv("project", &sums));
    }

    #[test]
    fn hostile_text_is_escaped_and_nothing_is_lost() {
        let mut r = real_record();
        r.identity.project = "evil\u{1b}[2J".into();
        r.report.command = vec!["printf".into(), "\u{1b}]0;pwned\u{7}".into()];
        r.status = Status::Failed;
        let s = show(&r);
        assert!(!s.contains('\u{1b}') && !s.contains('\u{7}'), "{s}");
        let l = list(&[row(&r)]);
        assert!(!l.contains('\u{1b}'), "{l}");
        assert!(l.contains(&r.identity.id), "{l}");
        // A sparkline of nothing is empty, of a flat line flat.
        assert_eq!(sparkline(&[], 10), "");
    }
}

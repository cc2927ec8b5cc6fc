//! `decompute report --html`: one self-contained HTML page (inline SVG and CSS, no script,
//! no external request, A4 print styles) for people who will not read a terminal. A pure
//! function from ledger records and budget standings to text: the caller reads the ledger
//! and the policy, this module only decides what the page says and how it looks. Figures use
//! the terminal's units and rounding; every chart has a title, axis titles with units, a
//! source line, a text alternative and a table of the same figures.

use super::svg::{self, esc, Bars, Lines, Quantity};
use crate::ledger::RunRecord;
use crate::units::{GramsCo2e, Joules, Litres, Seconds};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The Content-Security-Policy of every page: nothing may be fetched, no script may run.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = "
body{font-family:sans-serif;color:#111;max-width:190mm;margin:0 auto;padding:12px;line-height:1.4}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 6px;border-bottom:1px solid #ccc}
.meta{color:#444;font-size:12px}
table{border-collapse:collapse;font-size:12px;margin:6px 0;width:100%}
th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{border:1px solid #ccc;border-radius:4px;padding:6px 10px;min-width:150px}
.card b{display:block;font-size:18px}
.card span{font-size:11px;color:#444}
svg.chart{max-width:100%;height:auto;display:block}
figure{margin:8px 0;break-inside:avoid;page-break-inside:avoid}
figcaption{font-size:11px;color:#444}
details{font-size:12px}
pre{font-size:10.5px;white-space:pre-wrap;background:#f6f6f6;padding:6px}
.bar{background:#e6e6e6;height:10px;width:120px;display:inline-block;vertical-align:middle}
.bar i{display:block;height:10px;background:#0072B2}
.bar i.over{background:#D55E00}
.note{font-size:12px;color:#333}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;padding:0}h2{break-after:avoid}details{display:block}details>summary{display:none}tr{break-inside:avoid}}
";

/// A budget of the policy file as `budget status` computes it, already in words.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRow {
    pub project: String,
    pub metric: String,
    pub used: String,
    pub amount: String,
    pub fraction: f64,
    pub projected: String,
    pub period: String,
    pub state: String,
}

/// What a period page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub title: String,
    /// The filters, in words ("project demo", "since 2026-11-01").
    pub filters: Vec<String>,
    pub ledger: String,
    pub generated_at: String,
    /// decompute's runs and imported workload figures.
    pub records: Vec<RunRecord>,
    /// Imported whole-machine figures (CodeCarbon's default mode): shown apart, never added
    /// to `records`' totals.
    pub machine: Vec<RunRecord>,
    /// Hosted-AI requests estimated from their tokens (`decompute.api`, a usage export):
    /// shown apart, never added to measured totals.
    pub estimated: Vec<RunRecord>,
    pub budgets: Vec<BudgetRow>,
    /// Why there are no budgets, when there are none (no policy file …).
    pub budgets_note: Option<String>,
    /// The scale chart, when runs carry FLOP tags.
    pub scale_svg: Option<String>,
}

/// A section of records kept out of the totals (imported machine figures, estimated
/// requests): its heading, what they are, their own totals and the costliest.
fn apart(
    o: &mut String,
    title: &str,
    records: &[RunRecord],
    (one, many): (&str, &str),
    what: &str,
) {
    if records.is_empty() {
        return;
    }
    let mut m = Totals::default();
    for r in records {
        m.add(r);
    }
    let _ = writeln!(o, "<h2>{}</h2>", esc(title));
    let count = if records.len() == 1 {
        one.to_string()
    } else {
        format!("{} {many}", records.len())
    };
    let _ = writeln!(o, "<p class=\"note\">{} {}</p>", esc(&count), esc(what));
    totals_cards(o, &m);
    costliest(o, records);
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"decompute {}\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(title)
    )
}

fn card(o: &mut String, label: &str, value: &str, sub: &str) {
    let _ = write!(
        o,
        "<div class=\"card\"><span>{}</span><b>{}</b><span>{}</span></div>",
        esc(label),
        esc(value),
        esc(sub)
    );
}

/// Sums over records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    runs: usize,
    duration_s: f64,
    host_j: f64,
    work_j: f64,
    work_lo: f64,
    work_hi: f64,
    modelled_j: f64,
    reported_j: f64,
    facility_j: f64,
    carbon: (f64, f64, f64),
    water: (f64, f64, f64),
    paused_s: f64,
    pauses: usize,
    avoided_g: f64,
}

impl Totals {
    fn add(&mut self, r: &RunRecord) {
        let p = &r.report;
        self.runs += 1;
        self.duration_s += p.duration_s;
        self.host_j += p.energy_j.host;
        self.work_j += p.energy_j.workload;
        self.work_lo += p.energy_j.workload_low;
        self.work_hi += p.energy_j.workload_high;
        for c in &p.components {
            match c.method {
                crate::sample::Method::Measured => {}
                // A scripted figure is no measurement: counted with the modelled.
                crate::sample::Method::Modelled
                | crate::sample::Method::Scripted
                | crate::sample::Method::Estimated => self.modelled_j += c.workload_energy_j,
                crate::sample::Method::Reported => self.reported_j += c.workload_energy_j,
            }
        }
        self.facility_j += p.facility_energy_j.value;
        self.carbon.0 += p.carbon_g.value;
        self.carbon.1 += p.carbon_g.low;
        self.carbon.2 += p.carbon_g.high;
        self.water.0 += p.water_l.value;
        self.water.1 += p.water_l.low;
        self.water.2 += p.water_l.high;
        if let Some(g) = &p.governance {
            self.paused_s += g.paused_s;
            self.pauses += g.pauses.len();
            self.avoided_g += g.carbon_avoided_g;
        }
    }

    fn share(&self, part: f64) -> f64 {
        if self.work_j > 0.0 {
            100.0 * part / self.work_j
        } else {
            0.0
        }
    }
}

fn totals_cards(o: &mut String, t: &Totals) {
    o.push_str("<div class=\"cards\">");
    card(
        o,
        "Energy of the workloads",
        &Joules(t.work_j).to_string(),
        &format!(
            "range {}–{}; {:.0} % modelled{}",
            Joules(t.work_lo),
            Joules(t.work_hi),
            t.share(t.modelled_j),
            if t.reported_j > 0.0 {
                format!(", {:.0} % reported by another tool", t.share(t.reported_j))
            } else {
                String::new()
            }
        ),
    );
    card(
        o,
        "Energy of the machines",
        &Joules(t.host_j).to_string(),
        &format!("facility with PUE: {}", Joules(t.facility_j)),
    );
    card(
        o,
        "Carbon (location-based)",
        &GramsCo2e(t.carbon.0).to_string(),
        &format!("range {}–{}", GramsCo2e(t.carbon.1), GramsCo2e(t.carbon.2)),
    );
    card(
        o,
        "Water",
        &Litres(t.water.0).to_string(),
        &format!(
            "range {}–{}; on site and in the electricity",
            Litres(t.water.1),
            Litres(t.water.2)
        ),
    );
    card(
        o,
        "Runs",
        &t.runs.to_string(),
        &format!("{} of compute time", Seconds(t.duration_s)),
    );
    o.push_str("</div>\n");
}

/// The bucket a run's start falls in: ISO week, or month when the period is long.
fn bucket(started_at: &str, monthly: bool) -> String {
    if monthly {
        return started_at.chars().take(7).collect();
    }
    match crate::timefmt::parse_time(started_at) {
        Ok(t) => crate::timefmt::iso_week((t / 86400.0).floor() as i64),
        Err(_) => started_at.chars().take(10).collect(),
    }
}

/// Stacked bars by week (or month) and project, with the same figures as a table.
fn by_time(o: &mut String, records: &[RunRecord]) {
    let times: Vec<f64> = records
        .iter()
        .filter_map(|r| crate::timefmt::parse_time(&r.report.started_at).ok())
        .collect();
    let span = times.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - times.iter().copied().fold(f64::INFINITY, f64::min);
    let monthly = span > 16.0 * 7.0 * 86400.0;
    let unit = if monthly { "month" } else { "ISO week" };
    // The seven projects that cost most by energy keep their colour; the rest are "other".
    let mut per_project: BTreeMap<&str, f64> = BTreeMap::new();
    for r in records {
        *per_project.entry(r.identity.project.as_str()).or_default() += r.report.energy_j.workload;
    }
    let mut ranked: Vec<(&str, f64)> = per_project.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&str> = ranked.iter().take(7).map(|p| p.0).collect();
    let series_of = |p: &str| {
        if shown.contains(&p) {
            p.to_string()
        } else {
            "other projects".to_string()
        }
    };
    let mut names: Vec<String> = shown.iter().map(|s| s.to_string()).collect();
    if ranked.len() > 7 {
        names.push("other projects".into());
    }
    // Each record's bucket and series, once: (category index, series index).
    let keys: Vec<(String, usize)> = records
        .iter()
        .map(|r| {
            let s = series_of(&r.identity.project);
            (
                bucket(&r.report.started_at, monthly),
                names.iter().position(|n| *n == s).unwrap_or(0),
            )
        })
        .collect();
    let mut cats: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
    cats.sort();
    cats.dedup();
    let cat_of: Vec<usize> = keys
        .iter()
        .map(|k| cats.binary_search(&k.0).unwrap_or(0))
        .collect();
    type Figure = fn(&RunRecord) -> f64;
    let pick: [(&str, Quantity, Figure); 3] = [
        ("Energy", Quantity::Energy, |r| r.report.energy_j.workload),
        ("Carbon", Quantity::Carbon, |r| r.report.carbon_g.value),
        ("Water", Quantity::Water, |r| r.report.water_l.value),
    ];
    for (what, q, f) in pick {
        let mut series: Vec<(String, Vec<f64>)> = names
            .iter()
            .map(|n| (n.clone(), vec![0.0; cats.len()]))
            .collect();
        for (i, r) in records.iter().enumerate() {
            series[keys[i].1].1[cat_of[i]] += f(r);
        }
        let totals: Vec<f64> = (0..cats.len())
            .map(|i| series.iter().map(|s| s.1[i]).sum())
            .collect();
        let b = Bars {
            title: format!("{what} by {unit} and project"),
            desc: format!(
                "Stacked bars, one per {unit}, of the workloads' {} by project: {}.",
                what.to_lowercase(),
                cats.iter()
                    .zip(&totals)
                    .map(|(c, t)| format!("{c} {}", svg::value_text(q, *t)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            x_title: format!("Start of the run ({unit})"),
            quantity: q,
            y_title: what.to_string(),
            categories: cats.clone(),
            series: series.clone(),
            source: "decompute ledger (measured and modelled energy; factors listed under Factors)"
                .into(),
        };
        let id = format!("by-time-{}", what.to_lowercase());
        let _ = write!(
            o,
            "<figure>{}<details><summary>{what} by {unit} as a table</summary><table><tr><th>{unit}</th>{}<th class=\"n\">total</th></tr>",
            svg::stacked_bars(&b, &id),
            names
                .iter()
                .map(|n| format!("<th class=\"n\">{}</th>", esc(n)))
                .collect::<String>()
        );
        for (i, c) in cats.iter().enumerate() {
            let _ = write!(o, "<tr><td>{}</td>", esc(c));
            for s in &series {
                let _ = write!(
                    o,
                    "<td class=\"n\">{}</td>",
                    esc(&svg::value_text(q, s.1[i]))
                );
            }
            let _ = write!(
                o,
                "<td class=\"n\">{}</td></tr>",
                esc(&svg::value_text(q, totals[i]))
            );
        }
        o.push_str("</table></details></figure>\n");
    }
}

fn by_project(o: &mut String, records: &[RunRecord]) {
    let mut m: BTreeMap<&str, Totals> = BTreeMap::new();
    for r in records {
        m.entry(r.identity.project.as_str()).or_default().add(r);
    }
    o.push_str("<table><tr><th>project</th><th class=\"n\">runs</th><th class=\"n\">duration</th><th class=\"n\">energy</th><th class=\"n\">modelled</th><th class=\"n\">carbon</th><th class=\"n\">water</th></tr>");
    for (p, t) in &m {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0} %</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(p),
            t.runs,
            Seconds(t.duration_s),
            Joules(t.work_j),
            t.share(t.modelled_j),
            GramsCo2e(t.carbon.0),
            Litres(t.water.0)
        );
    }
    o.push_str("</table>\n");
}

fn costliest(o: &mut String, records: &[RunRecord]) {
    let mut v: Vec<&RunRecord> = records.iter().collect();
    v.sort_by(|a, b| {
        b.report
            .carbon_g
            .value
            .total_cmp(&a.report.carbon_g.value)
            .then(a.identity.id.cmp(&b.identity.id))
    });
    o.push_str("<table><tr><th>run</th><th>project</th><th>started</th><th class=\"n\">duration</th><th class=\"n\">energy</th><th class=\"n\">carbon</th><th class=\"n\">water</th><th>status</th><th>command</th></tr>");
    for r in v.iter().take(10) {
        let p = &r.report;
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&r.identity.id.chars().take(10).collect::<String>()),
            esc(&r.identity.project),
            esc(&p.started_at.chars().take(16).collect::<String>().replace('T', " ")),
            Seconds(p.duration_s),
            Joules(p.energy_j.workload),
            GramsCo2e(p.carbon_g.value),
            Litres(p.water_l.value),
            esc(r.status.as_str()),
            esc(&crate::term::fit(&super::summary::shell_words(&p.command), 60))
        );
    }
    o.push_str("</table>\n");
}

fn budgets(o: &mut String, rows: &[BudgetRow], note: Option<&str>) {
    if rows.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"note\">{}</p>",
            esc(note.unwrap_or("No budgets apply to these runs."))
        );
        return;
    }
    o.push_str("<table><tr><th>project</th><th>metric</th><th>period</th><th>use</th><th class=\"n\">used</th><th class=\"n\">budget</th><th class=\"n\">projected by the period's end</th><th>state</th></tr>");
    for b in rows {
        let pct = (b.fraction * 100.0).clamp(0.0, 100.0);
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><span class=\"bar\" role=\"img\" aria-label=\"{:.0} % used\"><i{} style=\"width:{pct:.0}%\"></i></span> {:.0} %</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&b.project),
            esc(&b.metric),
            esc(&b.period),
            b.fraction * 100.0,
            if b.fraction >= 1.0 { " class=\"over\"" } else { "" },
            b.fraction * 100.0,
            esc(&b.used),
            esc(&b.amount),
            esc(&b.projected),
            esc(&b.state)
        );
    }
    o.push_str("</table>\n");
}

fn yielding(o: &mut String, records: &[RunRecord], t: &Totals) {
    if t.pauses == 0 {
        o.push_str(
            "<p class=\"note\">No run paused for the grid or a budget in this period.</p>\n",
        );
        return;
    }
    let _ = writeln!(
        o,
        "<p>{} {}, {} in all; carbon avoided by running the deferred work on a cleaner grid: <b>{}</b> (deferred energy × the fall in intensity between pause and resumption, never negative).</p>",
        t.pauses,
        if t.pauses == 1 { "pause" } else { "pauses" },
        Seconds(t.paused_s),
        GramsCo2e(t.avoided_g)
    );
    o.push_str("<table><tr><th>run</th><th>cause</th><th class=\"n\">from</th><th class=\"n\">to</th><th>reason</th><th class=\"n\">avoided</th></tr>");
    for r in records {
        let Some(g) = &r.report.governance else {
            continue;
        };
        for p in &g.pauses {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&r.identity.id.chars().take(10).collect::<String>()),
                esc(&p.cause),
                Seconds(p.start_s),
                Seconds(p.end_s),
                esc(&p.reason),
                GramsCo2e(p.avoided_g)
            );
        }
    }
    o.push_str("</table>\n");
}

fn cite(f: &crate::report::FactorRef) -> String {
    match f.year {
        Some(y) => format!("{} ({y})", f.source),
        None => f.source.clone(),
    }
}

/// Each distinct factor value the runs used, with its source and how many runs used it.
fn factors(o: &mut String, records: &[RunRecord]) {
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in records {
        let f = &r.report.factors;
        for (name, x, unit) in [
            ("grid carbon intensity", &f.grid_gco2_per_kwh, "gCO2e/kWh"),
            ("PUE", &f.pue, ""),
            ("on-site water (WUE)", &f.wue_l_per_kwh, "L/kWh"),
            ("water in electricity (EWIF)", &f.ewif_l_per_kwh, "L/kWh"),
        ] {
            let label = if name == "grid carbon intensity" {
                format!("{name}, {}", f.zone)
            } else {
                name.to_string()
            };
            *seen
                .entry((
                    label,
                    format!("{} {unit}", crate::units::sig3(x.value))
                        .trim()
                        .to_string(),
                    cite(x),
                ))
                .or_default() += 1;
        }
    }
    o.push_str("<table><tr><th>factor</th><th class=\"n\">value</th><th>source</th><th class=\"n\">runs</th></tr>");
    for ((name, value, source), n) in &seen {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{n}</td></tr>",
            esc(name),
            esc(value),
            esc(source)
        );
    }
    o.push_str("</table>\n");
}

const METHOD_NOTE: &str = "Measured figures come from hardware meters (RAPL, NVML); modelled ones from documented models where no meter exists; reported ones from another tool's file. Carbon is location-based (the grid's average intensity, GHG Protocol scope 2 location-based and SCI): no offsets, no certificates. Ranges combine the meters' and models' uncertainty with the factors'.";

/// The page for a period.
pub fn period(p: &Period) -> String {
    let mut t = Totals::default();
    for r in &p.records {
        t.add(r);
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<header><h1>{}</h1><p class=\"meta\">{} · ledger {} · generated {} by decompute {}</p></header>",
        esc(&p.title),
        esc(&if p.filters.is_empty() {
            "all runs".to_string()
        } else {
            p.filters.join(", ")
        }),
        esc(&p.ledger),
        esc(&p.generated_at),
        env!("CARGO_PKG_VERSION")
    );
    o.push_str("<h2>Totals</h2>\n");
    totals_cards(&mut o, &t);
    let _ = writeln!(o, "<p class=\"note\">{}</p>", esc(METHOD_NOTE));
    apart(
        &mut o,
        "Whole machines, imported",
        &p.machine,
        ("1 run", "runs"),
        "imported from another tool's whole-machine figures (CodeCarbon's default tracking mode: everything the machine drew while the tool ran, not one workload's share). They are not in the totals above and not added to them.",
    );
    apart(
        &mut o,
        "Hosted AI requests, estimated",
        &p.estimated,
        ("1 request", "requests"),
        "to hosted models, estimated from the tokens each response reported and the model's size (the registry's, a range where the provider publishes none): nothing of it measured. Their energy is the provider's data centre's, PUE included. They are not in the totals above; project budgets count them.",
    );
    if p.records.is_empty() {
        o.push_str("<p>No runs match these filters.</p>\n");
    } else {
        o.push_str("<h2>Over time</h2>\n");
        by_time(&mut o, &p.records);
        o.push_str("<h2>By project</h2>\n");
        by_project(&mut o, &p.records);
        o.push_str("<h2>The runs that cost most</h2>\n");
        costliest(&mut o, &p.records);
    }
    o.push_str("<h2>Budgets</h2>\n");
    budgets(&mut o, &p.budgets, p.budgets_note.as_deref());
    o.push_str("<h2>Yielding to the grid</h2>\n");
    yielding(&mut o, &p.records, &t);
    if let Some(s) = &p.scale_svg {
        o.push_str("<h2>On the scale of AI compute</h2>\n<figure>");
        // Inline SVG needs no namespace: the page then holds no URL at all.
        o.push_str(&s.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1));
        o.push_str("</figure>\n");
    }
    if !p.records.is_empty() {
        o.push_str("<h2>Factors</h2>\n");
        factors(&mut o, &p.records);
    }
    page(&p.title, &o)
}

/// The page for one run: its power over time by component with pauses shaded, the
/// calculation as `--explain` gives it, its factors and their sources.
pub fn run(r: &RunRecord, generated_at: &str, ledger: &str) -> String {
    let p = &r.report;
    let title = format!("decompute: run {}", r.identity.id);
    let mut t = Totals::default();
    t.add(r);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<header><h1>Run {}</h1><p class=\"meta\">project {} · {} on {} · started {} · {} · {}{} · ledger {} · generated {} by decompute {}</p><p><code>{}</code></p></header>",
        esc(&r.identity.id),
        esc(&r.identity.project),
        esc(&r.identity.user),
        esc(&r.identity.host),
        esc(&p.started_at),
        Seconds(p.duration_s),
        esc(r.status.as_str()),
        p.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default(),
        esc(ledger),
        esc(generated_at),
        env!("CARGO_PKG_VERSION"),
        esc(&super::summary::shell_words(&p.command))
    );
    o.push_str("<h2>Totals</h2>\n");
    totals_cards(&mut o, &t);
    let _ = writeln!(o, "<p class=\"note\">{}</p>", esc(METHOD_NOTE));
    o.push_str("<h2>Power over time</h2>\n");
    if p.samples.is_empty() {
        o.push_str("<p class=\"note\">This record holds no samples (imported, or shorter than one interval).</p>\n");
    } else {
        let pick = |f: fn(&crate::sample::PowerRow) -> f64| -> Vec<(f64, f64)> {
            p.samples.iter().map(|s| (s.t_s, f(s))).collect()
        };
        let mut series = vec![(
            "workload, all components".to_string(),
            pick(|s| s.workload_w),
        )];
        for (name, f) in [
            (
                "CPU (host)",
                (|s| s.cpu_w) as fn(&crate::sample::PowerRow) -> f64,
            ),
            ("memory (host)", |s| s.dram_w),
            ("GPU (host)", |s| s.gpu_w),
        ] {
            let pts = pick(f);
            if pts.iter().any(|x| x.1 > 0.0) {
                series.push((name.to_string(), pts));
            }
        }
        let shaded: Vec<(f64, f64, String)> = p
            .governance
            .iter()
            .flat_map(|g| g.pauses.iter())
            .map(|x| {
                (
                    x.start_s,
                    x.end_s,
                    format!("paused ({}): {}", x.cause, x.reason),
                )
            })
            .collect();
        let peak = p.samples.iter().map(|s| s.workload_w).fold(0.0, f64::max);
        let l = Lines {
            title: "Power by component".into(),
            desc: format!(
                "Power over {} of run {}: the workload's share of all components (peak {}) and each component's host power{}.",
                Seconds(p.duration_s),
                r.identity.id,
                crate::units::Watts(peak),
                if shaded.is_empty() {
                    String::new()
                } else {
                    format!("; {} pauses shaded", shaded.len())
                }
            ),
            quantity: Quantity::Power,
            y_title: "Power".into(),
            series,
            shaded,
            source: format!(
                "decompute, a sample every {}; how each component was read: the Components table",
                Seconds(p.interval_s)
            ),
        };
        let _ = writeln!(o, "<figure>{}</figure>", svg::lines(&l, "power"));
    }
    o.push_str("<h2>Components</h2>\n<table><tr><th>component</th><th>method</th><th>source</th><th class=\"n\">host</th><th class=\"n\">workload</th><th class=\"n\">range</th></tr>");
    for c in &p.components {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}–{}</td></tr>",
            esc(&c.component.to_string()),
            esc(&c.method.to_string()),
            esc(&c.source),
            Joules(c.host_energy_j),
            Joules(c.workload_energy_j),
            Joules(c.low_j),
            Joules(c.high_j)
        );
    }
    o.push_str("</table>\n<h2>Yielding and budgets</h2>\n");
    yielding(&mut o, std::slice::from_ref(r), &t);
    o.push_str("<h2>How these figures were obtained</h2>\n");
    let _ = writeln!(o, "<pre>{}</pre>", esc(&super::explain::render(p, &[])));
    o.push_str("<h2>Factors</h2>\n");
    factors(&mut o, std::slice::from_ref(r));
    page(&title, &o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::snapshot::{check, demo_records, real_record};

    fn demo_period(records: Vec<RunRecord>) -> Period {
        let work = crate::render::scale::Work {
            label: "these 20 runs".into(),
            flop: 1.92e22,
            year: 2026,
            energy_mwh: Some(0.0618),
        };
        Period {
            title: "What computing cost".into(),
            filters: vec!["from 2026-09-20".into()],
            ledger: "demo.sqlite".into(),
            generated_at: "2026-11-29T12:00:00Z".into(),
            records,
            machine: Vec::new(),
            estimated: Vec::new(),
            budgets: vec![
                BudgetRow {
                    project: "llm-finetune".into(),
                    metric: "carbon".into(),
                    used: "18.3 kg CO2e".into(),
                    amount: "15 kg CO2e".into(),
                    fraction: 1.22,
                    projected: "19.0 kg CO2e".into(),
                    period: "month (2026-11-01 to 2026-12-01)".into(),
                    state: "used up: runs are refused until the period renews".into(),
                },
                BudgetRow {
                    project: "vision".into(),
                    metric: "energy".into(),
                    used: "19.4 kWh".into(),
                    amount: "200 kWh".into(),
                    fraction: 0.097,
                    projected: "21 kWh".into(),
                    period: "quarter (2026-10-01 to 2027-01-01)".into(),
                    state: "within budget".into(),
                },
            ],
            budgets_note: None,
            scale_svg: Some(crate::render::scale::svg(
                &crate::estimate::models::embedded(),
                Some(&work),
            )),
        }
    }

    fn paused_record() -> RunRecord {
        demo_records()
            .into_iter()
            .find(|r| {
                r.report
                    .governance
                    .as_ref()
                    .is_some_and(|g| !g.pauses.is_empty())
            })
            .expect("a paused run")
    }

    #[test]
    fn pages_match_their_snapshots() {
        check("report-period.html", &period(&demo_period(demo_records())));
        check(
            "report-run.html",
            &run(&paused_record(), "2026-11-29T12:00:00Z", "demo.sqlite"),
        );
        check(
            "report-run-real.html",
            &run(&real_record(), "2026-11-29T12:00:00Z", "l.sqlite"),
        );
    }

    /// What the issue asks of every page: self-contained, no request, every chart titled,
    /// sourced and described.
    fn assert_self_contained(html: &str) {
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(&format!("content=\"{CSP}\"")), "CSP");
        for needle in [
            "http:", "https:", "<script", "<link", "<img", "@import", "url(",
        ] {
            assert!(!html.contains(needle), "the page holds {needle}");
        }
        let svgs = html.matches("<svg").count();
        assert!(svgs > 0);
        assert_eq!(
            html.matches("<title id=").count(),
            svgs,
            "a title per chart"
        );
        assert_eq!(
            html.matches("<desc id=").count(),
            svgs,
            "a text alternative per chart"
        );
        assert_eq!(
            html.matches(">Source: ").count(),
            svgs,
            "a source line per chart"
        );
        assert!(html.contains("@page{size:A4"));
    }

    #[test]
    fn pages_are_self_contained_and_every_chart_is_titled_sourced_and_described() {
        let p = period(&demo_period(demo_records()));
        assert_self_contained(&p);
        // Energy, carbon and water over time, and the scale.
        assert_eq!(p.matches("<svg").count(), 4);
        for axis in [
            "Energy (kWh)",
            "Carbon (kg CO2e)",
            "Water (L)",
            "Start of the run (ISO week)",
        ] {
            assert!(p.contains(axis), "{axis}");
        }
        let r = run(&paused_record(), "t", "l");
        assert_self_contained(&r);
        assert!(r.contains("Time since the start (min)") && r.contains("Power (W)"));
        assert!(
            r.contains("fill-opacity=\"0.5\"><title>paused (grid)"),
            "pause shaded"
        );
    }

    #[test]
    fn totals_use_the_terminals_units_and_rounding() {
        let recs = demo_records();
        let p = period(&demo_period(recs.clone()));
        let work: f64 = recs.iter().map(|r| r.report.energy_j.workload).sum();
        let carbon: f64 = recs.iter().map(|r| r.report.carbon_g.value).sum();
        let water: f64 = recs.iter().map(|r| r.report.water_l.value).sum();
        for want in [
            Joules(work).to_string(),
            GramsCo2e(carbon).to_string(),
            Litres(water).to_string(),
        ] {
            assert!(p.contains(&format!("<b>{want}</b>")), "{want}");
        }
        assert!(p.contains(&format!("<b>{}</b>", recs.len())));
    }

    #[test]
    fn hostile_text_is_escaped_and_an_empty_period_still_renders() {
        let mut r = real_record();
        r.identity.project = "<script>alert(1)</script>".into();
        r.report.command = vec!["sh".into(), "-c".into(), "echo \"<b>&</b>\"".into()];
        let p = period(&demo_period(vec![r.clone()]));
        assert!(!p.contains("<script>") && p.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!p.contains("<b>&</b>"));
        let one = run(&r, "t", "l");
        assert!(!one.contains("<script>"));
        let empty = period(&Period {
            records: Vec::new(),
            budgets: Vec::new(),
            budgets_note: Some("No policy file.".into()),
            scale_svg: None,
            ..demo_period(Vec::new())
        });
        assert!(empty.contains("No runs match these filters."));
        assert!(empty.contains("No policy file."));
        assert!(empty.trim_end().ends_with("</html>"));
    }

    #[test]
    fn long_periods_are_shown_by_month() {
        let mut recs = demo_records();
        recs[0].report.started_at = "2026-01-05T00:00:00.000Z".into();
        let p = period(&demo_period(recs));
        assert!(p.contains("Energy by month and project") && p.contains(">2026-01<"));
    }
}

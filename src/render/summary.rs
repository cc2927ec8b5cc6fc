//! The compact footprint printed on stderr when a run ends: duration, energy by component
//! (each labelled measured or modelled, with its band), then facility energy, carbon and
//! water with the factors that produced them.

use crate::report::RunReport;
use crate::units::{GramsCo2e, Joules, Litres, Seconds};

fn band(v: f64, lo: f64, hi: f64, fmt: impl Fn(f64) -> String) -> String {
    if (hi - lo).abs() <= 1e-12 * v.abs().max(1e-30) {
        fmt(v)
    } else {
        format!("{} ({}–{})", fmt(v), fmt(lo), fmt(hi))
    }
}

/// `already_shown` lists notes printed as warnings when the run started; they are not repeated.
/// With colour (a terminal, no `NO_COLOR`): measured green, modelled or reported yellow, a
/// budget that stopped the run red.
pub fn render(r: &RunReport, already_shown: &[String], caps: crate::term::Caps) -> String {
    use crate::term::paint;
    let j = |x: f64| Joules(x).to_string();
    let mut out = String::new();
    let code = r
        .exit_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "unknown".into());
    let status = match (r.killed_by_signal, &r.interrupted_by) {
        (Some(s), _) => format!("killed by signal {s}, exit {code}"),
        (None, Some(sig)) => format!("exit {code} after {sig}"),
        _ => format!("exit {code}"),
    };
    out.push_str(&format!(
        "decompute: {} in {} ({status}), {} process{} seen\n",
        shell_words(&r.command),
        Seconds(r.duration_s),
        r.processes_followed,
        if r.processes_followed == 1 { "" } else { "es" }
    ));
    // One table, its columns as wide as their widest cell: the label (with the method),
    // the command's share, what the whole machine drew meanwhile, and where it came from.
    struct Row {
        label: String,
        method: Option<(String, &'static str)>,
        workload: String,
        host: String,
        source: String,
    }
    let g = |x: f64| GramsCo2e(x).to_string();
    let l = |x: f64| Litres(x).to_string();
    let mut rows: Vec<Row> = r
        .components
        .iter()
        .map(|c| Row {
            label: c.component.to_string(),
            method: Some((
                c.method.to_string(),
                match c.method {
                    crate::sample::Method::Measured => "green",
                    _ => "yellow",
                },
            )),
            workload: band(c.workload_energy_j, c.low_j, c.high_j, j),
            host: j(c.host_energy_j),
            source: c.source.clone(),
        })
        .collect();
    let e = &r.energy_j;
    let f = &r.factors;
    let fe = &r.facility_energy_j;
    rows.push(Row {
        label: "total IT".into(),
        method: None,
        workload: band(e.workload, e.workload_low, e.workload_high, j),
        host: j(e.host),
        source: format!("{:.0} % modelled", r.modelled_share * 100.0),
    });
    rows.push(Row {
        label: "facility".into(),
        method: None,
        workload: band(fe.value, fe.low, fe.high, j),
        host: j(fe.host),
        source: format!("PUE {}", r.pue),
    });
    rows.push(Row {
        label: "carbon".into(),
        method: None,
        workload: band(r.carbon_g.value, r.carbon_g.low, r.carbon_g.high, g),
        host: g(r.carbon_g.host),
        source: format!(
            "{} gCO2e/kWh, {} ({})",
            crate::units::sig3(f.grid_gco2_per_kwh.value),
            f.zone,
            f.grid_gco2_per_kwh.label()
        ),
    });
    rows.push(Row {
        label: "water".into(),
        method: None,
        workload: band(r.water_l.value, r.water_l.low, r.water_l.high, l),
        host: l(r.water_l.host),
        source: format!(
            "WUE {} + EWIF {} L/kWh",
            f.wue_l_per_kwh.value, f.ewif_l_per_kwh.value
        ),
    });
    let width = |s: &str| s.chars().count();
    let method_w = rows
        .iter()
        .filter_map(|r| r.method.as_ref().map(|m| width(&m.0)))
        .max()
        .unwrap_or(0);
    let label_w = rows
        .iter()
        .map(|r| width(&r.label) + r.method.as_ref().map_or(0, |_| 1 + method_w))
        .max()
        .unwrap_or(0)
        .max(width("energy"));
    const WORK: &str = "this command (workload)";
    const HOST: &str = "whole machine (host)";
    let work_w = rows
        .iter()
        .map(|r| width(&r.workload))
        .max()
        .unwrap_or(0)
        .max(width(WORK));
    let host_w = rows
        .iter()
        .map(|r| width(&r.host))
        .max()
        .unwrap_or(0)
        .max(width(HOST));
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(width(s))));
    out.push_str(&format!(
        "  {}  {}  {}  source\n",
        pad("", label_w),
        pad(WORK, work_w),
        pad(HOST, host_w)
    ));
    for row in &rows {
        let label = match &row.method {
            Some((m, colour)) => {
                let head = pad(&row.label, label_w - 1 - method_w);
                format!("{head} {}", paint(&pad(m, method_w), Some(colour), caps))
            }
            None => pad(&row.label, label_w),
        };
        out.push_str(&format!(
            "  {label}  {}  {}  {}\n",
            pad(&row.workload, work_w),
            pad(&row.host, host_w),
            row.source
        ));
    }
    if let Some(g) = &r.governance {
        for l in governance_lines(g) {
            let colour = l.starts_with("STOPPED").then_some("red");
            out.push_str(&format!("  {}\n", paint(&l, colour, caps)));
        }
    }
    for n in r.notes.iter().filter(|n| !already_shown.contains(n)) {
        out.push_str(&format!("  note: {n}\n"));
    }
    out
}

/// ", what was left of the project's 1.00 kWh budget" when the limit is a project budget's
/// remainder, so the remainder is never read as the budget.
fn left_of(b: &crate::report::LimitUse) -> String {
    match b.project_budget {
        Some(total) if (total - b.limit).abs() > f64::EPSILON * total.abs().max(1.0) => format!(
            ", what the other runs left of the project's {} budget",
            b.metric.show(total)
        ),
        Some(total) => format!(", the project's {} budget", b.metric.show(total)),
        None => String::new(),
    }
}

/// What budgets and the grid did, for people.
pub fn governance_lines(g: &crate::govern::governor::Record) -> Vec<String> {
    let mut out = Vec::new();
    for b in &g.budget {
        out.push(format!(
            "budget {:<7} {} of {}{} ({:.0} %)",
            b.metric.name(),
            b.metric.show(b.used),
            b.metric.show(b.limit),
            left_of(b),
            100.0 * b.used / b.limit
        ));
    }
    if let Some(s) = &g.stopped_by {
        out.push(format!(
            "STOPPED by the {} budget at {} of {}{}",
            s.metric.name(),
            s.metric.show(s.used),
            s.metric.show(s.limit),
            left_of(s)
        ));
    }
    if g.forced {
        out.push("started with --force although a project budget was used up".into());
    }
    if let Some(sig) = &g.grid_signal {
        out.push(format!(
            "grid signal {sig}: carbon computed interval by interval, mean {} gCO2e/kWh",
            g.grid_mean_gco2_per_kwh
                .map(crate::units::sig3)
                .unwrap_or_else(|| "-".into())
        ));
    }
    if !g.pauses.is_empty() {
        out.push(format!(
            "paused {} in {} pause(s) ({}); carbon avoided about {}",
            Seconds(
                g.paused_s
                    .max(g.pauses.iter().map(|p| p.end_s - p.start_s).sum())
            ),
            g.pauses.len(),
            g.pauses
                .iter()
                .map(|p| p.cause.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", "),
            GramsCo2e(g.carbon_avoided_g)
        ));
    }
    if g.max_pause_reached {
        out.push("maximum pause reached: the workload then ran regardless".into());
    }
    out
}

pub use crate::term::shell_words;

#[cfg(test)]
mod tests {
    /// The columns line up, with colour too, and say what workload and host mean.
    #[test]
    fn the_summary_is_one_aligned_table() {
        let r = crate::render::snapshot::real_record().report;
        for colour in [false, true] {
            let caps = crate::term::Caps {
                live: false,
                colour,
                width: None,
            };
            let text = super::render(&r, &[], caps);
            // Without the escape codes, as the eye sees it.
            let plain: String = {
                let mut out = String::new();
                let mut esc = false;
                for c in text.chars() {
                    match (esc, c) {
                        (false, '\u{1b}') => esc = true,
                        (true, 'm') => esc = false,
                        (true, _) => {}
                        (false, c) => out.push(c),
                    }
                }
                out
            };
            let lines: Vec<&str> = plain.lines().skip(1).take(7).collect();
            let head = lines[0];
            assert!(
                head.contains("this command (workload)") && head.contains("whole machine (host)")
            );
            let col = |l: &str, at: &str| l.find(at).map(|b| l[..b].chars().count());
            let work = col(head, "this command").expect("workload column");
            let host = col(head, "whole machine").expect("host column");
            for l in &lines[1..] {
                let cells: Vec<usize> = l
                    .char_indices()
                    .zip(l.chars().skip(1))
                    .filter(|((_, a), b)| *a == ' ' && *b != ' ')
                    .map(|((i, _), _)| l[..i].chars().count() + 1)
                    .collect();
                assert!(
                    cells.contains(&work),
                    "{colour}: {l:?} at {work} in\n{plain}"
                );
                assert!(
                    cells.contains(&host),
                    "{colour}: {l:?} at {host} in\n{plain}"
                );
            }
            assert!(plain.lines().next().expect("first").contains(" seen"));
        }
    }

    #[test]
    fn a_project_remainder_is_never_read_as_the_budget() {
        use crate::report::LimitUse;
        use crate::units::Metric;
        let g = crate::govern::governor::Record {
            budget: vec![
                LimitUse {
                    metric: Metric::Energy,
                    limit: 195.0,
                    used: 0.00665,
                    project_budget: Some(3600.0),
                },
                LimitUse {
                    metric: Metric::Carbon,
                    limit: 5.0,
                    used: 1.0,
                    project_budget: None,
                },
            ],
            ..Default::default()
        };
        let lines = super::governance_lines(&g);
        assert!(
            lines[0].contains(
                "6.65 mJ of 195 J, what the other runs left of the project's 1.00 Wh budget"
            ),
            "{}",
            lines[0]
        );
        assert!(!lines[1].contains("project"), "{}", lines[1]);
    }

    #[test]
    fn quotes_words_that_need_it() {
        let argv: Vec<String> = ["sh", "-c", "seq 3 | sort", "it's", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            super::shell_words(&argv),
            r"sh -c 'seq 3 | sort' 'it'\''s' ''"
        );
    }
}

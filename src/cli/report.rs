//! `decompute report --html FILE`: reads the runs (filtered as `ledger summary` filters
//! them, or one run with `--run ID`) and the policy file's budgets, hands them to the pure
//! renderer `render::report`, and writes the page through the one file-writing helper.

use super::LedgerArgs;
use crate::govern::policy::{self, BudgetState};
use crate::ledger::{self, RunRecord};
use crate::render;
use crate::settings::PolicyChoice;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write a self-contained HTML page (inline SVG and CSS, no script, no external request;
    /// prints on A4) to FILE ("-" for stdout)
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    /// One run's page: power over time, the calculation, its factors
    #[arg(long, value_name = "ID", conflicts_with_all = ["project", "tags", "since", "until", "limit", "user"])]
    pub run: Option<String>,
    #[command(flatten)]
    pub filter: super::ledger::FilterArgs,
    /// Only runs of this user
    #[arg(long)]
    pub user: Option<String>,
    /// Policy file whose budgets to show [default: decompute.toml here or in a parent
    /// directory]
    #[arg(long, env = "DECOMPUTE_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

fn day(ms: i64) -> String {
    crate::timefmt::rfc3339_ms(ms).chars().take(10).collect()
}

pub fn main(a: ReportArgs) -> anyhow::Result<()> {
    let settings = super::settings(super::said(
        PolicyChoice::named_or_found(a.policy.as_deref()),
        &[&a.ledger],
    ))?;
    let pol = settings.policy().cloned().map(|p| (p.path.clone(), p));
    let loc = settings.ledger()?;
    if a.html.as_os_str() != "-" {
        crate::outfile::check(&a.html, &loc.protected())?;
    }
    let l = super::open_reading(&loc)?;
    let generated = crate::timefmt::rfc3339(std::time::SystemTime::now());
    let html = if let Some(id) = &a.run {
        let rec = l.get(id)?;
        render::html::run(&rec, &generated, &loc.shown())
    } else {
        let f = a.filter.filter();
        let mut records: Vec<RunRecord> = Vec::new();
        let mut machine: Vec<RunRecord> = Vec::new();
        let mut estimated: Vec<RunRecord> = Vec::new();
        // The period page needs no power samples: dropped as they come, so a large ledger
        // is held without them. Runs measured inside another (`nested_in`) are counted
        // there and left out, as `ledger summary` does.
        l.export(&f, &mut |mut r| {
            if a.user.as_deref().is_none_or(|u| r.identity.user == u)
                && !r.identity.tags.contains_key(crate::ledger::NESTED_TAG)
            {
                r.report.samples = Vec::new();
                if r.machine_scope() {
                    machine.push(r);
                } else if r.estimated_scope() {
                    estimated.push(r);
                } else {
                    records.push(r);
                }
            }
            Ok(())
        })?;
        let mut filters = Vec::new();
        if let Some(p) = &a.filter.project {
            filters.push(format!("project {p}"));
        }
        for (k, v) in &a.filter.tags {
            filters.push(format!("tag {k}={v}"));
        }
        if let Some(u) = &a.user {
            filters.push(format!("user {u}"));
        }
        if let Some(s) = a.filter.since {
            filters.push(format!("from {}", day(s)));
        }
        if let Some(u) = a.filter.until {
            filters.push(format!("before {}", day(u)));
        }
        let (budgets, budgets_note) =
            budget_rows(pol.as_ref(), l.as_ref(), a.filter.project.as_deref())?;
        let scale_svg = scale_of(&records);
        let title = match &a.filter.project {
            Some(p) => format!("What computing cost: project {p}"),
            None => "What computing cost".to_string(),
        };
        render::html::period(&render::html::Period {
            title,
            filters,
            ledger: loc.shown(),
            generated_at: generated,
            records,
            machine,
            estimated,
            budgets,
            budgets_note,
            scale_svg,
        })
    };
    if a.html.as_os_str() == "-" {
        return super::print_stdout(&html);
    }
    crate::outfile::write(&a.html, html.as_bytes())?;
    crate::say!("decompute: wrote {}", a.html.display());
    Ok(())
}

/// The policy's budgets as `budget status` computes them (the project's alone with
/// `--project`).
fn budget_rows(
    pol: Option<&(PathBuf, policy::Policy)>,
    l: &dyn ledger::Ledger,
    only: Option<&str>,
) -> anyhow::Result<(Vec<render::html::BudgetRow>, Option<String>)> {
    let Some((path, p)) = pol else {
        return Ok((
            Vec::new(),
            Some(format!(
                "No policy file ({} here or in a parent directory, or --policy): no budgets to show.",
                policy::FILE_NAME
            )),
        ));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let day = |t: i64| {
        crate::timefmt::rfc3339_s(t as f64)
            .chars()
            .take(10)
            .collect::<String>()
    };
    let mut rows = Vec::new();
    for proj in p
        .projects()
        .into_iter()
        .filter(|x| only.is_none_or(|want| want == *x))
    {
        let st = policy::standings(p, proj, now, |s, e| {
            crate::govern::usage::period_usage(l, proj, s, e)
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        for s in st {
            let m = s.budget.metric;
            rows.push(render::html::BudgetRow {
                project: proj.to_string(),
                metric: m.name().to_string(),
                used: m.show(s.used),
                amount: m.show(s.budget.amount),
                fraction: s.fraction(),
                projected: m.show(s.projection(now)),
                period: format!(
                    "{} ({} to {})",
                    s.budget.period.name(),
                    day(s.period_start),
                    day(s.period_end)
                ),
                state: match s.state(now) {
                    BudgetState::UsedUp => "used up: runs are refused until the period renews",
                    BudgetState::OnCourseToExceed => "on course to exceed",
                    BudgetState::Ok => "within budget",
                }
                .into(),
            });
        }
    }
    let note = rows.is_empty().then(|| {
        format!(
            "{} sets no budget{}.",
            path.display(),
            only.map(|p| format!(" for project {p}"))
                .unwrap_or_default()
        )
    });
    Ok((rows, note))
}

/// The scale chart, when runs carry FLOP tags: their sum placed among the notable models.
fn scale_of(records: &[RunRecord]) -> Option<String> {
    let tagged: Vec<(f64, &RunRecord)> = records
        .iter()
        .filter_map(|r| crate::estimate::run_flop(&r.identity.tags).map(|(f, _)| (f, r)))
        .collect();
    if tagged.is_empty() {
        return None;
    }
    let flop: f64 = tagged.iter().map(|t| t.0).sum();
    let energy_j: f64 = tagged
        .iter()
        .map(|t| t.1.report.facility_energy_j.value)
        .sum();
    let year = tagged
        .iter()
        .filter_map(|t| t.1.report.started_at.get(..4).and_then(|y| y.parse().ok()))
        .max()
        .unwrap_or(2026);
    let work = render::scale::Work {
        label: if tagged.len() == 1 {
            "this run".to_string()
        } else {
            format!("these {} runs", tagged.len())
        },
        flop,
        year,
        energy_mwh: Some(energy_j / 3.6e9),
    };
    Some(render::scale::svg(
        &crate::estimate::models::embedded(),
        Some(&work),
    ))
}

//! What a project has used of its budgets: the ledger's totals for a period, and the limits
//! what is left puts on one run. A running run's own row holds its last checkpoint, so its
//! own use is subtracted when the run asks how much the *others* left it.

use super::budget::{Share, Usage};
use super::policy::{self, Policy, Standing};
use crate::ledger::{self, Ledger};

/// The ledger's use by `project` of runs started between two Unix times.
pub fn period_usage(l: &dyn Ledger, project: &str, start: i64, end: i64) -> Result<Usage, String> {
    let f = ledger::Filter {
        project: Some(project.to_string()),
        since_ms: Some(start.saturating_mul(1000)),
        until_ms: Some(end.saturating_mul(1000)),
        ..Default::default()
    };
    let rows = l
        .summary(&ledger::GroupBy::Project, &f)
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().fold(Usage::default(), |u, r| Usage {
        energy_j: u.energy_j + r.energy_j,
        carbon_g: u.carbon_g + r.carbon_g,
        water_l: u.water_l + r.water_l,
        time_s: u.time_s + r.duration_s,
    }))
}

/// The use recorded for one run (its last checkpoint), zero if it is not there.
pub fn run_usage(l: &dyn Ledger, id: &str) -> Usage {
    l.get(id)
        .map(|r| Usage {
            energy_j: r.report.energy_j.workload,
            carbon_g: r.report.carbon_g.value,
            water_l: r.report.water_l.value,
            time_s: r.report.duration_s,
        })
        .unwrap_or_default()
}

/// The standings of `project`'s budgets now, and what each leaves run `run_id`: its amount
/// and what the *other* runs used of it. `run_id` None: a run not yet started.
pub fn project_limits(
    p: &Policy,
    project: &str,
    now: i64,
    l: &dyn Ledger,
    run_id: Option<&str>,
) -> Result<(Vec<Standing>, Vec<Share>), String> {
    let st = policy::standings(p, project, now, |s, e| period_usage(l, project, s, e))?;
    let mine = run_id.map(|id| run_usage(l, id)).unwrap_or_default();
    let shares = st
        .iter()
        .map(|s| {
            let m = s.budget.metric;
            Share {
                metric: m,
                amount: s.budget.amount,
                others: (s.used - mine.get(m)).max(0.0),
            }
        })
        .collect();
    Ok((st, shares))
}

//! `decompute budget status`: each project budget of the policy file against the ledger's
//! use in the current period, with a bar and the projection to the period's end.

use super::{print_stdout, LedgerArgs};
use crate::govern::policy::{self, BudgetState};
use crate::settings::PolicyChoice;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BudgetCmd {
    #[command(subcommand)]
    pub action: BudgetAction,
}

#[derive(Debug, Subcommand)]
pub enum BudgetAction {
    /// Use of each project budget in its current period
    Status {
        /// Policy file [default: decompute.toml here or in a parent directory]
        #[arg(long, env = "DECOMPUTE_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Only this project
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        ledger: LedgerArgs,
        /// Defaults file
        #[arg(long, env = "DECOMPUTE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print JSON on stdout (figures in J, g, L and s)
        #[arg(long)]
        json: bool,
    },
}

pub fn main(a: BudgetCmd) -> anyhow::Result<()> {
    let BudgetAction::Status {
        policy: path,
        project,
        ledger,
        config,
        json,
    } = a.action;
    let mut said = super::said(PolicyChoice::named_or_found(path.as_deref()), &[&ledger]);
    said.config = config;
    let settings = super::settings(said)?;
    let p = settings.policy().cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "no trusted {} here or in a parent directory; create one or pass --policy FILE",
            policy::FILE_NAME
        )
    })?;
    let path = p.path.clone();
    if let Some(want) = &project {
        if !p.projects().contains(&want.as_str()) {
            anyhow::bail!(
                "project '{}' has no budget in {}; budgeted projects: {}",
                crate::term::escape(want),
                path.display(),
                if p.projects().is_empty() {
                    "none".to_string()
                } else {
                    p.projects().join(", ")
                }
            );
        }
    }
    let loc = settings.ledger()?;
    let l = super::open_reading(&loc)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let projects = p.projects();
    let caps = crate::term::Caps::stdout();
    let mut jprojects = Vec::new();
    let mut o = format!(
        "policy {}\nledger {}{}\n",
        path.display(),
        loc.shown(),
        match &loc.origin {
            crate::factors::Origin::Default => String::new(),
            other => format!(" ({other})"),
        }
    );
    for proj in projects
        .into_iter()
        .filter(|x| project.as_deref().is_none_or(|want| want == *x))
    {
        let st = policy::standings(&p, proj, now, |s, e| {
            crate::govern::usage::period_usage(l.as_ref(), proj, s, e)
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        let iso = |t: i64| crate::timefmt::rfc3339_s(t as f64);
        jprojects.push(serde_json::json!({
            "project": proj,
            "on_exceed": p.on_exceed.get(proj).map(|a| format!("{a:?}").to_lowercase()),
            "budgets": st.iter().map(|s| serde_json::json!({
                "metric": s.budget.metric.name(),
                "unit": s.budget.metric.base_unit(),
                "used": s.used,
                "amount": s.budget.amount,
                "fraction": s.fraction(),
                "period": s.budget.period.name(),
                "period_start": iso(s.period_start),
                "period_end": iso(s.period_end),
                "projected": s.projection(now),
                "state": s.state(now).key(),
            })).collect::<Vec<_>>(),
        }));
        o.push_str(&format!(
            "project {proj}{}\n",
            p.on_exceed
                .get(proj)
                .map(|a| format!(" (on exceed: {a:?})").to_lowercase())
                .unwrap_or_default()
        ));
        for s in st {
            let m = s.budget.metric;
            let at = |t: i64| {
                crate::timefmt::rfc3339(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
                )
            };
            o.push_str(&format!(
                "  {:<7} {} {:>4.0} %  {} of {} this {} ({} to {}), projected {} by its end{}\n",
                m.name(),
                policy::bar(s.fraction(), 20),
                100.0 * s.fraction(),
                m.show(s.used),
                m.show(s.budget.amount),
                s.budget.period.name(),
                &at(s.period_start)[..10],
                &at(s.period_end)[..10],
                m.show(s.projection(now)),
                match s.state(now) {
                    BudgetState::UsedUp => crate::term::paint(
                        "  USED UP: runs are refused until the period renews",
                        Some("red"),
                        caps,
                    ),
                    BudgetState::OnCourseToExceed => {
                        crate::term::paint("  on course to exceed", Some("yellow"), caps)
                    }
                    BudgetState::Ok => String::new(),
                }
            ));
        }
    }
    if json {
        let j = serde_json::json!({
            "schema": "decompute.budget-status/1",
            "policy": path.display().to_string(),
            "ledger": loc.shown(),
            "projects": jprojects,
        });
        return print_stdout(&(serde_json::to_string_pretty(&j)? + "\n"));
    }
    print_stdout(&o)
}

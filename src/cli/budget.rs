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
        /// Print Prometheus metrics on stdout (for node_exporter's textfile collector, or a
        /// dashboard's budget panel): use, amount and their ratio per project budget
        #[arg(long, conflicts_with = "json")]
        prometheus: bool,
    },
}

pub fn main(a: BudgetCmd) -> anyhow::Result<()> {
    let BudgetAction::Status {
        policy: path,
        project,
        ledger,
        config,
        json,
        prometheus,
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
    let mut gauges: Vec<GaugeRow> = Vec::new();
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
            gauges.push((
                vec![
                    ("project".into(), proj.to_string()),
                    ("metric".into(), m.name().into()),
                    ("unit".into(), m.base_unit().into()),
                    ("period".into(), s.budget.period.name().into()),
                ],
                [
                    s.used,
                    s.budget.amount,
                    s.fraction(),
                    s.projection(now) / s.budget.amount,
                ],
            ));
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
    if prometheus {
        return print_stdout(&metrics(&gauges)?);
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

/// One budget's labels and its values, in the order of [`METRICS`].
type GaugeRow = (Vec<(String, String)>, [f64; 4]);

/// The metrics of `budget status --prometheus`: name and help, in the order of each row's
/// values.
pub const METRICS: [(&str, &str); 4] = [
    ("decompute_budget_used", "Use of each project budget in its current period, in the metric's base unit (J, g CO2e, L, s)"),
    ("decompute_budget_amount", "Each project budget's amount for its period, in the metric's base unit"),
    ("decompute_budget_used_ratio", "Use over amount (1 = used up)"),
    ("decompute_budget_projected_ratio", "Use projected to the period's end at the pace so far, over amount"),
];

/// The budgets as Prometheus text (0.0.4), through the same client library as `serve`.
fn metrics(rows: &[GaugeRow]) -> anyhow::Result<String> {
    use prometheus_client::metrics::{family::Family, gauge::Gauge};
    use std::sync::atomic::AtomicU64;
    type G = Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>;
    let mut reg = prometheus_client::registry::Registry::default();
    let families: Vec<G> = METRICS.iter().map(|_| G::default()).collect();
    for ((name, help), f) in METRICS.iter().zip(&families) {
        reg.register(*name, *help, f.clone());
    }
    for (labels, values) in rows {
        for (f, v) in families.iter().zip(values) {
            f.get_or_create(labels).set(*v);
        }
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode_registry(&mut out, &reg)?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

//! What a run is held to before it starts: its own `--budget`, what its project's budgets
//! in the policy file leave it (refusing to start when one is used up, unless forced, which
//! is recorded), and yielding to the grid, whose signal must be readable at the start.
//! Everything here is decided before the command runs, so every refusal costs nothing.

use crate::factors::Conversion;
use crate::govern::budget::Limit;
use crate::govern::governor::{Governor, GovernorConfig};
use crate::govern::policy::{OnExceed, Policy};
use crate::govern::yielding::YieldPolicy;
use crate::ledger::Ledger;
use crate::signal::command::Helpers;
use crate::signal::reader::{Latest, Reader};
use crate::signal::Signal;
use std::path::PathBuf;
use std::time::Duration;

/// Limits asked for on the command line.
pub struct LimitRequest {
    pub budget: Vec<Limit>,
    pub on_exceed: Option<OnExceed>,
    pub grace: Duration,
    pub force: bool,
    pub grid: Option<(Signal, YieldPolicy)>,
}

/// The outcome of the set-up.
pub enum Setup {
    /// A project budget is used up: the run must not start. The messages say which.
    Refused(Vec<String>),
    /// The run may start, held to this governor (if anything is to govern); `refresh`
    /// names the policy and project whose budgets the ledger thread re-reads during the run.
    Go {
        governor: Option<Box<Governor>>,
        refresh: Option<(PathBuf, String)>,
        messages: Vec<String>,
    },
}

/// Decides the governor of a run of `project` at Unix time `now`.
pub fn governor(
    req: &LimitRequest,
    project: &str,
    policy: Option<&Policy>,
    ledger: Option<&dyn Ledger>,
    conv: &Conversion,
    now: i64,
) -> Result<Setup, String> {
    let mut messages = Vec::new();
    if let Some((_, y)) = &req.grid {
        if y.pause_above.is_none() && y.pause_at_stress.is_none() {
            messages.push("note: --grid without --pause-above or --pause-at-stress: carbon follows the signal, the workload is never paused".into());
        }
    }
    let mut project_limits = Vec::new();
    let mut forced = false;
    let mut refresh = None;
    let budgeted = policy.is_some_and(|p| p.budgets.iter().any(|b| b.project == project));
    if let (Some(p), false) = (policy, budgeted) {
        if !p.budgets.is_empty() {
            messages.push(format!(
                "note: project '{project}' has no budget in {} (budgeted: {}); this run is not limited by it",
                p.path.display(),
                p.projects().join(", ")
            ));
        }
    }
    if let (Some(p), true) = (policy, budgeted) {
        match ledger {
            None => messages.push(format!(
                "warning: the budgets of project '{project}' in {} cannot be checked without a ledger",
                p.path.display()
            )),
            Some(l) => {
                let (st, shares) = crate::govern::usage::project_limits(p, project, now, l, None)
                    .map_err(|e| format!("reading the ledger for budgets: {e}"))?;
                let over: Vec<_> = st.iter().filter(|s| s.remaining() <= 0.0).collect();
                if !over.is_empty() && !req.force {
                    return Ok(Setup::Refused(
                        over.iter()
                            .map(|s| format!(
                                "project '{project}' has used {} of its {} {} budget for this {} ({}:{}); not started. Wait for the next {}, raise the budget, or pass --force (recorded)",
                                s.budget.metric.show(s.used),
                                s.budget.metric.show(s.budget.amount),
                                s.budget.metric.name(),
                                s.budget.period.name(),
                                p.path.display(),
                                s.budget.line,
                                s.budget.period.name()
                            ))
                            .collect(),
                    ));
                }
                forced = !over.is_empty();
                if forced {
                    messages.push("warning: project budget used up; starting anyway (--force, recorded)".into());
                } else {
                    project_limits = shares;
                    refresh = Some((p.path.clone(), project.to_string()));
                }
            }
        }
    }
    if req.budget.is_empty() && project_limits.is_empty() && req.grid.is_none() && !forced {
        return Ok(Setup::Go {
            governor: None,
            refresh: None,
            messages,
        });
    }
    let on_exceed = req
        .on_exceed
        .or_else(|| policy.and_then(|p| p.on_exceed.get(project).copied()))
        .unwrap_or(OnExceed::Stop);
    let cfg = GovernorConfig {
        limits: req.budget.clone(),
        project: project_limits,
        on_exceed,
        grace: req.grace,
        grid: req.grid.as_ref().map(|(s, y)| (s.label(), y.clone())),
        pue: conv.pue.value,
        wue: conv.wue.value,
        ewif: conv.ewif.value,
        zone_intensity: conv.grid.value,
        forced,
        policy: policy.map(|p| p.path.display().to_string()),
    };
    Ok(Setup::Go {
        governor: Some(Box::new(Governor::new(cfg, crate::timefmt::now_s()))),
        refresh,
        messages,
    })
}

/// Reads the grid signal once, now, and starts reading it every `every` on its own thread.
/// A signal that cannot be read at the start is an error naming it.
pub fn start_grid(
    signal: &Signal,
    every: Duration,
    timeout: Duration,
    helpers: &Helpers,
) -> Result<Reader, String> {
    let now = crate::timefmt::now_s();
    let first = signal
        .read(now, timeout, helpers, &|| false)
        .map_err(|e| format!("grid signal {}: {e}; fix it or drop --grid", signal.label()))?;
    Ok(Reader::start(
        signal.clone(),
        Latest {
            seq: 1,
            at: now,
            result: Ok(first),
        },
        every,
        timeout,
        helpers.clone(),
    ))
}

//! `decompute slurm govern` (the cluster controller, one per cluster on the head node) and
//! `decompute slurm status`: reads the jobs with `squeue`, the budgets from the policy file
//! and the shared ledger, the grid from a signal; decides with `slurm::govern`; acts with
//! `scontrol`/`scancel` (or prints what it would do with `--dry-run`); keeps its memory in a
//! state file written through the one file-writing helper.

use super::{print_stdout, LedgerArgs};
use crate::govern::policy;
use crate::settings::PolicyChoice;
use crate::slurm::controller;
use crate::slurm::govern;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct SlurmCmd {
    #[command(subcommand)]
    pub action: SlurmAction,
}

#[derive(Debug, Subcommand)]
pub enum SlurmAction {
    /// Hold over-budget accounts' pending jobs and suspend flexible jobs while the grid is
    /// dirty (run on the head node, as a Slurm operator)
    Govern(Box<GovernArgs>),
    /// What the controller holds and suspends now, and every pause it made
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct GovernArgs {
    /// Grid signal: file:PATH, csv:PATH, json:PATH or cmd:COMMAND
    #[arg(long, value_name = "SIGNAL")]
    pub grid: Option<String>,
    /// Suspend flexible jobs while the grid is above this intensity (gCO2e/kWh)
    #[arg(long, value_name = "G", requires = "grid")]
    pub pause_above: Option<f64>,
    /// Suspend flexible jobs while the grid stress level is at least N (0–3)
    #[arg(long, value_name = "N", requires = "grid", value_parser = clap::value_parser!(u8).range(0..=3))]
    pub pause_at_stress: Option<u8>,
    /// Resume when the intensity falls below this [default: --pause-above]
    #[arg(long, value_name = "G", requires = "pause_above")]
    pub resume_below: Option<f64>,
    /// Minimum time in the suspended or running state before switching again
    #[arg(long, default_value = "1m", value_parser = dur, value_name = "DURATION")]
    pub min_state: Duration,
    /// Longest time one job may spend suspended for the grid, in all (deadlines are met)
    #[arg(long, value_parser = dur, value_name = "DURATION")]
    pub max_pause: Option<Duration>,
    /// A partition whose jobs are flexible (repeatable); otherwise only jobs whose comment
    /// holds decompute:flexible are ever suspended
    #[arg(long = "flexible-partition", value_name = "NAME")]
    pub flexible_partitions: Vec<String>,
    /// Grace before an over-budget running job is cancelled (on_exceed = "stop")
    #[arg(long, default_value = "5m", value_parser = dur, value_name = "DURATION")]
    pub grace: Duration,
    /// Time between passes
    #[arg(long, default_value = "30s", value_parser = dur, value_name = "DURATION")]
    pub every: Duration,
    /// One pass, then exit
    #[arg(long)]
    pub once: bool,
    /// Print what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Policy file with the accounts' budgets [default: decompute.toml here or above]
    #[arg(long, env = "DECOMPUTE_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The controller's memory [default: $XDG_STATE_HOME/decompute/slurm-govern.json]
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The controller's memory [default: $XDG_STATE_HOME/decompute/slurm-govern.json]
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// JSON on stdout
    #[arg(long)]
    pub json: bool,
}

fn dur(s: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// Waits for the next pass: passes start every --every, and one that overran skips the
/// starts it missed. False when the controller is told to stop meanwhile.
fn next_pass(ticker: &mut crate::ticker::Ticker) -> bool {
    ticker.fired(std::time::Instant::now());
    while let Some(wait) = ticker.wait(std::time::Instant::now()) {
        if super::terminating() {
            return false;
        }
        std::thread::sleep(wait.min(Duration::from_millis(100)));
    }
    true
}

pub fn main(a: SlurmCmd) -> anyhow::Result<()> {
    match a.action {
        SlurmAction::Govern(g) => govern_loop(&g),
        SlurmAction::Status(s) => status(&s),
    }
}

fn govern_loop(g: &GovernArgs) -> anyhow::Result<()> {
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&g.every) {
        anyhow::bail!(
            "--every {} is not between 100 ms and 1 h",
            crate::units::Seconds(g.every.as_secs_f64())
        );
    }
    for (flag, v) in [
        ("--pause-above", g.pause_above),
        ("--resume-below", g.resume_below),
    ] {
        if v.is_some_and(|x| !(x.is_finite() && x >= 0.0)) {
            anyhow::bail!("{flag} must be a grid intensity of 0 gCO2e/kWh or more");
        }
    }
    if let (Some(a), Some(b)) = (g.pause_above, g.resume_below) {
        if b > a {
            anyhow::bail!(
                "--resume-below {b} is above --pause-above {a}: resume at or below the level that pauses"
            );
        }
    }
    let settings = super::settings(super::said(
        PolicyChoice::named_or_found(g.policy.as_deref()),
        &[&g.ledger],
    ))?;
    let pol = settings.policy().cloned();
    for proj in pol.iter().flat_map(|p| p.projects()) {
        if proj != proj.to_lowercase() {
            crate::say!(
                "decompute: warning: the policy's budget for {proj} binds Slurm account {} (Slurm keeps account names in lower case)",
                proj.to_lowercase()
            );
        }
    }
    if g.grid.is_some() && g.pause_above.is_none() && g.pause_at_stress.is_none() {
        anyhow::bail!("--grid needs a threshold: add --pause-above G (gCO2e/kWh) or --pause-at-stress N (0–3)");
    }
    let signal = match &g.grid {
        Some(s) => Some(crate::signal::Signal::parse(s).map_err(|e| anyhow::anyhow!(e))?),
        None => None,
    };
    if pol.is_none() && signal.is_none() {
        anyhow::bail!(
            "nothing to govern: no policy file ({} here or above, or --policy) and no --grid",
            policy::FILE_NAME
        );
    }
    let loc = settings.ledger()?;
    let path = controller::state_path(g.state.as_deref())?;
    let mut mem = controller::load_state(&path)?;
    let cfg = govern::Config {
        flexible_partitions: g.flexible_partitions.clone(),
        pause_above: g.pause_above,
        pause_at_stress: g.pause_at_stress,
        resume_below: g.resume_below,
        min_state_s: g.min_state.as_secs_f64(),
        max_pause_s: g.max_pause.map(|d| d.as_secs_f64()),
        grace_s: g.grace.as_secs_f64(),
    };
    super::install_termination();
    let helpers = crate::signal::command::Helpers::default();
    crate::say!(
        "decompute: governing Slurm{}{}; state in {}",
        pol.as_ref()
            .map(|p| format!(" with the budgets of {}", p.path.display()))
            .unwrap_or_default(),
        signal
            .as_ref()
            .map(|s| format!(", yielding to {}", s.label()))
            .unwrap_or_default(),
        path.display()
    );
    let mut ticker = crate::ticker::Ticker::due_at(std::time::Instant::now(), g.every);
    loop {
        let now = crate::timefmt::now_s();
        // A failed squeue (slurmctld restarting, a timeout) skips this pass and keeps the
        // controller and its state: the next pass asks again.
        let jobs = match controller::squeue(&super::terminating) {
            Ok(j) => j,
            Err(e) => {
                crate::say!(
                    "decompute: warning: {e:#}; this pass skipped, asking again in {}",
                    crate::units::Seconds(g.every.as_secs_f64())
                );
                if g.once {
                    return Err(e);
                }
                if !next_pass(&mut ticker) {
                    return Ok(());
                }
                continue;
            }
        };
        let budgets = match &pol {
            Some(p) => {
                let l = super::open_ledger(&loc, std::path::Path::new("/proc"))?;
                controller::budgets(p, l.as_ref(), now as i64)?
            }
            None => BTreeMap::new(),
        };
        let grid = match &signal {
            Some(s) => match s.read(now, Duration::from_secs(10), &helpers, &|| false) {
                Ok(r) => Some(r),
                Err(e) => {
                    crate::say!("decompute: warning: grid signal: {e}; keeping the last state");
                    None
                }
            },
            None => None,
        };
        let actions = govern::decide(&jobs, &budgets, grid, now, &cfg, &mut mem);
        for line in controller::act(&actions, &mut mem, g.dry_run, now, controller::run_command) {
            crate::say!("{line}");
        }
        if !g.dry_run {
            controller::save_state(&path, &mem)?;
        }
        if g.once || super::terminating() {
            return Ok(());
        }
        if !next_pass(&mut ticker) {
            return Ok(());
        }
    }
}

fn status(s: &StatusArgs) -> anyhow::Result<()> {
    let path = controller::state_path(s.state.as_deref())?;
    let m = controller::load_state(&path)?;
    if s.json {
        return print_stdout(&(serde_json::to_string_pretty(&m)? + "\n"));
    }
    print_stdout(&crate::render::slurm::controller(&path, &m))
}

//! `decompute run [options] -- COMMAND...`: measure a command, record it in the ledger,
//! print its footprint on stderr, optionally write the JSON report and the explanation.
//! This module only reads flags and prints; the run itself is [`crate::run`]. A ledger that
//! cannot be written never stops the measurement: it becomes a warning.

use super::{print_stdout, FactorArgs, LedgerArgs, MachineArgs};
use crate::detect::Detection;
use crate::duration::parse_duration;
use crate::govern::budget::{self, Limit};
use crate::govern::freeze::Freezer;
use crate::govern::policy::OnExceed;
use crate::govern::yielding::YieldPolicy;
use crate::ledger::{self, RunIdentity, Thaw};
use crate::procfs::ProcRoot;
use crate::render;
use crate::run::recorder::Recorder;
use crate::run::setup::{self, LimitRequest, Setup};
use crate::run::{execute, RunOptions};
use crate::settings::{PolicyChoice, Said};
use crate::signal::command::Helpers;
use crate::signal::Signal;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Sampling interval, 100ms to 60s (forms: 500ms, 2s, 1m)
    #[arg(long, default_value = "1s", value_parser = parse_interval, value_name = "DURATION")]
    pub interval: Duration,
    /// Print the decompute.run/1 JSON report on stdout (the summary goes to stderr), as
    /// --json does in every command (`--json FILE`, the old form, still writes FILE)
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// Write the decompute.run/1 JSON report to FILE
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub json_file: Option<PathBuf>,
    /// Print the whole calculation: formulas, inputs, factors and their sources
    #[arg(long)]
    pub explain: bool,
    /// No live status line and no summary (errors and warnings are still printed)
    #[arg(long, short)]
    pub quiet: bool,
    /// Follow processes the command leaves running until the last exits, and measure them
    #[arg(long)]
    pub wait_all: bool,
    // Flattened groups last: each sets a help heading that would otherwise capture the
    // options declared after it.
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub machine: MachineArgs,
    #[command(flatten)]
    pub factors: FactorArgs,
    /// The command to measure, after -- (any bytes: passed through as given)
    #[arg(
        trailing_var_arg = true,
        required = true,
        value_name = "COMMAND",
        value_parser = clap::value_parser!(std::ffi::OsString)
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// How the run is recorded.
#[derive(Debug, Args)]
#[command(next_help_heading = "Recording")]
pub struct RecordArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Do not record this run in the ledger
    #[arg(long)]
    pub no_ledger: bool,
    /// Project the run is recorded under and whose budgets apply [default: the policy
    /// file's `project`, else the config's, else the git repository's or directory's name]
    #[arg(long, env = "DECOMPUTE_PROJECT", value_name = "NAME", value_parser = crate::ledger::parse_project)]
    pub project: Option<String>,
    /// A key=value tag (repeatable), e.g. --tag model=llama-7b
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = ledger::parse_tag)]
    pub tags: Vec<(String, String)>,
    /// How often totals and new samples are saved to the ledger (1s to 1h)
    #[arg(long, default_value = "10s", value_parser = parse_checkpoint, value_name = "DURATION")]
    pub checkpoint: Duration,
}

/// Budgets and yielding to the grid.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Budget for this run: energy=500Wh,carbon=200g,water=3L,time=2h (any subset)
    #[arg(long, value_parser = parse_budget_arg, value_name = "LIMITS")]
    pub budget: Option<BudgetArg>,
    /// What to do when a budget is used up [default: the policy's on_exceed, else stop]
    #[arg(long, value_enum, value_name = "ACTION")]
    pub on_exceed: Option<OnExceed>,
    /// Time between SIGTERM and SIGKILL when a budget or a signal ends the workload
    #[arg(long, default_value = "30s", value_parser = parse_any_duration, value_name = "DURATION")]
    pub grace: Duration,
    /// Policy file of project budgets [default: decompute.toml here or in a parent directory]
    #[arg(long, env = "DECOMPUTE_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Start even though a project budget of the policy is used up (recorded)
    #[arg(long)]
    pub force: bool,
    /// Grid signal read every interval: file:PATH, csv:PATH, json:PATH (a Carbon Aware SDK,
    /// Electricity Maps or WattTime forecast) or cmd:COMMAND
    #[arg(long, value_parser = Signal::parse, value_name = "SIGNAL")]
    pub grid: Option<Signal>,
    /// Freeze the workload while the grid is above this intensity (gCO2e/kWh)
    #[arg(long, allow_negative_numbers = true, value_name = "G")]
    pub pause_above: Option<f64>,
    /// Freeze the workload while the grid stress level is at least N (0–3)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=3))]
    pub pause_at_stress: Option<u8>,
    /// Resume when the intensity falls below this [default: --pause-above]
    #[arg(long, allow_negative_numbers = true, value_name = "G")]
    pub resume_below: Option<f64>,
    /// Minimum time in the frozen or running state before switching again
    #[arg(long, default_value = "1m", value_parser = parse_any_duration, value_name = "DURATION")]
    pub min_state: Duration,
    /// Most total frozen time; after it the workload runs regardless (deadlines are met)
    #[arg(long, value_parser = parse_any_duration, value_name = "DURATION")]
    pub max_pause: Option<Duration>,
    /// A signal older than this no longer keeps the workload frozen
    #[arg(long, default_value = "15m", value_parser = parse_any_duration, value_name = "DURATION")]
    pub grid_stale: Duration,
    /// Time limit for a cmd: signal
    #[arg(long, default_value = "10s", value_parser = parse_any_duration, value_name = "DURATION")]
    pub grid_timeout: Duration,
}

/// A `--budget` value (a newtype, so clap takes it as one value, not a list).
#[derive(Debug, Clone)]
pub struct BudgetArg(pub Vec<Limit>);

fn parse_budget_arg(s: &str) -> Result<BudgetArg, String> {
    budget::parse_budget(s).map(BudgetArg)
}

fn parse_any_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    crate::ticker::check_interval(parse_duration(s).map_err(|e| e.to_string())?)
}

fn parse_checkpoint(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(format!("checkpoint {s} is outside 1s–1h; pick e.g. 10s"));
    }
    Ok(d)
}

/// Exit code when a budget stopped the workload (as timeout(1) does for its limit).
pub const EXIT_STOPPED_BY_BUDGET: i32 = 124;
/// Exit code when a project budget of the policy is used up and the run was not started.
pub const EXIT_OVER_BUDGET: i32 = 123;

/// Start time (clock ticks after boot) of this process, to identify it in the ledger.
fn own_start_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| crate::procfs::pid::parse(&t).ok())
        .map(|s| s.starttime)
        .unwrap_or(0)
}

pub fn main(a: RunArgs) -> anyhow::Result<i32> {
    // Everything that can be refused is checked before the command starts.
    let mut said = Said {
        policy: PolicyChoice::named_or_found(a.limits.policy.as_deref()),
        ..Said::default()
    };
    a.factors.said_into(&mut said);
    a.machine.said_into(&mut said);
    a.record.ledger.said_into(&mut said);
    let settings = super::settings(said)?;
    let data = settings.factor_data()?;
    let conv = settings.conversion(&data)?;
    let probe = settings.probe()?;
    let policy = settings.policy().cloned();
    let ledger_target = settings.ledger()?;
    let json_out = super::json_target(&a.json, &a.json_file);
    if let Some(p) = &json_out {
        if p.as_os_str() != "-" {
            crate::outfile::check(p, &ledger_target.protected())?;
        }
    }
    let req = limit_request(&a)?;
    let mut detection = Detection::run(&probe, &data);
    let shown = detection.warnings.clone();
    for w in &shown {
        if super::first_time_on_this_machine(w) {
            crate::say!("decompute: warning: {w}");
        }
    }
    // Inside a Slurm job: the job's tags, and its account as the project unless one was
    // given; tags given with --tag win over the job's.
    let (slurm_tags, slurm_account) = crate::slurm::env::tags(std::env::vars());
    let mut tags = slurm_tags;
    tags.extend(a.record.tags.iter().cloned());
    let identity = RunIdentity {
        id: crate::ulid::new(std::time::SystemTime::now()),
        project: settings.project(a.record.project.as_deref(), slurm_account),
        tags,
        user: ledger::current_user(),
        host: crate::host::hostname(),
        cwd: settings.cwd().display().to_string(),
    };
    let procfs = settings.procfs_root();
    let mut unreached: Option<String> = None;
    let ledger = if a.record.no_ledger {
        None
    } else {
        match super::open_ledger(&ledger_target, &procfs) {
            Ok(l) => Some(l),
            Err(e) => {
                crate::say!(
                    "decompute: warning: {e:#}; this run is measured and will be kept in the spool"
                );
                unreached = Some(format!("{e:#}"));
                None
            }
        }
    };
    let (governor, refresh, messages) = match setup::governor(
        &req,
        &identity.project,
        policy.as_ref(),
        ledger.as_deref(),
        &conv,
        crate::timefmt::now_s() as i64,
    )
    .map_err(|e| anyhow::anyhow!(e))?
    {
        Setup::Refused(why) => {
            for w in why {
                crate::say!("decompute: error: {w}");
            }
            return Ok(EXIT_OVER_BUDGET);
        }
        Setup::Go {
            governor,
            refresh,
            messages,
        } => (governor, refresh, messages),
    };
    for m in messages {
        crate::say!("decompute: {m}");
    }
    let helpers = Helpers::default();
    let grid = match &req.grid {
        Some((sig, _)) => Some(
            setup::start_grid(sig, a.interval, a.limits.grid_timeout, &helpers)
                .map_err(|e| anyhow::anyhow!(e))?,
        ),
        None => None,
    };
    let mut governor = governor;
    let freezer = governor.as_mut().map(|g| {
        let f = Freezer::choose(&procfs, &identity.id);
        g.record.freeze_method = Some(f.method());
        f
    });
    let thaw_base = Thaw {
        host: identity.host.clone(),
        cgroup: match &freezer {
            Some(Freezer::Cgroup(c)) => Some(c.dir.display().to_string()),
            _ => None,
        },
        pids: Vec::new(),
    };
    let caps = crate::term::Caps::stderr();
    let live = !a.quiet && caps.live;
    let recording = ledger.is_some();
    let mut recorder = Recorder::new(
        governor,
        ledger.map(crate::run::writer::Writer::start),
        identity.clone(),
        ledger::Monitor {
            pid: std::process::id() as i32,
            start_ticks: own_start_ticks(),
            lease_s: ledger::Monitor::lease_for(a.record.checkpoint),
        },
        a.record.checkpoint,
        live,
        detection.cpu_measured(),
        grid,
        refresh,
        thaw_base,
        conv.grid.clone(),
    );
    let opts = RunOptions {
        argv: a.command.clone(),
        interval: a.interval,
        procfs_root: ProcRoot::new(&procfs),
        freezer,
        wait_all: a.wait_all,
        grace: a.limits.grace,
        helpers,
    };
    detection.warnings.clear();
    detection.warnings.extend(shown.iter().cloned());
    let outcome = match execute(opts, detection, &conv, &mut recorder) {
        Ok(o) => o,
        Err(e) => {
            recorder.clear_line();
            crate::say!("decompute: error: {e}");
            return Ok(e.exit_code());
        }
    };
    recorder.clear_line();
    let report = &outcome.report;
    let stopped = report
        .governance
        .as_ref()
        .is_some_and(|g| g.stopped_by.is_some());
    let status = report.status();
    let mut recorded = false;
    if let Some(w) = recorder.writer.take() {
        match w.finish(status, report.clone(), outcome.unsaved.clone()) {
            Ok(()) => recorded = true,
            Err(e) => unreached = Some(e.to_string()),
        }
    }
    let mut spooled = false;
    if let Some(why) = &unreached {
        let record = ledger::RunRecord {
            schema: ledger::RECORD_SCHEMA.into(),
            identity: identity.clone(),
            status,
            report: report.clone(),
        };
        super::spool_run(&ledger_target, &record, why);
        spooled = true;
    }
    if !a.quiet {
        crate::term::say_raw(&render::summary::render(report, &shown, caps));
        if recorded {
            // Where runs go is said on the first run recorded there from this machine.
            let shown = ledger_target.shown();
            let first = super::once_on_this_machine("said-ledger", &shown);
            crate::say!(
                "  recorded as run {} in project '{}'{}",
                identity.id,
                crate::term::escape(&identity.project),
                match (first, &ledger_target.origin) {
                    // A policy's ledger is named with the policy, every time.
                    (_, crate::factors::Origin::Policy(_)) | (false, _) => {
                        ledger_target.shown_if_shared()
                    }
                    (true, _) => format!(
                        " of the ledger {} (every run is recorded there; `decompute ledger list` shows them; --no-ledger not to record)",
                        crate::term::escape(&shown)
                    ),
                }
            );
        } else if spooled {
            crate::say!("  not recorded in the ledger yet: spooled (see the warning above)");
        } else if recording {
            crate::say!("  not recorded in the ledger (see the warning above)");
        }
    }
    if a.explain {
        crate::term::say_raw(&render::explain::render(report, &outcome.model_lines));
    }
    let code = if stopped {
        EXIT_STOPPED_BY_BUDGET
    } else {
        outcome.exit_code
    };
    if let Some(p) = &json_out {
        let mut full = report.clone();
        full.run = Some(identity.clone());
        let text = render::json(&full);
        if p.as_os_str() == "-" {
            if let Err(e) = print_stdout(&text) {
                // A closed stdout costs the report, never the command's exit code.
                crate::say!("decompute: warning: cannot write the report to stdout ({e:#})");
            }
        } else if let Err(e) = crate::outfile::write(p, text.as_bytes()) {
            // The measurement is not lost: print it so it can be saved by hand.
            crate::say!("decompute: error: {e}; the report follows on stdout");
            let _ = print_stdout(&text);
            return Ok(if code == 0 {
                super::EXIT_RUN_FAILURE
            } else {
                code
            });
        }
    }
    Ok(code)
}

/// The limits of the command line, checked before anything starts.
fn limit_request(a: &RunArgs) -> anyhow::Result<LimitRequest> {
    let l = &a.limits;
    if l.grid.is_none() && (l.pause_above.is_some() || l.pause_at_stress.is_some()) {
        anyhow::bail!("--pause-above/--pause-at-stress need a grid signal: add --grid file:PATH, csv:PATH, json:PATH or cmd:COMMAND");
    }
    for (name, v) in [
        ("--pause-above", l.pause_above),
        ("--resume-below", l.resume_below),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && (0.0..=3000.0).contains(&v)) {
                anyhow::bail!("{name} {v} is not an intensity; give gCO2e/kWh between 0 and 3000");
            }
        }
    }
    if let (Some(p), Some(r)) = (l.pause_above, l.resume_below) {
        if r > p {
            anyhow::bail!("--resume-below {r} is above --pause-above {p}; resume at or below the pause threshold");
        }
    }
    Ok(LimitRequest {
        budget: l.budget.clone().map(|b| b.0).unwrap_or_default(),
        on_exceed: l.on_exceed,
        grace: l.grace,
        force: l.force,
        grid: l.grid.clone().map(|sig| {
            (
                sig,
                YieldPolicy {
                    pause_above: l.pause_above,
                    pause_at_stress: l.pause_at_stress,
                    resume_below: l.resume_below,
                    min_state_s: l.min_state.as_secs_f64(),
                    max_pause_s: l.max_pause.map(|d| d.as_secs_f64()),
                    stale_s: l.grid_stale.as_secs_f64(),
                },
            )
        }),
    })
}

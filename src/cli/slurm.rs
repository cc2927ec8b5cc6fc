//! `decompute slurm govern` (the cluster controller, one per cluster on the head node) and
//! `decompute slurm status`: reads the jobs with `squeue`, the budgets from the policy file
//! and the shared ledger, the grid from a signal; decides with `slurm::govern`; acts with
//! `scontrol`/`scancel` (or prints what it would do with `--dry-run`); keeps its memory in a
//! state file written through the one file-writing helper.

use super::{print_stdout, LedgerArgs};
use crate::govern::policy;
use crate::settings::PolicyChoice;
use crate::slurm::govern::{self, Action, Budget, Memory};
use crate::slurm::jobs::{self, Job};
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
    #[arg(long, value_name = "SIGNAL", requires = "pause_above")]
    pub grid: Option<String>,
    /// Suspend flexible jobs while the grid is above G (gCO2e/kWh, or a stress level 0–3)
    #[arg(long, value_name = "G", requires = "grid")]
    pub pause_above: Option<f64>,
    /// Resume when the grid falls below G [default: --pause-above]
    #[arg(long, value_name = "G", requires = "pause_above")]
    pub resume_below: Option<f64>,
    /// Shortest time in one grid state before switching
    #[arg(long, default_value = "0s", value_parser = dur, value_name = "DURATION")]
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

fn state_path(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .ok_or_else(|| anyhow::anyhow!("no $HOME or $XDG_STATE_HOME: pass --state FILE"))?;
    Ok(base.join("decompute/slurm-govern.json"))
}

fn load_memory(p: &std::path::Path) -> anyhow::Result<Memory> {
    match crate::infile::read_text(p, crate::infile::BULK_LIMIT) {
        Ok(t) => serde_json::from_str(&t)
            .map(|m| Memory { known: true, ..m })
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a controller state file ({e}); move it away to start afresh",
                    crate::term::escape(&p.display().to_string())
                )
            }),
        Err(e) if e.is_not_found() => Ok(Memory::default()),
        Err(e) => Err(anyhow::anyhow!(e.to_string())),
    }
}

fn save_memory(p: &std::path::Path, m: &Memory) -> anyhow::Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    crate::outfile::write(p, (serde_json::to_string_pretty(m)? + "\n").as_bytes())?;
    Ok(())
}

/// All jobs, as `squeue` gives them.
fn squeue() -> anyhow::Result<Vec<Job>> {
    let run = |args: &[&str]| {
        std::process::Command::new("squeue")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run squeue ({e}); is Slurm installed here?"))
    };
    let o = run(&["--json", "--states=all"])?;
    if o.status.success() {
        return jobs::parse_json(&String::from_utf8_lossy(&o.stdout))
            .map_err(|e| anyhow::anyhow!(e));
    }
    let o = run(&["--noheader", "--states=all", "--format", jobs::FORMAT])?;
    if !o.status.success() {
        anyhow::bail!(
            "squeue failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    jobs::parse_format(&String::from_utf8_lossy(&o.stdout)).map_err(|e| anyhow::anyhow!(e))
}

fn scontrol(args: &[&str]) -> Result<(), String> {
    let o = std::process::Command::new(args[0])
        .args(&args[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// The commands an action runs.
fn commands(a: &Action) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let comment = |job: u64, c: &str| {
        vec![
            "scontrol".into(),
            "update".into(),
            format!("JobId={job}"),
            format!("Comment={c}"),
        ]
    };
    match a {
        Action::Hold { job, comment: c } => {
            vec![s(&["scontrol", "hold", &job.to_string()]), comment(*job, c)]
        }
        Action::Release { job, comment: c } => vec![
            comment(*job, c),
            s(&["scontrol", "release", &job.to_string()]),
        ],
        Action::Suspend {
            job, comment: c, ..
        } => vec![
            comment(*job, c),
            s(&["scontrol", "suspend", &job.to_string()]),
        ],
        Action::Resume {
            job, comment: c, ..
        } => vec![
            s(&["scontrol", "resume", &job.to_string()]),
            comment(*job, c),
        ],
        Action::Cancel { job, .. } => vec![s(&["scancel", &job.to_string()])],
        Action::Warn { .. } => Vec::new(),
    }
}

fn describe(a: &Action) -> String {
    match a {
        Action::Hold { job, comment } => format!("hold job {job}: {comment}"),
        Action::Release { job, .. } => format!("release job {job}: its budget allows it again"),
        Action::Suspend { job, why, .. } => format!("suspend job {job}: {why}"),
        Action::Resume { job, why, .. } => format!("resume job {job}: {why}"),
        Action::Cancel { job, why } => format!("cancel job {job}: {why}"),
        Action::Warn { job, why } => format!("job {job} runs over budget: {why}"),
    }
}

/// The accounts whose budgets the policy sets, and whether each is used up now.
fn budgets(
    p: &policy::Policy,
    l: &dyn crate::ledger::Ledger,
    now: i64,
) -> anyhow::Result<BTreeMap<String, Budget>> {
    let mut out = BTreeMap::new();
    for proj in p.projects() {
        // Slurm keeps account names in lower case: `[budget.acctA]` is account `accta`,
        // whose jobs the agent records under that name.
        let account = proj.to_lowercase();
        let st = policy::standings(p, proj, now, |s, e| {
            let mut u = crate::govern::usage::period_usage(l, proj, s, e)?;
            if account != proj {
                let v = crate::govern::usage::period_usage(l, &account, s, e)?;
                u.energy_j += v.energy_j;
                u.carbon_g += v.carbon_g;
                u.water_l += v.water_l;
                u.time_s += v.time_s;
            }
            Ok(u)
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        let day = |t: i64| {
            crate::timefmt::rfc3339_s(t as f64)
                .chars()
                .take(10)
                .collect::<String>()
        };
        let gone = st.iter().find(|s| s.state(now) == "used-up");
        out.insert(
            account,
            Budget {
                used_up: gone.is_some(),
                message: gone
                    .map(|s| {
                        let start = day(s.period_start);
                        let label = if s.budget.period.name() == "month" {
                            start.chars().take(7).collect()
                        } else {
                            format!("the {} from {start}", s.budget.period.name())
                        };
                        format!(
                            "{} budget of project {proj} used up for {label}; resets {}",
                            s.budget.metric.name(),
                            day(s.period_end)
                        )
                    })
                    .unwrap_or_default(),
                on_exceed: p
                    .on_exceed
                    .get(proj)
                    .map(|a| format!("{a:?}").to_lowercase())
                    .unwrap_or_else(|| "warn".into()),
            },
        );
    }
    Ok(out)
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
            anyhow::bail!(
                "{flag} must be a grid intensity (gCO2e/kWh) or stress level of 0 or more"
            );
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
    let pol = settings.policy.clone();
    for proj in pol.iter().flat_map(|p| p.projects()) {
        if proj != proj.to_lowercase() {
            crate::say!(
                "decompute: warning: the policy's budget for {proj} binds Slurm account {} (Slurm keeps account names in lower case)",
                proj.to_lowercase()
            );
        }
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
    let path = state_path(&g.state)?;
    let mut mem = load_memory(&path)?;
    let cfg = govern::Config {
        flexible_partitions: g.flexible_partitions.clone(),
        pause_above: g.pause_above,
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
        let jobs = match squeue() {
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
                budgets(p, l.as_ref(), now as i64)?
            }
            None => BTreeMap::new(),
        };
        let grid = match &signal {
            Some(s) => match s.read(now, Duration::from_secs(10), &helpers, &|| false) {
                Ok(r) => r.intensity.or(r.stress.map(f64::from)),
                Err(e) => {
                    crate::say!("decompute: warning: grid signal: {e}; keeping the last state");
                    None
                }
            },
            None => None,
        };
        let before = mem.clone();
        let actions = govern::decide(&jobs, &budgets, grid, now, &cfg, &mut mem);
        for act in &actions {
            let when = crate::timefmt::rfc3339_s(now);
            if g.dry_run {
                crate::say!("{when} would {}", describe(act));
                continue;
            }
            let mut failed = None;
            for c in commands(act) {
                let args: Vec<&str> = c.iter().map(String::as_str).collect();
                if let Err(e) = scontrol(&args) {
                    failed = Some(e);
                    break;
                }
            }
            match failed {
                None => crate::say!("{when} {}", describe(act)),
                Some(e) => {
                    crate::say!("decompute: warning: {}: {e}", describe(act));
                    // Forget what did not happen, so the next pass tries again.
                    match act {
                        Action::Suspend { job, .. } => {
                            mem.suspended.remove(job);
                            mem.pauses.retain(|p| !(p.job == *job && p.end.is_none()));
                        }
                        Action::Hold { job, .. } => {
                            mem.held.remove(job);
                        }
                        Action::Resume { job, .. } | Action::Release { job, .. } => {
                            if let Some(c) = before.suspended.get(job) {
                                mem.suspended.insert(*job, c.clone());
                            }
                            if let Some(c) = before.held.get(job) {
                                mem.held.insert(*job, c.clone());
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if !g.dry_run {
            save_memory(&path, &mem)?;
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
    let path = state_path(&s.state)?;
    let m = load_memory(&path)?;
    if s.json {
        return print_stdout(&(serde_json::to_string_pretty(&m)? + "\n"));
    }
    let t = |x: f64| crate::timefmt::rfc3339_s(x);
    let mut o = format!(
        "controller state {}\ngrid {} since {}\n",
        path.display(),
        if m.grid_dirty { "dirty" } else { "clean" },
        if m.grid_since > 0.0 {
            t(m.grid_since)
        } else {
            "-".into()
        }
    );
    o.push_str(&format!(
        "suspended by the controller: {}\n",
        if m.suspended.is_empty() {
            "none".to_string()
        } else {
            m.suspended
                .iter()
                .map(|(j, c)| format!("{j} ({c})"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    o.push_str(&format!(
        "held for a budget: {}\n",
        if m.held.is_empty() {
            "none".to_string()
        } else {
            m.held
                .keys()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    o.push_str("pauses\n  job        start                 end                   cause   grid\n");
    for p in &m.pauses {
        o.push_str(&format!(
            "  {:<10} {:<21} {:<21} {:<7} {}\n",
            p.job,
            t(p.start),
            p.end.map(t).unwrap_or_else(|| "(suspended)".into()),
            p.cause,
            p.grid.map(|g| g.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    print_stdout(&o)
}

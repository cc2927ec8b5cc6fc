//! `decompute run [options] -- COMMAND...`: measure a command, record it in the ledger,
//! print its footprint on stderr, optionally write the JSON report and the explanation.
//! A ledger that cannot be written never stops the measurement: it becomes a warning.

use super::{print_stdout, FactorArgs, LedgerArgs, MachineArgs};
use crate::detect::Detection;
use crate::duration::parse_duration;
use crate::factors;
use crate::govern::budget::{self, Limit, Usage};
use crate::govern::freeze::{Cgroup, Freezer};
use crate::govern::governor::{Directive, Governor, GovernorConfig, Record};
use crate::govern::policy::{self, OnExceed};
use crate::govern::yielding::YieldPolicy;
use crate::ledger::{self, Ledger, RunIdentity, Status};
use crate::monitor::Monitor;
use crate::procfs::ProcRoot;
use crate::render;
use crate::report::RunReport;
use crate::run::{execute, Observer, RunOptions};
use crate::signal::Signal;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Sampling interval, 100ms to 60s (forms: 500ms, 2s, 1m)
    #[arg(long, default_value = "1s", value_parser = parse_interval, value_name = "DURATION")]
    pub interval: Duration,
    /// Write the decompute.run/1 JSON report to FILE ("-" for stdout)
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Print the whole calculation: formulas, inputs, factors and their sources
    #[arg(long)]
    pub explain: bool,
    /// No live status line and no summary (errors and warnings are still printed)
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub machine: MachineArgs,
    #[command(flatten)]
    pub factors: FactorArgs,
    /// The command to measure, after --
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
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
    /// Project the run belongs to [default: config, else the git repository's or directory's name]
    #[arg(long, env = "DECOMPUTE_PROJECT", value_name = "NAME")]
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
    /// Time between SIGTERM and SIGKILL when a budget stops the workload
    #[arg(long, default_value = "30s", value_parser = parse_any_duration, value_name = "DURATION")]
    pub grace: Duration,
    /// Policy file of project budgets [default: decompute.toml here or in a parent directory]
    #[arg(long, env = "DECOMPUTE_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Start even though a project budget of the policy is used up (recorded)
    #[arg(long)]
    pub force: bool,
    /// Grid signal read every interval: file:PATH, csv:PATH or cmd:COMMAND
    #[arg(long, value_parser = Signal::parse, value_name = "SIGNAL")]
    pub grid: Option<Signal>,
    /// Freeze the workload while the grid is above this intensity (gCO2e/kWh)
    #[arg(long, value_name = "G")]
    pub pause_above: Option<f64>,
    /// Freeze the workload while the grid stress level is at least N (0–3)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=3))]
    pub pause_at_stress: Option<u8>,
    /// Resume when the intensity falls below this [default: --pause-above]
    #[arg(long, value_name = "G")]
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

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(60) {
        return Err(format!(
            "interval {s} is outside 100ms–60s; pick e.g. 500ms or 1s"
        ));
    }
    Ok(d)
}

fn parse_checkpoint(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(format!("checkpoint {s} is outside 1s–1h; pick e.g. 10s"));
    }
    Ok(d)
}

/// Records the run in a ledger and shows the live line; turns ledger failures into one
/// warning each and stops using a ledger that failed.
struct Recorder {
    governor: Option<Box<Governor>>,
    ledger: Option<Box<dyn Ledger>>,
    identity: Option<RunIdentity>,
    checkpoint: Duration,
    last_checkpoint: Instant,
    live: bool,
    measured_cpu: bool,
}

impl Recorder {
    fn fail(&mut self, what: &str, e: ledger::LedgerError) {
        crate::say!("decompute: warning: cannot {what} the ledger ({e:#}); the footprint is still printed and --json still works");
        self.ledger = None;
    }
}

impl Observer for Recorder {
    fn started(&mut self, initial: &RunReport) {
        if let (Some(l), Some(id)) = (self.ledger.as_mut(), self.identity.as_ref()) {
            let me = ledger::Monitor {
                pid: std::process::id() as i32,
                start_ticks: own_start_ticks(),
            };
            if let Err(e) = l.begin(id, me, initial) {
                self.fail("write to", e);
            }
        }
        self.last_checkpoint = Instant::now();
    }

    fn tick(&mut self, m: &mut Monitor, snapshot: &dyn Fn(&Monitor) -> RunReport) -> Directive {
        let mut directive = Directive::Continue;
        if let Some(g) = self.governor.as_mut() {
            let (d, msgs) = g.tick(unix_now(), m.elapsed().0, m.totals.workload().0);
            if self.live && !msgs.is_empty() {
                crate::term::say_raw("\r\x1b[2K");
            }
            for msg in msgs {
                crate::say!("decompute: {msg}");
            }
            directive = d;
        }
        if self.live {
            let line = render::status::line(
                m.elapsed(),
                m.workload_power(),
                m.totals.workload(),
                self.measured_cpu,
            );
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
        if self.ledger.is_some() && self.last_checkpoint.elapsed() >= self.checkpoint {
            self.last_checkpoint = Instant::now();
            let rows = m.take_unsaved();
            let report = snapshot(m);
            if let (Some(l), Some(id)) = (self.ledger.as_mut(), self.identity.as_ref()) {
                let mut report = report;
                report.governance = self.governor.as_ref().map(|g| g.record.clone());
                if let Err(e) = l.checkpoint(&id.id, &report, &rows) {
                    self.fail("write to", e);
                }
            }
        }
        directive
    }

    fn finish(&mut self, m: &Monitor) -> (Option<Record>, Option<crate::factors::Factor>) {
        let Some(g) = self.governor.as_mut() else {
            return (None, None);
        };
        for msg in g.last(unix_now(), m.elapsed().0, m.totals.workload().0) {
            crate::say!("decompute: {msg}");
        }
        let record = g.finish(m.elapsed().0);
        let grid = record.grid_signal.as_ref().map(|sig| {
            crate::factors::Factor::new(
                g.mean_intensity(),
                "gCO2e/kWh",
                format!(
                    "grid signal {sig}, read every interval; energy-weighted mean of the intervals"
                ),
                None,
            )
        });
        (Some(record), grid)
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Exit code when a budget stopped the workload (as timeout(1) does for its limit).
pub const EXIT_STOPPED_BY_BUDGET: i32 = 124;
/// Exit code when a project budget of the policy is used up and the run was not started.
pub const EXIT_OVER_BUDGET: i32 = 123;

/// The ledger's usage of `project` between two Unix times.
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

fn own_start_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| crate::procfs::pid::parse(&t).ok())
        .map(|s| s.starttime)
        .unwrap_or(0)
}

pub fn main(a: RunArgs) -> anyhow::Result<i32> {
    // Everything that can be refused is checked before the command starts.
    let cfg = a.factors.load_config()?;
    let data = a.factors.data()?;
    let conv = factors::resolve(&data, &a.factors.request(&cfg))?;
    let probe = a.machine.probe(&cfg)?;
    if let Some(p) = &a.json {
        if p.as_os_str() != "-" {
            check_writable(p)?;
        }
    }
    let detection = Detection::run(&probe, &data);
    let shown = detection.warnings.clone();
    for w in &shown {
        crate::say!("decompute: warning: {w}");
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let identity = RunIdentity {
        id: crate::ulid::new(std::time::SystemTime::now()),
        project: a
            .record
            .project
            .clone()
            .or(cfg.project.clone())
            .unwrap_or_else(|| ledger::default_project(&cwd)),
        tags: a.record.tags.iter().cloned().collect(),
        user: ledger::current_user(),
        host: crate::run::hostname(),
        cwd: cwd.display().to_string(),
    };
    let ledger = if a.record.no_ledger {
        None
    } else {
        match a.record.ledger.open(&cfg) {
            Ok(mut l) => {
                if let Ok(n @ 1..) = l.recover() {
                    crate::say!("decompute: note: {n} earlier run(s) whose monitor died were marked interrupted in the ledger");
                }
                Some(l)
            }
            Err(e) => {
                crate::say!("decompute: warning: {e:#}; this run is measured but not recorded");
                None
            }
        }
    };
    let live = !a.quiet && std::io::stderr().is_terminal();
    let governor = match govern_setup(&a, &identity, &ledger, &conv, &cfg)? {
        Setup::Refused(code) => return Ok(code),
        Setup::Governor(g) => g,
    };
    let mut governor = governor;
    let freezer = governor.as_mut().map(|g| {
        let f = choose_freezer(&a.machine.procfs_root, &identity.id);
        g.record.freeze_method = Some(f.method());
        f
    });
    let opts = RunOptions {
        argv: a.command.clone(),
        interval: a.interval,
        procfs_root: ProcRoot::new(&a.machine.procfs_root),
        freezer,
    };
    let mut recorder = Recorder {
        governor,
        ledger,
        identity: Some(identity.clone()),
        checkpoint: a.record.checkpoint,
        last_checkpoint: Instant::now(),
        live,
        measured_cpu: detection.cpu_measured(),
    };
    let outcome = match execute(opts, detection, &conv, &mut recorder) {
        Ok(o) => o,
        Err(e) => {
            crate::say!("decompute: error: {e}");
            return Ok(e.exit_code());
        }
    };
    if live {
        crate::term::say_raw("\r\x1b[2K");
    }
    let report = &outcome.report;
    let stopped = report
        .governance
        .as_ref()
        .is_some_and(|g| g.stopped_by.is_some());
    let status = if stopped {
        Status::StoppedByBudget
    } else if report.interrupted_by.is_some() {
        Status::Interrupted
    } else if outcome.exit_code == 0 {
        Status::Finished
    } else {
        Status::Failed
    };
    if let Some(l) = recorder.ledger.as_mut() {
        if let Err(e) = l.finish(&identity.id, status, report, &outcome.unsaved) {
            recorder.fail("write to", e);
        }
    }
    if !a.quiet {
        crate::term::say_raw(&render::summary::render(report, &shown));
        if recorder.ledger.is_some() {
            crate::say!(
                "  recorded as run {} in project '{}'",
                identity.id,
                identity.project
            );
        }
    }
    if a.explain {
        crate::term::say_raw(&render::explain::render(report, &outcome.model_lines));
    }
    if let Some(p) = &a.json {
        let text = render::json(report);
        if p.as_os_str() == "-" {
            print_stdout(&text)?;
        } else if let Err(e) = write_atomic(p, &text) {
            // The measurement is not lost: print it so it can be saved by hand.
            crate::say!(
                "decompute: error: cannot write {}: {e}; the report follows on stdout",
                p.display()
            );
            print_stdout(&text)?;
            return Ok(if outcome.exit_code == 0 {
                super::EXIT_RUN_FAILURE
            } else {
                outcome.exit_code
            });
        }
    }
    Ok(if stopped {
        EXIT_STOPPED_BY_BUDGET
    } else {
        outcome.exit_code
    })
}

/// The cgroup v2 freezer when a cgroup can be made here, else signals.
/// `DECOMPUTE_FREEZER=signals` forces the signal method (tests, or a cgroup that misbehaves).
fn choose_freezer(procfs: &std::path::Path, id: &str) -> Freezer {
    if std::env::var("DECOMPUTE_FREEZER").as_deref() == Ok("signals") {
        return Freezer::Signals;
    }
    match Cgroup::create(procfs, id) {
        Ok(c) => Freezer::Cgroup(c),
        Err(_) => Freezer::Signals,
    }
}

enum Setup {
    Refused(i32),
    Governor(Option<Box<Governor>>),
}

/// Budgets (the run's and the policy's) and the grid: refuses to start when a project
/// budget is used up (unless --force), else builds the governor, if anything is to govern.
fn govern_setup(
    a: &RunArgs,
    identity: &RunIdentity,
    ledger: &Option<Box<dyn Ledger>>,
    conv: &factors::Conversion,
    _cfg: &crate::config::Config,
) -> anyhow::Result<Setup> {
    let l = &a.limits;
    if l.grid.is_none() && (l.pause_above.is_some() || l.pause_at_stress.is_some()) {
        anyhow::bail!("--pause-above/--pause-at-stress need a grid signal: add --grid file:PATH, csv:PATH or cmd:COMMAND");
    }
    if l.grid.is_some() && l.pause_above.is_none() && l.pause_at_stress.is_none() {
        crate::say!("decompute: note: --grid without --pause-above or --pause-at-stress: carbon follows the signal, the workload is never paused");
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
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let policy_path = l.policy.clone().or_else(|| policy::find(&cwd));
    let policy = match &policy_path {
        Some(p) => Some(policy::load(p)?),
        None => None,
    };
    let mut limits = l.budget.clone().map(|b| b.0).unwrap_or_default();
    let mut forced = false;
    let project_budgets = policy
        .as_ref()
        .is_some_and(|p| p.budgets.iter().any(|b| b.project == identity.project));
    if let (Some(p), true) = (&policy, project_budgets) {
        match ledger {
            None => crate::say!(
                "decompute: warning: the budgets of project '{}' in {} cannot be checked without a ledger",
                identity.project,
                p.path.display()
            ),
            Some(lg) => {
                let now = unix_now() as i64;
                let st = policy::standings(p, &identity.project, now, |s, e| period_usage(lg.as_ref(), &identity.project, s, e))
                    .map_err(|e| anyhow::anyhow!("reading the ledger for budgets: {e}"))?;
                let over: Vec<&policy::Standing> = st.iter().filter(|s| s.remaining() <= 0.0).collect();
                if !over.is_empty() && !a.limits.force {
                    for s in &over {
                        crate::say!(
                            "decompute: error: project '{}' has used {} of its {} {} budget for this {} ({}:{}); not started. Wait for the next {}, raise the budget, or pass --force (recorded)",
                            identity.project,
                            s.budget.metric.show(s.used),
                            s.budget.metric.show(s.budget.amount),
                            s.budget.metric.name(),
                            s.budget.period.name(),
                            p.path.display(),
                            s.budget.line,
                            s.budget.period.name()
                        );
                    }
                    return Ok(Setup::Refused(EXIT_OVER_BUDGET));
                }
                forced = !over.is_empty();
                if forced {
                    crate::say!("decompute: warning: project budget used up; starting anyway (--force, recorded)");
                } else {
                    limits = budget::tightest(&limits, &policy::remaining_limits(&st));
                }
            }
        }
    }
    if limits.is_empty() && l.grid.is_none() && !forced {
        return Ok(Setup::Governor(None));
    }
    let on_exceed = l
        .on_exceed
        .or_else(|| {
            policy
                .as_ref()
                .and_then(|p| p.on_exceed.get(&identity.project).copied())
        })
        .unwrap_or(OnExceed::Stop);
    let refresh: Option<crate::govern::governor::BudgetRefresh> =
        match (&policy_path, project_budgets, ledger.is_some()) {
            (Some(path), true, true) => {
                let path = path.clone();
                let project = identity.project.clone();
                let run_limits = l.budget.clone().map(|b| b.0).unwrap_or_default();
                let ledger_path = a
                    .record
                    .ledger
                    .path
                    .clone()
                    .or_else(|| _cfg.ledger.clone())
                    .or_else(ledger::default_path);
                let run_id = identity.id.clone();
                Some(Box::new(move |_used: &Usage| {
                    let p = policy::load(&path).ok()?;
                    let lg =
                        crate::ledger::sqlite::SqliteLedger::open(ledger_path.as_ref()?).ok()?;
                    let st = policy::standings(&p, &project, unix_now() as i64, |s, e| {
                        period_usage(&lg, &project, s, e)
                    })
                    .ok()?;
                    // The period's budget less what *other* runs used: this run's own row (at
                    // its last checkpoint) is in the ledger's totals and must not count twice.
                    let mine = lg
                        .get(&run_id)
                        .map(|r| Usage {
                            energy_j: r.report.energy_j.workload,
                            carbon_g: r.report.carbon_g.value,
                            water_l: r.report.water_l.value,
                            time_s: r.report.duration_s,
                        })
                        .unwrap_or_default();
                    let more: Vec<Limit> = st
                        .iter()
                        .map(|s| {
                            let m = s.budget.metric;
                            Limit {
                                metric: m,
                                value: s.budget.amount - (s.used - mine.get(m)).max(0.0),
                            }
                        })
                        .collect();
                    Some(budget::tightest(&run_limits, &more))
                }))
            }
            _ => None,
        };
    let grid = l.grid.clone().map(|sig| {
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
    });
    let cfg = GovernorConfig {
        limits,
        on_exceed,
        grace: l.grace,
        grid,
        grid_timeout: l.grid_timeout,
        pue: conv.pue.value,
        wue: conv.wue.value,
        ewif: conv.ewif.value,
        zone_intensity: conv.grid.value,
        refresh,
        forced,
        policy: policy_path.map(|p| p.display().to_string()),
    };
    Ok(Setup::Governor(Some(Box::new(Governor::new(
        cfg,
        unix_now(),
    )))))
}

fn check_writable(p: &std::path::Path) -> anyhow::Result<()> {
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "--json {}: directory {} does not exist; create it or choose another path",
            p.display(),
            dir.display()
        );
    }
    Ok(())
}

fn write_atomic(p: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = p.with_extension(format!("tmp.{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, p)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

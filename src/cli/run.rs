//! `decompute run [options] -- COMMAND...`: measure a command, record it in the ledger,
//! print its footprint on stderr, optionally write the JSON report and the explanation.
//! A ledger that cannot be written never stops the measurement: it becomes a warning.

use super::{print_stdout, FactorArgs, LedgerArgs, MachineArgs};
use crate::detect::Detection;
use crate::duration::parse_duration;
use crate::factors;
use crate::ledger::{self, Ledger, RunIdentity, Status};
use crate::monitor::Monitor;
use crate::procfs::ProcRoot;
use crate::render;
use crate::report::RunReport;
use crate::run::{execute, Observer, RunOptions};
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
    ledger: Option<Box<dyn Ledger>>,
    identity: Option<RunIdentity>,
    checkpoint: Duration,
    last_checkpoint: Instant,
    live: bool,
    measured_cpu: bool,
}

impl Recorder {
    fn fail(&mut self, what: &str, e: ledger::LedgerError) {
        eprintln!("decompute: warning: cannot {what} the ledger ({e:#}); the footprint is still printed and --json still works");
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

    fn tick(&mut self, m: &mut Monitor, snapshot: &dyn Fn(&Monitor) -> RunReport) {
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
                if let Err(e) = l.checkpoint(&id.id, &report, &rows) {
                    self.fail("write to", e);
                }
            }
        }
    }
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
        eprintln!("decompute: warning: {w}");
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
                    eprintln!("decompute: note: {n} earlier run(s) whose monitor died were marked interrupted in the ledger");
                }
                Some(l)
            }
            Err(e) => {
                eprintln!("decompute: warning: {e:#}; this run is measured but not recorded");
                None
            }
        }
    };
    let live = !a.quiet && std::io::stderr().is_terminal();
    let opts = RunOptions {
        argv: a.command.clone(),
        interval: a.interval,
        procfs_root: ProcRoot::new(&a.machine.procfs_root),
    };
    let mut recorder = Recorder {
        ledger,
        identity: Some(identity.clone()),
        checkpoint: a.record.checkpoint,
        last_checkpoint: Instant::now(),
        live,
        measured_cpu: detection.cpu_measured(),
    };
    let outcome = match execute(&opts, detection, &conv, &mut recorder) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("decompute: error: {e}");
            return Ok(e.exit_code());
        }
    };
    if live {
        eprint!("\r\x1b[2K");
    }
    let report = &outcome.report;
    let status = if report.interrupted_by.is_some() {
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
        eprint!("{}", render::summary::render(report, &shown));
        if recorder.ledger.is_some() {
            eprintln!(
                "  recorded as run {} in project '{}'",
                identity.id, identity.project
            );
        }
    }
    if a.explain {
        eprint!("{}", render::explain::render(report, &outcome.model_lines));
    }
    if let Some(p) = &a.json {
        let text = render::json(report);
        if p.as_os_str() == "-" {
            print_stdout(&text)?;
        } else if let Err(e) = write_atomic(p, &text) {
            // The measurement is not lost: print it so it can be saved by hand.
            eprintln!(
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
    Ok(outcome.exit_code)
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

//! `decompute run [options] -- COMMAND...`: measure a command, print its footprint on
//! stderr, optionally write the JSON report and the explanation.

use super::{print_stdout, FactorArgs, MachineArgs};
use crate::detect::Detection;
use crate::duration::parse_duration;
use crate::factors;
use crate::procfs::ProcRoot;
use crate::render;
use crate::run::{execute, RunOptions};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

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

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(60) {
        return Err(format!(
            "interval {s} is outside 100ms–60s; pick e.g. 500ms or 1s"
        ));
    }
    Ok(d)
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
    let live = !a.quiet && std::io::stderr().is_terminal();
    let opts = RunOptions {
        argv: a.command.clone(),
        interval: a.interval,
        procfs_root: ProcRoot::new(&a.machine.procfs_root),
    };
    let measured_cpu = detection.cpu_measured();
    let outcome = match execute(&opts, detection, &conv, |m| {
        if live {
            let line = render::status::line(
                m.elapsed(),
                m.workload_power(),
                m.totals.workload(),
                measured_cpu,
            );
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
    }) {
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
    if !a.quiet {
        eprint!("{}", render::summary::render(report, &shown));
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

//! Command-line definitions (clap derive) and dispatch. One module per subcommand; shared
//! option groups are flattened so every subcommand reads the machine and the factors alike.
//! Errors reach the user as one line (`{:#}` of the anyhow chain) with a documented exit
//! code; a broken pipe is success.

pub mod budget;
pub mod detect;
pub mod estimate;
pub mod factors;
pub mod ledger;
pub mod models;
pub mod report;
pub mod run;
pub mod scale;
pub mod serve;
pub mod shell;
pub mod slurm;
pub mod when;

use crate::factors::{Given, Origin};
use crate::ledger::{Ledger, Location};
use crate::settings::{PolicyChoice, Said, Settings};
use crate::units::Watts;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exit code for decompute's own failures during `run` (as timeout(1) and env(1) do), so
/// they are not confused with the command's exit codes.
pub const EXIT_RUN_FAILURE: i32 = 125;
/// Exit code for other subcommands' errors.
pub const EXIT_FAILURE: i32 = 1;

#[derive(Debug, Parser)]
#[command(name = "decompute", version, about = "Measure, model and limit the energy, carbon and water of computing", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command and report the energy, carbon and water it cost
    Run(Box<run::RunArgs>),
    /// Show which energy sources this machine offers, and why others are missing
    Detect(detect::DetectArgs),
    /// List conversion factors (grid intensity, water, PUE, power models) with their sources
    Factors(factors::FactorsArgs),
    /// Query, total, export and import the record of runs
    Ledger(ledger::LedgerCmd),
    /// Project budgets of the policy file against the ledger
    Budget(budget::BudgetCmd),
    /// The start time with the cleanest grid for a job, from a forecast
    When(when::WhenArgs),
    /// Estimate the footprint of training or inference before it runs
    Estimate(estimate::EstimateCmd),
    /// The hosted and open-weight models `estimate infer --model` knows, with their sizes and sources
    Models(models::ModelsArgs),
    /// Place a piece of work on the scale of AI compute, AlexNet to the frontier
    Scale(scale::ScaleArgs),
    /// A self-contained HTML page of what computing cost: a period, or one run
    Report(report::ReportArgs),
    /// The Slurm cluster controller: account budgets and grid yielding for jobs
    Slurm(slurm::SlurmCmd),
    /// Node agent: energy, carbon and water of every cgroup, for Prometheus
    Serve(Box<serve::ServeArgs>),
    /// Shell completions (bash, zsh, fish, powershell, elvish) on stdout
    Completions(shell::CompletionsArgs),
    /// Man pages in roff: the main page on stdout, or one per subcommand with --dir
    Man(shell::ManArgs),
}

/// Where to read the machine from, and overrides of what it says.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Machine")]
pub struct MachineArgs {
    /// Root of the sysfs tree (powercap RAPL counters live under <root>/class/powercap)
    #[arg(
        long,
        env = "DECOMPUTE_SYSFS_ROOT",
        default_value = "/sys",
        value_name = "DIR"
    )]
    pub sysfs_root: PathBuf,
    /// Root of the procfs tree (process and CPU times)
    #[arg(
        long,
        env = "DECOMPUTE_PROCFS_ROOT",
        default_value = "/proc",
        value_name = "DIR"
    )]
    pub procfs_root: PathBuf,
    /// CPU power at full load in watts, for the model when RAPL cannot be read
    #[arg(long, allow_negative_numbers = true, value_name = "W", value_parser = parse_tdp)]
    pub cpu_tdp: Option<f64>,
    /// Do not load NVML (no GPU component)
    #[arg(long)]
    pub no_gpu: bool,
}

impl MachineArgs {
    /// Adds what these flags said to `s`.
    pub fn said_into(&self, s: &mut Said) {
        s.sysfs_root = Some(self.sysfs_root.clone());
        s.procfs_root = Some(self.procfs_root.clone());
        s.cpu_tdp = self
            .cpu_tdp
            .map(|w| Given::new(Watts(w), arg_origin("cpu_tdp", None)));
        s.no_gpu = self.no_gpu;
    }
}

/// Conversion factors: where the electricity comes from and the facility around the IT.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Conversion factors")]
pub struct FactorArgs {
    /// Grid zone: ISO 3166 country code (FR, FRA) or WORLD [default: config file, else WORLD]
    #[arg(long, env = "DECOMPUTE_ZONE", value_name = "ZONE")]
    pub zone: Option<String>,
    /// Power usage effectiveness: a number from 1.0 to 4.0 or a preset (personal, hyperscale, average) [default: personal = 1.0]
    #[arg(long, value_name = "PUE|PRESET")]
    pub pue: Option<String>,
    /// Grid carbon intensity in gCO2e/kWh, overriding the zone's yearly average
    #[arg(long, allow_negative_numbers = true, value_name = "G")]
    pub grid_intensity: Option<f64>,
    /// On-site water usage effectiveness in L/kWh of IT energy [default: 0, a personal machine]
    #[arg(long, allow_negative_numbers = true, value_name = "L_PER_KWH")]
    pub wue: Option<f64>,
    /// Off-site water intensity of electricity in L/kWh, overriding the zone's
    #[arg(long, allow_negative_numbers = true, value_name = "L_PER_KWH")]
    pub ewif: Option<f64>,
    /// Directory of factor data files replacing the shipped ones, file by file
    #[arg(long, env = "DECOMPUTE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Defaults file [default: $XDG_CONFIG_HOME/decompute/config.toml]
    #[arg(long, env = "DECOMPUTE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl FactorArgs {
    /// Adds what these flags (and their environment variables) said to `s`.
    pub fn said_into(&self, s: &mut Said) {
        let given = |v: &Option<String>, id: &str, env: Option<&str>| {
            v.clone().map(|v| Given::new(v, arg_origin(id, env)))
        };
        let number = |v: Option<f64>, id: &str| v.map(|v| Given::new(v, arg_origin(id, None)));
        s.zone = given(&self.zone, "zone", Some("DECOMPUTE_ZONE"));
        s.pue = given(&self.pue, "pue", None);
        s.grid_intensity = number(self.grid_intensity, "grid_intensity");
        s.wue = number(self.wue, "wue");
        s.ewif = number(self.ewif, "ewif");
        s.data_dir = self.data_dir.clone();
        s.config = self.config.clone();
    }
}

fn parse_tdp(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('W')
        .parse()
        .map_err(|_| format!("'{s}' is not a number of watts; write e.g. --cpu-tdp 65"))?;
    crate::settings::check_tdp(v).map(|w| w.0)
}

/// Where the ledger is.
#[derive(Debug, Clone, Args)]
pub struct LedgerArgs {
    /// Ledger file [default: config `ledger`, else $XDG_DATA_HOME/decompute/ledger.sqlite]
    #[arg(
        long = "ledger",
        env = "DECOMPUTE_LEDGER",
        value_name = "PATH",
        global = true
    )]
    pub path: Option<PathBuf>,
}

impl LedgerArgs {
    /// Adds the ledger these flags (or `DECOMPUTE_LEDGER`) named to `s`.
    pub fn said_into(&self, s: &mut Said) {
        s.ledger = self.path.as_ref().map(|p| {
            let origin = match arg_origin("path", Some("DECOMPUTE_LEDGER")) {
                Origin::Env(v) => Origin::Env(v),
                _ => Origin::Flag("--ledger".into()),
            };
            Given::new(p.to_string_lossy().into_owned(), origin)
        });
    }
}

/// A flag group that says part of the settings.
pub trait SaidInto {
    fn said_into(&self, s: &mut Said);
}

impl SaidInto for MachineArgs {
    fn said_into(&self, s: &mut Said) {
        MachineArgs::said_into(self, s)
    }
}

impl SaidInto for FactorArgs {
    fn said_into(&self, s: &mut Said) {
        FactorArgs::said_into(self, s)
    }
}

impl SaidInto for LedgerArgs {
    fn said_into(&self, s: &mut Said) {
        LedgerArgs::said_into(self, s)
    }
}

/// What a command's flag groups said, with the policy file it reads.
pub fn said(policy: PolicyChoice, groups: &[&dyn SaidInto]) -> Said {
    let mut s = Said {
        policy,
        ..Said::default()
    };
    for g in groups {
        g.said_into(&mut s);
    }
    s
}

/// Resolves the settings and says, once, what the caller should know: a policy file found
/// but ignored.
pub fn settings(said: Said) -> anyhow::Result<Settings> {
    let s = Settings::resolve(said)?;
    if let Some(w) = s.policy_warning() {
        crate::say!("decompute: warning: {w}");
    }
    Ok(s)
}

/// Whether a warning about the machine itself should be said now: the virtual-machine
/// warning (CPU power modelled per vCPU) is a fact of the machine, not of the run, so it is
/// said on the first run and then noted in the state directory (`said-virtual-machine`,
/// holding the warning); the report's notes keep it on every run. Any other warning, and
/// any warning when no state directory can be written, is always said.
pub fn first_time_on_this_machine(warning: &str) -> bool {
    if !warning.starts_with("virtual machine") {
        return true;
    }
    once_on_this_machine("said-virtual-machine", warning)
}

/// Whether `text` is new under `key` on this machine (a note in the state directory,
/// `key` its file name): true the first time, and again when the text changes.
pub fn once_on_this_machine(key: &str, text: &str) -> bool {
    let Some(dir) = crate::host::state_dir() else {
        return true;
    };
    let marker = dir.join(key);
    if std::fs::read_to_string(&marker).is_ok_and(|t| t.trim_end() == text) {
        return false;
    }
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = crate::outfile::write(&marker, format!("{text}\n").as_bytes());
    }
    true
}

/// Says which ledger when a policy chose it.
fn say_origin(loc: &Location) {
    if matches!(loc.origin, Origin::Policy(_)) {
        crate::say!(
            "decompute: ledger {} (named by {})",
            loc.shown(),
            loc.origin
        );
    }
}

/// Opens the ledger at `loc` for writing, saying which when a policy chose it, and sweeps it
/// for runs whose monitor died.
pub fn open_ledger(loc: &Location, procfs: &std::path::Path) -> anyhow::Result<Box<dyn Ledger>> {
    say_origin(loc);
    let mut l = loc.open()?;
    say_all(crate::govern::freeze::recover(l.as_mut(), procfs));
    deliver_spool(loc, l.as_mut());
    Ok(l)
}

/// Delivers the runs this host spooled for the ledger at `loc`, and says so.
fn deliver_spool(loc: &Location, l: &mut dyn Ledger) {
    let got = crate::ledger::spool::deliver_here(loc, l);
    if got.runs > 0 {
        crate::say!(
            "decompute: note: {} run(s) measured earlier on this host but not recorded then were recorded now",
            got.runs
        );
    }
    for why in got.left {
        crate::say!("decompute: warning: a spooled run is still not recorded: {why}");
    }
}

/// Keeps a run the ledger did not take in this host's spool, saying where and why.
pub fn spool_run(loc: &Location, record: &crate::ledger::RunRecord, why: &str) {
    match crate::ledger::spool::keep(loc, record) {
        Ok(f) => crate::say!(
            "decompute: warning: the run was measured but not recorded ({why}); it is kept in {} and the next decompute command on this host that opens the ledger records it",
            f.display()
        ),
        Err(e) => crate::say!(
            "decompute: warning: the run was measured but not recorded ({why}) nor spooled ({e}); `decompute ledger import` of its --json report fills the gap"
        ),
    }
}

/// As [`open_ledger`], for a command that only reads: a ledger file this process cannot
/// write (read-only media, another account's) is read as it is.
pub fn open_reading(loc: &Location) -> anyhow::Result<Box<dyn Ledger>> {
    say_origin(loc);
    let (mut l, writable) = loc.open_reading()?;
    if writable {
        say_all(crate::govern::freeze::recover(
            l.as_mut(),
            std::path::Path::new("/proc"),
        ));
        deliver_spool(loc, l.as_mut());
    }
    Ok(l)
}

fn say_all(lines: Vec<String>) {
    for m in lines {
        crate::say!("decompute: {m}");
    }
}

/// For each argument of the chosen subcommand given on the command line or through its
/// environment variable, which of the two it was (so provenance names the right one).
static ARG_SOURCES: std::sync::OnceLock<Vec<(String, bool)>> = std::sync::OnceLock::new();

/// Where the value of argument `id` (as clap names it) came from.
pub fn arg_origin(id: &str, env: Option<&str>) -> Origin {
    let from_env = ARG_SOURCES
        .get()
        .and_then(|v| v.iter().find(|(a, _)| a == id).map(|(_, e)| *e))
        .unwrap_or(false);
    match (from_env, env) {
        (true, Some(var)) => Origin::Env(var.to_string()),
        _ => Origin::Flag(format!("--{}", id.replace('_', "-"))),
    }
}

fn record_sources(m: &clap::ArgMatches) {
    let mut m = m;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    let v = m
        .ids()
        .filter_map(|id| {
            let src = m.value_source(id.as_str())?;
            Some((
                id.as_str().to_string(),
                src == clap::parser::ValueSource::EnvVariable,
            ))
        })
        .collect();
    let _ = ARG_SOURCES.set(v);
}

/// Empty `DECOMPUTE_*` variables (`DECOMPUTE_LEDGER=`) mean "unset", as in most tools,
/// not "a value is required".
fn drop_empty_env() {
    let empty: Vec<std::ffi::OsString> = std::env::vars_os()
        .filter(|(k, v)| k.to_string_lossy().starts_with("DECOMPUTE_") && v.is_empty())
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        // SAFETY: called first thing in main, before any thread exists.
        unsafe { std::env::remove_var(k) };
    }
}

/// Parses arguments, runs, prints errors; returns the process exit code.
pub fn main() -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    drop_empty_env();
    let parsed = Cli::command().try_get_matches().and_then(|m| {
        record_sources(&m);
        Cli::from_arg_matches(&m)
    });
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                if std::env::args().nth(1).as_deref() == Some("run") {
                    EXIT_RUN_FAILURE
                } else {
                    2
                }
            } else {
                0
            };
            // Help asked for by giving no subcommand keeps clap's layout (it is help, not
            // an error line); every other flag error is folded into one safe line.
            let help_shape = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if e.use_stderr() && !help_shape {
                crate::say!(
                    "decompute: {}",
                    crate::term::line(&usage_error_line(&e.render().to_string()))
                );
            } else {
                let _ = e.print();
            }
            return code;
        }
    };
    let (result, fail_code) = match cli.command {
        Command::Run(a) => (run::main(*a), EXIT_RUN_FAILURE),
        Command::Detect(a) => (detect::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Factors(a) => (factors::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Ledger(a) => (ledger::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Budget(a) => (budget::main(a).map(|()| 0), EXIT_FAILURE),
        Command::When(a) => (when::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Estimate(a) => (estimate::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Models(a) => (models::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Scale(a) => (scale::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Report(a) => (report::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Slurm(a) => (slurm::main(a).map(|()| 0), EXIT_FAILURE),
        Command::Serve(a) => (serve::main(*a).map(|()| 0), EXIT_FAILURE),
        Command::Completions(a) => (shell::completions(a).map(|()| 0), EXIT_FAILURE),
        Command::Man(a) => (shell::man(a).map(|()| 0), EXIT_FAILURE),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            crate::say!("decompute: error: {}", crate::term::line(&format!("{e:#}")));
            fail_code
        }
    }
}

/// A flag error as clap renders it (the error, a tip, the usage, a pointer to --help, in
/// paragraphs) folded into the one line every other error of decompute is.
fn usage_error_line(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut usage = None;
    for para in rendered.split("\n\n") {
        let words = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if words.is_empty() || words.starts_with("For more information") {
            continue;
        }
        match words.strip_prefix("Usage: ") {
            Some(u) => usage = Some(u.to_string()),
            None => parts.push(words),
        }
    }
    if let Some(u) = usage {
        parts.push(format!("usage: {u}"));
    }
    parts.push("see --help".into());
    parts.join("; ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes to stdout, turning a closed pipe into an error `main` treats as success.
/// Where `--json`/`--json-file` send a command's JSON: stdout (`--json`, `--json -`) or a
/// file (`--json-file FILE`; `--json FILE`, the old form of `run` and `estimate`, still
/// works and says once what to write instead).
pub fn json_target(json: &Option<PathBuf>, json_file: &Option<PathBuf>) -> Option<PathBuf> {
    if let Some(f) = json_file {
        return Some(f.clone());
    }
    let p = json.as_ref()?;
    if p.as_os_str() != "-" {
        crate::say!(
            "decompute: note: --json FILE is deprecated; write --json-file {} (--json alone prints the JSON on stdout)",
            crate::term::line(&p.display().to_string())
        );
    }
    Some(p.clone())
}

pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

static TERMINATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_terminate(_sig: libc::c_int) {
    TERMINATE.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGTERM and SIGINT end a daemon (`serve`, `slurm govern`) gracefully: they only set a
/// flag the daemon's loop reads ([`terminating`]).
pub fn install_termination() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_terminate as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether SIGTERM or SIGINT arrived since [`install_termination`].
pub fn terminating() -> bool {
    TERMINATE.load(std::sync::atomic::Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    #[test]
    fn flag_errors_fold_into_one_line() {
        let missing = "error: the following required arguments were not provided:\n  <ID>\n\nUsage: decompute ledger show <ID>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::usage_error_line(missing),
            "error: the following required arguments were not provided: <ID>; usage: decompute ledger show <ID>; see --help"
        );
        let tip = "error: unexpected argument '-x' found\n\n  tip: to pass '-x' as a value, use '-- -x'\n\nUsage: decompute run <COMMAND>...\n\nFor more information, try '--help'.\n";
        let line = super::usage_error_line(tip);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("error: unexpected argument '-x' found; tip: to pass"),
            "{line}"
        );
        assert!(
            line.ends_with("usage: decompute run <COMMAND>...; see --help"),
            "{line}"
        );
    }

    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tdp_values() {
        assert_eq!(parse_tdp("65"), Ok(65.0));
        assert_eq!(parse_tdp("65W"), Ok(65.0));
        assert!(parse_tdp("-3").is_err());
        assert!(parse_tdp("1e9").is_err());
        assert!(parse_tdp("lots").is_err());
    }
}

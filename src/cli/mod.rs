//! Command-line definitions (clap derive) and dispatch. One module per subcommand; shared
//! option groups are flattened so every subcommand reads the machine and the factors alike.
//! Errors reach the user as one line (`{:#}` of the anyhow chain) with a documented exit
//! code; a broken pipe is success.

pub mod budget;
pub mod detect;
pub mod estimate;
pub mod factors;
pub mod ledger;
pub mod report;
pub mod run;
pub mod scale;
pub mod serve;
pub mod shell;
pub mod slurm;
pub mod when;

use crate::config::Config;
use crate::detect::Probe;
use crate::factors::{ConversionRequest, FactorData, Given, Origin};
use crate::units::Watts;
use anyhow::Context;
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
    /// The probe, with the config file's `cpu_tdp` when the flag is absent.
    pub fn probe(&self, cfg: &Config) -> anyhow::Result<Probe> {
        let cpu_tdp = match (self.cpu_tdp, cfg.cpu_tdp) {
            (Some(w), _) => Some(Given::new(Watts(w), arg_origin("cpu_tdp", None))),
            (None, Some(w)) => {
                let origin = cfg.origin("cpu_tdp");
                let w = parse_tdp(&w.to_string()).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
                Some(Given::new(Watts(w), origin))
            }
            (None, None) => None,
        };
        Ok(Probe {
            sysfs_root: self.sysfs_root.clone(),
            procfs_root: self.procfs_root.clone(),
            cpu_tdp,
            gpu: !self.no_gpu,
        })
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
    pub fn data(&self) -> anyhow::Result<FactorData> {
        match &self.data_dir {
            Some(d) => FactorData::from_dir(d)
                .with_context(|| format!("loading factor data from {}", d.display())),
            None => FactorData::embedded().context("loading the shipped factor data"),
        }
    }

    /// The config file (explicit, or the default one if it exists).
    pub fn load_config(&self) -> anyhow::Result<Config> {
        Self::config_from(self.config.as_deref())
    }

    pub fn config_from(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
        Ok(crate::config::load(path)?.0)
    }

    /// Flags (and their environment variables) first, then the config file; every value
    /// carries where it came from.
    pub fn request(&self, cfg: &Config) -> ConversionRequest {
        fn pick<T: Clone>(
            flag: &Option<T>,
            id: &str,
            env: Option<&str>,
            conf: Option<T>,
            cfg: &Config,
        ) -> Option<Given<T>> {
            match (flag, conf) {
                (Some(v), _) => Some(Given::new(v.clone(), arg_origin(id, env))),
                (None, Some(v)) => Some(Given::new(v, cfg.origin(id))),
                (None, None) => None,
            }
        }
        ConversionRequest {
            zone: pick(
                &self.zone,
                "zone",
                Some("DECOMPUTE_ZONE"),
                cfg.zone.clone(),
                cfg,
            ),
            pue: pick(
                &self.pue,
                "pue",
                None,
                cfg.pue.as_ref().map(|p| p.as_text()),
                cfg,
            ),
            grid_intensity: pick(
                &self.grid_intensity,
                "grid_intensity",
                None,
                cfg.grid_intensity,
                cfg,
            ),
            wue: pick(&self.wue, "wue", None, cfg.wue, cfg),
            ewif: pick(&self.ewif, "ewif", None, cfg.ewif, cfg),
        }
    }
}

fn parse_tdp(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('W')
        .parse()
        .map_err(|_| format!("'{s}' is not a number of watts; write e.g. --cpu-tdp 65"))?;
    if v.is_finite() && (1.0..=2000.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} W is not a plausible CPU power; give 1 to 2000 W"
        ))
    }
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
    /// Where the ledger is: `--ledger` / `DECOMPUTE_LEDGER`, else the team's ledger named
    /// by a trusted policy file, else the config file's, else the default file.
    pub fn target(
        &self,
        cfg: &Config,
        policy: Option<&crate::govern::policy::Policy>,
    ) -> anyhow::Result<crate::ledger::Location> {
        use crate::ledger::Location;
        if let Some(p) = &self.path {
            let text = p.to_string_lossy();
            return Ok(Location::parse(
                &text,
                arg_origin("path", Some("DECOMPUTE_LEDGER")),
            )?);
        }
        if let Some(l) = policy.and_then(|p| p.ledger.as_ref().map(|l| (l, &p.path))) {
            return Ok(Location::parse(
                l.0,
                Origin::Policy(l.1.display().to_string()),
            )?);
        }
        if let Some(p) = &cfg.ledger {
            return Ok(Location::parse(&p.to_string_lossy(), cfg.origin("ledger"))?);
        }
        let p = crate::ledger::default_path().ok_or_else(|| {
            anyhow::anyhow!(
                "no ledger path: HOME is not set; pass --ledger PATH or set DECOMPUTE_LEDGER"
            )
        })?;
        Ok(Location {
            target: crate::ledger::Target::Sqlite(p),
            origin: Origin::Default,
        })
    }

    /// Opens the ledger a command (other than `run`) reads: the policy file found from the
    /// working directory may name the team's. Says which ledger when it is not the default.
    pub fn open(&self, cfg: &Config) -> anyhow::Result<Box<dyn crate::ledger::Ledger>> {
        Self::open_at(&self.location(cfg)?)
    }

    /// Opens the ledger at `loc` (from [`Self::location`]), saying which when a policy chose it.
    pub fn open_at(
        loc: &crate::ledger::Location,
    ) -> anyhow::Result<Box<dyn crate::ledger::Ledger>> {
        Self::say_origin(loc);
        let mut l = loc.open()?;
        recover(l.as_mut(), std::path::Path::new("/proc"));
        Ok(l)
    }

    /// Says which ledger when a policy chose it.
    fn say_origin(loc: &crate::ledger::Location) {
        if matches!(loc.origin, Origin::Policy(_)) {
            crate::say!(
                "decompute: ledger {} (named by {})",
                loc.shown(),
                loc.origin
            );
        }
    }

    /// As [`Self::open_at`], for a command that only reads: a ledger file this process
    /// cannot write (read-only media, another account's) is read as it is.
    pub fn open_reading_at(
        loc: &crate::ledger::Location,
    ) -> anyhow::Result<Box<dyn crate::ledger::Ledger>> {
        Self::say_origin(loc);
        let (mut l, writable) = loc.open_reading()?;
        if writable {
            recover(l.as_mut(), std::path::Path::new("/proc"));
        }
        Ok(l)
    }

    /// The ledger a command (other than `run`) reads, the policy found from the working
    /// directory included.
    pub fn location(&self, cfg: &Config) -> anyhow::Result<crate::ledger::Location> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let (policy, warning) = crate::govern::policy::resolve(None, &cwd)?;
        if let Some(w) = warning {
            crate::say!("decompute: warning: {w}");
        }
        self.target(cfg, policy.as_ref())
    }

    /// "ledger X (named by policy P)" and a newline when the team's policy chose the ledger.
    pub fn shared_heading(&self, cfg: &Config) -> Option<String> {
        if self.path.is_some() {
            return None;
        }
        let cwd = std::env::current_dir().ok()?;
        let policy = crate::govern::policy::discover(None, &cwd)
            .path()
            .and_then(|p| crate::govern::policy::load(p).ok())?;
        let loc = self.target(cfg, Some(&policy)).ok()?;
        matches!(loc.origin, Origin::Policy(_))
            .then(|| format!("ledger {} (named by {})\n", loc.shown(), loc.origin))
    }

    /// The files outputs must never overwrite.
    pub fn protected(&self, cfg: &Config) -> Vec<PathBuf> {
        self.target(cfg, None)
            .map(|l| l.protected())
            .unwrap_or_default()
    }
}

/// Marks runs whose monitor died as interrupted, thaws what they left frozen, and says so.
pub fn recover(l: &mut dyn crate::ledger::Ledger, procfs: &std::path::Path) {
    let Ok(found) = l.recover() else { return };
    if found.is_empty() {
        return;
    }
    crate::say!(
        "decompute: note: {} earlier run(s) whose monitor died were marked interrupted in the ledger",
        found.len()
    );
    for r in found {
        if let Some(t) = &r.thaw {
            if let Some(done) = crate::govern::freeze::thaw_orphan(t, procfs) {
                crate::say!(
                    "decompute: note: thawed the workload of interrupted run {}: {done}",
                    r.id
                );
            }
        }
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

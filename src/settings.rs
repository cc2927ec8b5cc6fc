//! The settings every command and driver runs with, resolved once from what the caller said
//! (command-line flags and their `DECOMPUTE_*` variables, or the Python tracker's keywords),
//! the user's config file and the team's policy file. One precedence rule: what was said,
//! then (for the ledger and the project) a trusted policy file, then the config file, then
//! decompute's default; every value keeps where it came from. One rule for the policy file:
//! one named with `--policy` is always read, one found upward is read only if it is
//! trustworthy (an ignored one is a warning the caller shows), and a broken one is refused
//! with the same error by every command that reads it. Nothing here knows the command line.

use crate::config::{Config, ConfigError};
use crate::detect::Probe;
use crate::factors::{ConversionRequest, FactorData, FactorError, Given, Origin};
use crate::govern::policy::{self, Policy, PolicyError};
use crate::ledger::address::AddressError;
use crate::ledger::{Location, Target};
use crate::units::Watts;
use std::path::{Path, PathBuf};

/// Which policy file a command reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum PolicyChoice {
    /// The `decompute.toml` found from the working directory upward, if trustworthy.
    #[default]
    Discover,
    /// The file named with `--policy` / `DECOMPUTE_POLICY`: always read.
    Named(PathBuf),
    /// None: the command has no use for budgets or the team's ledger (estimates, detect).
    NotRead,
}

impl PolicyChoice {
    /// A named file if one was given, else discovery.
    pub fn named_or_found(named: Option<&Path>) -> PolicyChoice {
        match named {
            Some(p) => PolicyChoice::Named(p.to_path_buf()),
            None => PolicyChoice::Discover,
        }
    }
}

/// What the caller said, each value with where it came from. Absent values are looked up in
/// the policy file, the config file and the defaults by [`Settings::resolve`].
#[derive(Debug, Clone, Default)]
pub struct Said {
    /// The config file to read [default: `$DECOMPUTE_CONFIG`'s or the XDG one, if present].
    pub config: Option<PathBuf>,
    /// A directory of factor tables replacing the shipped ones.
    pub data_dir: Option<PathBuf>,
    /// Which policy file applies.
    pub policy: PolicyChoice,
    /// A ledger file or `postgres://` URL.
    pub ledger: Option<Given<String>>,
    /// The grid zone (ISO code, `WORLD`, `aws:REGION`…).
    pub zone: Option<Given<String>>,
    /// A PUE number or preset name.
    pub pue: Option<Given<String>>,
    /// gCO2e/kWh, overriding the zone's.
    pub grid_intensity: Option<Given<f64>>,
    /// On-site water, L/kWh of IT energy.
    pub wue: Option<Given<f64>>,
    /// Off-site water of electricity, L/kWh.
    pub ewif: Option<Given<f64>>,
    /// Roots of the machine's `/sys` and `/proc` [default: the real ones].
    pub sysfs_root: Option<PathBuf>,
    pub procfs_root: Option<PathBuf>,
    /// The CPU's power at full load, for the model when RAPL cannot be read.
    pub cpu_tdp: Option<Given<Watts>>,
    /// Do not load NVML.
    pub no_gpu: bool,
}

impl Said {
    /// Fills what was not said from the `DECOMPUTE_*` environment exactly as the command
    /// line's flags read it (`DECOMPUTE_ZONE`, `DECOMPUTE_LEDGER`, `DECOMPUTE_DATA_DIR`,
    /// `DECOMPUTE_CONFIG`, `DECOMPUTE_POLICY`, `DECOMPUTE_SYSFS_ROOT`,
    /// `DECOMPUTE_PROCFS_ROOT`); an empty variable is unset. For callers without a command
    /// line (the Python tracker); `var` is `std::env::var` or a test's table.
    /// What a library caller's keywords said (`zone=`, `pue=`, `ledger=` of the Python
    /// package), then the environment.
    pub fn keywords(zone: Option<String>, pue: Option<String>, ledger: Option<String>) -> Said {
        let flag =
            |v: Option<String>, k: &str| v.map(|x| Given::new(x, Origin::Flag(format!("{k}="))));
        Said {
            zone: flag(zone, "zone"),
            pue: flag(pue, "pue"),
            ledger: flag(ledger, "ledger"),
            ..Said::default()
        }
        .or_environment(|k| std::env::var(k).ok())
    }

    pub fn or_environment(mut self, var: impl Fn(&str) -> Option<String>) -> Said {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let given = |k: &str| get(k).map(|v| Given::new(v, Origin::Env(k.to_string())));
        if self.zone.is_none() {
            self.zone = given("DECOMPUTE_ZONE");
        }
        if self.ledger.is_none() {
            self.ledger = given("DECOMPUTE_LEDGER");
        }
        if self.data_dir.is_none() {
            self.data_dir = get("DECOMPUTE_DATA_DIR").map(Into::into);
        }
        if self.config.is_none() {
            self.config = get("DECOMPUTE_CONFIG").map(Into::into);
        }
        if self.policy == PolicyChoice::Discover {
            if let Some(p) = get("DECOMPUTE_POLICY") {
                self.policy = PolicyChoice::Named(p.into());
            }
        }
        if self.sysfs_root.is_none() {
            self.sysfs_root = get("DECOMPUTE_SYSFS_ROOT").map(Into::into);
        }
        if self.procfs_root.is_none() {
            self.procfs_root = get("DECOMPUTE_PROCFS_ROOT").map(Into::into);
        }
        self
    }
}

/// Why the settings cannot be resolved; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file cannot be read or parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A broken policy file: refused alike by every command that reads it.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The ledger named is not a path or a PostgreSQL URL decompute accepts.
    #[error(transparent)]
    Ledger(#[from] AddressError),
    #[error("{0}")]
    CpuTdp(String),
    #[error("no ledger path: HOME is not set; pass --ledger PATH or set DECOMPUTE_LEDGER")]
    NoLedgerPath,
    #[error("loading factor data from {dir}: {source}")]
    DataDir { dir: String, source: FactorError },
    #[error("loading the shipped factor data: {0}")]
    Shipped(FactorError),
}

/// Everything resolved: the config file read, the policy file read (or refused), and the
/// rules that pick each value.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What the caller said, kept for the values resolved on demand.
    said: Said,
    /// The config file's values (empty when there is none).
    config: Config,
    /// Where the command started: where the policy file was looked for, and the default
    /// project's name.
    cwd: PathBuf,
    /// The policy file that applies, if any.
    policy: Option<Policy>,
    /// A policy file found but not trusted, in words; the caller shows it.
    policy_warning: Option<String>,
}

impl Settings {
    /// Resolves in the current working directory.
    pub fn resolve(said: Said) -> Result<Settings, SettingsError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Settings::resolve_in(said, &cwd)
    }

    /// Reads the config file and the policy file that apply to a command started in `cwd`.
    pub fn resolve_in(said: Said, cwd: &Path) -> Result<Settings, SettingsError> {
        let config = crate::config::load(said.config.as_deref())?.0;
        let (policy, policy_warning) = match &said.policy {
            PolicyChoice::NotRead => (None, None),
            PolicyChoice::Discover => policy::resolve(None, cwd)?,
            PolicyChoice::Named(p) => policy::resolve(Some(p), cwd)?,
        };
        Ok(Settings {
            said,
            config,
            cwd: cwd.to_path_buf(),
            policy,
            policy_warning,
        })
    }

    /// The policy file that applies, if any.
    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    /// A policy file found but not trusted, in words, for the caller to show.
    pub fn policy_warning(&self) -> Option<&str> {
        self.policy_warning.as_deref()
    }

    /// Where the command started.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// What the caller said.
    pub fn said(&self) -> &Said {
        &self.said
    }

    /// The factor tables: `--data-dir`'s, else the shipped ones.
    pub fn factor_data(&self) -> Result<FactorData, SettingsError> {
        match &self.said.data_dir {
            Some(d) => FactorData::from_dir(d).map_err(|source| SettingsError::DataDir {
                dir: d.display().to_string(),
                source,
            }),
            None => FactorData::embedded().map_err(SettingsError::Shipped),
        }
    }

    /// The conversion factors asked for: what was said, else the config file's.
    pub fn conversion_request(&self) -> ConversionRequest {
        let cfg = &self.config;
        fn pick<T: Clone>(
            said: &Option<Given<T>>,
            conf: Option<T>,
            key: &str,
            cfg: &Config,
        ) -> Option<Given<T>> {
            said.clone()
                .or_else(|| conf.map(|v| Given::new(v, cfg.origin(key))))
        }
        let s = &self.said;
        ConversionRequest {
            zone: pick(&s.zone, cfg.zone.clone(), "zone", cfg),
            pue: pick(&s.pue, cfg.pue.as_ref().map(|p| p.as_text()), "pue", cfg),
            grid_intensity: pick(&s.grid_intensity, cfg.grid_intensity, "grid_intensity", cfg),
            wue: pick(&s.wue, cfg.wue, "wue", cfg),
            ewif: pick(&s.ewif, cfg.ewif, "ewif", cfg),
        }
    }

    /// The factors that turn IT energy into facility energy, carbon and water.
    pub fn conversion(&self, data: &FactorData) -> Result<crate::factors::Conversion, FactorError> {
        crate::factors::resolve(data, &self.conversion_request())
    }

    /// Where the machine is read from, with the CPU power said or configured.
    pub fn probe(&self) -> Result<Probe, SettingsError> {
        let cpu_tdp = match (&self.said.cpu_tdp, self.config.cpu_tdp) {
            (Some(w), _) => Some(w.clone()),
            (None, Some(w)) => {
                let origin = self.config.origin("cpu_tdp");
                let w =
                    check_tdp(w).map_err(|e| SettingsError::CpuTdp(format!("{origin}: {e}")))?;
                Some(Given::new(w, origin))
            }
            (None, None) => None,
        };
        Ok(Probe {
            sysfs_root: self.sysfs_root(),
            procfs_root: self.procfs_root(),
            cpu_tdp,
            gpu: !self.said.no_gpu,
        })
    }

    pub fn sysfs_root(&self) -> PathBuf {
        self.said
            .sysfs_root
            .clone()
            .unwrap_or_else(|| "/sys".into())
    }

    pub fn procfs_root(&self) -> PathBuf {
        self.said
            .procfs_root
            .clone()
            .unwrap_or_else(|| "/proc".into())
    }

    /// Where the ledger is: what was said, else the team's ledger named by the policy file,
    /// else the config file's, else the default file.
    pub fn ledger(&self) -> Result<Location, SettingsError> {
        if let Some(l) = &self.said.ledger {
            return Ok(Location::parse(&l.value, l.origin.clone())?);
        }
        if let Some(p) = &self.policy {
            if let Some(l) = &p.ledger {
                return Ok(Location::parse(
                    l,
                    Origin::Policy(p.path.display().to_string()),
                )?);
            }
        }
        if let Some(p) = &self.config.ledger {
            return Ok(Location::parse(
                &p.to_string_lossy(),
                self.config.origin("ledger"),
            )?);
        }
        let p = crate::ledger::default_path().ok_or(SettingsError::NoLedgerPath)?;
        Ok(Location {
            target: Target::Sqlite(p),
            origin: Origin::Default,
        })
    }

    /// The files an output must never overwrite: the ledger's.
    pub fn protected(&self) -> Vec<PathBuf> {
        self.ledger().map(|l| l.protected()).unwrap_or_default()
    }

    /// The project a run is recorded under: the one given, else the Slurm job's account,
    /// else the policy file's, else the config file's, else the working directory's name.
    pub fn project(&self, given: Option<&str>, slurm_account: Option<String>) -> String {
        given
            .map(str::to_string)
            .or(slurm_account)
            .or_else(|| self.policy.as_ref().and_then(|p| p.project.clone()))
            .or_else(|| self.config.project.clone())
            .unwrap_or_else(|| crate::ledger::default_project(&self.cwd))
    }
}

/// A CPU's power at full load, checked: 1 to 2000 W.
pub fn check_tdp(w: f64) -> Result<Watts, String> {
    if w.is_finite() && (1.0..=2000.0).contains(&w) {
        Ok(Watts(w))
    } else {
        Err(format!(
            "{w} W is not a plausible CPU power; give 1 to 2000 W"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings resolved in a fresh directory holding `files` (name, text); a file named
    /// `config` becomes the config file.
    fn resolved(files: &[(&str, &str)], mut said: Said) -> (tempfile::TempDir, Settings) {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
            if *name == "config" {
                said.config = Some(d.path().join(name));
            }
        }
        let s = Settings::resolve_in(said, d.path());
        (d, s.unwrap())
    }

    fn flag<T>(v: T, f: &str) -> Option<Given<T>> {
        Some(Given::new(v, Origin::Flag(f.into())))
    }

    #[test]
    fn said_beats_environment_beats_config() {
        let table = [("DECOMPUTE_ZONE", "FR"), ("DECOMPUTE_LEDGER", "")];
        let said = Said {
            pue: flag("1.5".into(), "--pue"),
            policy: PolicyChoice::NotRead,
            ..Said::default()
        }
        .or_environment(|k| {
            table
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        let (_d, s) = resolved(&[("config", "zone = \"DE\"\npue = 1.2\nwue = 0.5\n")], said);
        let r = s.conversion_request();
        let zone = r.zone.unwrap();
        assert_eq!(zone.value, "FR");
        assert_eq!(zone.origin, Origin::Env("DECOMPUTE_ZONE".into()));
        assert_eq!(r.pue.unwrap().origin, Origin::Flag("--pue".into()));
        let wue = r.wue.unwrap();
        assert_eq!(wue.value, 0.5);
        assert!(matches!(wue.origin, Origin::Config(_)));
        assert!(r.grid_intensity.is_none());
        // An empty DECOMPUTE_LEDGER is unset.
        assert!(s.said.ledger.is_none());
    }

    #[test]
    fn the_policy_names_ledger_and_project_below_what_was_said() {
        let config = ("config", "project = \"mine\"\nledger = \"/tmp/x.sqlite\"\n");
        let policy = (
            policy::FILE_NAME,
            "project = \"ml\"\nledger = \"/tmp/team.sqlite\"\n",
        );
        let (_d, s) = resolved(&[config, policy], Said::default());
        assert_eq!(s.project(None, None), "ml");
        assert_eq!(s.project(None, Some("acct".into())), "acct");
        assert_eq!(s.project(Some("given"), Some("acct".into())), "given");
        let loc = s.ledger().unwrap();
        assert_eq!(loc.target, Target::Sqlite("/tmp/team.sqlite".into()));
        assert!(matches!(loc.origin, Origin::Policy(_)));
        let said = Said {
            ledger: flag("/tmp/said.sqlite".into(), "--ledger"),
            ..Said::default()
        };
        let (_d, s) = resolved(&[config, policy], said);
        let loc = s.ledger().unwrap();
        assert_eq!(loc.target, Target::Sqlite("/tmp/said.sqlite".into()));
        // Not read: the config file's.
        let said = Said {
            policy: PolicyChoice::NotRead,
            ..Said::default()
        };
        let (_d, s) = resolved(&[config, policy], said);
        assert_eq!(s.project(None, None), "mine");
        assert_eq!(
            s.ledger().unwrap().target,
            Target::Sqlite("/tmp/x.sqlite".into())
        );
    }

    #[test]
    fn a_broken_policy_is_refused_and_a_config_tdp_is_checked() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(policy::FILE_NAME), "[[budget]]\nproject = \n").unwrap();
        let e = Settings::resolve_in(Said::default(), d.path()).unwrap_err();
        assert!(matches!(e, SettingsError::Policy(_)), "{e}");
        let said = Said {
            policy: PolicyChoice::NotRead,
            ..Said::default()
        };
        let (_d, s) = resolved(&[("config", "cpu_tdp = 1e9\n")], said);
        let e = s.probe().unwrap_err().to_string();
        assert!(e.contains("cpu_tdp") && e.contains("1 to 2000 W"), "{e}");
    }
}

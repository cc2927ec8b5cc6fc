//! The team's policy file, `decompute.toml`: which project runs under it belong to, which
//! ledger the team shares, and budgets per project and calendar period, decided together and
//! versioned with the code. Found upward from the working directory (like `.gitignore`) or
//! given with `--policy`; a file found upward is honoured only if its owner and mode are
//! trustworthy (see [`discover`]). Every error names the file and line.
//!
//! ```toml
//! project = "teamml"                                 # default project of runs here
//! ledger = "postgres://ledger.example/decompute"     # the team's ledger (no password)
//!
//! [budget.teamml]                                    # or [project.teamml], the older form
//! carbon = "5 kg / month"
//! energy = "200 kWh / quarter"
//! on_exceed = "pause"          # stop (default) | pause | warn
//! ```

use super::budget::{Limit, Metric, Usage};
use super::period::Period;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "decompute.toml";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {error}; check --policy / DECOMPUTE_POLICY, or remove it to use decompute.toml found upward")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: line {line}: {message}")]
    At {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Whole { path: String, message: String },
}

/// What to do when a budget is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnExceed {
    Stop,
    Pause,
    Warn,
}

/// One budget of one project.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectBudget {
    pub project: String,
    pub metric: Metric,
    /// In base units (J, g, L, s).
    pub amount: f64,
    pub period: Period,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub path: PathBuf,
    pub budgets: Vec<ProjectBudget>,
    pub on_exceed: BTreeMap<String, OnExceed>,
    /// The default project of runs under this file.
    pub project: Option<String>,
    /// The team's ledger (a path or a postgres:// URL without password).
    pub ledger: Option<String>,
}

impl Policy {
    /// The projects that have budgets, in file order, each once.
    pub fn projects(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for b in &self.budgets {
            if !out.contains(&b.project.as_str()) {
                out.push(&b.project);
            }
        }
        out
    }
}

type Tables = BTreeMap<String, BTreeMap<String, toml::Spanned<toml::Value>>>;

/// The policy with `project = "NAME"` (budgets under `[budget.NAME]`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    project: Option<toml::Spanned<String>>,
    #[serde(default)]
    budget: Tables,
    #[serde(default)]
    ledger: Option<toml::Spanned<String>>,
}

/// The older form: budgets under `[project.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    #[serde(default)]
    project: Tables,
    #[serde(default)]
    budget: Tables,
    #[serde(default)]
    ledger: Option<toml::Spanned<String>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .unwrap_or(text)
        .matches('\n')
        .count()
        + 1
}

/// Parses a policy file's text.
pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let shown = path.display().to_string();
    let to_err = |e: toml::de::Error| match e.span() {
        Some(span) => PolicyError::At {
            path: shown.clone(),
            line: line_of(text, span.start),
            message: e.message().to_string(),
        },
        None => PolicyError::Whole {
            path: shown.clone(),
            message: e.message().to_string(),
        },
    };
    // `project` is either the default project's name or (older form) the budget tables.
    let named = matches!(
        toml::from_str::<toml::Table>(text)
            .map_err(to_err)?
            .get("project"),
        Some(toml::Value::String(_))
    );
    let raw = if named {
        toml::from_str::<Raw>(text).map_err(to_err)?
    } else {
        let r: RawTables = toml::from_str(text).map_err(to_err)?;
        let mut budget = r.budget;
        for (k, v) in r.project {
            budget.entry(k).or_default().extend(v);
        }
        Raw {
            project: None,
            budget,
            ledger: r.ledger,
        }
    };
    let mut budgets = Vec::new();
    let mut on_exceed = BTreeMap::new();
    let tables = raw.budget;
    let mut default_project = None;
    if let Some(p) = raw.project {
        let line = line_of(text, p.span().start);
        let name = p.into_inner().trim().to_string();
        if name.is_empty() {
            return Err(PolicyError::At {
                path: shown,
                line,
                message: "project must not be empty".into(),
            });
        }
        default_project = Some(name);
    }
    let ledger = match raw.ledger {
        Some(l) => {
            let line = line_of(text, l.span().start);
            let v = l.into_inner();
            if crate::ledger::url_has_password(&v) {
                return Err(PolicyError::At {
                    path: shown,
                    line,
                    message: "the ledger URL holds a password; keep credentials out of a shared file (use PGPASSWORD or ~/.pgpass)".into(),
                });
            }
            Some(v)
        }
        None => None,
    };
    for (project, entries) in tables {
        for (key, value) in entries {
            let line = line_of(text, value.span().start);
            let at = |message: String| PolicyError::At {
                path: shown.clone(),
                line,
                message,
            };
            let Some(s) = value.get_ref().as_str() else {
                return Err(at(format!(
                    "{key} must be a string such as \"5 kg / month\""
                )));
            };
            if key == "on_exceed" {
                let action = match s {
                    "stop" => OnExceed::Stop,
                    "pause" => OnExceed::Pause,
                    "warn" => OnExceed::Warn,
                    other => {
                        return Err(at(format!("on_exceed '{other}': use stop, pause or warn")))
                    }
                };
                on_exceed.insert(project.clone(), action);
                continue;
            }
            let metric = Metric::parse(&key).map_err(|e| at(format!("{e} (or on_exceed)")))?;
            let (amount, period) = s.split_once('/').ok_or_else(|| {
                at(format!(
                    "{key} = \"{s}\" needs a period: write e.g. \"5 kg / month\""
                ))
            })?;
            let amount = metric.parse_amount(amount).map_err(at)?;
            let period = Period::parse(period).map_err(at)?;
            budgets.push(ProjectBudget {
                project: project.clone(),
                metric,
                amount,
                period,
                line,
            });
        }
    }
    Ok(Policy {
        path: path.to_path_buf(),
        budgets,
        on_exceed,
        project: default_project,
        ledger,
    })
}

/// Reads and parses a policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let text = crate::infile::read_text(path, crate::infile::DATA_LIMIT).map_err(|e| match e {
        crate::infile::InError::Io { error, .. } => PolicyError::Io {
            path: path.display().to_string(),
            error,
        },
        other => PolicyError::Whole {
            path: path.display().to_string(),
            message: other.to_string(),
        },
    })?;
    parse(path, &text)
}

/// The policy file that governs runs started in `cwd`.
#[derive(Debug, Clone, PartialEq)]
pub enum Discovery {
    /// Named with `--policy` / `DECOMPUTE_POLICY`: always honoured.
    Named(PathBuf),
    /// Found upward and trustworthy.
    Found(PathBuf),
    /// Found upward but owned by someone else or writable by others: ignored.
    Ignored {
        path: PathBuf,
        why: String,
    },
    None,
}

impl Discovery {
    /// The file to load, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Discovery::Named(p) | Discovery::Found(p) => Some(p),
            _ => None,
        }
    }

    /// The one-line warning for an ignored file.
    pub fn warning(&self) -> Option<String> {
        match self {
            Discovery::Ignored { path, why } => Some(format!(
                "ignoring {}: it is {why}, so it could govern your runs without your consent; trust it with --policy {} (or DECOMPUTE_POLICY), or make it yours and chmod go-w",
                path.display(),
                path.display()
            )),
            _ => None,
        }
    }
}

/// `named` if given, else the nearest `decompute.toml` upward from `cwd`, honoured only when
/// it belongs to this user or root and is not group- or world-writable.
/// The policy that governs a command run in `cwd`: the named file, else the trusted one
/// found from `cwd`, loaded. Every command that reads or writes a ledger or budgets resolves
/// it this way, so a broken file is refused with the same message everywhere (never skipped,
/// which would let a command write to another ledger than the policy names); an untrusted
/// file is ignored and the warning returned for the caller to say.
pub fn resolve(
    named: Option<&Path>,
    cwd: &Path,
) -> Result<(Option<Policy>, Option<String>), PolicyError> {
    let found = discover(named, cwd);
    let warning = found.warning();
    let policy = found.path().map(load).transpose()?;
    Ok((policy, warning))
}

pub fn discover(named: Option<&Path>, cwd: &Path) -> Discovery {
    if let Some(p) = named {
        return Discovery::Named(p.to_path_buf());
    }
    match find(cwd) {
        Some(p) => match crate::infile::distrust(&p) {
            Some(why) => Discovery::Ignored { path: p, why },
            None => Discovery::Found(p),
        },
        None => Discovery::None,
    }
}

/// `decompute.toml` in `dir` or the nearest parent that has one.
pub fn find(dir: &Path) -> Option<PathBuf> {
    let mut d = Some(dir);
    while let Some(x) = d {
        let p = x.join(FILE_NAME);
        if p.is_file() {
            return Some(p);
        }
        d = x.parent();
    }
    None
}

/// A project budget's standing in its current period.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub budget: ProjectBudget,
    pub period_start: i64,
    pub period_end: i64,
    pub used: f64,
}

impl Standing {
    pub fn remaining(&self) -> f64 {
        self.budget.amount - self.used
    }

    pub fn fraction(&self) -> f64 {
        self.used / self.budget.amount
    }

    /// Use at the end of the period if it goes on at the rate so far.
    pub fn projection(&self, now: i64) -> f64 {
        let elapsed = (now - self.period_start).max(1) as f64;
        self.used * (self.period_end - self.period_start) as f64 / elapsed
    }

    /// Where the budget stands at `now`.
    pub fn state(&self, now: i64) -> BudgetState {
        if self.remaining() <= 0.0 {
            BudgetState::UsedUp
        } else if self.projection(now) > self.budget.amount {
            BudgetState::OnCourseToExceed
        } else {
            BudgetState::Ok
        }
    }
}

/// Where a project budget stands in its period: decided once ([`Standing::state`]), shown
/// by `budget status`, the report and the Slurm controller in their own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetState {
    /// Nothing left: runs are refused until the period renews.
    UsedUp,
    /// Within the budget, but the use so far, projected to the period's end, exceeds it.
    OnCourseToExceed,
    Ok,
}

impl BudgetState {
    /// As `budget status --json` names it: `used-up`, `on-course-to-exceed` or `ok`.
    pub fn key(self) -> &'static str {
        match self {
            BudgetState::UsedUp => "used-up",
            BudgetState::OnCourseToExceed => "on-course-to-exceed",
            BudgetState::Ok => "ok",
        }
    }
}

/// The standing of each of `project`'s budgets, given a function returning the ledger's
/// usage between two Unix times.
pub fn standings(
    policy: &Policy,
    project: &str,
    now: i64,
    mut usage: impl FnMut(i64, i64) -> Result<Usage, String>,
) -> Result<Vec<Standing>, String> {
    let mut out = Vec::new();
    for b in policy.budgets.iter().filter(|b| b.project == project) {
        let (s, e) = b.period.bounds(now);
        let used = usage(s, e)?.get(b.metric);
        out.push(Standing {
            budget: b.clone(),
            period_start: s,
            period_end: e,
            used,
        });
    }
    Ok(out)
}

/// What is left of each budget, as limits for one run.
pub fn remaining_limits(st: &[Standing]) -> Vec<Limit> {
    let mut out: Vec<Limit> = Vec::new();
    for s in st {
        let left = s.remaining().max(0.0);
        match out.iter_mut().find(|l| l.metric == s.budget.metric) {
            Some(l) => l.value = l.value.min(left),
            None => out.push(Limit {
                metric: s.budget.metric,
                value: left,
            }),
        }
    }
    out
}

/// A text bar for `budget status`.
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "# team budgets\n[project.llm-finetune]\ncarbon = \"5 kg / month\"\nenergy = \"200 kWh / quarter\"\non_exceed = \"pause\"\n\n[project.ci]\ntime = \"100 h / week\"\n";

    #[test]
    fn parses_budgets_with_periods_and_actions() {
        let p = parse(Path::new("decompute.toml"), P).expect("parses");
        assert_eq!(p.budgets.len(), 3);
        let c = p
            .budgets
            .iter()
            .find(|b| b.metric == Metric::Carbon)
            .expect("carbon");
        assert_eq!((c.amount, c.period, c.line), (5000.0, Period::Month, 3));
        let e = p
            .budgets
            .iter()
            .find(|b| b.metric == Metric::Energy)
            .expect("energy");
        assert_eq!((e.amount, e.period), (200.0 * 3.6e6, Period::Quarter));
        assert_eq!(p.on_exceed.get("llm-finetune"), Some(&OnExceed::Pause));
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("[project.a]\ncarbon = \"5 kg\"\n", 2, "needs a period"),
            (
                "[project.a]\n\ncarbon = \"5 kg / fortnight\"\n",
                3,
                "unknown period",
            ),
            (
                "[project.a]\ncarbon = \"5 lb / month\"\n",
                2,
                "not accepted",
            ),
            (
                "[project.a]\npower = \"5 W / month\"\n",
                2,
                "unknown budget",
            ),
            ("[project.a]\ncarbon = 5\n", 2, "must be a string"),
            (
                "[project.a]\non_exceed = \"explode\"\n",
                2,
                "stop, pause or warn",
            ),
            ("[projects.a]\ncarbon = \"1 g / day\"\n", 1, "unknown field"),
            ("[project.a\ncarbon = 1\n", 1, ""),
        ];
        for (text, line, needle) in cases {
            let e = parse(Path::new("team/decompute.toml"), text)
                .expect_err(text)
                .to_string();
            assert!(
                e.starts_with(&format!("team/decompute.toml: line {line}: ")),
                "{text:?}: {e}"
            );
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn remaining_budget_and_projection() {
        let p = parse(Path::new("d.toml"), P).expect("parses");
        let now = crate::govern::period::parse_time("2026-11-16T00:00:00Z").expect("t") as i64;
        let st = standings(&p, "llm-finetune", now, |s, e| {
            assert!(s < e);
            Ok(Usage {
                carbon_g: 3000.0,
                energy_j: 1e6,
                ..Default::default()
            })
        })
        .expect("standings");
        let carbon = st
            .iter()
            .find(|s| s.budget.metric == Metric::Carbon)
            .expect("carbon");
        assert_eq!(carbon.remaining(), 2000.0);
        // Half of November gone (15 of 30 days), 3 kg used → 6 kg by the end.
        assert!((carbon.projection(now) - 6000.0).abs() < 1e-6);
        let lim = remaining_limits(&st);
        assert!(lim.contains(&Limit {
            metric: Metric::Carbon,
            value: 2000.0
        }));
        assert_eq!(bar(0.5, 10), "[#####.....]");
        assert_eq!(bar(1.7, 4), "[####]");
    }

    #[test]
    fn names_the_project_and_the_ledger() {
        let p = parse(
            Path::new("d.toml"),
            "project = \"teamml\"\nledger = \"postgres://ledger.example/decompute\"\n[budget.teamml]\nenergy = \"1 kWh / day\"\n",
        )
        .expect("parses");
        assert_eq!(p.project.as_deref(), Some("teamml"));
        assert_eq!(
            p.ledger.as_deref(),
            Some("postgres://ledger.example/decompute")
        );
        assert_eq!(p.projects(), vec!["teamml"]);
        let e = parse(
            Path::new("d.toml"),
            "ledger = \"postgres://u:secret@h/db\"\n",
        )
        .expect_err("password");
        assert!(
            e.to_string().contains("password") && !e.to_string().contains("secret"),
            "{e}"
        );
        let e = parse(Path::new("d.toml"), "project = \"\"\n").expect_err("empty");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse(Path::new("p.toml"), &s);
        }

        #[test]
        fn near_misses_never_panic(
            name in "[a-zé]{0,6}",
            key in "(energy|carbon|water|time|on_exceed|power|é)",
            val in "[0-9.eé]{0,6} ?(kWh|g|kg|L|h|é)? ?/? ?(day|week|month|é)?",
        ) {
            let text = format!("project = \"{name}\"\n[budget.{name}x]\n{key} = \"{val}\"\n");
            let _ = parse(Path::new("p.toml"), &text);
        }
    }

    #[test]
    fn a_file_found_upward_must_be_trustworthy() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join(FILE_NAME);
        std::fs::write(&f, "").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(discover(None, d.path()), Discovery::Found(f.clone()));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let found = discover(None, d.path());
        assert!(found.path().is_none());
        let w = found.warning().expect("warns");
        assert!(w.contains("--policy") && w.contains("anyone"), "{w}");
        // Named explicitly, it is honoured whatever its mode.
        assert_eq!(discover(Some(&f), d.path()), Discovery::Named(f.clone()));
    }

    #[test]
    fn found_upward_like_gitignore() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join(FILE_NAME), "").expect("write");
        let deep = d.path().join("a/b/c");
        std::fs::create_dir_all(&deep).expect("mkdir");
        assert_eq!(find(&deep), Some(d.path().join(FILE_NAME)));
    }
}

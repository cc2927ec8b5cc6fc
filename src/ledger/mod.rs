//! The ledger: a durable record of every run — who ran what, where, when, and what it cost,
//! with each factor and its source — that people and teams can query, total, export and
//! merge. One [`Ledger`] trait; SQLite (embedded, the default) implements it, and a
//! PostgreSQL backend for teams will sit behind the same trait, so the SQL stays portable.

pub mod sqlite;

use crate::report::RunReport;
use crate::sample::PowerRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Schema of one exported record (a JSON line of `ledger export --format json`).
pub const RECORD_SCHEMA: &str = "decompute.ledger-record/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Finished,
    Failed,
    Interrupted,
    StoppedByBudget,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Finished => "finished",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::StoppedByBudget => "stopped-by-budget",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Running,
            Status::Finished,
            Status::Failed,
            Status::Interrupted,
            Status::StoppedByBudget,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is running what, where: known when a run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub id: String,
    pub project: String,
    pub tags: BTreeMap<String, String>,
    pub user: String,
    pub host: String,
    pub cwd: String,
}

/// The process that writes a running row, so a later open can tell a live run from one
/// whose monitor was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Monitor {
    pub pid: i32,
    /// Start time of that pid (clock ticks after boot, `/proc/PID/stat`).
    pub start_ticks: u64,
}

/// A full record: identity, status and the run report (with its samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: String,
    #[serde(flatten)]
    pub identity: RunIdentity,
    pub status: Status,
    pub report: RunReport,
}

/// Filters shared by `list`, `summary` and `export`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub project: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Inclusive lower bound on `started_at` (RFC 3339 or a date, compared as text in UTC).
    pub since: Option<String>,
    /// Exclusive upper bound on `started_at`.
    pub until: Option<String>,
    pub limit: Option<usize>,
}

/// How `summary` groups runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Project,
    Day,
    Week,
    Month,
    User,
    Host,
    Tag(String),
}

impl GroupBy {
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        match s {
            "project" => Ok(GroupBy::Project),
            "day" => Ok(GroupBy::Day),
            "week" => Ok(GroupBy::Week),
            "month" => Ok(GroupBy::Month),
            "user" => Ok(GroupBy::User),
            "host" => Ok(GroupBy::Host),
            t if t.starts_with("tag:") && t.len() > 4 => Ok(GroupBy::Tag(t[4..].to_string())),
            _ => Err(format!(
                "cannot group by '{s}'; use project, day, week, month, user, host or tag:KEY"
            )),
        }
    }
}

/// One row of `ledger list`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub project: String,
    pub started_at: String,
    pub duration_s: f64,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub energy_j: f64,
    pub modelled_share: f64,
    pub carbon_g: f64,
    pub water_l: f64,
    pub command: Vec<String>,
}

/// One group of `ledger summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub key: String,
    pub runs: u64,
    pub duration_s: f64,
    pub energy_j: f64,
    pub modelled_j: f64,
    pub carbon_g: f64,
    pub water_l: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path} is not a decompute ledger ({why}); it was left untouched; choose another path with --ledger or DECOMPUTE_LEDGER")]
    NotALedger { path: String, why: String },
    #[error("{path} was written by a newer decompute (ledger schema {found}, this one knows up to {known}); it was left untouched; upgrade decompute")]
    Newer {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("cannot open ledger {path}: {message}")]
    Open { path: String, message: String },
    #[error("ledger {path}: {message}")]
    Db { path: String, message: String },
    #[error("no run matches '{0}'; `decompute ledger list` shows the ids")]
    NoSuchRun(String),
    #[error("'{prefix}' matches {count} runs; give more characters of the id")]
    Ambiguous { prefix: String, count: usize },
    #[error("{what}: {message}")]
    BadRecord { what: String, message: String },
}

/// What every ledger backend does.
pub trait Ledger {
    /// Records a run as `running` when its command starts.
    fn begin(
        &mut self,
        id: &RunIdentity,
        monitor: Monitor,
        report: &RunReport,
    ) -> Result<(), LedgerError>;
    /// Saves the totals so far and new power rows (in one transaction).
    fn checkpoint(
        &mut self,
        id: &str,
        report: &RunReport,
        new_rows: &[PowerRow],
    ) -> Result<(), LedgerError>;
    /// Saves the final report, the last rows and the status.
    fn finish(
        &mut self,
        id: &str,
        status: Status,
        report: &RunReport,
        new_rows: &[PowerRow],
    ) -> Result<(), LedgerError>;
    /// Marks `running` rows whose monitor process is gone as `interrupted`; returns how many.
    fn recover(&mut self) -> Result<usize, LedgerError>;
    fn list(&self, f: &Filter) -> Result<Vec<RunRow>, LedgerError>;
    /// The full record of the run whose id starts with `prefix` (unique).
    fn get(&self, prefix: &str) -> Result<RunRecord, LedgerError>;
    fn summary(&self, by: &GroupBy, f: &Filter) -> Result<Vec<SummaryRow>, LedgerError>;
    /// Calls `each` with every matching record, oldest first.
    fn export(
        &self,
        f: &Filter,
        each: &mut dyn FnMut(RunRecord) -> Result<(), LedgerError>,
    ) -> Result<usize, LedgerError>;
    /// Inserts records whose id is not present; returns (inserted, already present).
    fn import(&mut self, records: &[RunRecord]) -> Result<(usize, usize), LedgerError>;
}

/// The default ledger path: `$XDG_DATA_HOME/decompute/ledger.sqlite`, else
/// `~/.local/share/decompute/ledger.sqlite`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("decompute/ledger.sqlite"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/decompute/ledger.sqlite"))
}

/// The project a run belongs to when none is given: the name of the enclosing git
/// repository's root, else of the current directory.
pub fn default_project(cwd: &Path) -> String {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        if d.join(".git").exists() {
            return name_of(d);
        }
        dir = d.parent();
    }
    name_of(cwd)
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into())
}

/// Parses a `--tag key=value`.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!(
            "tag '{s}' is not key=value; write e.g. --tag model=llama-7b"
        )),
    }
}

/// The user running decompute.
pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            // SAFETY: getuid has no preconditions.
            format!("uid{}", unsafe { libc::getuid() })
        })
}

/// Normalises a `--since`/`--until` value: a date (`2026-11-01`) or an RFC 3339 time in UTC.
pub fn parse_time_bound(s: &str) -> Result<String, String> {
    let t = s.trim();
    let b = t.as_bytes();
    let date_ok = b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && t[..4].bytes().all(|c| c.is_ascii_digit())
        && t[5..7].bytes().all(|c| c.is_ascii_digit())
        && t[8..10].bytes().all(|c| c.is_ascii_digit());
    if !date_ok {
        return Err(format!(
            "'{s}' is not a date; write YYYY-MM-DD or an RFC 3339 time like 2026-11-01T12:00:00Z"
        ));
    }
    if t.len() == 10 {
        return Ok(format!("{t}T00:00:00.000Z"));
    }
    if !t.ends_with('Z') {
        return Err(format!(
            "'{s}': give times in UTC with a trailing Z (the ledger stores UTC)"
        ));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_groups_and_bounds() {
        assert_eq!(
            parse_tag("model=llama"),
            Ok(("model".into(), "llama".into()))
        );
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_tag("nokey").is_err() && parse_tag("=v").is_err());
        assert_eq!(
            GroupBy::parse("tag:model"),
            Ok(GroupBy::Tag("model".into()))
        );
        assert!(GroupBy::parse("tag:").is_err() && GroupBy::parse("year").is_err());
        assert_eq!(
            parse_time_bound("2026-11-01").as_deref(),
            Ok("2026-11-01T00:00:00.000Z")
        );
        assert!(parse_time_bound("yesterday").is_err());
        assert!(parse_time_bound("2026-11-01T10:00:00+01:00").is_err());
        for s in [Status::Running, Status::StoppedByBudget] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn project_is_the_git_root_name() {
        let d = tempfile::tempdir().expect("tmp");
        let repo = d.path().join("my-model");
        std::fs::create_dir_all(repo.join(".git")).expect("git");
        std::fs::create_dir_all(repo.join("src/deep")).expect("deep");
        assert_eq!(default_project(&repo.join("src/deep")), "my-model");
        assert_eq!(default_project(d.path()), name_of(d.path()));
    }
}

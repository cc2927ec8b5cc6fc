//! The ledger: a durable record of every run — who ran what, where, when, and what it cost,
//! with each factor and its source — that people and teams can query, total, export and
//! merge. One [`Ledger`] trait; SQLite (embedded, the default) implements it, and a
//! PostgreSQL backend for teams will sit behind the same trait, so the SQL stays portable.

pub mod address;
pub mod codecarbon;
pub mod csv;
pub mod import;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod spool;
pub mod sqlite;

use crate::report::RunReport;
use crate::sample::PowerRow;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The tables both backends create word for word (tags, components, factors, power
/// samples): one text for both migrations.
macro_rules! detail_tables {
    () => {
        "
    CREATE TABLE run_tags (
        run_id TEXT NOT NULL REFERENCES runs (id),
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    );
    CREATE INDEX run_tags_kv ON run_tags (key, value);
    CREATE TABLE components (
        run_id TEXT NOT NULL REFERENCES runs (id),
        component TEXT NOT NULL,
        method TEXT NOT NULL,
        source TEXT NOT NULL,
        host_j DOUBLE PRECISION NOT NULL,
        workload_j DOUBLE PRECISION NOT NULL,
        low_j DOUBLE PRECISION NOT NULL,
        high_j DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, source)
    );
    CREATE TABLE factors (
        run_id TEXT NOT NULL REFERENCES runs (id),
        name TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        source TEXT NOT NULL,
        year INTEGER,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE samples (
        run_id TEXT NOT NULL REFERENCES runs (id),
        t_s DOUBLE PRECISION NOT NULL,
        dt_s DOUBLE PRECISION NOT NULL,
        cpu_w DOUBLE PRECISION NOT NULL,
        dram_w DOUBLE PRECISION NOT NULL,
        gpu_w DOUBLE PRECISION NOT NULL,
        workload_w DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, t_s)
    )"
    };
}
pub(crate) use detail_tables;

/// Schema of one exported record (a JSON line of `ledger export --format json`).
pub const RECORD_SCHEMA: &str = "decompute.ledger-record/1";

pub use crate::report::RunIdentity;
pub use crate::report::Status;

/// The process that writes a running row, so a later open can tell a live run from one
/// whose monitor was killed: on the same host by its pid, anywhere by its lease (renewed at
/// every checkpoint; a row whose lease ran out is interrupted whichever host looks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Monitor {
    pub pid: i32,
    /// Start time of that pid (clock ticks after boot, `/proc/PID/stat`).
    pub start_ticks: u64,
    /// How long a checkpoint keeps the row alive: 3 × the checkpoint interval, at least 30 s.
    pub lease_s: f64,
}

impl Monitor {
    /// The lease for a checkpoint interval: three intervals, at least 30 s.
    pub fn lease_for(checkpoint: std::time::Duration) -> f64 {
        (3.0 * checkpoint.as_secs_f64()).max(30.0)
    }
}

/// How to thaw a run's workload if its monitor dies while it is frozen: its cgroup, or its
/// processes by pid and start time (so a reused pid is never touched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Thaw {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<(i32, u64)>,
}

/// A running row found orphaned and marked interrupted.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub id: String,
    /// Present when its workload may still be frozen.
    pub thaw: Option<Thaw>,
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

impl RunRecord {
    /// Checks every field of a record that came from outside (an import), so nothing
    /// impossible enters the ledger: a negative or infinite figure would break every total
    /// and budget after it. Times are rewritten in the ledger's canonical form.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.schema != RECORD_SCHEMA {
            return Err(format!(
                "schema '{}' is not {RECORD_SCHEMA}",
                crate::term::escape(&self.schema)
            ));
        }
        let id = &self.identity.id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "id '{}' is not a run id (1 to 64 letters, digits, - or _)",
                crate::term::escape(&crate::term::fit(id, 70))
            ));
        }
        if self.report.schema != crate::report::SCHEMA {
            return Err(format!(
                "report schema '{}' is not {}",
                crate::term::line(&self.report.schema),
                crate::report::SCHEMA
            ));
        }
        parse_project(&self.identity.project).map_err(|e| format!("project: {e}"))?;
        for (what, v) in [("user", &self.identity.user), ("host", &self.identity.host)] {
            if v.trim().is_empty() || v.chars().count() > 256 || v.chars().any(char::is_control) {
                return Err(format!(
                    "{what} is empty, longer than 256 characters or holds control characters"
                ));
            }
        }
        for (k, v) in &self.identity.tags {
            check_tag(k, v)?;
        }
        if self.status == Status::Running {
            return Err(
                "status 'running': only ended runs can be imported; export it again after it ends"
                    .into(),
            );
        }
        let r = &mut self.report;
        let start =
            crate::timefmt::parse_time(&r.started_at).map_err(|e| format!("started_at: {e}"))?;
        let end = crate::timefmt::parse_time(&r.ended_at).map_err(|e| format!("ended_at: {e}"))?;
        if end + 1.0 < start {
            return Err(format!(
                "ended_at {} is before started_at {}",
                r.ended_at, r.started_at
            ));
        }
        r.started_at = crate::timefmt::rfc3339_ms((start * 1000.0).round() as i64);
        r.ended_at = crate::timefmt::rfc3339_ms((end * 1000.0).round() as i64);
        let figure = |what: &str, v: f64, max: f64| -> Result<(), String> {
            if v.is_finite() && (0.0..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} {v} is not a figure between 0 and {max:e}"))
            }
        };
        const CENTURY_S: f64 = 100.0 * 365.0 * 86400.0;
        const MAX_J: f64 = 3.6e18; // a TWh... a thousand times over
        figure("duration_s", r.duration_s, CENTURY_S)?;
        figure("interval_s", r.interval_s, CENTURY_S)?;
        figure("cpu_time_s", r.cpu_time_s, CENTURY_S * 1e4)?;
        let e = &r.energy_j;
        for (what, v) in [
            ("energy_j.host", e.host),
            ("energy_j.workload", e.workload),
            ("energy_j.workload_low", e.workload_low),
            ("energy_j.workload_high", e.workload_high),
        ] {
            figure(what, v, MAX_J)?;
        }
        if !e.rest.is_finite() {
            return Err("energy_j.rest is not finite".into());
        }
        if e.workload_low > e.workload * (1.0 + 1e-9) || e.workload_high < e.workload * (1.0 - 1e-9)
        {
            return Err(
                "energy_j: the band does not contain the value (low ≤ workload ≤ high)".into(),
            );
        }
        if !(r.modelled_share.is_finite() && (0.0..=1.0).contains(&r.modelled_share)) {
            return Err(format!(
                "modelled_share {} is not between 0 and 1",
                r.modelled_share
            ));
        }
        if !(r.pue.is_finite() && (1.0..=4.0).contains(&r.pue)) {
            return Err(format!("pue {} is not between 1 and 4", r.pue));
        }
        for (what, x) in [
            ("facility_energy_j", &r.facility_energy_j),
            ("carbon_g", &r.carbon_g),
            ("water_l", &r.water_l),
        ] {
            for (part, v) in [
                ("value", x.value),
                ("low", x.low),
                ("high", x.high),
                ("host", x.host),
            ] {
                figure(&format!("{what}.{part}"), v, MAX_J)?;
            }
        }
        for c in &r.components {
            for (part, v) in [
                ("host_energy_j", c.host_energy_j),
                ("workload_energy_j", c.workload_energy_j),
                ("low_j", c.low_j),
                ("high_j", c.high_j),
            ] {
                figure(&format!("components[{}].{part}", c.source), v, MAX_J)?;
            }
        }
        let f = &r.factors;
        for (what, x, max) in [
            ("factors.grid_gco2_per_kwh", &f.grid_gco2_per_kwh, 3000.0),
            ("factors.pue", &f.pue, 4.0),
            ("factors.wue_l_per_kwh", &f.wue_l_per_kwh, 100.0),
            ("factors.ewif_l_per_kwh", &f.ewif_l_per_kwh, 1000.0),
        ] {
            figure(what, x.value, max)?;
        }
        // The parts cannot hold more than the whole (a CodeCarbon row whose components
        // add up to 2 kWh while it says 3.6 J was consumed is one or the other wrong).
        let parts: f64 = r.components.iter().map(|c| c.workload_energy_j).sum();
        if parts > e.workload * 1.01 + 1e-3 {
            return Err(format!(
                "components add up to {parts:e} J, more than the run's energy_j.workload of {:e} J",
                e.workload
            ));
        }
        // A single run drawing over 100 MW is no figure but a broken file.
        const MAX_W: f64 = 1e8;
        for (i, row) in r.samples.iter().enumerate() {
            for v in [
                row.t_s,
                row.dt_s,
                row.cpu_w,
                row.dram_w,
                row.gpu_w,
                row.workload_w,
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("samples[{i}] holds {v}, not a non-negative figure"));
                }
            }
            for w in [row.cpu_w, row.dram_w, row.gpu_w, row.workload_w] {
                if w > MAX_W {
                    return Err(format!("samples[{i}] draws {w:e} W, more than 100 MW"));
                }
            }
        }
        Ok(())
    }
}

/// Whether a `running` row's monitor is gone, the one rule for every backend. On the host
/// that wrote it, the monitor's pid and start time decide, exactly: a live monitor keeps
/// its row running however long its lease has lapsed (a database outage longer than the
/// lease must not get a live, frozen workload thawed behind its monitor's back), and a dead
/// one releases it at once. Elsewhere (a shared ledger), only an expired lease tells.
pub fn monitor_gone(
    row_host: &str,
    pid: Option<i64>,
    start: Option<i64>,
    lease_expired: bool,
) -> bool {
    if row_host == crate::host::hostname() {
        if let (Some(p), Some(s)) = (pid, start) {
            return !monitor_alive(p, s);
        }
        return true;
    }
    lease_expired
}

/// Whether the process `pid` with start time `start` (clock ticks after boot) is alive on
/// this host.
pub fn monitor_alive(pid: i64, start: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => crate::procfs::pid::parse(&t)
            .map(|s| s.starttime as i64 == start)
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The workload energy decompute did not measure itself (modelled, or reported by a tool
/// whose file was imported): the "modelled" column of list and summary.
pub fn modelled_j(r: &RunReport) -> f64 {
    r.components
        .iter()
        .filter(|c| c.method != crate::sample::Method::Measured)
        .map(|c| c.workload_energy_j)
        .sum()
}

/// The tag a run measured inside another carries (a `decompute.track()` started while
/// another tracker of the process was active): the id of the outer run. Totals and budgets
/// count the outer run only.
pub const NESTED_TAG: &str = "nested_in";

/// The tag an imported record carries when its figures are not a workload's: `machine` for
/// another tool's whole-machine figures (CodeCarbon's default `tracking_mode`). `summary`
/// and the report keep such rows apart from decompute's workload figures; a user's `--tag`
/// cannot set it.
pub const SCOPE_TAG: &str = "scope";

/// The scope value of whole-machine figures.
pub const MACHINE_SCOPE: &str = "machine";

/// The scope value of hosted-AI requests, estimated from their tokens (`decompute.api`,
/// a provider's usage export): kept apart from measured workloads as machine rows are.
pub const ESTIMATED_SCOPE: &str = "estimated";

/// The SQL (both backends) of a run's scope as one column, without a join (for listings).
pub const SCOPE_COLUMN: &str = "COALESCE((SELECT sc.value FROM run_tags sc WHERE sc.run_id = runs.id AND sc.key = 'scope'), 'workload')";

/// The SQL (both backends) of a run's scope, `machine`, `estimated` or `workload`, with its
/// join.
pub const SCOPE_SQL: (&str, &str) = (
    "CASE WHEN sc.value = 'machine' THEN 'machine' WHEN sc.value = 'estimated' THEN 'estimated' ELSE 'workload' END",
    " LEFT JOIN run_tags sc ON sc.run_id = runs.id AND sc.key = 'scope'",
);

impl RunRecord {
    /// Whether the record's figures are a whole machine's (an imported machine-level row).
    pub fn machine_scope(&self) -> bool {
        self.identity.tags.get(SCOPE_TAG).map(String::as_str) == Some(MACHINE_SCOPE)
    }

    /// Whether the record is a hosted-AI request estimated from its tokens.
    pub fn estimated_scope(&self) -> bool {
        self.identity.tags.get(SCOPE_TAG).map(String::as_str) == Some(ESTIMATED_SCOPE)
    }
}

/// A `WHERE` clause (or none) extended to leave out runs measured inside another one
/// (`decompute.track()` nested in another tracker, tag `nested_in`): totals and budgets
/// count the outermost only. Listing and export keep them.
pub fn without_nested(w: &str) -> String {
    let cond = format!(
        "NOT EXISTS (SELECT 1 FROM run_tags n WHERE n.run_id = runs.id AND n.key = '{NESTED_TAG}')"
    );
    if w.trim().is_empty() {
        format!(" WHERE {cond}")
    } else {
        format!("{w} AND {cond}")
    }
}

/// The forms of a run id prefix to look up: as given, then upper-cased (ULIDs are upper
/// case; an imported tool's ids may not be). Only id characters are accepted.
pub fn prefix_forms(prefix: &str) -> Vec<String> {
    let p = prefix.trim();
    if p.is_empty()
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Vec::new();
    }
    let mut v = vec![p.to_string()];
    if p.to_ascii_uppercase() != p {
        v.push(p.to_ascii_uppercase());
    }
    v
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    pub added: usize,
    pub completed: usize,
    pub present: usize,
}

/// Whether an imported record should replace the row the ledger has of the same run: the
/// row was never finished (its monitor lost the ledger) and the record is ended and at least
/// as long.
pub fn completes(existing: Status, existing_duration_s: f64, incoming: &RunRecord) -> bool {
    let unfinished = matches!(existing, Status::Running | Status::Interrupted);
    let d = incoming.report.duration_s;
    let more = match incoming.status {
        Status::Running => false,
        // An interrupted record completes only if it saw more of the run.
        Status::Interrupted => d > existing_duration_s,
        _ => d >= existing_duration_s,
    };
    unfinished && more
}

impl RunRecord {
    /// The record a `--json` run report stands for (it carries the run's identity).
    pub fn from_report(report: RunReport) -> Result<RunRecord, String> {
        let identity = report.run.clone().ok_or(
            "this run report has no run identity (written by an older decompute); import the ledger export instead",
        )?;
        let status = report.status();
        let mut report = report;
        report.run = None;
        Ok(RunRecord {
            schema: RECORD_SCHEMA.into(),
            identity,
            status,
            report,
        })
    }
}

/// Filters shared by `list`, `summary` and `export`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub project: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Inclusive lower bound on the start time, Unix milliseconds (compared as instants).
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on the start time, Unix milliseconds.
    pub until_ms: Option<i64>,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// `workload`, `machine` (imported whole-machine figures) or `estimated` (hosted-AI
    /// requests): see [`SCOPE_TAG`].
    pub scope: String,
}

/// One group of `ledger summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub key: String,
    /// `workload` (decompute's runs, imported workload figures) or `machine` (imported
    /// whole-machine figures): never added together.
    pub scope: String,
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
    #[error("writing the output: {0}")]
    Output(String),
}

/// What every ledger backend does. `Send`, so a writer thread or a daemon can own it.
pub trait Ledger: Send {
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
    /// Records how to thaw the run's workload (None once it is thawed).
    fn set_thaw(&mut self, id: &str, thaw: Option<&Thaw>) -> Result<(), LedgerError>;
    /// Marks `running` rows whose monitor is gone (its pid on this host, or its lease
    /// anywhere) as `interrupted`; returns them with what may need thawing.
    fn recover(&mut self) -> Result<Vec<Recovered>, LedgerError>;
    fn list(&self, f: &Filter) -> Result<Vec<RunRow>, LedgerError>;
    /// The full record of the run whose id starts with `p` exactly (unique); `prefix` is
    /// what the user typed, for errors.
    fn get_prefix(&self, p: &str, prefix: &str) -> Result<RunRecord, LedgerError>;
    /// The full record of the run whose id starts with `prefix` (unique): as given (an
    /// imported tool's UUIDs are lower case), then upper-cased (ULIDs).
    fn get(&self, prefix: &str) -> Result<RunRecord, LedgerError> {
        for p in prefix_forms(prefix) {
            match self.get_prefix(&p, prefix) {
                Err(LedgerError::NoSuchRun(_)) => continue,
                other => return other,
            }
        }
        Err(LedgerError::NoSuchRun(prefix.to_string()))
    }
    fn summary(&self, by: &GroupBy, f: &Filter) -> Result<Vec<SummaryRow>, LedgerError>;
    /// Calls `each` with every matching record, oldest first.
    fn export(
        &self,
        f: &Filter,
        each: &mut dyn FnMut(RunRecord) -> Result<(), LedgerError>,
    ) -> Result<usize, LedgerError>;
    /// Inserts records whose id is not present, and completes a run the ledger has only as
    /// `running` or `interrupted` (its monitor lost the ledger) with a longer, ended record
    /// of it; the rest are already present.
    fn import(&mut self, records: &[RunRecord]) -> Result<Imported, LedgerError>;
    /// Lets go of what the ledger holds open on a server between uses (a PostgreSQL
    /// connection); the next call opens it again. A long run holds no backend between its
    /// checkpoints. A file ledger keeps its handle.
    fn release(&mut self) {}
}

/// Where a ledger is: a SQLite file, or a PostgreSQL database shared by a team.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

/// A ledger's place and who chose it.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub target: Target,
    pub origin: crate::factors::Origin,
}

impl Location {
    /// Reads a `--ledger` value: a `postgres://` or `postgresql://` URL (scheme in any
    /// case), else a file path; a text that looks like another kind of connection string is
    /// refused rather than taken as a file name.
    pub fn parse(
        text: &str,
        origin: crate::factors::Origin,
    ) -> Result<Location, address::AddressError> {
        let target = match address::Address::parse(text)? {
            address::Address::Postgres(u) => Target::Postgres(u),
            address::Address::Path(p) => Target::Sqlite(PathBuf::from(p)),
        };
        Ok(Location { target, origin })
    }

    /// Opens the ledger (creating a SQLite file if absent).
    pub fn open(&self) -> Result<Box<dyn Ledger>, LedgerError> {
        match &self.target {
            Target::Sqlite(p) => Ok(Box::new(sqlite::SqliteLedger::open(p)?)),
            #[cfg(feature = "postgres")]
            Target::Postgres(url) => Ok(Box::new(postgres::PgLedger::open(url)?)),
            #[cfg(not(feature = "postgres"))]
            Target::Postgres(url) => Err(LedgerError::Open {
                path: redact(url),
                message: "this build of decompute has no PostgreSQL support (built without its `postgres` feature); use a SQLite ledger, or a build with the feature (the default)".into(),
            }),
        }
    }

    /// Opens the ledger for a command that only reads it: as [`Location::open`], but a
    /// SQLite file this process cannot write is opened read-only rather than refused. The
    /// flag says whether the ledger can be written (recovery sweeps need that).
    pub fn open_reading(&self) -> Result<(Box<dyn Ledger>, bool), LedgerError> {
        match &self.target {
            Target::Sqlite(p) if sqlite::SqliteLedger::unwritable(p) => {
                Ok((Box::new(sqlite::SqliteLedger::open_read_only(p)?), false))
            }
            _ => Ok((self.open()?, true)),
        }
    }

    /// Files an output must never overwrite (the ledger and its WAL files).
    pub fn protected(&self) -> Vec<PathBuf> {
        match &self.target {
            Target::Sqlite(p) => vec![
                p.clone(),
                PathBuf::from(format!("{}-wal", p.display())),
                PathBuf::from(format!("{}-shm", p.display())),
            ],
            Target::Postgres(_) => Vec::new(),
        }
    }

    /// The ledger for people: the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match &self.target {
            Target::Sqlite(p) => p.display().to_string(),
            Target::Postgres(u) => redact(u),
        }
    }

    /// ", in ledger X (named by policy P)" when the ledger is not the user's own default.
    pub fn shown_if_shared(&self) -> String {
        match (&self.origin, &self.target) {
            (crate::factors::Origin::Policy(p), _) => {
                format!(", ledger {} (named by the policy {p})", self.shown())
            }
            (_, Target::Postgres(_)) => format!(", ledger {}", self.shown()),
            _ => String::new(),
        }
    }
}

pub use address::{has_password as url_has_password, redact};

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

/// A project name as every way into the ledger takes it (`--project`, the policy, Python's
/// `project=`, an import): trimmed, 1 to 200 characters, no control characters.
pub fn parse_project(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("the project name is empty; give a name, e.g. --project teamml".into());
    }
    if t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err("a project name is at most 200 characters, without control characters".into());
    }
    Ok(t.to_string())
}

/// A tag as every way into the ledger takes it: a key of 1 to 64 characters and a value of
/// at most 1,000, trimmed, neither with control characters.
pub fn check_tag(k: &str, v: &str) -> Result<(String, String), String> {
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() {
        return Err(format!(
            "tag '{}={}' has no key; write e.g. model=llama-7b",
            crate::term::line(k),
            crate::term::line(v)
        ));
    }
    if k.chars().count() > 64
        || v.chars().count() > 1000
        || k.chars().chain(v.chars()).any(char::is_control)
    {
        return Err(format!(
            "tag '{}' is too long or holds control characters (key at most 64, value at most 1000 characters)",
            crate::term::line(k)
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A tag a user gives (`--tag`, the Python `tags=`): as [`check_tag`], and never the scope
/// tag, which is decompute's own.
pub fn check_user_tag(k: &str, v: &str) -> Result<(String, String), String> {
    if k.trim() == SCOPE_TAG {
        return Err(format!(
            "tag key '{SCOPE_TAG}' is decompute's own (it marks imported whole-machine figures and estimated hosted-AI requests); choose another key"
        ));
    }
    check_tag(k, v)
}

/// Parses a `--tag key=value` (a user's: the scope tag is decompute's own).
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) => check_user_tag(k, v),
        None => Err(format!(
            "tag '{}' is not key=value; write e.g. --tag model=llama-7b",
            crate::term::line(s)
        )),
    }
}

/// The user running decompute: the OS account's name (from the password database, as
/// `id -un` gives it), never `$USER`, which anyone can set; `uid N` only if the account has
/// no name.
pub fn current_user() -> String {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    user_name(uid).unwrap_or_else(|| format!("uid{uid}"))
}

/// The account name of `uid`, by `getpwuid_r`.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: a zeroed passwd is a valid out-parameter.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid pointers to locals and a buffer of the stated length.
    let r = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pw,
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            &mut out,
        )
    };
    if r != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated name in buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    let name = name.to_string_lossy().into_owned();
    (!name.is_empty()).then_some(name)
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

    #[test]
    fn the_account_name_not_user() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }

    proptest::proptest! {
        #[test]
        fn tags_and_groups_never_panic(s in "\\PC{0,30}") {
            let _ = redact(&s);
            let _ = parse_tag(&s);
            let _ = GroupBy::parse(&s);
            let _ = url_has_password(&s);
        }
    }
}

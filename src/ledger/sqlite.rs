//! The embedded SQLite ledger (the default): one file, WAL mode and a busy timeout so
//! several `decompute run` processes can write at once, every write in a transaction,
//! versioned migrations, and refusal — leaving the file untouched — of anything that is not
//! a decompute ledger or was written by a newer version. SQL is kept to what PostgreSQL also
//! accepts (`ON CONFLICT ... DO NOTHING`, no SQLite-only types) so the team backend can share it.

use super::{
    Filter, GroupBy, Imported, Ledger, LedgerError, Monitor, Recovered, RunIdentity, RunRecord,
    RunRow, Status, SummaryRow, Thaw, RECORD_SCHEMA,
};
use crate::report::RunReport;
use crate::sample::PowerRow;
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension, Transaction, TransactionBehavior,
};
use std::path::Path;
use std::time::Duration;

/// `PRAGMA application_id` of a decompute ledger ("DCMP").
pub const APPLICATION_ID: i32 = 0x4443_4D50;
/// The newest schema this build knows.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[&str] = &[
    // 1: runs (narrow, for fast totals), their full reports, tags, components, factors and
    // power samples.
    concat!(
        "CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        user_name TEXT NOT NULL,
        host TEXT NOT NULL,
        cwd TEXT NOT NULL,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        updated_at TEXT NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        duration_s DOUBLE PRECISION NOT NULL,
        energy_host_j DOUBLE PRECISION NOT NULL,
        energy_j DOUBLE PRECISION NOT NULL,
        energy_low_j DOUBLE PRECISION NOT NULL,
        energy_high_j DOUBLE PRECISION NOT NULL,
        modelled_j DOUBLE PRECISION NOT NULL,
        pue DOUBLE PRECISION NOT NULL,
        zone TEXT NOT NULL,
        carbon_g DOUBLE PRECISION NOT NULL,
        water_l DOUBLE PRECISION NOT NULL,
        decompute_version TEXT NOT NULL,
        monitor_pid INTEGER,
        monitor_start BIGINT
    );
    CREATE TABLE run_reports (
        run_id TEXT PRIMARY KEY REFERENCES runs (id),
        report TEXT NOT NULL
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE INDEX runs_status ON runs (status);
    -- Covers `summary` and budget totals: scanned in project order, no table lookups.
    CREATE INDEX runs_totals ON runs (project, started_at, duration_s, energy_j, modelled_j, carbon_g, water_l);
",
        super::detail_tables!()
    ),
    // 2: how to thaw a frozen workload if its monitor dies, and a lease on running rows so
    // any host can tell a dead monitor in a shared ledger.
    "ALTER TABLE runs ADD COLUMN thaw TEXT;
    ALTER TABLE runs ADD COLUMN lease_until TEXT;",
];

pub struct SqliteLedger {
    conn: Connection,
    path: String,
    /// Lease length of the runs this process writes (renewed at each checkpoint).
    lease_s: f64,
}

impl SqliteLedger {
    /// Opens (creating if absent) the ledger at `path` and brings it to the current schema.
    pub fn open(path: &Path) -> Result<SqliteLedger, LedgerError> {
        let shown = path.display().to_string();
        let open_err = |message: String| LedgerError::Open {
            path: shown.clone(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                // Commands and working directories are private: the directory decompute
                // makes is 0700 and the ledger 0600, whatever the umask (as shell history).
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| open_err(format!("cannot create {}: {e}; choose another path with --ledger or DECOMPUTE_LEDGER", dir.display())))?;
            }
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(open_err(
                    "it is a directory; give a file path, e.g. --ledger DIR/ledger.sqlite".into(),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::fs::symlink_metadata(path).is_ok() {
                    return Err(open_err(
                        "it is a symlink to nowhere (or a loop); point --ledger at a real file"
                            .into(),
                    ));
                }
                create_private(path).map_err(|e| open_err(format!("cannot create it: {e}; choose a writable path with --ledger or DECOMPUTE_LEDGER")))?;
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(open_err(
                    "its symlinks loop; point --ledger at a real file".into(),
                ))
            }
            Err(e) => return Err(open_err(format!("{e}; choose another path with --ledger"))),
        }
        check_header(path, &shown)?;
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            return Err(open_err(format!(
                "cannot open it for writing ({e}); fix its permissions or choose another path with --ledger"
            )));
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        let db = |e: rusqlite::Error| LedgerError::Db {
            path: shown.clone(),
            message: e.to_string(),
        };
        conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
        // One statement, so a ledger being created by another process right now is seen
        // either empty or complete, never half made.
        let (app_id, tables, version): (i32, i64, i64) = conn
            .query_row(
                "SELECT a.application_id, (SELECT count(*) FROM sqlite_master), u.user_version
                 FROM pragma_application_id AS a, pragma_user_version AS u",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| LedgerError::NotALedger {
                path: shown.clone(),
                why: e.to_string(),
            })?;
        if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
            return Err(LedgerError::NotALedger {
                path: shown,
                why: "an SQLite database of another application".into(),
            });
        }
        if version < 0 || (version == 0 && tables > 0) {
            return Err(LedgerError::NotALedger {
                path: shown,
                why: format!(
                    "schema version {version} with {tables} objects: damaged or edited by hand"
                ),
            });
        }
        if version > SCHEMA_VERSION {
            return Err(LedgerError::Newer {
                path: shown,
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        // Closing does not checkpoint (that would sync the database file on every run, most
        // of a short run's overhead); small automatic checkpoints keep the WAL short, so the
        // next open recovers it quickly.
        let _ = conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        );
        let _ = conn.execute_batch("PRAGMA wal_autocheckpoint = 128");
        let mut ledger = SqliteLedger {
            conn,
            path: shown,
            lease_s: 30.0,
        };
        // An up-to-date ledger is opened without writing anything.
        if version < SCHEMA_VERSION || app_id != APPLICATION_ID {
            ledger.set_wal()?;
            ledger.migrate()?;
        } else {
            ledger
                .conn
                .execute_batch("PRAGMA synchronous = NORMAL")
                .map_err(|e| ledger.db(e))?;
        }
        Ok(ledger)
    }

    /// Whether this process cannot write the existing file at `path` (read-only media,
    /// another account's file): then a reading command opens it read-only.
    pub fn unwritable(path: &Path) -> bool {
        path.is_file()
            && std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .is_err_and(|e| {
                    e.kind() == std::io::ErrorKind::PermissionDenied
                        || e.raw_os_error() == Some(libc::EROFS)
                })
    }

    /// Opens an existing ledger to read only: nothing is created, migrated or written. On
    /// read-only media, where SQLite cannot make the WAL's shared-memory file, the file is
    /// read as immutable (nothing can be writing it there).
    pub fn open_read_only(path: &Path) -> Result<SqliteLedger, LedgerError> {
        use rusqlite::OpenFlags;
        let shown = path.display().to_string();
        check_header(path, &shown)?;
        let check = |conn: &Connection| -> Result<i64, rusqlite::Error> {
            conn.query_row(
                "SELECT a.application_id, u.user_version FROM pragma_application_id AS a, pragma_user_version AS u",
                [],
                |r| Ok((r.get::<_, i32>(0)?, r.get::<_, i64>(1)?)),
            )
            .map(|(app, v)| if app == APPLICATION_ID { v } else { -1 })
        };
        let plain = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| check(&c).map(|v| (c, v)));
        let (conn, version) = match plain {
            Ok(x) => x,
            Err(_) => {
                let mut uri = String::from("file:");
                for ch in path.to_string_lossy().chars() {
                    match ch {
                        '%' => uri.push_str("%25"),
                        '?' => uri.push_str("%3f"),
                        '#' => uri.push_str("%23"),
                        c => uri.push(c),
                    }
                }
                uri.push_str("?immutable=1");
                let c = Connection::open_with_flags(
                    &uri,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(|e| LedgerError::Open {
                    path: shown.clone(),
                    message: format!("cannot read it: {e}"),
                })?;
                let v = check(&c).map_err(|e| LedgerError::NotALedger {
                    path: shown.clone(),
                    why: e.to_string(),
                })?;
                (c, v)
            }
        };
        if version < 0 {
            return Err(LedgerError::NotALedger {
                path: shown,
                why: "an SQLite database of another application".into(),
            });
        }
        if version != SCHEMA_VERSION {
            return Err(LedgerError::Open {
                path: shown,
                message: format!("it is read-only and has schema version {version}, not {SCHEMA_VERSION}; open it once where it can be written, or copy it"),
            });
        }
        Ok(SqliteLedger {
            conn,
            path: shown,
            lease_s: 30.0,
        })
    }

    fn db(&self, e: rusqlite::Error) -> LedgerError {
        LedgerError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// WAL lets readers and one writer work at once; switching needs a moment alone.
    fn set_wal(&mut self) -> Result<(), LedgerError> {
        let mut last = None;
        for _ in 0..200 {
            match self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            {
                Ok(_) => {
                    self.conn
                        .execute_batch("PRAGMA synchronous = NORMAL")
                        .map_err(|e| self.db(e))?;
                    return Ok(());
                }
                // Another process is switching it too: wait; anything else (a full disk, a
                // read-only file) will not get better by waiting.
                Err(e) if is_busy(&e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => return Err(self.db(e)),
            }
        }
        Err(self.db(last.unwrap_or(rusqlite::Error::InvalidQuery)))
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let db = |e: rusqlite::Error| LedgerError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(LedgerError::Newer {
                path: path.clone(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(db)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(db)?;
        }
        tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Checkpoints and the final record must survive a power cut, so their commits sync the
    /// WAL (`synchronous = FULL`). The opening row uses NORMAL (safe against a crash of the
    /// process, one sync cheaper): checkpoints follow it.
    fn durable(&mut self, on: bool) -> Result<(), LedgerError> {
        let sql = if on {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        self.conn.execute_batch(sql).map_err(|e| self.db(e))
    }

    /// Runs `f` in one write transaction (durable or not, see [`Self::durable`]).
    fn in_tx(
        &mut self,
        durable: bool,
        f: impl FnOnce(&Transaction) -> rusqlite::Result<()>,
    ) -> Result<(), LedgerError> {
        self.durable(durable)?;
        let tx = self.write_tx()?;
        let res = f(&tx).and_then(|()| tx.commit());
        res.map_err(|e| self.db(e))
    }

    fn write_tx(&mut self) -> Result<Transaction<'_>, LedgerError> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| LedgerError::Db {
                path,
                message: e.to_string(),
            })
    }

    fn load(&self, id: &str) -> Result<RunRecord, LedgerError> {
        let db = |e: rusqlite::Error| self.db(e);
        let (project, user, host, cwd, status, report): (
            String,
            String,
            String,
            String,
            String,
            String,
        ) = self
            .conn
            .query_row(
                "SELECT r.project, r.user_name, r.host, r.cwd, r.status, p.report
                 FROM runs r JOIN run_reports p ON p.run_id = r.id WHERE r.id = ?1",
                [id],
                six,
            )
            .map_err(db)?;
        let mut report: RunReport =
            serde_json::from_str(&report).map_err(|e| LedgerError::BadRecord {
                what: format!("run {id}"),
                message: format!("stored report unreadable: {e}"),
            })?;
        let mut st = self
            .conn
            .prepare_cached("SELECT key, value FROM run_tags WHERE run_id = ?1 ORDER BY key")
            .map_err(db)?;
        let tags = st
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        let mut st = self
            .conn
            .prepare_cached("SELECT t_s, dt_s, cpu_w, dram_w, gpu_w, workload_w FROM samples WHERE run_id = ?1 ORDER BY t_s")
            .map_err(db)?;
        report.samples = st
            .query_map([id], |r| {
                Ok(PowerRow {
                    t_s: r.get(0)?,
                    dt_s: r.get(1)?,
                    cpu_w: r.get(2)?,
                    dram_w: r.get(3)?,
                    gpu_w: r.get(4)?,
                    workload_w: r.get(5)?,
                })
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        Ok(RunRecord {
            schema: RECORD_SCHEMA.into(),
            identity: RunIdentity {
                id: id.to_string(),
                project,
                tags,
                user,
                host,
                cwd,
            },
            status: Status::parse(&status).unwrap_or(Status::Interrupted),
            report,
        })
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Creates an empty ledger file readable by its owner only.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f.set_permissions(std::fs::Permissions::from_mode(0o600)),
        // Another process made it a moment ago.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn check_header(path: &Path, shown: &str) -> Result<(), LedgerError> {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut head = [0u8; 16];
    let n = f.read(&mut head).unwrap_or(0);
    if n == 0 {
        return Ok(());
    }
    if n < 16 || &head != b"SQLite format 3\0" {
        return Err(LedgerError::NotALedger {
            path: shown.to_string(),
            why: "not an SQLite database".into(),
        });
    }
    Ok(())
}

fn now() -> String {
    crate::timefmt::rfc3339(std::time::SystemTime::now())
}

/// The report as stored: without samples (they have their own table).
fn report_json(r: &RunReport) -> String {
    let mut bare = r.clone();
    bare.samples.clear();
    serde_json::to_string(&bare).unwrap_or_default()
}

fn write_figures(
    tx: &Transaction,
    id: &str,
    status: Status,
    r: &RunReport,
    ended: bool,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE runs SET status = ?2, exit_code = ?3, ended_at = ?4, updated_at = ?5, duration_s = ?6,
            energy_host_j = ?7, energy_j = ?8, energy_low_j = ?9, energy_high_j = ?10, modelled_j = ?11,
            pue = ?12, zone = ?13, carbon_g = ?14, water_l = ?15
         WHERE id = ?1",
        params![
            id,
            status.as_str(),
            if ended { r.exit_code } else { None },
            if ended { Some(r.ended_at.clone()) } else { None },
            now(),
            r.duration_s,
            r.energy_j.host,
            r.energy_j.workload,
            r.energy_j.workload_low,
            r.energy_j.workload_high,
            super::modelled_j(r),
            r.pue,
            r.factors.zone,
            r.carbon_g.value,
            r.water_l.value,
        ],
    )?;
    tx.execute(
        "INSERT INTO run_reports (run_id, report) VALUES (?1, ?2) ON CONFLICT (run_id) DO UPDATE SET report = excluded.report",
        params![id, report_json(r)],
    )?;
    write_children(tx, id, r)
}

fn write_children(tx: &Transaction, id: &str, r: &RunReport) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM components WHERE run_id = ?1", [id])?;
    let mut st = tx.prepare_cached(
        "INSERT INTO components (run_id, component, method, source, host_j, workload_j, low_j, high_j)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for c in &r.components {
        st.execute(params![
            id,
            c.component.to_string(),
            c.method.to_string(),
            c.source,
            c.host_energy_j,
            c.workload_energy_j,
            c.low_j,
            c.high_j
        ])?;
    }
    tx.execute("DELETE FROM factors WHERE run_id = ?1", [id])?;
    let mut st = tx.prepare_cached(
        "INSERT INTO factors (run_id, name, value, source, year) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let f = &r.factors;
    for (name, x) in [
        ("grid_gco2_per_kwh", &f.grid_gco2_per_kwh),
        ("pue", &f.pue),
        ("wue_l_per_kwh", &f.wue_l_per_kwh),
        ("ewif_l_per_kwh", &f.ewif_l_per_kwh),
    ] {
        st.execute(params![id, name, x.value, x.source, x.year])?;
    }
    Ok(())
}

fn write_samples(tx: &Transaction, id: &str, rows: &[PowerRow]) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO samples (run_id, t_s, dt_s, cpu_w, dram_w, gpu_w, workload_w) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (run_id, t_s) DO NOTHING",
    )?;
    for s in rows {
        st.execute(params![
            id,
            s.t_s,
            s.dt_s,
            s.cpu_w,
            s.dram_w,
            s.gpu_w,
            s.workload_w
        ])?;
    }
    Ok(())
}

/// The end of a lease of `lease_s` seconds from now.
fn lease_until(lease_s: f64) -> String {
    crate::timefmt::rfc3339(
        std::time::SystemTime::now() + Duration::from_secs_f64(lease_s.clamp(0.0, 1e9)),
    )
}

fn insert_run(
    tx: &Transaction,
    ident: &RunIdentity,
    status: Status,
    r: &RunReport,
    monitor: Option<Monitor>,
) -> rusqlite::Result<usize> {
    let n = tx.execute(
        "INSERT INTO runs (id, project, user_name, host, cwd, command, started_at, updated_at, status, duration_s,
            energy_host_j, energy_j, energy_low_j, energy_high_j, modelled_j, pue, zone, carbon_g, water_l,
            decompute_version, monitor_pid, monitor_start, lease_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, 0, 0, 0, 0, 0, ?10, ?11, 0, 0, ?12, ?13, ?14, ?15)
         ON CONFLICT (id) DO NOTHING",
        params![
            ident.id,
            ident.project,
            ident.user,
            ident.host,
            ident.cwd,
            serde_json::to_string(&r.command).unwrap_or_default(),
            r.started_at,
            now(),
            status.as_str(),
            r.pue,
            r.factors.zone,
            r.decompute_version,
            monitor.map(|m| m.pid),
            monitor.map(|m| m.start_ticks as i64),
            monitor.map(|m| lease_until(m.lease_s)),
        ],
    )?;
    if n == 1 {
        let mut st =
            tx.prepare_cached("INSERT INTO run_tags (run_id, key, value) VALUES (?1, ?2, ?3)")?;
        for (k, v) in &ident.tags {
            st.execute(params![ident.id, k, v])?;
        }
    }
    Ok(n)
}

/// WHERE clause and its parameters for a filter.
fn where_clause(f: &Filter) -> (String, Vec<String>) {
    let mut conds = Vec::new();
    let mut args = Vec::new();
    if let Some(p) = &f.project {
        args.push(p.clone());
        conds.push(format!("runs.project = ?{}", args.len()));
    }
    for (k, v) in &f.tags {
        args.push(k.clone());
        args.push(v.clone());
        conds.push(format!(
            "EXISTS (SELECT 1 FROM run_tags x WHERE x.run_id = runs.id AND x.key = ?{} AND x.value = ?{})",
            args.len() - 1,
            args.len()
        ));
    }
    // Start times are stored in one canonical form (UTC, milliseconds), so comparing the
    // canonical text of the bound compares instants.
    if let Some(s) = f.since_ms {
        args.push(crate::timefmt::rfc3339_ms(s));
        conds.push(format!("runs.started_at >= ?{}", args.len()));
    }
    if let Some(u) = f.until_ms {
        args.push(crate::timefmt::rfc3339_ms(u));
        conds.push(format!("runs.started_at < ?{}", args.len()));
    }
    let w = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (w, args)
}

/// The first six columns of a row, typed.
fn six<A, B, C, D, E, F>(r: &rusqlite::Row) -> rusqlite::Result<(A, B, C, D, E, F)>
where
    A: rusqlite::types::FromSql,
    B: rusqlite::types::FromSql,
    C: rusqlite::types::FromSql,
    D: rusqlite::types::FromSql,
    E: rusqlite::types::FromSql,
    F: rusqlite::types::FromSql,
{
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

impl Ledger for SqliteLedger {
    fn begin(
        &mut self,
        ident: &RunIdentity,
        monitor: Monitor,
        report: &RunReport,
    ) -> Result<(), LedgerError> {
        self.lease_s = monitor.lease_s;
        self.in_tx(false, |tx| {
            insert_run(tx, ident, Status::Running, report, Some(monitor))?;
            write_figures(tx, &ident.id, Status::Running, report, false)
        })
    }

    fn set_thaw(&mut self, id: &str, thaw: Option<&Thaw>) -> Result<(), LedgerError> {
        let text = thaw.map(|t| serde_json::to_string(t).unwrap_or_default());
        self.in_tx(true, |tx| {
            tx.execute("UPDATE runs SET thaw = ?2 WHERE id = ?1", params![id, text])
                .map(|_| ())
        })
    }

    fn checkpoint(
        &mut self,
        id: &str,
        report: &RunReport,
        rows: &[PowerRow],
    ) -> Result<(), LedgerError> {
        let lease = lease_until(self.lease_s);
        self.in_tx(true, |tx| {
            write_figures(tx, id, Status::Running, report, false)?;
            tx.execute(
                "UPDATE runs SET lease_until = ?2 WHERE id = ?1",
                params![id, lease],
            )?;
            write_samples(tx, id, rows)
        })
    }

    fn finish(
        &mut self,
        id: &str,
        status: Status,
        report: &RunReport,
        rows: &[PowerRow],
    ) -> Result<(), LedgerError> {
        self.in_tx(true, |tx| {
            write_figures(tx, id, status, report, true)?;
            write_samples(tx, id, rows)?;
            tx.execute(
                "UPDATE runs SET monitor_pid = NULL, monitor_start = NULL, lease_until = NULL, thaw = NULL WHERE id = ?1",
                [id],
            )?;
            Ok(())
        })
    }

    fn recover(&mut self) -> Result<Vec<Recovered>, LedgerError> {
        let now = now();
        let path = self.path.clone();
        let db = |e: rusqlite::Error| LedgerError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        type Row = (
            String,
            String,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let stale: Vec<Row> = {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT id, host, monitor_pid, monitor_start, lease_until, thaw FROM runs WHERE status = 'running'",
                )
                .map_err(db)?;
            let rows = st
                .query_map([], six)
                .map_err(db)?
                .collect::<Result<Vec<Row>, _>>()
                .map_err(db)?;
            rows.into_iter()
                .filter(|(_, h, pid, start, lease, _)| {
                    super::monitor_gone(h, *pid, *start, lease.as_ref().is_some_and(|l| *l < now))
                })
                .collect()
        };
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.write_tx()?;
        let mut out = Vec::new();
        for (id, _, _, _, _, thaw) in &stale {
            // The report keeps its last checkpoint; the run ended at that checkpoint.
            let n = tx
                .execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = updated_at, monitor_pid = NULL, monitor_start = NULL, lease_until = NULL, thaw = NULL
                     WHERE id = ?1 AND status = 'running'",
                    [id],
                )
                .map_err(db)?;
            if n == 1 {
                out.push(Recovered {
                    id: id.clone(),
                    thaw: thaw.as_deref().and_then(|t| serde_json::from_str(t).ok()),
                });
            }
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    fn list(&self, f: &Filter) -> Result<Vec<RunRow>, LedgerError> {
        let (w, args) = where_clause(f);
        let sql = format!(
            "SELECT id, project, started_at, duration_s, status, exit_code, energy_j, modelled_j, carbon_g, water_l, command, {}
             FROM runs{w} ORDER BY started_at DESC, id DESC LIMIT {}",
            super::SCOPE_COLUMN,
            f.limit.unwrap_or(usize::MAX >> 1).min(i64::MAX as usize)
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params_from_iter(args.iter()), |r| {
                let energy: f64 = r.get(6)?;
                let modelled: f64 = r.get(7)?;
                let status: String = r.get(4)?;
                let command: String = r.get(10)?;
                Ok(RunRow {
                    id: r.get(0)?,
                    project: r.get(1)?,
                    started_at: r.get(2)?,
                    duration_s: r.get(3)?,
                    status: Status::parse(&status).unwrap_or(Status::Interrupted),
                    exit_code: r.get(5)?,
                    energy_j: energy,
                    modelled_share: if energy > 0.0 { modelled / energy } else { 0.0 },
                    carbon_g: r.get(8)?,
                    water_l: r.get(9)?,
                    command: serde_json::from_str(&command).unwrap_or_default(),
                    scope: r.get(11)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn get_prefix(&self, p: &str, prefix: &str) -> Result<RunRecord, LedgerError> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM runs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 2")
            .map_err(|e| self.db(e))?;
        let ids: Vec<String> = st
            .query_map(params![p, format!("{p}\u{7f}")], |r| r.get(0))
            .map_err(|e| self.db(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.db(e))?;
        match ids.len() {
            0 => Err(LedgerError::NoSuchRun(prefix.to_string())),
            1 => self.load(&ids[0]),
            _ => {
                let count: usize = self
                    .conn
                    .query_row(
                        "SELECT count(*) FROM runs WHERE id >= ?1 AND id < ?2",
                        params![p, format!("{p}\u{7f}")],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(|e| self.db(e))? as usize;
                Err(LedgerError::Ambiguous {
                    prefix: prefix.to_string(),
                    count,
                })
            }
        }
    }

    fn summary(&self, by: &GroupBy, f: &Filter) -> Result<Vec<SummaryRow>, LedgerError> {
        let (w, mut args) = where_clause(f);
        let w = super::without_nested(&w);
        let (key, join) = match by {
            GroupBy::Project => ("runs.project".to_string(), String::new()),
            GroupBy::Day => ("substr(runs.started_at, 1, 10)".into(), String::new()),
            GroupBy::Week => (
                "strftime('%G-W%V', substr(runs.started_at, 1, 19))".into(),
                String::new(),
            ),
            GroupBy::Month => ("substr(runs.started_at, 1, 7)".into(), String::new()),
            GroupBy::User => ("runs.user_name".into(), String::new()),
            GroupBy::Host => ("runs.host".into(), String::new()),
            GroupBy::Tag(k) => {
                args.push(k.clone());
                (
                    "COALESCE(g.value, '(no tag)')".into(),
                    format!(
                        " LEFT JOIN run_tags g ON g.run_id = runs.id AND g.key = ?{}",
                        args.len()
                    ),
                )
            }
        };
        let sql = format!(
            "SELECT {key} AS k, {scope} AS s, count(*), sum(runs.duration_s), sum(runs.energy_j), sum(runs.modelled_j), sum(runs.carbon_g), sum(runs.water_l)
             FROM runs{join}{scope_join}{w} GROUP BY k, s ORDER BY s DESC, k",
            scope = super::SCOPE_SQL.0,
            scope_join = super::SCOPE_SQL.1,
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.db(e))?;
        let rows = st
            .query_map(params_from_iter(args.iter()), |r| {
                Ok(SummaryRow {
                    key: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    scope: r.get(1)?,
                    runs: r.get::<_, i64>(2)? as u64,
                    duration_s: r.get(3)?,
                    energy_j: r.get(4)?,
                    modelled_j: r.get(5)?,
                    carbon_g: r.get(6)?,
                    water_l: r.get(7)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn export(
        &self,
        f: &Filter,
        each: &mut dyn FnMut(RunRecord) -> Result<(), LedgerError>,
    ) -> Result<usize, LedgerError> {
        let (w, args) = where_clause(f);
        let limit = f
            .limit
            .map(|l| format!(" LIMIT {}", l.min(i64::MAX as usize)))
            .unwrap_or_default();
        let sql = format!("SELECT id FROM runs{w} ORDER BY started_at, id{limit}");
        let ids: Vec<String> = {
            let mut st = self.conn.prepare(&sql).map_err(|e| self.db(e))?;
            let ids = st
                .query_map(params_from_iter(args.iter()), |r| r.get(0))
                .map_err(|e| self.db(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.db(e))?;
            ids
        };
        for id in &ids {
            each(self.load(id)?)?;
        }
        Ok(ids.len())
    }

    fn import(&mut self, records: &[RunRecord]) -> Result<Imported, LedgerError> {
        let path = self.path.clone();
        let db = |e: rusqlite::Error| LedgerError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        let tx = self.write_tx()?;
        let mut n = Imported::default();
        for r in records {
            let existing: Option<(String, f64)> = tx
                .query_row(
                    "SELECT status, duration_s FROM runs WHERE id = ?1",
                    [&r.identity.id],
                    |x| Ok((x.get(0)?, x.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            let ended = r.status != Status::Running;
            match existing {
                Some((st, dur))
                    if super::completes(Status::parse(&st).unwrap_or(Status::Finished), dur, r) =>
                {
                    n.completed += 1;
                }
                Some(_) => {
                    n.present += 1;
                    continue;
                }
                None => {
                    insert_run(&tx, &r.identity, r.status, &r.report, None).map_err(db)?;
                    n.added += 1;
                }
            }
            write_figures(&tx, &r.identity.id, r.status, &r.report, ended).map_err(db)?;
            // Keep the record's own times, not the import's.
            tx.execute(
                "UPDATE runs SET ended_at = ?2, monitor_pid = NULL, monitor_start = NULL, lease_until = NULL, thaw = NULL WHERE id = ?1",
                params![
                    r.identity.id,
                    if ended {
                        Some(&r.report.ended_at)
                    } else {
                        None
                    }
                ],
            )
            .map_err(db)?;
            write_samples(&tx, &r.identity.id, &r.report.samples).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(n)
    }
}

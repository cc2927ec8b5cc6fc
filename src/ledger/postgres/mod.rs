//! The team's ledger on PostgreSQL: one database that a team's runs on several hosts write
//! to and read budgets from. Same [`Ledger`] trait and record as the SQLite file; its own
//! migrations (a `decompute_meta` table holds the schema version, taken under an advisory
//! lock so hosts opening it at once do not race); times stored as `timestamptz`; a lost
//! connection is reopened at the next call. URLs as libpq takes them:
//! `postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require|verify-ca|verify-full`
//! (`sslrootcert=FILE` for the CA); the password from the URL, `PGPASSWORD` or `~/.pgpass`,
//! and never printed. TLS is rustls (no OpenSSL). Connecting (the URL, the password, TLS)
//! is [`connect`]'s; this module holds the SQL.

pub mod connect;
pub mod unnamed;

use super::{
    Filter, GroupBy, Imported, Ledger, LedgerError, Monitor, Recovered, RunIdentity, RunRecord,
    RunRow, Status, SummaryRow, Thaw, RECORD_SCHEMA,
};
use crate::report::RunReport;
use crate::sample::PowerRow;
use connect::{connect, describe, parse_url, Target};
use postgres::{Client, Transaction};
use unnamed::{arg, Arg, Args};

/// The newest schema this build knows (PostgreSQL's own numbering).
pub const SCHEMA_VERSION: i64 = 1;
/// Advisory lock key for migrations ("DCMP").
const LOCK_KEY: i64 = 0x4443_4D50;

const MIGRATIONS: &[&str] = &[
    // 1: the whole schema of SQLite's version 2, with instants as timestamptz.
    concat!(
        "CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        user_name TEXT NOT NULL,
        host TEXT NOT NULL,
        cwd TEXT NOT NULL,
        command TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        ended_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL,
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
        monitor_start BIGINT,
        thaw TEXT,
        lease_until TIMESTAMPTZ
    );
    CREATE TABLE run_reports (
        run_id TEXT PRIMARY KEY REFERENCES runs (id),
        report TEXT NOT NULL
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE INDEX runs_status ON runs (status) WHERE status = 'running';
    CREATE INDEX runs_totals ON runs (project, started_at) INCLUDE (duration_s, energy_j, modelled_j, carbon_g, water_l);
",
        super::detail_tables!()
    ),
];

pub struct PgLedger {
    target: Target,
    /// The connection, behind a lock so reads (`&self`) can reopen it too.
    client: std::sync::Mutex<Option<Client>>,
    lease_s: f64,
}

impl PgLedger {
    /// Connects and brings the database to the current schema.
    pub fn open(url: &str) -> Result<PgLedger, LedgerError> {
        let target = parse_url(url).map_err(|message| LedgerError::Open {
            path: super::redact(url),
            message,
        })?;
        let l = PgLedger {
            target,
            client: std::sync::Mutex::new(None),
            lease_s: 30.0,
        };
        l.migrate()?;
        Ok(l)
    }

    fn db_err(&self, e: &postgres::Error) -> LedgerError {
        LedgerError::Db {
            path: self.target.shown.clone(),
            message: describe(e),
        }
    }

    /// Runs `f` on the connection, opening it again if it was lost.
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, LedgerError> {
        let mut guard = self.client.lock().map_err(|_| LedgerError::Db {
            path: self.target.shown.clone(),
            message: "connection lock poisoned".into(),
        })?;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            let c = connect(&self.target).map_err(|message| LedgerError::Open {
                path: self.target.shown.clone(),
                message: format!("{message}; {}", connect::hint(&message)),
            })?;
            *guard = Some(c);
        }
        match guard.as_mut() {
            Some(c) => f(c).map_err(|e| self.db_err(&e)),
            None => Err(LedgerError::Open {
                path: self.target.shown.clone(),
                message: "no connection".into(),
            }),
        }
    }

    fn migrate(&self) -> Result<(), LedgerError> {
        let shown = self.target.shown.clone();
        // The version is read without a lock: opening a current ledger serialises nothing.
        // Only a ledger that is behind is looked at again under the exclusive
        // (transaction-scoped) lock and upgraded by whichever opener gets it first.
        let outcome = self.with_client(|c| {
            // A look without a lock first.
            let mut tx = c.transaction()?;
            let has_meta: bool = tx
                .query_typed_one("SELECT to_regclass('decompute_meta') IS NOT NULL", &[])?
                .get(0);
            let version = if has_meta { schema_version(&mut tx)? } else { 0 };
            if version >= SCHEMA_VERSION {
                tx.commit()?;
                return Ok(if version == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(LedgerError::Newer {
                        path: shown.clone(),
                        found: version,
                        known: SCHEMA_VERSION,
                    })
                });
            }
            tx.rollback()?;
            // Behind (or new): under the lock. Creating the metadata table if it is missing
            // also takes a lock on it, so what this transaction reads next is what the
            // opener before it committed (an advisory lock alone refreshes nothing).
            let mut tx = c.transaction()?;
            tx.execute_typed("SELECT pg_advisory_xact_lock($1)", &[arg(&LOCK_KEY)])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS decompute_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO decompute_meta VALUES ('application', 'decompute ledger') ON CONFLICT (key) DO NOTHING",
            )?;
            let version = schema_version(&mut tx)?;
            if version > SCHEMA_VERSION {
                return Ok(Err(LedgerError::Newer {
                    path: shown.clone(),
                    found: version,
                    known: SCHEMA_VERSION,
                }));
            }
            let foreign: bool = tx
                .query_typed_one("SELECT to_regclass('runs') IS NOT NULL", &[])?
                .get(0);
            if version == 0 && foreign {
                // Rolled back: the metadata table created above goes with it.
                return Ok(Err(LedgerError::NotALedger {
                    path: shown.clone(),
                    why: "a table 'runs' exists without decompute's metadata".into(),
                }));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.batch_execute(sql)?;
                let v = (i as i64 + 1).to_string();
                tx.execute_typed(
                    "INSERT INTO decompute_meta VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[arg(&v)],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        });
        match outcome {
            Ok(r) => r,
            Err(LedgerError::Db { path, message }) if message.contains("permission denied") => Err(LedgerError::Db {
                path,
                message: format!("{message}; the ledger's schema needs creating or upgrading: open it once as the database's owner (`decompute ledger list --ledger postgres://OWNER@…`)"),
            }),
            Err(e) => Err(e),
        }
    }

    fn in_tx(
        &self,
        f: impl FnOnce(&mut Transaction) -> Result<(), postgres::Error>,
    ) -> Result<(), LedgerError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            f(&mut tx)?;
            tx.commit()
        })
    }

    fn query(&self, sql: &str, args: &[Arg]) -> Result<Vec<postgres::Row>, LedgerError> {
        self.with_client(|c| c.query_typed(sql, args))
    }

    fn load(&self, id: &str) -> Result<RunRecord, LedgerError> {
        let (r, tags, samples) = self.with_client(|c| {
            let r = c.query_typed_one(
                "SELECT r.project, r.user_name, r.host, r.cwd, r.status, p.report
                 FROM runs r JOIN run_reports p ON p.run_id = r.id WHERE r.id = $1", &[arg(&id)])?;
            let tags = c.query_typed("SELECT key, value FROM run_tags WHERE run_id = $1 ORDER BY key", &[arg(&id)])?;
            let samples = c.query_typed(
                "SELECT t_s, dt_s, cpu_w, dram_w, gpu_w, workload_w FROM samples WHERE run_id = $1 ORDER BY t_s", &[arg(&id)])?;
            Ok((r, tags, samples))
        })?;
        let report: String = r.get(5);
        let mut report: RunReport =
            serde_json::from_str(&report).map_err(|e| LedgerError::BadRecord {
                what: format!("run {id}"),
                message: format!("stored report unreadable: {e}"),
            })?;
        report.samples = samples
            .iter()
            .map(|s| PowerRow {
                t_s: s.get(0),
                dt_s: s.get(1),
                cpu_w: s.get(2),
                dram_w: s.get(3),
                gpu_w: s.get(4),
                workload_w: s.get(5),
            })
            .collect();
        let status: String = r.get(4);
        Ok(RunRecord {
            schema: RECORD_SCHEMA.into(),
            identity: RunIdentity {
                id: id.to_string(),
                project: r.get(0),
                tags: tags
                    .iter()
                    .map(|t| (t.get::<_, String>(0), t.get::<_, String>(1)))
                    .collect(),
                user: r.get(1),
                host: r.get(2),
                cwd: r.get(3),
            },
            status: Status::parse(&status).unwrap_or(Status::Interrupted),
            report,
        })
    }
}

/// Unix milliseconds of an RFC 3339 text (the report's canonical times).
/// The schema version the metadata table records (0 when it records none).
fn schema_version(tx: &mut Transaction) -> Result<i64, postgres::Error> {
    Ok(tx
        .query_typed_opt(
            "SELECT value FROM decompute_meta WHERE key = 'schema_version'",
            &[],
        )?
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or(0))
}

fn ms(t: &str) -> f64 {
    crate::timefmt::parse_time(t)
        .map(|s| s * 1000.0)
        .unwrap_or(0.0)
}

fn report_json(r: &RunReport) -> String {
    let mut bare = r.clone();
    bare.samples.clear();
    serde_json::to_string(&bare).unwrap_or_default()
}

fn write_figures(
    tx: &mut Transaction,
    id: &str,
    status: Status,
    r: &RunReport,
    ended: bool,
) -> Result<(), postgres::Error> {
    let ended_ms: Option<f64> = ended.then(|| ms(&r.ended_at));
    let exit: Option<i32> = if ended { r.exit_code } else { None };
    tx.execute_typed(
        "UPDATE runs SET status = $2, exit_code = $3, ended_at = to_timestamp($4::float8 / 1000), updated_at = now(),
            duration_s = $5, energy_host_j = $6, energy_j = $7, energy_low_j = $8, energy_high_j = $9,
            modelled_j = $10, pue = $11, zone = $12, carbon_g = $13, water_l = $14
         WHERE id = $1", &[arg(&id), arg(&status.as_str()), arg(&exit), arg(&ended_ms), arg(&r.duration_s), arg(&r.energy_j.host), arg(&r.energy_j.workload), arg(&r.energy_j.workload_low), arg(&r.energy_j.workload_high), arg(&super::modelled_j(r)), arg(&r.pue), arg(&r.factors.zone), arg(&r.carbon_g.value), arg(&r.water_l.value)])?;
    tx.execute_typed(
        "INSERT INTO run_reports (run_id, report) VALUES ($1, $2) ON CONFLICT (run_id) DO UPDATE SET report = excluded.report", &[arg(&id), arg(&report_json(r))])?;
    // Whole sets in one statement each (arrays unnested server-side): a checkpoint is a
    // handful of round trips, not one per row.
    let (mut comp, mut meth, mut src) = (Vec::new(), Vec::new(), Vec::new());
    let (mut host, mut work, mut low, mut high) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in &r.components {
        comp.push(c.component.to_string());
        meth.push(c.method.to_string());
        src.push(c.source.clone());
        host.push(c.host_energy_j);
        work.push(c.workload_energy_j);
        low.push(c.low_j);
        high.push(c.high_j);
    }
    tx.execute_typed("DELETE FROM components WHERE run_id = $1", &[arg(&id)])?;
    tx.execute_typed(
        "INSERT INTO components (run_id, component, method, source, host_j, workload_j, low_j, high_j)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::float8[], $8::float8[])", &[arg(&id), arg(&comp), arg(&meth), arg(&src), arg(&host), arg(&work), arg(&low), arg(&high)])?;
    let f = &r.factors;
    let (mut names, mut values, mut sources, mut years) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::<Option<i32>>::new(),
    );
    for (name, x) in [
        ("grid_gco2_per_kwh", &f.grid_gco2_per_kwh),
        ("pue", &f.pue),
        ("wue_l_per_kwh", &f.wue_l_per_kwh),
        ("ewif_l_per_kwh", &f.ewif_l_per_kwh),
    ] {
        names.push(name.to_string());
        values.push(x.value);
        sources.push(x.source.clone());
        years.push(x.year.and_then(|y| i32::try_from(y).ok()));
    }
    tx.execute_typed(
        "INSERT INTO factors (run_id, name, value, source, year)
         SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::text[], $5::int4[])
         ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value, source = excluded.source, year = excluded.year", &[arg(&id), arg(&names), arg(&values), arg(&sources), arg(&years)])?;
    Ok(())
}

fn write_samples(tx: &mut Transaction, id: &str, rows: &[PowerRow]) -> Result<(), postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&PowerRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    tx.execute_typed(
        "INSERT INTO samples (run_id, t_s, dt_s, cpu_w, dram_w, gpu_w, workload_w)
         SELECT $1, * FROM unnest($2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[])
         ON CONFLICT (run_id, t_s) DO NOTHING", &[arg(&id), arg(&col(|r| r.t_s)), arg(&col(|r| r.dt_s)), arg(&col(|r| r.cpu_w)), arg(&col(|r| r.dram_w)), arg(&col(|r| r.gpu_w)), arg(&col(|r| r.workload_w))])?;
    Ok(())
}

fn insert_run(
    tx: &mut Transaction,
    ident: &RunIdentity,
    status: Status,
    r: &RunReport,
    monitor: Option<Monitor>,
) -> Result<u64, postgres::Error> {
    let pid: Option<i32> = monitor.map(|m| m.pid);
    let start: Option<i64> = monitor.map(|m| m.start_ticks as i64);
    let lease: Option<f64> = monitor.map(|m| m.lease_s);
    let n = tx.execute_typed(
        "INSERT INTO runs (id, project, user_name, host, cwd, command, started_at, updated_at, status, duration_s,
            energy_host_j, energy_j, energy_low_j, energy_high_j, modelled_j, pue, zone, carbon_g, water_l,
            decompute_version, monitor_pid, monitor_start, lease_until)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::float8 / 1000), now(), $8, 0, 0, 0, 0, 0, 0, $9, $10, 0, 0, $11, $12, $13,
            now() + make_interval(secs => $14::float8))
         ON CONFLICT (id) DO NOTHING", &[arg(&ident.id), arg(&ident.project), arg(&ident.user), arg(&ident.host), arg(&ident.cwd), arg(&serde_json::to_string(&r.command).unwrap_or_default()), arg(&ms(&r.started_at)), arg(&status.as_str()), arg(&r.pue), arg(&r.factors.zone), arg(&r.decompute_version), arg(&pid), arg(&start), arg(&lease)])?;
    if n == 1 && !ident.tags.is_empty() {
        let keys: Vec<&String> = ident.tags.keys().collect();
        let vals: Vec<&String> = ident.tags.values().collect();
        tx.execute_typed(
            "INSERT INTO run_tags (run_id, key, value) SELECT $1, * FROM unnest($2::text[], $3::text[])", &[arg(&ident.id), arg(&keys), arg(&vals)])?;
    }
    Ok(n)
}

/// WHERE clause and parameters for a filter (`$n` placeholders from `first`).
fn where_clause(f: &Filter) -> (String, Args) {
    let mut conds = Vec::new();
    let mut args = Args::default();
    if let Some(p) = &f.project {
        args.push(p.clone());
        conds.push(format!("runs.project = ${}", args.len()));
    }
    for (k, v) in &f.tags {
        args.push(k.clone());
        args.push(v.clone());
        conds.push(format!(
            "EXISTS (SELECT 1 FROM run_tags x WHERE x.run_id = runs.id AND x.key = ${} AND x.value = ${})",
            args.len() - 1,
            args.len()
        ));
    }
    if let Some(s) = f.since_ms {
        args.push(s as f64);
        conds.push(format!(
            "runs.started_at >= to_timestamp(${}::float8 / 1000)",
            args.len()
        ));
    }
    if let Some(u) = f.until_ms {
        args.push(u as f64);
        conds.push(format!(
            "runs.started_at < to_timestamp(${}::float8 / 1000)",
            args.len()
        ));
    }
    let w = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (w, args)
}

impl Ledger for PgLedger {
    fn release(&mut self) {
        if let Ok(mut c) = self.client.lock() {
            *c = None;
        }
    }

    fn begin(
        &mut self,
        ident: &RunIdentity,
        monitor: Monitor,
        report: &RunReport,
    ) -> Result<(), LedgerError> {
        self.lease_s = monitor.lease_s;
        self.in_tx(|tx| {
            insert_run(tx, ident, Status::Running, report, Some(monitor))?;
            write_figures(tx, &ident.id, Status::Running, report, false)
        })
    }

    fn checkpoint(
        &mut self,
        id: &str,
        report: &RunReport,
        rows: &[PowerRow],
    ) -> Result<(), LedgerError> {
        let lease = self.lease_s;
        self.in_tx(|tx| {
            write_figures(tx, id, Status::Running, report, false)?;
            tx.execute_typed(
                "UPDATE runs SET lease_until = now() + make_interval(secs => $2::float8) WHERE id = $1", &[arg(&id), arg(&lease)])?;
            write_samples(tx, id, rows)
        })
    }

    fn set_thaw(&mut self, id: &str, thaw: Option<&Thaw>) -> Result<(), LedgerError> {
        let text = thaw.map(|t| serde_json::to_string(t).unwrap_or_default());
        self.in_tx(|tx| {
            tx.execute_typed(
                "UPDATE runs SET thaw = $2 WHERE id = $1",
                &[arg(&id), arg(&text)],
            )
            .map(|_| ())
        })
    }

    fn finish(
        &mut self,
        id: &str,
        status: Status,
        report: &RunReport,
        rows: &[PowerRow],
    ) -> Result<(), LedgerError> {
        self.in_tx(|tx| {
            write_figures(tx, id, status, report, true)?;
            write_samples(tx, id, rows)?;
            tx.execute_typed(
                "UPDATE runs SET monitor_pid = NULL, monitor_start = NULL, lease_until = NULL, thaw = NULL WHERE id = $1", &[arg(&id)])
            .map(|_| ())
        })
    }

    fn recover(&mut self) -> Result<Vec<Recovered>, LedgerError> {
        let rows = self.query(
            "SELECT id, host, monitor_pid, monitor_start, lease_until < now(), thaw FROM runs WHERE status = 'running'", &[])?;
        let stale: Vec<(String, Option<String>)> = rows
            .iter()
            .filter(|r| {
                let h: String = r.get(1);
                let pid: Option<i32> = r.get(2);
                let start: Option<i64> = r.get(3);
                let expired: Option<bool> = r.get(4);
                super::monitor_gone(&h, pid.map(i64::from), start, expired == Some(true))
            })
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(5)))
            .collect();
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        self.in_tx(|tx| {
            for (id, thaw) in &stale {
                let n = tx.execute_typed(
                    "UPDATE runs SET status = 'interrupted', ended_at = updated_at, monitor_pid = NULL, monitor_start = NULL, lease_until = NULL, thaw = NULL
                     WHERE id = $1 AND status = 'running'", &[arg(&id)])?;
                if n == 1 {
                    out.push(Recovered {
                        id: id.clone(),
                        thaw: thaw.as_deref().and_then(|t| serde_json::from_str(t).ok()),
                    });
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn list(&self, f: &Filter) -> Result<Vec<RunRow>, LedgerError> {
        let (w, args) = where_clause(f);
        let limit = f.limit.unwrap_or(usize::MAX >> 1).min(i64::MAX as usize);
        let sql = format!(
            "SELECT id, project, (extract(epoch FROM started_at) * 1000)::float8, duration_s, status, exit_code, energy_j, modelled_j, carbon_g, water_l, command, {}
             FROM runs{w} ORDER BY started_at DESC, id DESC LIMIT {limit}",
            super::SCOPE_COLUMN
        );
        let rows = self.query(&sql, &args.typed())?;
        Ok(rows
            .iter()
            .map(|r| {
                let energy: f64 = r.get(6);
                let modelled: f64 = r.get(7);
                let status: String = r.get(4);
                let command: String = r.get(10);
                let started: f64 = r.get(2);
                RunRow {
                    id: r.get(0),
                    project: r.get(1),
                    started_at: crate::timefmt::rfc3339_ms(started.round() as i64),
                    duration_s: r.get(3),
                    status: Status::parse(&status).unwrap_or(Status::Interrupted),
                    exit_code: r.get(5),
                    energy_j: energy,
                    modelled_share: if energy > 0.0 { modelled / energy } else { 0.0 },
                    carbon_g: r.get(8),
                    water_l: r.get(9),
                    command: serde_json::from_str(&command).unwrap_or_default(),
                    scope: r.get(11),
                }
            })
            .collect())
    }

    fn get_prefix(&self, p: &str, prefix: &str) -> Result<RunRecord, LedgerError> {
        let hi = format!("{p}\u{7f}");
        let ids: Vec<String> = self
            .query(
                "SELECT id FROM runs WHERE id >= $1 AND id < $2 ORDER BY id LIMIT 2",
                &[arg(&p), arg(&hi)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        match ids.len() {
            0 => Err(LedgerError::NoSuchRun(prefix.to_string())),
            1 => self.load(&ids[0]),
            _ => {
                let count: i64 = self
                    .query(
                        "SELECT count(*) FROM runs WHERE id >= $1 AND id < $2",
                        &[arg(&p), arg(&hi)],
                    )?
                    .first()
                    .map(|r| r.get(0))
                    .unwrap_or(2);
                Err(LedgerError::Ambiguous {
                    prefix: prefix.to_string(),
                    count: count as usize,
                })
            }
        }
    }

    fn summary(&self, by: &GroupBy, f: &Filter) -> Result<Vec<SummaryRow>, LedgerError> {
        let (w, mut args) = where_clause(f);
        let w = super::without_nested(&w);
        let (key, join) = match by {
            GroupBy::Project => ("runs.project".to_string(), String::new()),
            GroupBy::Day => (
                "to_char(runs.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')".into(),
                String::new(),
            ),
            GroupBy::Week => (
                "to_char(runs.started_at AT TIME ZONE 'UTC', 'IYYY-\"W\"IW')".into(),
                String::new(),
            ),
            GroupBy::Month => (
                "to_char(runs.started_at AT TIME ZONE 'UTC', 'YYYY-MM')".into(),
                String::new(),
            ),
            GroupBy::User => ("runs.user_name".into(), String::new()),
            GroupBy::Host => ("runs.host".into(), String::new()),
            GroupBy::Tag(k) => {
                args.push(k.clone());
                (
                    "COALESCE(g.value, '(no tag)')".into(),
                    format!(
                        " LEFT JOIN run_tags g ON g.run_id = runs.id AND g.key = ${}",
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
        Ok(self
            .query(&sql, &args.typed())?
            .iter()
            .map(|r| SummaryRow {
                key: r.get::<_, Option<String>>(0).unwrap_or_default(),
                scope: r.get(1),
                runs: r.get::<_, i64>(2) as u64,
                duration_s: r.get(3),
                energy_j: r.get(4),
                modelled_j: r.get(5),
                carbon_g: r.get(6),
                water_l: r.get(7),
            })
            .collect())
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
        let ids: Vec<String> = self
            .query(&sql, &args.typed())?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for id in &ids {
            each(self.load(id)?)?;
        }
        Ok(ids.len())
    }

    fn import(&mut self, records: &[RunRecord]) -> Result<Imported, LedgerError> {
        let mut n = Imported::default();
        self.in_tx(|tx| {
            for r in records {
                let existing = tx.query_typed_opt(
                    "SELECT status, duration_s FROM runs WHERE id = $1", &[arg(&r.identity.id)])?;
                match existing {
                    Some(row)
                        if super::completes(
                            Status::parse(&row.get::<_, String>(0)).unwrap_or(Status::Finished),
                            row.get(1),
                            r,
                        ) =>
                    {
                        n.completed += 1;
                    }
                    Some(_) => {
                        n.present += 1;
                        continue;
                    }
                    None => {
                        insert_run(tx, &r.identity, r.status, &r.report, None)?;
                        n.added += 1;
                    }
                }
                let ended = r.status != Status::Running;
                write_figures(tx, &r.identity.id, r.status, &r.report, ended)?;
                write_samples(tx, &r.identity.id, &r.report.samples)?;
                tx.execute_typed(
                    "UPDATE runs SET lease_until = NULL, monitor_pid = NULL, monitor_start = NULL, thaw = NULL WHERE id = $1", &[arg(&r.identity.id)])?;
            }
            Ok(())
        })?;
        Ok(n)
    }
}

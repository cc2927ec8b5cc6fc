//! The team's ledger on PostgreSQL: one database that a team's runs on several hosts write
//! to and read budgets from. Same [`Ledger`] trait and record as the SQLite file; its own
//! migrations (a `decompute_meta` table holds the schema version, taken under an advisory
//! lock so hosts opening it at once do not race); times stored as `timestamptz`; a lost
//! connection is reopened at the next call. URLs as libpq takes them:
//! `postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require|verify-ca|verify-full`
//! (`sslrootcert=FILE` for the CA); the password from the URL, `PGPASSWORD` or `~/.pgpass`,
//! and never printed. TLS is rustls (no OpenSSL).

use super::{
    Filter, GroupBy, Imported, Ledger, LedgerError, Monitor, Recovered, RunIdentity, RunRecord,
    RunRow, Status, SummaryRow, Thaw, RECORD_SCHEMA,
};
use crate::report::RunReport;
use crate::sample::PowerRow;
use postgres::types::ToSql;
use postgres::{Client, Transaction};
use std::sync::Arc;
use std::time::Duration;

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

/// How the connection is encrypted (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<SslMode, String> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "allow" | "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(format!(
                "sslmode '{}' is not one of disable, prefer, require, verify-ca, verify-full",
                crate::term::escape(other)
            )),
        }
    }
}

/// A parsed ledger URL: the driver's config (password included, never shown), the TLS
/// choice, and the URL as it may be shown.
pub struct Target {
    pub config: postgres::Config,
    pub ssl: SslMode,
    pub root_cert: Option<std::path::PathBuf>,
    pub shown: String,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("x"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a `postgres://` URL the way libpq does (the parts decompute needs).
pub fn parse_url(url: &str) -> Result<Target, String> {
    let shown = super::redact(url);
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut ssl = SslMode::Prefer;
    let mut root_cert = None;
    let mut rest = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "sslmode" => ssl = SslMode::parse(&percent_decode(v))?,
            "sslrootcert" => root_cert = Some(std::path::PathBuf::from(percent_decode(v))),
            _ => rest.push(kv),
        }
    }
    let cleaned = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: postgres::Config = cleaned
        .parse()
        .map_err(|e: postgres::Error| format!("{shown}: not a PostgreSQL URL ({e})"))?;
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(super::current_user);
        config.user(&user);
    }
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_password().is_none() {
        if let Some(p) = password_from_env(&config) {
            config.password(p);
        }
    }
    config.application_name("decompute");
    Ok(Target {
        config,
        ssl,
        root_cert,
        shown,
    })
}

fn host_of(c: &postgres::Config) -> String {
    match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    }
}

/// `PGPASSWORD`, else the first matching line of `PGPASSFILE` or `~/.pgpass`
/// (`host:port:database:user:password`, `*` matching anything, `\:` an escaped colon).
fn password_from_env(c: &postgres::Config) -> Option<String> {
    if let Some(p) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
        return Some(p);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".pgpass"))
        })?;
    let text = crate::infile::read_text(&file, 1 << 20).ok()?;
    let host = host_of(c);
    let port = c.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = c
        .get_dbname()
        .unwrap_or(c.get_user().unwrap_or(""))
        .to_string();
    let user = c.get_user().unwrap_or("").to_string();
    pgpass_lookup(&text, &host, &port, &db, &user)
}

/// The password a `.pgpass` text gives for a connection.
pub fn pgpass_lookup(text: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                other => cur.push(other),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let m = |pat: &str, v: &str| pat == "*" || pat == v;
        let host_ok = m(&fields[0], host) || (fields[0] == "localhost" && host == "127.0.0.1");
        if host_ok && m(&fields[1], port) && m(&fields[2], db) && m(&fields[3], user) {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Accepts any server certificate (sslmode=require/prefer: encrypted, not authenticated, as
/// libpq does), still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end: &rustls::pki_types::CertificateDer<'_>,
        _inter: &[rustls::pki_types::CertificateDer<'_>],
        _name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Verifies the chain against the roots but not the host name (sslmode=verify-ca).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end: &rustls::pki_types::CertificateDer<'_>,
        inter: &[rustls::pki_types::CertificateDer<'_>],
        name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end, inter, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls configuration for a TLS mode.
fn tls_config(
    ssl: SslMode,
    root_cert: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    Ok(match ssl {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            match root_cert {
                Some(path) => {
                    let pem = crate::infile::read_text(path, 1 << 20)
                        .map_err(|e| format!("sslrootcert: {e}"))?;
                    use rustls::pki_types::pem::PemObject;
                    let mut n = 0;
                    for c in
                        rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).flatten()
                    {
                        if roots.add(c).is_ok() {
                            n += 1;
                        }
                    }
                    if n == 0 {
                        return Err(format!(
                            "sslrootcert {}: no certificate in it",
                            path.display()
                        ));
                    }
                }
                None => {
                    for c in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(c);
                    }
                }
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| e.to_string())?;
            if ssl == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                    .with_no_client_auth()
            }
        }
    })
}

/// Connects to the target.
fn connect(t: &Target) -> Result<Client, String> {
    let mut config = t.config.clone();
    match t.ssl {
        SslMode::Disable => {
            config.ssl_mode(postgres::config::SslMode::Disable);
            config.connect(postgres::NoTls).map_err(|e| describe(&e))
        }
        mode => {
            config.ssl_mode(if mode == SslMode::Prefer {
                postgres::config::SslMode::Prefer
            } else {
                postgres::config::SslMode::Require
            });
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                mode,
                t.root_cert.as_deref(),
            )?);
            config.connect(tls).map_err(|e| describe(&e))
        }
    }
}

/// A driver error in one line, its cause included.
fn describe(e: &postgres::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        src = c.source();
    }
    s
}

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
                message: format!("{message}; check the URL, that the server runs, and the password (PGPASSWORD or ~/.pgpass)"),
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
        let outcome = self.with_client(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
            let has_meta: bool = tx
                .query_one("SELECT to_regclass('decompute_meta') IS NOT NULL", &[])?
                .get(0);
            let version: i64 = if has_meta {
                tx.query_opt("SELECT value FROM decompute_meta WHERE key = 'schema_version'", &[])?
                    .and_then(|r| r.get::<_, String>(0).parse().ok())
                    .unwrap_or(0)
            } else {
                let foreign: bool = tx
                    .query_one("SELECT to_regclass('runs') IS NOT NULL", &[])?
                    .get(0);
                if foreign {
                    return Ok(Err(LedgerError::NotALedger {
                        path: shown.clone(),
                        why: "a table 'runs' exists without decompute's metadata".into(),
                    }));
                }
                0
            };
            if version > SCHEMA_VERSION {
                return Ok(Err(LedgerError::Newer {
                    path: shown.clone(),
                    found: version,
                    known: SCHEMA_VERSION,
                }));
            }
            if version < SCHEMA_VERSION {
                if !has_meta {
                    tx.batch_execute("CREATE TABLE decompute_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO decompute_meta VALUES ('application', 'decompute ledger')")?;
                }
                for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                    tx.batch_execute(sql)?;
                    tx.execute(
                        "INSERT INTO decompute_meta VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        &[&(i as i64 + 1).to_string()],
                    )?;
                }
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

    fn query(
        &self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, LedgerError> {
        self.with_client(|c| c.query(sql, args))
    }

    fn load(&self, id: &str) -> Result<RunRecord, LedgerError> {
        let (r, tags, samples) = self.with_client(|c| {
            let r = c.query_one(
                "SELECT r.project, r.user_name, r.host, r.cwd, r.status, p.report
                 FROM runs r JOIN run_reports p ON p.run_id = r.id WHERE r.id = $1",
                &[&id],
            )?;
            let tags = c.query("SELECT key, value FROM run_tags WHERE run_id = $1 ORDER BY key", &[&id])?;
            let samples = c.query(
                "SELECT t_s, dt_s, cpu_w, dram_w, gpu_w, workload_w FROM samples WHERE run_id = $1 ORDER BY t_s",
                &[&id],
            )?;
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
    tx.execute(
        "UPDATE runs SET status = $2, exit_code = $3, ended_at = to_timestamp($4::float8 / 1000), updated_at = now(),
            duration_s = $5, energy_host_j = $6, energy_j = $7, energy_low_j = $8, energy_high_j = $9,
            modelled_j = $10, pue = $11, zone = $12, carbon_g = $13, water_l = $14
         WHERE id = $1",
        &[
            &id,
            &status.as_str(),
            &exit,
            &ended_ms,
            &r.duration_s,
            &r.energy_j.host,
            &r.energy_j.workload,
            &r.energy_j.workload_low,
            &r.energy_j.workload_high,
            &super::modelled_j(r),
            &r.pue,
            &r.factors.zone,
            &r.carbon_g.value,
            &r.water_l.value,
        ],
    )?;
    tx.execute(
        "INSERT INTO run_reports (run_id, report) VALUES ($1, $2) ON CONFLICT (run_id) DO UPDATE SET report = excluded.report",
        &[&id, &report_json(r)],
    )?;
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
    tx.execute("DELETE FROM components WHERE run_id = $1", &[&id])?;
    tx.execute(
        "INSERT INTO components (run_id, component, method, source, host_j, workload_j, low_j, high_j)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::float8[], $8::float8[])",
        &[&id, &comp, &meth, &src, &host, &work, &low, &high],
    )?;
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
    tx.execute(
        "INSERT INTO factors (run_id, name, value, source, year)
         SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::text[], $5::int4[])
         ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value, source = excluded.source, year = excluded.year",
        &[&id, &names, &values, &sources, &years],
    )?;
    Ok(())
}

fn write_samples(tx: &mut Transaction, id: &str, rows: &[PowerRow]) -> Result<(), postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&PowerRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    tx.execute(
        "INSERT INTO samples (run_id, t_s, dt_s, cpu_w, dram_w, gpu_w, workload_w)
         SELECT $1, * FROM unnest($2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[])
         ON CONFLICT (run_id, t_s) DO NOTHING",
        &[
            &id,
            &col(|r| r.t_s),
            &col(|r| r.dt_s),
            &col(|r| r.cpu_w),
            &col(|r| r.dram_w),
            &col(|r| r.gpu_w),
            &col(|r| r.workload_w),
        ],
    )?;
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
    let n = tx.execute(
        "INSERT INTO runs (id, project, user_name, host, cwd, command, started_at, updated_at, status, duration_s,
            energy_host_j, energy_j, energy_low_j, energy_high_j, modelled_j, pue, zone, carbon_g, water_l,
            decompute_version, monitor_pid, monitor_start, lease_until)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::float8 / 1000), now(), $8, 0, 0, 0, 0, 0, 0, $9, $10, 0, 0, $11, $12, $13,
            now() + make_interval(secs => $14::float8))
         ON CONFLICT (id) DO NOTHING",
        &[
            &ident.id,
            &ident.project,
            &ident.user,
            &ident.host,
            &ident.cwd,
            &serde_json::to_string(&r.command).unwrap_or_default(),
            &ms(&r.started_at),
            &status.as_str(),
            &r.pue,
            &r.factors.zone,
            &r.decompute_version,
            &pid,
            &start,
            &lease,
        ],
    )?;
    if n == 1 && !ident.tags.is_empty() {
        let keys: Vec<&String> = ident.tags.keys().collect();
        let vals: Vec<&String> = ident.tags.values().collect();
        tx.execute(
            "INSERT INTO run_tags (run_id, key, value) SELECT $1, * FROM unnest($2::text[], $3::text[])",
            &[&ident.id, &keys, &vals],
        )?;
    }
    Ok(n)
}

/// WHERE clause and parameters for a filter (`$n` placeholders from `first`).
fn where_clause(f: &Filter) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let mut conds = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    if let Some(p) = &f.project {
        args.push(Box::new(p.clone()));
        conds.push(format!("runs.project = ${}", args.len()));
    }
    for (k, v) in &f.tags {
        args.push(Box::new(k.clone()));
        args.push(Box::new(v.clone()));
        conds.push(format!(
            "EXISTS (SELECT 1 FROM run_tags x WHERE x.run_id = runs.id AND x.key = ${} AND x.value = ${})",
            args.len() - 1,
            args.len()
        ));
    }
    if let Some(s) = f.since_ms {
        args.push(Box::new(s as f64));
        conds.push(format!(
            "runs.started_at >= to_timestamp(${}::float8 / 1000)",
            args.len()
        ));
    }
    if let Some(u) = f.until_ms {
        args.push(Box::new(u as f64));
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

fn refs(args: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a.as_ref()).collect()
}

impl Ledger for PgLedger {
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
            tx.execute(
                "UPDATE runs SET lease_until = now() + make_interval(secs => $2::float8) WHERE id = $1",
                &[&id, &lease],
            )?;
            write_samples(tx, id, rows)
        })
    }

    fn set_thaw(&mut self, id: &str, thaw: Option<&Thaw>) -> Result<(), LedgerError> {
        let text = thaw.map(|t| serde_json::to_string(t).unwrap_or_default());
        self.in_tx(|tx| {
            tx.execute("UPDATE runs SET thaw = $2 WHERE id = $1", &[&id, &text])
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
            tx.execute(
                "UPDATE runs SET monitor_pid = NULL, monitor_start = NULL, lease_until = NULL, thaw = NULL WHERE id = $1",
                &[&id],
            )
            .map(|_| ())
        })
    }

    fn recover(&mut self) -> Result<Vec<Recovered>, LedgerError> {
        let rows = self.query(
            "SELECT id, host, monitor_pid, monitor_start, lease_until < now(), thaw FROM runs WHERE status = 'running'",
            &[],
        )?;
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
                let n = tx.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = updated_at, monitor_pid = NULL, monitor_start = NULL, lease_until = NULL, thaw = NULL
                     WHERE id = $1 AND status = 'running'",
                    &[id],
                )?;
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
            "SELECT id, project, (extract(epoch FROM started_at) * 1000)::float8, duration_s, status, exit_code, energy_j, modelled_j, carbon_g, water_l, command
             FROM runs{w} ORDER BY started_at DESC, id DESC LIMIT {limit}"
        );
        let rows = self.query(&sql, &refs(&args))?;
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
                }
            })
            .collect())
    }

    fn get_prefix(&self, p: &str, prefix: &str) -> Result<RunRecord, LedgerError> {
        let hi = format!("{p}\u{7f}");
        let ids: Vec<String> = self
            .query(
                "SELECT id FROM runs WHERE id >= $1 AND id < $2 ORDER BY id LIMIT 2",
                &[&p, &hi],
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
                        &[&p, &hi],
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
                args.push(Box::new(k.clone()));
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
            "SELECT {key} AS k, count(*), sum(runs.duration_s), sum(runs.energy_j), sum(runs.modelled_j), sum(runs.carbon_g), sum(runs.water_l)
             FROM runs{join}{w} GROUP BY k ORDER BY k"
        );
        Ok(self
            .query(&sql, &refs(&args))?
            .iter()
            .map(|r| SummaryRow {
                key: r.get::<_, Option<String>>(0).unwrap_or_default(),
                runs: r.get::<_, i64>(1) as u64,
                duration_s: r.get(2),
                energy_j: r.get(3),
                modelled_j: r.get(4),
                carbon_g: r.get(5),
                water_l: r.get(6),
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
            .query(&sql, &refs(&args))?
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
                let existing = tx.query_opt(
                    "SELECT status, duration_s FROM runs WHERE id = $1",
                    &[&r.identity.id],
                )?;
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
                tx.execute(
                    "UPDATE runs SET lease_until = NULL, monitor_pid = NULL, monitor_start = NULL, thaw = NULL WHERE id = $1",
                    &[&r.identity.id],
                )?;
            }
            Ok(())
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_passwords_as_libpq_reads_them() {
        let t = parse_url("postgres://ann:s3cret@db.example:6543/ledger?sslmode=verify-full&sslrootcert=/etc/ca.pem").expect("parses");
        assert_eq!(t.ssl, SslMode::VerifyFull);
        assert_eq!(
            t.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(t.config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(t.config.get_user(), Some("ann"));
        assert!(!t.shown.contains("s3cret"), "{}", t.shown);
        assert_eq!(
            parse_url("postgresql://h/db").expect("p").ssl,
            SslMode::Prefer
        );
        assert!(parse_url("postgres://h/db?sslmode=sometimes").is_err());
        let pass =
            "# comment\nother:*:*:*:no\ndb.example:6543:ledger:ann:a\\:b\n*:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(pass, "db.example", "6543", "ledger", "ann").as_deref(),
            Some("a:b")
        );
        assert_eq!(
            pgpass_lookup(pass, "x", "5432", "y", "z").as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("", "x", "1", "y", "z"), None);
    }

    proptest::proptest! {
        #[test]
        fn urls_never_panic(s in "postgres(ql)?://\\PC{0,40}") {
            let _ = parse_url(&s);
        }

        #[test]
        fn pgpass_never_panics(s in "\\PC{0,80}") {
            let _ = pgpass_lookup(&s, "h", "5432", "d", "u");
            let _ = percent_decode(&s);
        }
    }
}

//! Connecting to the team's PostgreSQL ledger as libpq would: the URL's parts (percent
//! decoding, `sslmode`, `sslrootcert`), the password from the URL, `PGPASSWORD` or
//! `~/.pgpass` (never printed), and TLS through rustls with libpq's meaning of each mode
//! (`require` encrypts without checking the certificate, `verify-ca` checks the chain but not
//! the name, `verify-full` both). A failed connection is described in words that name the fix.

use postgres::Client;
use std::sync::Arc;
use std::time::Duration;

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
    let shown = crate::ledger::redact(url);
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
            .unwrap_or_else(crate::ledger::current_user);
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

/// The server-certificate check of libpq's TLS modes: with no chain (sslmode=require/prefer)
/// any certificate is accepted, encrypted but not authenticated, as libpq does; with one
/// (sslmode=verify-ca) the chain is verified against the roots but not the host name. The
/// handshake's signatures are always checked.
#[derive(Debug)]
struct LibpqVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

impl rustls::client::danger::ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end: &rustls::pki_types::CertificateDer<'_>,
        inter: &[rustls::pki_types::CertificateDer<'_>],
        name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        let verified = rustls::client::danger::ServerCertVerified::assertion;
        let Some(chain) = &self.chain else {
            return Ok(verified());
        };
        match chain.verify_server_cert(end, inter, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(NotValidForName))
            | Err(rustls::Error::InvalidCertificate(NotValidForNameContext { .. })) => {
                Ok(verified())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
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
            .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                provider,
                chain: None,
            }))
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
                provider.clone(),
            )
            .build()
            .map_err(|e| e.to_string())?;
            if ssl == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                        provider,
                        chain: Some(webpki),
                    }))
                    .with_no_client_auth()
            }
        }
    })
}

/// Connects to the target.
pub fn connect(t: &Target) -> Result<Client, String> {
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

/// What to do about a failed connection, by its cause: the server full (a pooler), the
/// credentials, or the way to the server.
pub fn hint(message: &str) -> &'static str {
    let m = message.to_lowercase();
    if m.contains("too many clients")
        || m.contains("too many connections")
        || m.contains("remaining connection slots")
        || m.contains("no more connections allowed")
    {
        "the server has no connection left: put PgBouncer (pool_mode = transaction) in front of it or raise max_connections"
    } else if m.contains("password") || m.contains("authentication") || m.contains("role") {
        "check the user and the password (in the URL, PGPASSWORD or ~/.pgpass)"
    } else if m.contains("refused")
        || m.contains("timed out")
        || m.contains("unreachable")
        || m.contains("no route")
        || m.contains("resolve")
        || m.contains("lookup")
        || m.contains("name or service")
    {
        "check that the server runs and this host can reach it (host and port of the URL)"
    } else if m.contains("tls") || m.contains("certificate") || m.contains("ssl") {
        "check the TLS mode (sslmode) and the CA (sslrootcert)"
    } else {
        "check the URL, that the server runs, and the password (PGPASSWORD or ~/.pgpass)"
    }
}

/// A driver error in one line, its cause included.
pub fn describe(e: &postgres::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_connection_is_told_by_its_cause() {
        assert!(hint("db error: FATAL: sorry, too many clients already").contains("PgBouncer"));
        assert!(hint(
            "FATAL: remaining connection slots are reserved for roles with the SUPERUSER attribute"
        )
        .contains("PgBouncer"));
        assert!(
            hint("db error: FATAL: password authentication failed for user \"x\"")
                .contains("password")
        );
        assert!(
            hint("error connecting to server: Connection refused (os error 111)").contains("reach")
        );
        assert!(
            hint("error performing TLS handshake: invalid peer certificate").contains("sslmode")
        );
    }

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

//! What a `--ledger` text names, read once: a PostgreSQL URL (the scheme in any case), a
//! text that looks like a connection string but is not one decompute reads (refused, never
//! taken as a file name), or a file path. The URL's credentials are found the way the
//! PostgreSQL driver finds them (everything before the first `@` after the scheme), so the
//! password that is masked is exactly the one that will be sent, whatever characters it
//! holds (`/`, `?`, `#`, `:`). Pure text in, values out; no I/O.

/// What a ledger text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A `postgres://` or `postgresql://` URL, its scheme written in lower case.
    Postgres(String),
    /// A file path.
    Path(String),
}

/// Why a ledger text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("ledger {shown}: a {scheme}:// URL is not a ledger decompute can use; give a postgres:// URL or a file path")]
    Scheme { shown: String, scheme: String },
    #[error("ledger {shown}: a libpq keyword string (host=… dbname=…) is not read; write it as postgres://USER@HOST:PORT/DBNAME and keep the password in PGPASSWORD or ~/.pgpass")]
    Keywords { shown: String },
}

/// Keywords of a libpq connection string; a text of `key=value` words starting with one of
/// these is a connection string, not a file name.
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "sslmode",
    "service",
    "connect_timeout",
    "application_name",
    "options",
];

impl Address {
    /// Reads a ledger text.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        // Anything with `://` is meant as a URL, never a file name (a path with `://` in
        // it would make directories named after what looks like a scheme and credentials).
        if let Some((scheme, rest)) = text.split_once("://") {
            let lower = scheme.to_ascii_lowercase();
            if lower == "postgres" || lower == "postgresql" {
                return Ok(Address::Postgres(format!("{lower}://{rest}")));
            }
            return Err(AddressError::Scheme {
                shown: crate::term::line(&redact(text)),
                scheme: crate::term::line(&scheme.chars().take(20).collect::<String>()),
            });
        }
        if looks_like_keywords(text) {
            return Err(AddressError::Keywords {
                shown: redact(text),
            });
        }
        Ok(Address::Path(text.to_string()))
    }
}

/// Whether a text is a libpq `key=value …` connection string.
fn looks_like_keywords(text: &str) -> bool {
    text.split_whitespace().any(|w| {
        w.split_once('=').is_some_and(|(k, _)| {
            LIBPQ_KEYWORDS
                .iter()
                .any(|kw| k.trim().eq_ignore_ascii_case(kw))
        })
    })
}

/// The parts of a URL: scheme, user information (if any) and the rest after it.
fn split_url(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    // As the driver reads it: the credentials run to the first '@', wherever it is.
    match rest.split_once('@') {
        Some((userinfo, after)) => Some((scheme, Some(userinfo), after)),
        None => Some((scheme, None, rest)),
    }
}

/// A ledger text for people: a URL's password (in the user information, or a `password`
/// parameter) replaced by `***`; a keyword string's `password=` value likewise; anything
/// else unchanged.
pub fn redact(text: &str) -> String {
    let Some((scheme, userinfo, after)) = split_url(text) else {
        return redact_keywords(text);
    };
    let userinfo = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, _)) => format!("{user}:***@"),
            None => format!("{u}@"),
        },
        None => String::new(),
    };
    let after = match after.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => after.to_string(),
    };
    format!("{scheme}://{userinfo}{after}")
}

/// `password=…` in a keyword string masked (quoted values included).
fn redact_keywords(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let Some(at) = lower.find("password") else {
        return text.to_string();
    };
    // Mask from the keyword to the end: a quoted value may hold spaces.
    format!("{}password=***", text.get(..at).unwrap_or(""))
}

/// Whether a ledger URL carries a password (in the user information or a parameter).
pub fn has_password(text: &str) -> bool {
    match split_url(text) {
        Some((_, userinfo, after)) => {
            userinfo.is_some_and(|u| u.contains(':'))
                || after.split_once('?').is_some_and(|(_, q)| {
                    q.split('&').any(|kv| {
                        kv.split_once('=')
                            .is_some_and(|(k, _)| k.eq_ignore_ascii_case("password"))
                    })
                })
        }
        None => text.to_ascii_lowercase().contains("password"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_read_in_any_case_and_others_are_refused() {
        assert_eq!(
            Address::parse("POSTGRES://u:pw@h/db"),
            Ok(Address::Postgres("postgres://u:pw@h/db".into()))
        );
        assert_eq!(
            Address::parse("PostgreSQL://h/db"),
            Ok(Address::Postgres("postgresql://h/db".into()))
        );
        assert!(matches!(
            Address::parse("mysql://u:secret@h/db"),
            Err(AddressError::Scheme { shown, .. }) if !shown.contains("secret")
        ));
        assert_eq!(
            Address::parse("/var/lib/decompute/ledger.sqlite"),
            Ok(Address::Path("/var/lib/decompute/ledger.sqlite".into()))
        );
        assert!(Address::parse("é://x").is_err() && Address::parse("://x").is_err());
        assert_eq!(
            Address::parse("runs=2024.sqlite"),
            Ok(Address::Path("runs=2024.sqlite".into()))
        );
    }

    #[test]
    fn keyword_strings_are_refused_without_their_password() {
        let e = Address::parse("host=db.example dbname=ledger password=s3cret").expect_err("no");
        let text = e.to_string();
        assert!(matches!(e, AddressError::Keywords { .. }));
        assert!(!text.contains("s3cret"), "{text}");
        assert!(Address::parse("PASSWORD='a b' host=x").is_err());
    }

    #[test]
    fn passwords_with_any_character_are_masked() {
        for (url, shown) in [
            (
                "postgres://ann:s3cret@db.example:5432/ledger?sslmode=require",
                "postgres://ann:***@db.example:5432/ledger?sslmode=require",
            ),
            ("postgres://ann:pa/ss@h/db", "postgres://ann:***@h/db"),
            ("postgres://ann:pa?ss@h/db", "postgres://ann:***@h/db"),
            ("postgres://ann:p#a:s@h/db", "postgres://ann:***@h/db"),
            (
                "postgresql://db/ledger?user=ann&password=s3cret",
                "postgresql://db/ledger?user=ann&password=***",
            ),
            ("postgres://db/x", "postgres://db/x"),
            ("postgres://ann@db/x", "postgres://ann@db/x"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
            assert_eq!(has_password(url), shown.contains("***"), "{url}");
        }
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn the_masked_password_is_the_one_the_driver_sends() {
        for url in [
            "postgres://ann:pa/ss@h/db",
            "postgres://ann:pa?ss@h/db",
            "postgres://ann:s3cret@h/db",
        ] {
            let cfg: postgres::Config = url.parse().expect("parses");
            let pw = String::from_utf8_lossy(cfg.get_password().expect("password")).into_owned();
            assert!(!redact(url).contains(&pw), "{url}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_never_shows_a_userinfo_password(
            user in "[a-z]{1,8}", pw in "[^@\\s]{1,16}", rest in "\\PC{0,30}"
        ) {
            let url = format!("postgres://{user}:{pw}@{rest}");
            let shown = redact(&url);
            let want = format!("postgres://{user}:***@");
            proptest::prop_assert!(shown.starts_with(&want), "{} from {}", shown, url);
            let _ = Address::parse(&rest);
            let _ = has_password(&rest);
            let _ = redact(&rest);
        }
    }
}

//! The user's defaults file (`$DECOMPUTE_CONFIG`, else `$XDG_CONFIG_HOME/decompute/config.toml`,
//! else `~/.config/decompute/config.toml`): the zone, PUE and water factors a person or a
//! machine usually runs under, so they need not be repeated on every command. Flags and
//! environment variables win over it; it wins over the built-in defaults.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {error}; fix the path (--config / DECOMPUTE_CONFIG) or remove it")]
    Io { path: String, error: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
}

/// A PUE given as a number or a preset name.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum NumberOrName {
    Number(f64),
    Name(String),
}

impl NumberOrName {
    pub fn as_text(&self) -> String {
        match self {
            NumberOrName::Number(n) => n.to_string(),
            NumberOrName::Name(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub zone: Option<String>,
    pub pue: Option<NumberOrName>,
    pub wue: Option<f64>,
    pub ewif: Option<f64>,
    pub grid_intensity: Option<f64>,
    pub cpu_tdp: Option<f64>,
    /// Where the ledger lives (used by `run` and `ledger`).
    pub ledger: Option<PathBuf>,
    /// Project name recorded with runs when `--project` is not given.
    pub project: Option<String>,
    /// The file these values came from (set by [`load`]).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl Config {
    /// The origin of the value of `key` in this file.
    pub fn origin(&self, key: &str) -> crate::factors::Origin {
        crate::factors::Origin::Config(format!(
            "{}: {key}",
            self.path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "config file".into())
        ))
    }
}

/// Parses config text; an error names the line and says what is wrong in one line, as the
/// policy file's do (toml's own report draws the line over several, which folded badly).
pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_string(),
        message: match e.span() {
            Some(span) => format!(
                "line {}: {}",
                text.get(..span.start.min(text.len()))
                    .unwrap_or(text)
                    .matches('\n')
                    .count()
                    + 1,
                e.message().trim()
            ),
            None => e.message().trim().to_string(),
        },
    })
}

/// The default location, if one can be named.
pub fn default_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("decompute/config.toml"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/decompute/config.toml"))
}

/// Loads `explicit` (which must exist) or the default file (which may be absent).
pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match default_path() {
            Some(p) => (p, false),
            None => return Ok((Config::default(), None)),
        },
    };
    match crate::infile::read_text(&path, crate::infile::DATA_LIMIT) {
        Ok(text) => {
            let mut c = parse(&path.display().to_string(), &text)?;
            c.path = Some(path.clone());
            Ok((c, Some(path)))
        }
        Err(e) if !required && e.is_not_found() => Ok((Config::default(), None)),
        Err(e) => Err(ConfigError::Io {
            path: path.display().to_string(),
            error: std::io::Error::other(e.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_defaults_and_names_bad_lines() {
        let c = parse("c.toml", "zone = \"FR\"\npue = 1.2\nwue = 0.5\n").expect("parses");
        assert_eq!(c.zone.as_deref(), Some("FR"));
        assert_eq!(c.pue, Some(NumberOrName::Number(1.2)));
        let c = parse("c.toml", "pue = \"hyperscale\"\n").expect("parses");
        assert_eq!(c.pue.map(|p| p.as_text()).as_deref(), Some("hyperscale"));
        let e = parse("c.toml", "zone = \"FR\"\nzoen = 3\n")
            .expect_err("unknown key")
            .to_string();
        assert!(
            e.contains("c.toml") && e.contains("line 2") && e.contains("zoen"),
            "{e}"
        );
        // One line saying what is wrong, not toml's drawing of the line folded flat.
        let e = parse("c.toml", "zone = \n")
            .expect_err("unquoted")
            .to_string();
        assert_eq!(
            e,
            "config c.toml: line 1: string values must be quoted, expected literal string"
        );
        let e = parse("c.toml", "wue = \"lots\"\n")
            .expect_err("type")
            .to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,120}") {
            let _ = parse("c.toml", &s);
        }

        #[test]
        fn near_misses_never_panic(k in "(zone|pue|wue|ewif|cpu_tdp|ledger|project|é)", v in "(\"\\PC{0,8}\"|[0-9.eé-]{0,8})") {
            let _ = parse("c.toml", &format!("{k} = {v}\n"));
        }
    }
}

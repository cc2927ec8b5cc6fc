//! Grid signals: where the carbon intensity or stress of the grid comes from while a run
//! goes on (`--grid file:PATH`, `csv:PATH`, `cmd:COMMAND`). Each source yields a [`Reading`];
//! the text formats are parsed by pure functions.

pub mod command;
pub mod csv;
pub mod file;
pub mod reader;

use std::path::PathBuf;
use std::time::Duration;

/// A grid reading: carbon intensity (gCO2e/kWh) and/or a stress level (0–3, OpenADR 3's
/// simple levels: 0 normal, 1 moderate, 2 high, 3 special/emergency).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    pub intensity: Option<f64>,
    pub stress: Option<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    File(PathBuf),
    Csv(PathBuf),
    Cmd(String),
}

impl Signal {
    pub fn parse(spec: &str) -> Result<Signal, String> {
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            format!("grid signal '{spec}' needs a kind: file:PATH, csv:PATH or cmd:COMMAND")
        })?;
        if rest.trim().is_empty() {
            return Err(format!("grid signal '{spec}' has nothing after '{kind}:'"));
        }
        match kind {
            "file" => Ok(Signal::File(PathBuf::from(rest))),
            "csv" => Ok(Signal::Csv(PathBuf::from(rest))),
            "cmd" => Ok(Signal::Cmd(rest.to_string())),
            other => Err(format!(
                "unknown grid signal kind '{other}'; use file:PATH, csv:PATH or cmd:COMMAND"
            )),
        }
    }

    /// Reads the signal at `now` (Unix seconds). `timeout` bounds a `cmd:` signal, whose
    /// process group is registered with `helpers`; `stop` cuts a running command short.
    pub fn read(
        &self,
        now: f64,
        timeout: Duration,
        helpers: &command::Helpers,
        stop: &dyn Fn() -> bool,
    ) -> Result<Reading, String> {
        let text = |p: &std::path::Path| {
            crate::infile::read_text(p, crate::infile::BULK_LIMIT).map_err(|e| e.to_string())
        };
        match self {
            Signal::File(p) => {
                let t = text(p)?;
                file::parse(&t).map_err(|e| format!("{}: {e}", p.display()))
            }
            Signal::Csv(p) => {
                let t = text(p)?;
                let series = csv::parse(&p.display().to_string(), &t)?;
                csv::value_at(&series, now)
                    .map(|v| Reading {
                        intensity: Some(v),
                        stress: None,
                    })
                    .ok_or_else(|| {
                        format!(
                            "{}: no value at the current time (the series starts later)",
                            p.display()
                        )
                    })
            }
            Signal::Cmd(c) => command::run(c, now, timeout, helpers, stop),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Signal::File(p) => format!("file:{}", p.display()),
            Signal::Csv(p) => format!("csv:{}", p.display()),
            Signal::Cmd(c) => format!("cmd:{c}"),
        }
    }
}

/// What a `cmd:` signal may print: a number or a JSON object of a `file:` signal.
pub fn parse_any(text: &str, _now: f64) -> Result<Reading, String> {
    file::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            Signal::parse("file:/run/grid"),
            Ok(Signal::File("/run/grid".into()))
        );
        assert_eq!(
            Signal::parse("cmd:curl -s x | jq .v"),
            Ok(Signal::Cmd("curl -s x | jq .v".into()))
        );
        assert!(Signal::parse("/run/grid").is_err());
        assert!(Signal::parse("http:x")
            .expect_err("kind")
            .contains("file:PATH"));
        assert!(Signal::parse("csv:").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = Signal::parse(&s);
        }
    }
}

//! Grid signals: where the carbon intensity or stress of the grid comes from while a run
//! goes on (`--grid file:PATH`, `csv:PATH`, `json:PATH`, `cmd:COMMAND`). Each source yields
//! a [`Reading`]; the text formats (a number, a JSON object, the forecast documents of the
//! Carbon Aware SDK, Electricity Maps and WattTime, a CSV series) are parsed by pure
//! functions and recognised by content.

pub mod command;
pub mod csv;
pub mod file;
pub mod forecast;
pub mod reader;

use std::path::PathBuf;
use std::time::Duration;

/// A grid reading: carbon intensity (gCO2e/kWh) and/or a stress level (0–3, OpenADR 3's
/// simple levels: 0 normal, 1 moderate, 2 high, 3 special/emergency).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    pub intensity: Option<f64>,
    pub stress: Option<u8>,
    /// The intensity is a marginal rate (WattTime's MOER): it may decide when to run, but
    /// carbon is never counted with it.
    pub marginal: bool,
}

impl Reading {
    /// The intensity carbon may be counted with: an average one, never a marginal rate.
    pub fn average(&self) -> Option<f64> {
        self.intensity.filter(|_| !self.marginal)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    File(PathBuf),
    Csv(PathBuf),
    Json(PathBuf),
    Cmd(String),
}

impl Signal {
    pub fn parse(spec: &str) -> Result<Signal, String> {
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            format!(
                "grid signal '{spec}' needs a kind: file:PATH, csv:PATH, json:PATH or cmd:COMMAND"
            )
        })?;
        if rest.trim().is_empty() {
            return Err(format!("grid signal '{spec}' has nothing after '{kind}:'"));
        }
        match kind {
            "file" => Ok(Signal::File(PathBuf::from(rest))),
            "csv" => Ok(Signal::Csv(PathBuf::from(rest))),
            "json" => Ok(Signal::Json(PathBuf::from(rest))),
            "cmd" => Ok(Signal::Cmd(rest.to_string())),
            other => Err(format!(
                "unknown grid signal kind '{}'; use file:PATH, csv:PATH, json:PATH or cmd:COMMAND",
                crate::term::escape(other)
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
            crate::infile::read_text(p, crate::infile::FORECAST_LIMIT).map_err(|e| e.to_string())
        };
        let name = |p: &std::path::Path| crate::term::escape(&p.display().to_string());
        match self {
            Signal::File(p) => parse_any(&text(p)?, now).map_err(|e| format!("{}: {e}", name(p))),
            Signal::Csv(p) | Signal::Json(p) => {
                let f = match self {
                    Signal::Json(_) => forecast::parse_json(&name(p), &text(p)?)?,
                    _ => forecast::parse(&name(p), &text(p)?)?,
                };
                f.reading_at(now)
                    .ok_or_else(|| uncovered(&name(p), &f, now))
            }
            Signal::Cmd(c) => command::run(c, now, timeout, helpers, stop),
        }
    }

    /// The whole forecast this signal offers (`csv:`, `json:`, or a `cmd:` that prints one),
    /// for `decompute when`.
    pub fn forecast(
        &self,
        timeout: Duration,
        helpers: &command::Helpers,
    ) -> Result<forecast::Forecast, String> {
        match self {
            Signal::Csv(p) | Signal::Json(p) | Signal::File(p) => {
                let t = crate::infile::read_text(p, crate::infile::FORECAST_LIMIT)
                    .map_err(|e| e.to_string())?;
                let name = crate::term::escape(&p.display().to_string());
                match self {
                    Signal::Json(_) => forecast::parse_json(&name, &t),
                    _ => forecast::parse(&name, &t),
                }
            }
            Signal::Cmd(c) => {
                let (status, out) = command::execute(c, timeout, helpers, &|| false)?;
                if status != 0 {
                    return Err(format!("grid command '{c}' failed (exit {status})"));
                }
                forecast::parse(&format!("grid command '{c}'"), &out)
            }
        }
    }

    pub fn label(&self) -> String {
        match self {
            Signal::File(p) => format!("file:{}", p.display()),
            Signal::Csv(p) => format!("csv:{}", p.display()),
            Signal::Json(p) => format!("json:{}", p.display()),
            Signal::Cmd(c) => format!("cmd:{c}"),
        }
    }
}

/// What a `file:` or `cmd:` signal may hold: a number, a JSON object with `intensity` and/or
/// `stress`, or a forecast in any format decompute knows (its value at `now`).
pub fn parse_any(text: &str, now: f64) -> Result<Reading, String> {
    let plain = match file::parse(text) {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    let t = text.trim_start_matches('\u{feff}').trim();
    let looks_like_forecast = t.contains('\n')
        || [
            "forecastData",
            "forecast",
            "history",
            "point_time",
            "carbonIntensity",
        ]
        .iter()
        .any(|k| t.contains(k));
    if !looks_like_forecast {
        return Err(plain);
    }
    let f = forecast::parse("the signal", text)?;
    f.reading_at(now)
        .ok_or_else(|| uncovered("the signal", &f, now))
}

fn uncovered(name: &str, f: &forecast::Forecast, now: f64) -> String {
    let (a, b) = (f.series.first().map_or(0.0, |p| p.0), csv::end(&f.series));
    let why = if now < a {
        "the series starts later"
    } else if now >= b {
        "the series has ended; fetch a newer forecast"
    } else {
        "the time falls in a gap of the series"
    };
    format!(
        "{name}: no value at {} ({why}; it covers {} to {})",
        crate::timefmt::rfc3339_s(now),
        crate::timefmt::rfc3339_s(a),
        crate::timefmt::rfc3339_s(b)
    )
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

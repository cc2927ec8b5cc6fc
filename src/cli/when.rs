//! `decompute when --grid csv:FORECAST --duration 3h [--within 24h]`: the start time with the
//! lowest mean carbon intensity over the job, and the saving against starting now.

use super::print_stdout;
use crate::duration::parse_duration;
use crate::govern::when;
use crate::signal::{csv, Signal};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct WhenArgs {
    /// A forecast: csv:PATH with timestamp,g_per_kwh rows
    #[arg(long, value_parser = Signal::parse, value_name = "SIGNAL")]
    pub grid: Signal,
    /// How long the job runs
    #[arg(long, value_parser = parse_any, value_name = "DURATION")]
    pub duration: Duration,
    /// Latest start to consider, from now
    #[arg(long, default_value = "24h", value_parser = parse_any, value_name = "DURATION")]
    pub within: Duration,
    /// Pretend the time is this (RFC 3339 or Unix seconds) instead of now
    #[arg(long, value_name = "TIME", value_parser = crate::govern::period::parse_time)]
    pub now: Option<f64>,
}

fn parse_any(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("a duration of zero; give e.g. 3h".into());
    }
    Ok(d)
}

fn at(t: f64) -> String {
    crate::timefmt::rfc3339_s(t)
}

pub fn main(a: WhenArgs) -> anyhow::Result<()> {
    let Signal::Csv(path) = &a.grid else {
        anyhow::bail!("decompute when needs a forecast: --grid csv:PATH (file: and cmd: give only the present)");
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let series = csv::parse(&path.display().to_string(), &text).map_err(|e| anyhow::anyhow!(e))?;
    let now = a.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    });
    let (dur, within) = (a.duration.as_secs_f64(), a.within.as_secs_f64());
    let plan = when::search(&series, now, dur, within);
    if plan.best.is_empty() {
        anyhow::bail!(
            "the forecast ({} to {}) covers no {} window starting between {} and {}; get a longer forecast or shorten --duration",
            at(series[0].0),
            at(csv::end(&series)),
            crate::units::Seconds(dur),
            at(now),
            at(now + within)
        );
    }
    let mut o = String::new();
    let best = plan.best[0];
    o.push_str(&format!(
        "best start: {}  mean {} gCO2e/kWh over {}\n",
        at(best.start),
        crate::units::sig3(best.mean),
        crate::units::Seconds(dur)
    ));
    for w in &plan.best[1..] {
        o.push_str(&format!(
            "tied:       {}  mean {} gCO2e/kWh\n",
            at(w.start),
            crate::units::sig3(w.mean)
        ));
    }
    match plan.now {
        Some(n) => {
            let saving = if n.mean > 0.0 {
                100.0 * (n.mean - best.mean) / n.mean
            } else {
                0.0
            };
            o.push_str(&format!(
                "starting now: mean {} gCO2e/kWh; waiting {} saves {:.0} % of the carbon per kWh\n",
                crate::units::sig3(n.mean),
                crate::units::Seconds(best.start - now),
                saving
            ));
        }
        None => o.push_str("starting now: not covered by the forecast\n"),
    }
    if plan.skipped > 0 {
        o.push_str(&format!(
            "note: {} candidate start(s) skipped: their window crosses a gap in the forecast ({})\n",
            plan.skipped,
            plan.holes
                .iter()
                .map(|(a, b)| format!("{} to {}", at(*a), at(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    print_stdout(&o)
}

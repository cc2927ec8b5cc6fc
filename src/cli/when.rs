//! `decompute when --grid csv:FORECAST --duration 3h [--within 24h]`: the start time with the
//! lowest mean carbon intensity over the job, and the saving against starting now. The
//! forecast may be any format [`forecast::parse`] recognises; a marginal one is labelled so.

use super::print_stdout;
use crate::duration::parse_duration;
use crate::govern::when;
use crate::signal::{csv, forecast, Signal};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct WhenArgs {
    /// A forecast: csv:PATH (timestamp,g_per_kwh rows), json:PATH (Carbon Aware SDK,
    /// Electricity Maps or WattTime v3), or cmd:COMMAND printing either
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
    /// Print the answer as JSON (decompute.when/1) on stdout
    #[arg(long)]
    pub json: bool,
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

#[derive(serde::Serialize)]
struct WindowJson {
    start: String,
    end: String,
    mean_g_per_kwh: f64,
}

#[derive(serde::Serialize)]
struct WhenJson<'a> {
    schema: &'static str,
    signal: String,
    format: &'static str,
    basis: forecast::Basis,
    zone: Option<&'a str>,
    conversion: Option<&'a str>,
    covers: [String; 2],
    now: String,
    duration_s: f64,
    within_s: f64,
    best: WindowJson,
    tied: Vec<WindowJson>,
    baseline: Option<WindowJson>,
    saving_g_per_kwh: Option<f64>,
    saving_percent: Option<f64>,
    wait_s: f64,
    skipped: usize,
    holes: Vec<[String; 2]>,
}

/// Two decimals: the forecasts carry at most that much.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn window(w: when::Window, dur: f64) -> WindowJson {
    WindowJson {
        start: at(w.start),
        end: at(w.start + dur),
        mean_g_per_kwh: round2(w.mean),
    }
}

pub fn main(a: WhenArgs) -> anyhow::Result<()> {
    if let Signal::File(p) = &a.grid {
        if crate::signal::file::parse(
            &crate::infile::read_text(p, crate::infile::FORECAST_LIMIT).unwrap_or_default(),
        )
        .is_ok()
        {
            anyhow::bail!("{} holds one present value, not a forecast; decompute when needs a series: --grid csv:PATH, json:PATH or cmd:COMMAND printing one", p.display());
        }
    }
    let helpers = crate::signal::command::Helpers::default();
    let f = a
        .grid
        .forecast(Duration::from_secs(60), &helpers)
        .map_err(|e| anyhow::anyhow!(e))?;
    let series = &f.series;
    let now = a.now.unwrap_or_else(crate::timefmt::now_s);
    let (dur, within) = (a.duration.as_secs_f64(), a.within.as_secs_f64());
    let plan = when::search(series, now, dur, within);
    if plan.best.is_empty() {
        anyhow::bail!(
            "the forecast ({} to {}) covers no {} window starting between {} and {}; get a longer forecast or shorten --duration",
            at(series[0].0),
            at(csv::end(series)),
            crate::units::Seconds(dur),
            at(now),
            at(now + within)
        );
    }
    let best = plan.best[0];
    let saving = plan.now.map(|n| {
        let g = n.mean - best.mean;
        let pct = if n.mean > 0.0 {
            100.0 * g / n.mean
        } else {
            0.0
        };
        (g, pct)
    });
    if a.json {
        let j = WhenJson {
            schema: "decompute.when/1",
            signal: a.grid.label(),
            format: f.format,
            basis: f.basis,
            zone: f.zone.as_deref(),
            conversion: f.conversion.as_deref(),
            covers: [at(series[0].0), at(csv::end(series))],
            now: at(now),
            duration_s: dur,
            within_s: within,
            best: window(best, dur),
            tied: plan.best[1..].iter().map(|w| window(*w, dur)).collect(),
            baseline: plan.now.map(|w| window(w, dur)),
            saving_g_per_kwh: saving.map(|s| round2(s.0)),
            saving_percent: saving.map(|s| (s.1 * 10.0).round() / 10.0),
            wait_s: best.start - now,
            skipped: plan.skipped,
            holes: plan.holes.iter().map(|(a, b)| [at(*a), at(*b)]).collect(),
        };
        return print_stdout(&(serde_json::to_string_pretty(&j)? + "\n"));
    }
    let unit = match f.basis {
        forecast::Basis::Average => "gCO2e/kWh",
        forecast::Basis::Marginal => "gCO2/kWh marginal",
    };
    let mut o = format!("forecast: {}\n", f.describe());
    o.push_str(&format!(
        "best start: {}  mean {} {unit} over {}\n",
        at(best.start),
        crate::units::sig3(best.mean),
        crate::units::Seconds(dur)
    ));
    for w in &plan.best[1..] {
        o.push_str(&format!(
            "tied:       {}  mean {} {unit}\n",
            at(w.start),
            crate::units::sig3(w.mean)
        ));
    }
    match (plan.now, saving) {
        (Some(n), Some((_, pct))) => {
            o.push_str(&format!(
                "starting now: mean {} {unit}; waiting {} saves {:.0} % of the {} per kWh\n",
                crate::units::sig3(n.mean),
                crate::units::Seconds(best.start - now),
                pct,
                match f.basis {
                    forecast::Basis::Average => "carbon",
                    forecast::Basis::Marginal => "marginal emissions",
                }
            ));
        }
        _ => o.push_str("starting now: not covered by the forecast\n"),
    }
    if f.basis == forecast::Basis::Marginal {
        o.push_str("note: a marginal rate (MOER) says when extra demand is cleanest; it is not the average intensity a footprint is counted with\n");
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

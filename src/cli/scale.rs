//! `decompute scale [--flop F | --run ID | --estimate FILE.json] [--svg FILE]`: where a piece
//! of work sits among the notable models, from AlexNet to the frontier.

use super::{print_stdout, LedgerArgs};
use crate::estimate::models;
use crate::render;
use crate::settings::PolicyChoice;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Training compute of the work, FLOP
    #[arg(long, value_parser = crate::estimate::parse_count, conflicts_with_all = ["run", "estimate"])]
    pub flop: Option<f64>,
    /// A ledger run whose tags give flop=… or params=… and tokens=…
    #[arg(long, value_name = "ID", conflicts_with = "estimate")]
    pub run: Option<String>,
    /// A decompute.estimate/1 JSON file
    #[arg(long, value_name = "FILE")]
    pub estimate: Option<PathBuf>,
    /// Write the chart as a standalone SVG to FILE
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

pub fn main(a: ScaleArgs) -> anyhow::Result<()> {
    let all = models::embedded();
    let work: Option<render::scale::Work> = if let Some(f) = a.flop {
        Some(render::scale::Work {
            label: "this work".into(),
            flop: f,
            year: current_year(),
            energy_mwh: None,
        })
    } else if let Some(id) = &a.run {
        let settings = super::settings(super::said(PolicyChoice::Discover, &[&a.ledger]))?;
        let l = super::open_reading(&settings.ledger()?)?;
        let rec = l.get(id)?;
        let (f, _) = crate::estimate::run_flop(&rec.identity.tags)
            .ok_or_else(|| anyhow::anyhow!("run {} has no FLOP: record it with --tag flop=3e18, or --tag params=… --tag tokens=…", rec.identity.id))?;
        let year = rec
            .report
            .started_at
            .get(..4)
            .and_then(|y| y.parse().ok())
            .unwrap_or_else(current_year);
        Some(render::scale::Work {
            label: format!(
                "run {}",
                rec.identity.id.chars().take(10).collect::<String>()
            ),
            flop: f,
            year,
            energy_mwh: Some(rec.report.facility_energy_j.value / 3.6e9),
        })
    } else if let Some(p) = &a.estimate {
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not JSON ({e}); give the file `decompute estimate train --json FILE` wrote",
                p.display()
            )
        })?;
        let f = v["flop"]["value"].as_f64().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no flop.value; give a decompute.estimate/1 file from `estimate train --json`",
                p.display()
            )
        })?;
        Some(render::scale::Work {
            label: "estimate".into(),
            flop: f,
            year: current_year(),
            energy_mwh: v["facility_energy_kwh"]["value"].as_f64().map(|k| k / 1e3),
        })
    } else {
        None
    };
    print_stdout(&render::scale::terminal(
        &all,
        work.as_ref().map(|w| (w.label.as_str(), w.flop)),
        48,
    ))?;
    if let Some(path) = &a.svg {
        let svg = render::scale::svg(&all, work.as_ref());
        let settings =
            crate::settings::Settings::resolve(super::said(PolicyChoice::NotRead, &[&a.ledger]))?;
        crate::outfile::check(path, &settings.protected())?;
        crate::outfile::write(path, svg.as_bytes())?;
        crate::say!("decompute: wrote {}", path.display());
    }
    Ok(())
}

fn current_year() -> u32 {
    let s = crate::timefmt::rfc3339(std::time::SystemTime::now());
    s[..4].parse().unwrap_or(2026)
}

//! `decompute models [--provider P] [--json]`: the registry of hosted and open-weight models
//! that `estimate infer --model` reads, with each model's sizes and where they come from.

use super::print_stdout;
use crate::estimate::registry;
use clap::Args;

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Only this provider's models (openai, anthropic, google, mistral, cohere, open-weight)
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn main(a: ModelsArgs) -> anyhow::Result<()> {
    let reg = registry::shipped().map_err(|e| anyhow::anyhow!(e))?;
    let rows: Vec<&registry::HostedModel> = reg
        .iter()
        .filter(|m| {
            a.provider
                .as_deref()
                .is_none_or(|p| m.provider.eq_ignore_ascii_case(p.trim()))
        })
        .collect();
    if rows.is_empty() {
        let mut providers: Vec<&str> = reg.iter().map(|m| m.provider.as_str()).collect();
        providers.dedup();
        anyhow::bail!(
            "no model of provider '{}' in the registry; providers: {}",
            crate::term::line(a.provider.as_deref().unwrap_or("")),
            providers.join(", ")
        );
    }
    // Where each provider serves, as far as it is public (data/hosted_providers.csv).
    let mut hosting: Vec<registry::Hosting> = Vec::new();
    for m in &rows {
        if !hosting.iter().any(|h| h.provider == m.provider) {
            if let Some(h) = registry::hosting_of(&m.provider).map_err(|e| anyhow::anyhow!(e))? {
                hosting.push(h);
            }
        }
    }
    let confidence = |m: &registry::HostedModel| {
        if m.published {
            "published size"
        } else if m.ranged() {
            "estimated range: the provider publishes no size"
        } else {
            "estimated: the provider publishes no size"
        }
    };
    if a.json {
        let models: Vec<serde_json::Value> = rows
            .iter()
            .map(|m| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                let h = hosting.iter().find(|h| h.provider == m.provider);
                if let Some(o) = v.as_object_mut() {
                    o.insert("confidence".into(), confidence(m).into());
                    o.insert(
                        "served_on".into(),
                        serde_json::json!({
                            "hardware": h.map(|h| h.hardware.clone()),
                            "data_centre": h.and_then(|h| h.cloud.clone()),
                            "basis": h.map(|h| h.basis.clone()),
                            "source": h.map(|h| h.source.clone()),
                        }),
                    );
                }
                v
            })
            .collect();
        let j = serde_json::json!({
            "schema": "decompute.models/1",
            "models": models,
        });
        return print_stdout(&(serde_json::to_string_pretty(&j)? + "\n"));
    }
    let range = |(lo, hi): (f64, f64)| {
        if lo == hi {
            format!("{lo}")
        } else {
            format!("{lo}–{hi}")
        }
    };
    let mut o = format!(
        "{:<12} {:<44} {:<6} {:>12} {:>12}  sizes from\n",
        "provider", "model", "arch", "total (B)", "active (B)"
    );
    for m in &rows {
        o.push_str(&format!(
            "{:<12} {:<44} {:<6} {:>12} {:>12}  {}\n",
            crate::term::escape(&m.provider),
            crate::term::fit(&crate::term::escape(&m.model), 44),
            m.architecture,
            range(m.total_b),
            range(m.active_b),
            m.parameters_from
        ));
    }
    o.push_str(&format!(
        "{} models; ranges are estimates where the provider publishes no size; `estimate infer --model ID` carries them into its band; sources: decompute models --json, data/SOURCES.md\n",
        rows.len()
    ));
    o.push_str("served on (assumed; data/hosted_providers.csv):\n");
    for h in &hosting {
        o.push_str(&format!(
            "  {:<12} {} in {}: {}\n",
            h.provider,
            h.hardware,
            h.cloud
                .as_deref()
                .unwrap_or("a data centre not published (hyperscale default)"),
            h.basis
        ));
    }
    print_stdout(&o)
}

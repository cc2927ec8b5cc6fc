//! The facility an estimate stands for when nobody said: training and serving models happen
//! in data centres, not on a personal machine, so an estimate's PUE and on-site water
//! default to a data centre's (the hyperscale preset; the mean of the hyperscalers'
//! published fleet WUE), each saying so in its source, where a run's default to 1.0 and 0.

use super::train::EstimateFactors;
use crate::factors::{self, Conversion, FactorData};

/// The factors of an estimate from those resolved as for `run`, except that training and serving models happen
/// in data centres, so when nobody chose a PUE (flag, environment, config, or a cloud zone's
/// provider) the `hyperscale` preset applies instead of a personal machine's 1.0, and an
/// on-site water left uncounted says how to count it.
pub fn factors(conv: Conversion, data: &FactorData) -> EstimateFactors {
    let in_cloud = conv.cloud.is_some();
    let mut pue = conv.pue;
    if !pue.origin.given() && conv.cloud.is_none() {
        if let Ok(mut f) = factors::resolve_pue(
            data,
            Some(&factors::Given::new(
                "hyperscale".into(),
                factors::Origin::Default,
            )),
        ) {
            f.source = format!(
                "{} — default for estimates, which run in data centres (--pue average for the industry mean)",
                f.source
            );
            pue = f;
        }
    }
    let mut wue = conv.wue;
    if wue.value == 0.0 && !wue.origin.given() && conv.cloud.is_none() {
        // The hyperscalers' own published fleet figures, averaged: the data centre a
        // training or serving estimate stands for when nobody said which.
        let published: Vec<(&str, f64, u32)> = data
            .cloud
            .providers
            .iter()
            .filter_map(|p| p.wue.as_ref().map(|(v, y, _)| (p.name.as_str(), *v, *y)))
            .collect();
        if !published.is_empty() {
            let mean = published.iter().map(|p| p.1).sum::<f64>() / published.len() as f64;
            let mean = (mean * 1000.0).round() / 1000.0;
            let list = published
                .iter()
                .map(|(n, v, y)| format!("{n} {v} L/kWh ({y})"))
                .collect::<Vec<_>>()
                .join(", ");
            wue = factors::Factor::new(
                mean,
                "L/kWh",
                format!(
                    "default for estimates: the mean of the hyperscalers' published fleet-average on-site WUE ({list}; data/cloud_providers.csv); --wue 0 for a site without evaporative cooling, --zone aws:|azure:REGION for a provider's own"
                ),
                published.iter().map(|p| p.2).min(),
            );
        }
    }
    EstimateFactors {
        in_cloud,
        pue,
        grid: conv.grid,
        wue,
        ewif: conv.ewif,
        zone: conv.zone,
    }
}

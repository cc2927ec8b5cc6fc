//! An inference estimate as people ask for one: by a model's API name (its sizes, ranges
//! included, from the registry; its provider's data centre where it is public) or by its
//! size. Shared by `estimate infer`, the Python package's per-request records of hosted-AI
//! use and `ledger import` of a provider's usage export, so one request is estimated one way.

use super::hardware::HardwareTable;
use super::infer::{self, InferEstimate, Precision, Stack};
use super::registry;
use super::train::EstimateFactors;
use super::{Input, Ranged};
use crate::factors::{Factor, FactorData};

/// What is asked: a model (by name, or by size) and the tokens it serves.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Total parameters, when no model is named.
    pub params: Option<f64>,
    pub active_params: Option<f64>,
    /// A model by the name its API uses.
    pub model: Option<String>,
    pub provider: Option<String>,
    /// An accelerator key; None: the provider's assumed one, else the H100.
    pub hardware: Option<String>,
    pub count: Option<f64>,
    pub tokens_out: f64,
    pub tokens_in: f64,
    pub requests: Option<f64>,
    pub batch: f64,
    pub precision: Precision,
    pub stack: Stack,
    /// A mixture of experts' routing (`--experts`, `--experts-per-token`).
    pub routing: Option<infer::Routing>,
}

impl Query {
    /// One request to a model by name, at the calibration's defaults.
    pub fn request(model: &str, provider: Option<&str>, tokens_in: f64, tokens_out: f64) -> Query {
        Query {
            model: Some(model.to_string()),
            provider: provider.map(str::to_string),
            tokens_in,
            tokens_out,
            requests: Some(1.0),
            batch: 64.0,
            ..Default::default()
        }
    }
}

pub fn estimate(
    i: &Query,
    mut f: EstimateFactors,
    data: &FactorData,
) -> Result<(InferEstimate, EstimateFactors), String> {
    let hw = HardwareTable::shipped();
    let reg = registry::shipped()?;
    let model = match &i.model {
        Some(id) => Some(registry::find(reg, id, i.provider.as_deref())?),
        None => None,
    };
    let hosting = match model {
        Some(m) => registry::hosting_of(&m.provider)?,
        None => None,
    };
    let mut hosted_inputs = Vec::new();
    if let Some(h) = &hosting {
        provider_facility(&mut f, data, h, &mut hosted_inputs);
    }
    let key = i
        .hardware
        .clone()
        .or_else(|| hosting.as_ref().map(|h| h.hardware.clone()))
        .unwrap_or_else(|| "h100".into());
    let hardware = hw.get(&key)?.clone();
    if let (Some(h), None) = (&hosting, &i.hardware) {
        hosted_inputs.push(Input {
            name: "hardware".into(),
            value: hardware.name.clone(),
            source: format!(
                "assumed for {} (data/hosted_providers.csv): no provider publishes its serving accelerators per model; the calibration's own, so the per-token figure is measured rather than scaled",
                h.provider
            ),
            given: false,
        });
    }
    let embodied = hardware.embodied_kg.map(|kg| infer::Embodied {
        kg_per_device: kg,
        source: hardware.embodied_source.clone(),
        lifetime_years: data.constants.lifetime_years.value,
        utilisation: data.constants.lifetime_use.value,
    });
    let reference = hw.get("h100-sxm").ok().cloned();
    let fit = infer::calibrated()?;
    let at = |params: f64, active_params: Option<f64>| {
        let input = infer::InferInput {
            params,
            active_params,
            hardware: Some(hardware.clone()),
            reference: reference.clone(),
            count: i.count,
            tokens_out: i.tokens_out,
            tokens_in: i.tokens_in,
            requests: i.requests,
            batch: i.batch,
            precision: i.precision,
            stack: i.stack,
            embodied: embodied.clone(),
            routing: i.routing,
        };
        infer::estimate(&input, fit, &f)
    };
    let Some(m) = model else {
        let params = i
            .params
            .ok_or_else(|| "give --params (or --model)".to_string())?;
        return Ok((at(params, i.active_params)?, f));
    };
    let b = 1e9;
    let active = |a: f64| m.moe().then_some(a * b);
    let geo = |(lo, hi): (f64, f64)| (lo * hi).sqrt();
    let mut e = at(geo(m.total_b) * b, active(geo(m.active_b)))?;
    let shown = |(lo, hi): (f64, f64)| {
        if lo == hi {
            format!("{lo} B")
        } else {
            format!("{lo}–{hi} B")
        }
    };
    let size = if m.moe() {
        format!(
            "{} total, {} active (mixture of experts)",
            shown(m.total_b),
            shown(m.active_b)
        )
    } else {
        format!("{} (dense)", shown(m.total_b))
    };
    e.inputs.insert(
        0,
        Input {
            name: "model".into(),
            value: format!("{}/{}: {size}", m.provider, m.model),
            source: format!(
                "registry data/hosted_models.csv: parameters from {}; documented at {}",
                m.parameters_from, m.source
            ),
            given: true,
        },
    );
    if m.ranged() {
        // The size is a range: the band spans the estimates at both ends of it, never
        // collapsed to one figure without saying so.
        let lo = at(m.total_b.0 * b, active(m.active_b.0))?;
        let hi = at(m.total_b.1 * b, active(m.active_b.1))?;
        for (mid, l, h) in [
            (
                &mut e.gpu_energy_per_token_j,
                &lo.gpu_energy_per_token_j,
                &hi.gpu_energy_per_token_j,
            ),
            (&mut e.it_energy_kwh, &lo.it_energy_kwh, &hi.it_energy_kwh),
            (
                &mut e.facility_energy_kwh,
                &lo.facility_energy_kwh,
                &hi.facility_energy_kwh,
            ),
            (&mut e.carbon_kg, &lo.carbon_kg, &hi.carbon_kg),
            (&mut e.water_l, &lo.water_l, &hi.water_l),
            (
                &mut e.prefill_energy_kwh,
                &lo.prefill_energy_kwh,
                &hi.prefill_energy_kwh,
            ),
        ] {
            widen(mid, l, h);
        }
        if let (Some(mid), Some(l), Some(h)) =
            (&mut e.embodied_kg, &lo.embodied_kg, &hi.embodied_kg)
        {
            widen(mid, l, h);
        }
        if let (Some(mid), Some(l), Some(h)) =
            (&mut e.per_request, &lo.per_request, &hi.per_request)
        {
            widen(
                &mut mid.facility_energy_wh,
                &l.facility_energy_wh,
                &h.facility_energy_wh,
            );
            widen(&mut mid.carbon_g, &l.carbon_g, &h.carbon_g);
            widen(&mut mid.water_ml, &l.water_ml, &h.water_ml);
            if let (Some(mid), Some(l), Some(h)) =
                (&mut mid.embodied_g, &l.embodied_g, &h.embodied_g)
            {
                widen(mid, l, h);
            }
        }
        let note = format!(
            "{}'s size is a range ({size}; {}): the band spans the estimates at both ends; the central figure is at the range's geometric mean",
            m.model, m.parameters_from
        );
        e.chain.push(note.clone());
        e.warnings.push(note);
    }
    for x in e.inputs.iter_mut() {
        if x.name == "params" || x.name == "active_params" {
            x.source = if m.ranged() {
                "the registry's range, at its geometric mean (the band spans both ends)".into()
            } else {
                "the registry (published size)".into()
            };
            x.given = false;
        }
    }
    for (k, x) in hosted_inputs.into_iter().enumerate() {
        e.inputs.retain(|y| y.name != x.name);
        e.inputs.insert(1 + k, x);
    }
    Ok((e, f))
}

/// Widens a band to hold two others' ends.
fn widen(mid: &mut Ranged, l: &Ranged, h: &Ranged) {
    mid.low = mid.low.min(l.low).min(h.low);
    mid.high = mid.high.max(l.high).max(h.high);
}

/// A hosted model's data centre: where its provider is known to serve from (a cloud whose
/// fleet PUE and WUE are published), those figures replace the hyperscale default unless
/// the user gave their own PUE, WUE or a cloud zone.
fn provider_facility(
    f: &mut EstimateFactors,
    data: &FactorData,
    h: &registry::Hosting,
    inputs: &mut Vec<Input>,
) {
    let cloud = h
        .cloud
        .as_ref()
        .and_then(|c| data.cloud.providers.iter().find(|p| &p.key == c));
    let Some(cloud) = cloud else {
        inputs.push(Input {
            name: "provider_data_centre".into(),
            value: "unknown".into(),
            source: format!(
                "{} ({})",
                h.basis,
                if h.source.is_empty() {
                    "data/hosted_providers.csv"
                } else {
                    &h.source
                }
            ),
            given: false,
        });
        return;
    };
    inputs.push(Input {
        name: "provider_data_centre".into(),
        value: cloud.name.clone(),
        source: format!(
            "{} ({}, {})",
            h.basis,
            h.source,
            h.year.map(|y| y.to_string()).unwrap_or_default()
        ),
        given: false,
    });
    // The user's own figure, or a cloud zone's, stands; otherwise the provider's cloud's.
    let in_cloud = f.in_cloud;
    for (factor, published, what, unit) in [
        (&mut f.pue, &cloud.pue, "fleet PUE", ""),
        (&mut f.wue, &cloud.wue, "fleet on-site WUE", "L/kWh"),
    ] {
        if let Some((v, y, src)) = published {
            if !(factor.origin.given() || in_cloud) {
                *factor = Factor::new(
                    *v,
                    unit,
                    format!(
                        "{}'s {what}, where {} serves: {src} (data/cloud_providers.csv)",
                        cloud.name, h.provider
                    ),
                    Some(*y),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_model_answers_with_a_band_and_sources() {
        let data = FactorData::embedded().expect("data");
        let s = crate::settings::Settings::resolve_in(
            crate::settings::Said::default(),
            std::path::Path::new("/"),
        )
        .expect("settings");
        let f = super::super::datacentre::factors(s.conversion(&data).expect("conv"), &data);
        let reg = registry::shipped().expect("registry");
        assert!(reg.len() >= 40);
        for m in reg {
            let q = Query::request(&m.model, Some(&m.provider), 100.0, 500.0);
            let (e, _) = estimate(&q, f.clone(), &data)
                .unwrap_or_else(|x| panic!("{}/{}: {x}", m.provider, m.model));
            let c = e.carbon_kg;
            assert!(c.low < c.value && c.value < c.high, "{}: {c:?}", m.model);
            assert!(
                e.inputs.iter().all(|i| !i.source.trim().is_empty()),
                "{}: an input without a source",
                m.model
            );
            assert!(
                e.inputs[0].source.contains(&m.parameters_from),
                "{}",
                m.model
            );
            assert!(e.per_request.is_some() && e.embodied_kg.is_some());
        }
    }
}

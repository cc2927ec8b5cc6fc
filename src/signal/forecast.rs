//! Grid forecasts in the documents people already have, recognised by their content: the
//! Carbon Aware SDK's `/emissions/forecasts/current` answer, Electricity Maps' carbon
//! intensity forecast (and its latest/history answers), WattTime v3's `/v3/forecast`, and a
//! CSV of `timestamp,value` whose header may name the unit. Values are converted to
//! gCO2e/kWh (WattTime's lbs/MWh ÷ 2.20462); a unit that cannot be converted is refused,
//! never read as g/kWh. A marginal signal (WattTime's MOER) is labelled marginal: it may
//! decide when to run, but it is never mixed with the average intensities carbon is counted
//! with (location-based, as the GHG Protocol and SCI ask).

use super::csv::Series;
use crate::timefmt::parse_time;
use serde_json::Value;

/// 1 gCO2/kWh = 1 kg/MWh = 2.20462 lbs/MWh.
pub const LBS_PER_KG: f64 = 2.20462;

/// What the values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Average intensity of the electricity generated (what carbon is counted with).
    Average,
    /// Marginal emissions rate (MOER): the emissions of the next kWh; for choosing when,
    /// not for counting.
    Marginal,
}

/// A parsed forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// (Unix seconds, gCO2e/kWh), sorted.
    pub series: Series,
    pub basis: Basis,
    /// Which document it was: `carbon-aware-sdk`, `electricity-maps`, `watttime-v3`, `csv`.
    pub format: &'static str,
    pub zone: Option<String>,
    /// What was converted, for the record ("lbs/MWh ÷ 2.20462").
    pub conversion: Option<String>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn point(
    name: &str,
    i: usize,
    t: Option<&Value>,
    v: Option<&Value>,
    k: f64,
) -> Result<(f64, f64), String> {
    let ts = t
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name}: point {i} has no timestamp"))?;
    let t = parse_time(ts).map_err(|e| format!("{name}: point {i}: {e}"))?;
    let v = v
        .and_then(num)
        .ok_or_else(|| format!("{name}: point {i} has no numeric value"))?;
    let g = v / k;
    if !(0.0..=3000.0).contains(&g) {
        return Err(format!(
            "{name}: point {i}: {g} gCO2e/kWh is outside 0–3000 (a unit mistaken?)"
        ));
    }
    Ok((t, g))
}

fn sorted(mut s: Series, name: &str) -> Result<Series, String> {
    if s.is_empty() {
        return Err(format!("{name}: the forecast has no points"));
    }
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(s)
}

/// Reads a forecast in any format decompute knows, recognised by its content: JSON (one of
/// the services' documents) or CSV.
pub fn parse(name: &str, text: &str) -> Result<Forecast, String> {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        parse_json(name, text)
    } else {
        super::csv::parse(name, text)
    }
}

impl Forecast {
    /// The reading in force at `t` (Unix seconds), if the forecast covers it.
    pub fn reading_at(&self, t: f64) -> Option<super::Reading> {
        super::csv::value_at(&self.series, t).map(|v| super::Reading {
            intensity: Some(v),
            stress: None,
            marginal: self.basis == Basis::Marginal,
        })
    }

    /// How the values were read, for messages: "Electricity Maps forecast (average)".
    pub fn describe(&self) -> String {
        let what = match self.format {
            "carbon-aware-sdk" => "Carbon Aware SDK forecast",
            "electricity-maps" => "Electricity Maps forecast",
            "watttime-v3" => "WattTime v3 forecast",
            _ => "CSV series",
        };
        let basis = match self.basis {
            Basis::Average => "average intensity",
            Basis::Marginal => "marginal rate (MOER)",
        };
        let mut s = format!("{what}, {basis}");
        if let Some(z) = &self.zone {
            s.push_str(&format!(", zone {}", crate::term::escape(z)));
        }
        if let Some(c) = &self.conversion {
            s.push_str(&format!(", converted {c}"));
        }
        s
    }
}

/// Recognises and reads a JSON forecast document.
pub fn parse_json(name: &str, text: &str) -> Result<Forecast, String> {
    let v: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("{name}: not JSON ({e})"))?;
    // The Carbon Aware SDK answers an array of forecasts (one per location asked).
    let doc = match &v {
        Value::Array(items)
            if items
                .first()
                .is_some_and(|x| x.get("forecastData").is_some()) =>
        {
            &items[0]
        }
        other => other,
    };
    if let Some(points) = doc.get("forecastData").and_then(Value::as_array) {
        let series = points
            .iter()
            .enumerate()
            .map(|(i, p)| point(name, i, p.get("timestamp"), p.get("value"), 1.0))
            .collect::<Result<Series, String>>()?;
        return Ok(Forecast {
            series: sorted(series, name)?,
            basis: Basis::Average,
            format: "carbon-aware-sdk",
            zone: doc
                .get("location")
                .and_then(Value::as_str)
                .map(str::to_string),
            conversion: None,
        });
    }
    // Electricity Maps: forecast, history, or the latest single value.
    let em_points = doc
        .get("forecast")
        .or_else(|| doc.get("history"))
        .and_then(Value::as_array);
    if let Some(points) = em_points {
        let series = points
            .iter()
            .enumerate()
            .map(|(i, p)| point(name, i, p.get("datetime"), p.get("carbonIntensity"), 1.0))
            .collect::<Result<Series, String>>()?;
        return Ok(Forecast {
            series: sorted(series, name)?,
            basis: Basis::Average,
            format: "electricity-maps",
            zone: doc.get("zone").and_then(Value::as_str).map(str::to_string),
            conversion: None,
        });
    }
    if doc.get("carbonIntensity").is_some() && doc.get("datetime").is_some() {
        let p = point(
            name,
            0,
            doc.get("datetime"),
            doc.get("carbonIntensity"),
            1.0,
        )?;
        return Ok(Forecast {
            series: vec![p],
            basis: Basis::Average,
            format: "electricity-maps",
            zone: doc.get("zone").and_then(Value::as_str).map(str::to_string),
            conversion: None,
        });
    }
    // WattTime v3.
    if let (Some(points), Some(meta)) = (doc.get("data").and_then(Value::as_array), doc.get("meta"))
    {
        let units = meta.get("units").and_then(Value::as_str).unwrap_or("");
        let signal = meta
            .get("signal_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (k, conversion) = match units {
            "lbs_co2_per_mwh" => (LBS_PER_KG, Some("lbs/MWh ÷ 2.20462".to_string())),
            "kg_co2_per_mwh" | "g_co2_per_kwh" => (1.0, None),
            other => {
                return Err(format!(
                    "{name}: WattTime units '{}' are not an emission rate decompute can convert (lbs_co2_per_mwh, kg_co2_per_mwh)",
                    crate::term::escape(other)
                ))
            }
        };
        let basis = match signal {
            "co2_moer" | "" => Basis::Marginal,
            "co2_aoer" => Basis::Average,
            other => {
                return Err(format!(
                    "{name}: WattTime signal '{}' is not a CO2 rate (co2_moer, co2_aoer)",
                    crate::term::escape(other)
                ))
            }
        };
        let series = points
            .iter()
            .enumerate()
            .map(|(i, p)| point(name, i, p.get("point_time"), p.get("value"), k))
            .collect::<Result<Series, String>>()?;
        return Ok(Forecast {
            series: sorted(series, name)?,
            basis,
            format: "watttime-v3",
            zone: meta
                .get("region")
                .and_then(Value::as_str)
                .map(str::to_string),
            conversion,
        });
    }
    Err(format!(
        "{name}: not a forecast decompute knows (Carbon Aware SDK forecastData, Electricity Maps forecast, WattTime v3 data+meta)"
    ))
}

/// The unit a CSV header names for its values: (divisor to gCO2e/kWh, marginal?).
pub fn csv_unit(header: &str) -> Result<(f64, bool), String> {
    let h = header
        .trim()
        .to_lowercase()
        .replace('₂', "2")
        .replace([' ', '-'], "_");
    let marginal = h.contains("moer") || h.contains("marginal");
    let compact: String = h
        .chars()
        .filter(|c| !matches!(c, '_' | '(' | ')' | '[' | ']'))
        .collect();
    let per_kwh = [
        "g/kwh",
        "gperkwh",
        "gco2/kwh",
        "gco2e/kwh",
        "gco2eq/kwh",
        "gco2eperkwh",
        "gco2perkwh",
    ];
    let per_mwh_kg = [
        "kg/mwh",
        "kgpermwh",
        "kgco2/mwh",
        "kgco2e/mwh",
        "kgco2permwh",
    ];
    let per_mwh_lbs = [
        "lbs/mwh",
        "lbspermwh",
        "lbsco2/mwh",
        "lbsco2permwh",
        "lb/mwh",
        "lbpermwh",
    ];
    if per_mwh_lbs.iter().any(|u| compact.contains(u)) {
        return Ok((LBS_PER_KG, marginal));
    }
    if per_mwh_kg.iter().any(|u| compact.contains(u)) || per_kwh.iter().any(|u| compact.contains(u))
    {
        return Ok((1.0, marginal));
    }
    // A bare name with no unit: documented as gCO2e/kWh.
    if [
        "value",
        "intensity",
        "carbon_intensity",
        "carbonintensity",
        "moer",
        "g",
        "co2",
    ]
    .contains(&h.as_str())
        || h.ends_with("intensity")
    {
        return Ok((1.0, marginal));
    }
    Err(format!(
        "the value column '{}' names a unit decompute cannot convert; use gCO2e/kWh (g_per_kwh), kg/MWh or lbs/MWh",
        crate::term::escape(header.trim())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/forecasts/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    #[test]
    fn the_three_services_agree() {
        let ca = parse_json("ca", &fixture("carbon-aware-sdk.json")).expect("CA SDK");
        let em = parse_json("em", &fixture("electricity-maps.json")).expect("EM");
        let wt = parse_json("wt", &fixture("watttime-v3.json")).expect("WattTime");
        assert_eq!((ca.format, ca.series.len()), ("carbon-aware-sdk", 48));
        assert_eq!(
            (em.format, em.series.len(), em.zone.as_deref()),
            ("electricity-maps", 48, Some("DE"))
        );
        assert_eq!((wt.format, wt.series.len()), ("watttime-v3", 576));
        assert_eq!(wt.basis, Basis::Marginal);
        assert_eq!(em.basis, Basis::Average);
        // The first hour: 338 g/kWh in all three (WattTime's 745.16 lbs/MWh converted).
        assert_eq!(em.series[0].1, 338.0);
        assert!((wt.series[0].1 - 338.0).abs() < 0.01, "{}", wt.series[0].1);
        assert_eq!(ca.series[0].1, 338.0);
    }

    #[test]
    fn units_are_converted_or_refused() {
        assert_eq!(csv_unit("g_per_kwh"), Ok((1.0, false)));
        assert_eq!(csv_unit("gCO2e/kWh"), Ok((1.0, false)));
        assert_eq!(csv_unit("carbon intensity (kg/MWh)"), Ok((1.0, false)));
        assert_eq!(csv_unit("moer_lbs_co2_per_mwh"), Ok((LBS_PER_KG, true)));
        assert!(csv_unit("price_eur_per_mwh").is_err());
        assert!(csv_unit("t/MWh").is_err());
        let bad = r#"{"data":[{"point_time":"2026-12-01T00:00:00Z","value":1}],"meta":{"units":"$_per_mwh","signal_type":"health_damage"}}"#;
        assert!(parse_json("x", bad).is_err());
        assert!(parse_json("x", "[1,2]").is_err());
        let latest = r#"{"zone":"FR","carbonIntensity":56,"datetime":"2026-12-01T00:00:00.000Z"}"#;
        assert_eq!(parse_json("x", latest).expect("latest").series.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse_json("x", &s);
            let _ = csv_unit(&s);
        }

        #[test]
        fn near_misses_never_panic(t in "\\PC{0,25}", v in "(-?[0-9.e]{0,8}|\"x\"|null)") {
            for doc in [
                format!(r#"{{"forecast":[{{"carbonIntensity":{v},"datetime":"{t}"}}]}}"#),
                format!(r#"{{"data":[{{"point_time":"{t}","value":{v}}}],"meta":{{"units":"lbs_co2_per_mwh"}}}}"#),
                format!(r#"[{{"forecastData":[{{"timestamp":"{t}","value":{v}}}]}}]"#),
            ] {
                let _ = parse_json("x", &doc);
            }
        }
    }
}

//! Estimates before a run: training (FLOP → device-hours → energy → carbon, water,
//! embodied carbon) and inference (energy per output token, calibrated on published
//! measurements), every output with a low–high range and every input with its provenance;
//! and the notable models that place any run on the scale of AI compute.

pub mod datacentre;
pub mod hardware;
pub mod infer;
pub mod models;
pub mod query;
pub mod registry;
pub mod site;
pub mod train;
pub mod validation;

use serde::{Deserialize, Serialize};

/// An estimate's footprint: IT energy (kWh), facility energy (kWh), carbon (kg CO2e) and
/// water (L), each with its range.
pub trait Footprint {
    fn footprint(&self) -> [&Ranged; 4];
}

impl Footprint for train::TrainEstimate {
    fn footprint(&self) -> [&Ranged; 4] {
        [
            &self.it_energy_kwh,
            &self.facility_energy_kwh,
            &self.carbon_kg,
            &self.water_l,
        ]
    }
}

impl Footprint for infer::InferEstimate {
    fn footprint(&self) -> [&Ranged; 4] {
        [
            &self.it_energy_kwh,
            &self.facility_energy_kwh,
            &self.carbon_kg,
            &self.water_l,
        ]
    }
}

/// A figure with the range its uncertain inputs allow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ranged {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Ranged {
    /// Nothing, exactly.
    pub fn zero() -> Ranged {
        Ranged::exact(0.0)
    }

    pub fn exact(v: f64) -> Ranged {
        Ranged {
            value: v,
            low: v,
            high: v,
        }
    }

    pub fn scale(self, k: f64) -> Ranged {
        Ranged {
            value: self.value * k,
            low: self.low * k,
            high: self.high * k,
        }
    }

    pub fn times(self, o: Ranged) -> Ranged {
        Ranged {
            value: self.value * o.value,
            low: self.low * o.low,
            high: self.high * o.high,
        }
    }

    pub fn plus(self, o: Ranged) -> Ranged {
        Ranged {
            value: self.value + o.value,
            low: self.low + o.low,
            high: self.high + o.high,
        }
    }
}

/// One input of an estimate, where it came from, and whether the user gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    pub value: String,
    pub source: String,
    pub given: bool,
}

/// Parses a count with an optional SI suffix: `70e9`, `70B`, `15.6T`, `7M`, `1.2k`.
pub fn parse_count(s: &str) -> Result<f64, String> {
    let t = s.trim().replace('_', "");
    // The suffixes are ASCII, so dropping the last char keeps a char boundary.
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('B' | 'G') => (&t[..t.len() - 1], 1e9),
        Some('T') => (&t[..t.len() - 1], 1e12),
        _ => (t.as_str(), 1.0),
    };
    let shown = crate::term::escape(&crate::term::fit(s, 30));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{shown}' is not a number; write e.g. 70e9 or 70B"))?;
    let v = v * mult;
    if !v.is_finite() || v > 1e40 {
        Err(format!("'{shown}' is too large (at most 1e40)"))
    } else if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("'{shown}' must be more than zero"))
    }
}

/// The FLOP of a ledger run, from its tags: `flop`, or 6 × `params` × `tokens`.
pub fn run_flop(tags: &std::collections::BTreeMap<String, String>) -> Option<(f64, String)> {
    let num = |k: &str| {
        tags.get(k)
            .and_then(|v| crate::estimate::parse_count(v).ok())
    };
    if let Some(f) = num("flop") {
        return Some((f, "tag flop".into()));
    }
    match (num("active_params").or(num("params")), num("tokens")) {
        (Some(n), Some(d)) => Some((
            6.0 * n * d,
            "6 × params × tokens from the run's tags".into(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts() {
        assert_eq!(super::parse_count("70B"), Ok(70e9));
        assert_eq!(super::parse_count("15.6T"), Ok(15.6e12));
        assert_eq!(super::parse_count("3.14e23"), Ok(3.14e23));
        assert_eq!(super::parse_count("1_000"), Ok(1000.0));
        assert!(
            super::parse_count("-5").is_err()
                && super::parse_count("lots").is_err()
                && super::parse_count("0").is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn counts_never_panic(s in "\\PC{0,20}", t in "[0-9._eE+-]{0,12}[kKMBGTé]?") {
            let _ = super::parse_count(&s);
            if let Ok(v) = super::parse_count(&t) {
                proptest::prop_assert!(v.is_finite() && v > 0.0);
            }
        }
    }
}

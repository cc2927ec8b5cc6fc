//! The training estimator. FLOP = 6·N·D (dense transformer: forward and backward pass per
//! parameter per token; Kaplan et al. 2020), or 6·N_active·D for mixture-of-experts (only the
//! experts a token visits compute; attention FLOP and recomputation are left out, so both
//! undercount long-context and activation-checkpointed runs). Device-hours = FLOP / (peak
//! dense FLOP/s × MFU) / 3600. IT energy = device-hours × average power; facility = IT × PUE;
//! carbon = facility × intensity; water = IT × WUE + facility × EWIF; embodied = per-device
//! manufacturing carbon × device-hours / lifetime hours.

use super::hardware::Accelerator;
use super::{Input, Ranged};
use crate::factors::{Constants, Factor};
use serde::{Deserialize, Serialize};

/// What the user gave (None = not given).
#[derive(Debug, Clone, Default)]
pub struct TrainInput {
    pub params: Option<f64>,
    pub active_params: Option<f64>,
    pub tokens: Option<f64>,
    pub flop: Option<f64>,
    pub hardware: Option<Accelerator>,
    pub count: Option<f64>,
    pub device_hours: Option<f64>,
    pub days: Option<f64>,
    pub mfu: Option<f64>,
    pub power_w: Option<f64>,
    pub embodied: bool,
    /// A per-device embodied figure the user has (kg CO2e), instead of the table's.
    pub embodied_kg: Option<f64>,
}

/// A factor's source with its year.
pub fn cite(x: &Factor) -> String {
    match x.year {
        Some(y) => format!("{} ({y})", x.source),
        None => x.source.clone(),
    }
}

/// The conversion factors, resolved as for `run`.
#[derive(Debug, Clone)]
pub struct EstimateFactors {
    pub pue: Factor,
    pub grid: Factor,
    pub wue: Factor,
    pub ewif: Factor,
    pub zone: String,
    /// The zone is a cloud region (`aws:us-east-1`): its provider's PUE and WUE apply.
    pub in_cloud: bool,
}

impl EstimateFactors {
    /// The factors as an estimate's inputs (`--explain`), each with its source and year.
    pub fn inputs(&self) -> Vec<Input> {
        [
            ("pue", &self.pue),
            ("grid_gco2_per_kwh", &self.grid),
            ("wue_l_per_kwh", &self.wue),
            ("ewif_l_per_kwh", &self.ewif),
        ]
        .into_iter()
        .map(|(name, x)| Input {
            name: name.into(),
            value: x.value.to_string(),
            source: cite(x),
            given: x.origin.given(),
        })
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainEstimate {
    pub schema: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flop: Option<Ranged>,
    pub device_hours: Ranged,
    pub it_energy_kwh: Ranged,
    pub facility_energy_kwh: Ranged,
    pub carbon_kg: Ranged,
    pub water_l: Ranged,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embodied_kg: Option<Ranged>,
    pub inputs: Vec<Input>,
    /// The calculation, line by line, for `--explain`.
    pub chain: Vec<String>,
    /// Inputs that contradict each other or sit at the edge of what is possible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub const SCHEMA: &str = "decompute.estimate/1";

fn check(name: &str, v: Option<f64>, lo: f64, hi: f64, hint: &str) -> Result<(), String> {
    match v {
        Some(x) if !(x.is_finite() && x > lo && x <= hi) => {
            Err(format!("{name} {x} is out of range; {hint}"))
        }
        _ => Ok(()),
    }
}

pub fn estimate(
    i: &TrainInput,
    f: &EstimateFactors,
    k: &Constants,
) -> Result<TrainEstimate, String> {
    check(
        "--mfu",
        i.mfu,
        0.0,
        1.0,
        "model FLOP utilisation is a fraction of peak, above 0 and at most 1 (typical 0.3–0.5)",
    )?;
    check(
        "--power-w",
        i.power_w,
        0.0,
        5000.0,
        "give the average power of one device in watts, up to 5000",
    )?;
    check("--count", i.count, 0.0, 1e8, "give the number of devices")?;
    check(
        "--days",
        i.days,
        0.0,
        36500.0,
        "give the wall-clock days of training",
    )?;
    check(
        "--device-hours",
        i.device_hours,
        0.0,
        1e12,
        "give the total device-hours",
    )?;
    if let (Some(a), Some(n)) = (i.active_params, i.params) {
        if a > n {
            return Err(format!(
                "--active-params {a:e} is more than --params {n:e}; active parameters are a subset"
            ));
        }
    }
    let mut inputs = Vec::new();
    let mut chain = Vec::new();
    let given = |name: &str, v: String| Input {
        name: name.into(),
        value: v,
        source: "user".into(),
        given: true,
    };

    // FLOP.
    let mut warnings = Vec::new();
    let n_eff = i.active_params.or(i.params);
    let flop = match (i.flop, n_eff, i.tokens) {
        (Some(fl), n, d) => {
            inputs.push(given("flop", format!("{fl:.3e}")));
            chain.push(format!("FLOP = {fl:.3e} (given)"));
            if let (Some(n), Some(d)) = (n, d) {
                let rule = 6.0 * n * d;
                let r = fl / rule;
                if !(1.0 / 1.5..=1.5).contains(&r) {
                    warnings.push(format!(
                        "--flop {fl:.3e} is {} the 6·N·D = {rule:.3e} that --params and --tokens give; --flop is used (drop one or the other if that is not meant)",
                        if r > 1.0 {
                            format!("{r:.1}×")
                        } else {
                            format!("1/{:.1} of", 1.0 / r)
                        }
                    ));
                }
            }
            Some(fl)
        }
        (None, Some(n), Some(d)) => {
            if let Some(p) = i.params {
                inputs.push(given("params", format!("{p:.3e}")));
            }
            if let Some(a) = i.active_params {
                inputs.push(given("active_params", format!("{a:.3e}")));
            }
            inputs.push(given("tokens", format!("{d:.3e}")));
            let fl = 6.0 * n * d;
            chain.push(format!(
                "FLOP = 6 × {} × D = 6 × {n:.3e} × {d:.3e} = {fl:.3e} (dense transformer rule, Kaplan et al. 2020)",
                if i.active_params.is_some() { "N_active" } else { "N" }
            ));
            Some(fl)
        }
        _ => None,
    };

    // Device-hours.
    let mfu_default = (k.mfu.0.value, k.mfu.1.value, k.mfu.2.value);
    let hours = match (i.device_hours, i.days, i.count) {
        (Some(h), _, _) => {
            inputs.push(given("device_hours", format!("{h}")));
            chain.push(format!("device-hours = {h} (given)"));
            Ranged::exact(h)
        }
        (None, Some(d), Some(c)) => {
            inputs.push(given("days", format!("{d}")));
            inputs.push(given("count", format!("{c}")));
            let h = d * 24.0 * c;
            chain.push(format!(
                "device-hours = days × 24 × count = {d} × 24 × {c} = {h}"
            ));
            Ranged::exact(h)
        }
        (None, Some(_), None) => {
            return Err("--days needs --count (how many devices ran for those days)".into())
        }
        _ => {
            let (Some(fl), Some(hw)) = (flop, &i.hardware) else {
                return Err(
                    "cannot get device-hours: give --device-hours, or --days with --count, or --hardware with --flop (or --params and --tokens)"
                        .into(),
                );
            };
            let (mfu, lo, hi) = match i.mfu {
                Some(m) => {
                    inputs.push(given("mfu", format!("{m}")));
                    (m, m, m)
                }
                None => {
                    // The device's generation where published runs say, else the default.
                    let (d, source) = match &hw.mfu {
                        Some((v, lo, hi, src)) => ((*v, *lo, *hi), format!("{}: {src}", hw.name)),
                        None => (mfu_default, cite(&k.mfu.0)),
                    };
                    inputs.push(Input {
                        name: "mfu".into(),
                        value: format!("{} (range {}–{})", d.0, d.1, d.2),
                        source,
                        given: false,
                    });
                    d
                }
            };
            let per = |m: f64| fl / (hw.peak_flops * m) / 3600.0;
            chain.push(format!(
                "device-hours = FLOP / (peak dense FLOP/s × MFU) / 3600 = {fl:.3e} / ({:.4e} × {mfu}) / 3600 = {:.4e} ({} peak: {})",
                hw.peak_flops,
                per(mfu),
                hw.name,
                hw.source
            ));
            Ranged {
                value: per(mfu),
                low: per(hi),
                high: per(lo),
            }
        }
    };

    // Given hours and FLOP on a known device imply a utilisation, which cannot pass 1.
    if let (Some(fl), Some(hw), true) = (
        flop,
        &i.hardware,
        i.device_hours.is_some() || i.days.is_some(),
    ) {
        let implied = fl / (hw.peak_flops * hours.value * 3600.0);
        if implied > 1.0 {
            return Err(format!(
                "{fl:.3e} FLOP in {:.4e} {} hours implies an MFU of {implied:.2}, more than the device's peak: check --device-hours (or --days/--count), --flop/--params/--tokens or --hardware",
                hours.value, hw.name
            ));
        }
        chain.push(format!(
            "implied MFU = FLOP / (peak × device-hours × 3600) = {implied:.3}"
        ));
        if implied > 0.7 {
            warnings.push(format!(
                "the inputs imply an MFU of {implied:.2}; published large runs reach 0.14–0.48"
            ));
        }
    }

    // Power.
    let power = match (i.power_w, &i.hardware) {
        (Some(p), _) => {
            inputs.push(given("power_w", format!("{p}")));
            chain.push(format!("average power = {p} W per device (given)"));
            Ranged::exact(p)
        }
        (None, Some(hw)) if hw.train_power.is_some() => {
            let (v, lo, hi, src) = hw.train_power.clone().unwrap_or_default();
            inputs.push(Input {
                name: "power_w".into(),
                value: format!("{v} W (range {lo}–{hi})"),
                source: format!("{}: {src}", hw.name),
                given: false,
            });
            chain.push(format!(
                "average power = {v} W per device, measured in published runs (range {lo}–{hi} W)"
            ));
            Ranged {
                value: v,
                low: lo,
                high: hi,
            }
        }
        (None, Some(hw)) => {
            let (d, lo, hi) = (
                k.power_factor.0.value,
                k.power_factor.1.value,
                k.power_factor.2.value,
            );
            inputs.push(Input {
                name: "power_w".into(),
                value: format!(
                    "{} × {d} (range {lo}–{hi}) = {} W",
                    hw.power_w,
                    hw.power_w * d
                ),
                source: format!(
                    "rated power: {}; utilisation factor: {}",
                    hw.source,
                    cite(&k.power_factor.0)
                ),
                given: false,
            });
            chain.push(format!(
                "average power = rated {} W × {d} = {} W (range {}–{} W)",
                hw.power_w,
                hw.power_w * d,
                hw.power_w * lo,
                hw.power_w * hi
            ));
            Ranged {
                value: hw.power_w * d,
                low: hw.power_w * lo,
                high: hw.power_w * hi,
            }
        }
        (None, None) => return Err("cannot get power: give --power-w or --hardware".into()),
    };
    if let Some(hw) = &i.hardware {
        inputs.push(Input {
            name: "hardware".into(),
            value: hw.name.clone(),
            source: hw.source.clone(),
            given: true,
        });
    }

    let it = hours.times(power).scale(1e-3);
    chain.push(format!(
        "IT energy = device-hours × power = {:.4e} kWh",
        it.value
    ));
    let facility = it.scale(f.pue.value);
    chain.push(format!(
        "facility energy = IT × PUE = {:.4e} × {} = {:.4e} kWh (PUE: {})",
        it.value,
        f.pue.value,
        facility.value,
        cite(&f.pue)
    ));
    let carbon = facility.scale(f.grid.value / 1000.0);
    chain.push(format!(
        "carbon = facility kWh × intensity = {:.4e} × {} gCO2e/kWh = {:.4e} kg ({}: {})",
        facility.value,
        f.grid.value,
        carbon.value,
        f.zone,
        cite(&f.grid)
    ));
    let water = it.scale(f.wue.value).plus(facility.scale(f.ewif.value));
    chain.push(format!(
        "water = IT × WUE + facility × EWIF = {:.4e} × {} + {:.4e} × {} = {:.4e} L (EWIF: {})",
        it.value,
        f.wue.value,
        facility.value,
        f.ewif.value,
        water.value,
        cite(&f.ewif)
    ));
    inputs.extend(f.inputs());
    let embodied = if i.embodied || i.embodied_kg.is_some() {
        let (per, per_source) = match (i.embodied_kg, i.hardware.as_ref()) {
            (Some(kg), _) => {
                if !(kg.is_finite() && (0.0..=100_000.0).contains(&kg)) {
                    return Err(format!(
                        "--embodied-kg {kg} is not a per-device figure; give kg CO2e from 0 to 100000"
                    ));
                }
                (kg, "user (--embodied-kg)".to_string())
            }
            (None, None) => {
                return Err("--embodied needs --hardware (embodied carbon is per device) or --embodied-kg".into())
            }
            (None, Some(hw)) => (
                hw.embodied_kg.ok_or_else(|| {
                    format!(
                        "the embodied carbon of the {} is unknown: no manufacturer or peer-reviewed figure is in data/hardware.csv; give --embodied-kg KG if you have one (known: A100 SXM 150 kg, H100 SXM 164 kg)",
                        hw.name
                    )
                })?,
                hw.embodied_source.clone(),
            ),
        };
        let life_h = k.lifetime_years.value * 8766.0 * k.lifetime_use.value;
        chain.push(format!(
            "embodied = {per} kg per device × device-hours / ({} y × 8766 h × {}) = {:.4e} kg ({})",
            k.lifetime_years.value,
            k.lifetime_use.value,
            per * hours.value / life_h,
            per_source
        ));
        inputs.push(Input {
            name: "embodied_kg_per_device".into(),
            value: per.to_string(),
            source: per_source.clone(),
            given: i.embodied_kg.is_some(),
        });
        Some(hours.scale(per / life_h))
    } else {
        None
    };
    Ok(TrainEstimate {
        schema: SCHEMA.into(),
        flop: flop.map(Ranged::exact),
        device_hours: hours,
        it_energy_kwh: it,
        facility_energy_kwh: facility,
        carbon_kg: carbon,
        water_l: water,
        embodied_kg: embodied,
        inputs,
        chain,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::hardware::HardwareTable;
    use crate::factors::FactorData;

    fn k() -> Constants {
        FactorData::embedded().expect("data").constants
    }

    fn factors(pue: f64, g_per_kwh: f64) -> EstimateFactors {
        EstimateFactors {
            in_cloud: false,
            pue: Factor::new(pue, "", "paper", None),
            grid: Factor::new(g_per_kwh, "gCO2e/kWh", "paper", None),
            wue: Factor::new(0.0, "L/kWh", "none", None),
            ewif: Factor::new(0.0, "L/kWh", "none", None),
            zone: "paper".into(),
        }
    }

    fn hw(key: &str) -> Option<Accelerator> {
        HardwareTable::embedded().get(key).ok().cloned()
    }

    /// Published runs reproduced from the papers' own inputs; tolerance 1 % (rounding in the
    /// papers), stated per row.
    #[test]
    fn published_runs_from_their_own_inputs() {
        // BLOOM-176B: 1,082,990 A100-hours at 400 W → 433.2 MWh; × 57 g/kWh → 24.7 t (no PUE).
        let e = estimate(
            &TrainInput {
                device_hours: Some(1_082_990.0),
                power_w: Some(400.0),
                ..Default::default()
            },
            &factors(1.0, 57.0),
            &k(),
        )
        .expect("bloom");
        assert!((e.it_energy_kwh.value / 1e3 - 433.2).abs() / 433.2 < 0.01);
        assert!((e.carbon_kg.value / 1e3 - 24.7).abs() / 24.7 < 0.01);
        // Llama 2 70B: 1,720,320 A100-80GB hours × 400 W × PUE 1.1 × 0.385 kg/kWh → 291.42 t.
        let e = estimate(
            &TrainInput {
                device_hours: Some(1_720_320.0),
                power_w: Some(400.0),
                ..Default::default()
            },
            &factors(1.1, 385.0),
            &k(),
        )
        .expect("llama2");
        assert!((e.carbon_kg.value / 1e3 - 291.42).abs() / 291.42 < 0.001);
        // GPT-3 175B: 6·175e9·300e9 ≈ 3.15e23 FLOP (3.14e23 published); 3.55 M V100-hours at
        // 330 W × PUE 1.1 → 1,287 MWh; × 0.429 kg/kWh → 552 t.
        let e = estimate(
            &TrainInput {
                params: Some(175e9),
                tokens: Some(300e9),
                device_hours: Some(3.55e6),
                power_w: Some(330.0),
                ..Default::default()
            },
            &factors(1.1, 429.0),
            &k(),
        )
        .expect("gpt3");
        let fl = e.flop.expect("flop").value;
        assert!((fl - 3.14e23).abs() / 3.14e23 < 0.01, "{fl:e}");
        assert!((e.facility_energy_kwh.value / 1e3 - 1287.0).abs() / 1287.0 < 0.01);
        assert!((e.carbon_kg.value / 1e3 - 552.0).abs() / 552.0 < 0.01);
        // T5-11B: 512 TPU v3 for 20 days at 310 W, PUE 1.12 → 85.7 MWh (the paper rounds its
        // inputs: 512 × 480 h × 310 W × 1.12 = 85.3 MWh, 0.5 % below).
        let e = estimate(
            &TrainInput {
                days: Some(20.0),
                count: Some(512.0),
                power_w: Some(310.0),
                ..Default::default()
            },
            &factors(1.12, 0.0),
            &k(),
        )
        .expect("t5");
        assert!(
            (e.facility_energy_kwh.value / 1e3 - 85.7).abs() / 85.7 < 0.01,
            "{}",
            e.facility_energy_kwh.value
        );
    }

    #[test]
    fn defaults_give_ranges_and_mixture_of_experts_uses_active_params() {
        let e = estimate(
            &TrainInput {
                params: Some(671e9),
                active_params: Some(37e9),
                tokens: Some(14.8e12),
                hardware: hw("h800"),
                ..Default::default()
            },
            &factors(1.0, 500.0),
            &k(),
        )
        .expect("deepseek");
        let fl = e.flop.expect("flop").value;
        assert!((fl - 6.0 * 37e9 * 14.8e12).abs() < 1e9);
        let h = e.device_hours;
        assert!(h.low < h.value && h.value < h.high, "{h:?}");
        assert!((h.value - fl / (989e12 * 0.4) / 3600.0).abs() / h.value < 1e-12);
        assert!(
            e.it_energy_kwh.low < e.it_energy_kwh.value
                && e.it_energy_kwh.value < e.it_energy_kwh.high
        );
        assert!(e.inputs.iter().any(|x| x.name == "mfu" && !x.given));
    }

    #[test]
    fn bad_or_insufficient_inputs_say_what_would_work() {
        let f = factors(1.0, 100.0);
        let cases: Vec<(TrainInput, &str)> = vec![
            (
                TrainInput {
                    params: Some(1e9),
                    ..Default::default()
                },
                "--device-hours, or --days with --count",
            ),
            (
                TrainInput {
                    flop: Some(1e20),
                    mfu: Some(1.5),
                    hardware: hw("h100"),
                    ..Default::default()
                },
                "--mfu",
            ),
            (
                TrainInput {
                    device_hours: Some(10.0),
                    ..Default::default()
                },
                "--power-w or --hardware",
            ),
            (
                TrainInput {
                    days: Some(3.0),
                    power_w: Some(100.0),
                    ..Default::default()
                },
                "--days needs --count",
            ),
            (
                TrainInput {
                    params: Some(1e9),
                    active_params: Some(2e9),
                    tokens: Some(1e9),
                    device_hours: Some(1.0),
                    power_w: Some(1.0),
                    ..Default::default()
                },
                "subset",
            ),
            (
                TrainInput {
                    device_hours: Some(1.0),
                    power_w: Some(1.0),
                    embodied: true,
                    ..Default::default()
                },
                "--embodied needs --hardware",
            ),
        ];
        for (i, needle) in cases {
            let e = estimate(&i, &f, &k()).expect_err(needle);
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn contradictions_are_said_and_the_impossible_refused() {
        let f = factors(1.0, 0.0);
        // --flop 10× the 6·N·D of --params/--tokens: used, with a warning.
        let e = estimate(
            &TrainInput {
                params: Some(1e9),
                tokens: Some(1e10),
                flop: Some(6e20),
                hardware: hw("h100"),
                ..Default::default()
            },
            &f,
            &k(),
        )
        .expect("estimate");
        assert_eq!(e.flop.expect("flop").value, 6e20);
        assert!(e.warnings[0].contains("10.0×"), "{:?}", e.warnings);
        // 3.8e25 FLOP in 1,000 H100-hours would need an MFU in the thousands.
        let err = estimate(
            &TrainInput {
                flop: Some(3.8e25),
                device_hours: Some(1000.0),
                hardware: hw("h100"),
                ..Default::default()
            },
            &f,
            &k(),
        )
        .expect_err("impossible");
        assert!(err.contains("implies an MFU"), "{err}");
    }

    #[test]
    fn embodied_is_amortised_over_the_lifetime() {
        let e = estimate(
            &TrainInput {
                device_hours: Some(8766.0 * 6.0 * 0.85),
                hardware: hw("h100"),
                embodied: true,
                ..Default::default()
            },
            &factors(1.0, 0.0),
            &k(),
        )
        .expect("embodied");
        assert!(
            (e.embodied_kg.expect("embodied").value - 164.0).abs() < 1e-6,
            "a whole lifetime = one device's embodied carbon"
        );
    }

    #[test]
    fn unknown_embodied_carbon_is_said_and_can_be_given() {
        let life = 8766.0 * 6.0 * 0.85;
        let err = estimate(
            &TrainInput {
                device_hours: Some(life),
                hardware: hw("b200"),
                embodied: true,
                ..Default::default()
            },
            &factors(1.0, 0.0),
            &k(),
        )
        .expect_err("unknown");
        assert!(
            err.contains("unknown") && err.contains("--embodied-kg"),
            "{err}"
        );
        let e = estimate(
            &TrainInput {
                device_hours: Some(life),
                hardware: hw("b200"),
                embodied_kg: Some(400.0),
                ..Default::default()
            },
            &factors(1.0, 0.0),
            &k(),
        )
        .expect("given");
        assert!((e.embodied_kg.expect("embodied").value - 400.0).abs() < 1e-6);
        assert!(e
            .inputs
            .iter()
            .any(|i| i.name == "embodied_kg_per_device" && i.given && i.source.contains("user")));
        assert!(estimate(
            &TrainInput {
                device_hours: Some(life),
                embodied_kg: Some(f64::INFINITY),
                ..Default::default()
            },
            &factors(1.0, 0.0),
            &k(),
        )
        .is_err());
    }
}

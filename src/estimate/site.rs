//! `decompute estimate site`: what a data centre takes from a place each year (electricity,
//! and its share of the zone's electricity demand; carbon, location-based; water on site and in
//! the electricity) and what its hardware took from the earth (embodied carbon, abiotic
//! resource depletion, primary energy), from public inputs: its capacity, its accelerators,
//! or its published annual consumption. Every figure carries a range and the source of each
//! factor; equivalents (people's electricity, people's basic water needs) cite theirs.
//! Reads `data/electricity_by_zone.csv`, `data/site.csv` and `data/embodied.csv`; pure
//! arithmetic otherwise.

use super::hardware::Accelerator;
use super::{Input, Ranged};
use crate::csvdata;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "decompute.estimate-site/1";

/// Hours in an average year (365.25 days).
pub const HOURS_PER_YEAR: f64 = 8766.0;

/// A zone's annual electricity generation and generation per inhabitant (of `year`), and its
/// demand (generation plus net imports) where the data has it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneElectricity {
    pub zone: String,
    pub name: String,
    pub generation_twh: f64,
    pub per_capita_kwh: f64,
    pub year: u32,
    pub demand: Option<Demand>,
}

/// A zone's annual electricity demand and its year.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    pub twh: f64,
    pub year: u32,
}

impl ZoneElectricity {
    /// Inhabitants, as the generation columns imply them (generation ÷ generation per person).
    pub fn people(&self) -> f64 {
        self.generation_twh * 1e9 / self.per_capita_kwh
    }
}

/// A sourced parameter with its range.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub unit: String,
    pub year: u32,
    pub source: String,
}

impl Param {
    fn ranged(&self) -> Ranged {
        Ranged {
            value: self.value,
            low: self.low,
            high: self.high,
        }
    }
}

/// Published life-cycle impacts of one accelerator or one 8-accelerator server (without its
/// accelerators).
#[derive(Debug, Clone, PartialEq)]
pub struct Embodied {
    pub key: String,
    pub gwp_kg: Ranged,
    pub adp_kgsbeq: Option<f64>,
    pub pe_mj: Option<f64>,
    pub source: String,
}

/// The three tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub zones: Vec<ZoneElectricity>,
    pub server_overhead_kw: Param,
    pub utilisation: Param,
    pub basic_water: Param,
    pub embodied: Vec<Embodied>,
}

pub const ZONE_SOURCE: &str = "Ember and Energy Institute via Our World in Data (CC BY 4.0): electricity generation and generation per person, as compiled in CodeCarbon 3.3.2 global_energy_mix.json";
pub const DEMAND_SOURCE: &str = "Ember and Energy Institute via Our World in Data (CC BY 4.0): electricity demand, release of December 2022";

impl Tables {
    pub fn parse(zones: &str, site: &str, embodied: &str) -> Result<Tables, String> {
        let e = |x: csvdata::CsvError| x.to_string();
        let t = csvdata::parse("electricity_by_zone.csv", zones).map_err(e)?;
        let (z, n, g, p, y, d, dy) = (
            t.column("zone").map_err(e)?,
            t.column("name").map_err(e)?,
            t.column("generation_twh").map_err(e)?,
            t.column("per_capita_kwh").map_err(e)?,
            t.column("year").map_err(e)?,
            t.column("demand_twh").map_err(e)?,
            t.column("demand_year").map_err(e)?,
        );
        let mut zs = Vec::new();
        for (line, r) in &t.rows {
            let demand = if r[d].trim().is_empty() {
                None
            } else {
                let twh = t.float(*line, r, d).map_err(e)?;
                if twh <= 0.0 {
                    return Err(format!(
                        "electricity_by_zone.csv line {line}: demand_twh {twh} is not more than 0; leave it empty where there is no figure"
                    ));
                }
                Some(Demand {
                    twh,
                    year: t.year(*line, r, dy).map_err(e)?,
                })
            };
            zs.push(ZoneElectricity {
                zone: r[z].trim().to_string(),
                name: r[n].trim().to_string(),
                generation_twh: t.float(*line, r, g).map_err(e)?,
                per_capita_kwh: t.float(*line, r, p).map_err(e)?,
                year: t.year(*line, r, y).map_err(e)?,
                demand,
            });
        }
        let s = csvdata::parse("site.csv", site).map_err(e)?;
        let (k, v, lo, hi, u, yr, src) = (
            s.column("key").map_err(e)?,
            s.column("value").map_err(e)?,
            s.column("low").map_err(e)?,
            s.column("high").map_err(e)?,
            s.column("unit").map_err(e)?,
            s.column("year").map_err(e)?,
            s.column("source").map_err(e)?,
        );
        let param = |key: &str| -> Result<Param, String> {
            let (line, r) = s
                .rows
                .iter()
                .find(|(_, r)| r[k].trim() == key)
                .ok_or_else(|| format!("site.csv: no row '{key}'"))?;
            Ok(Param {
                value: s.float(*line, r, v).map_err(e)?,
                low: s.float(*line, r, lo).map_err(e)?,
                high: s.float(*line, r, hi).map_err(e)?,
                unit: r[u].trim().to_string(),
                year: s.year(*line, r, yr).map_err(e)?,
                source: r[src].trim().to_string(),
            })
        };
        let m = csvdata::parse("embodied.csv", embodied).map_err(e)?;
        let (mk, mg, mgl, mgh, ma, mp, ms) = (
            m.column("key").map_err(e)?,
            m.column("gwp_kg").map_err(e)?,
            m.column("gwp_low").map_err(e)?,
            m.column("gwp_high").map_err(e)?,
            m.column("adp_kgsbeq").map_err(e)?,
            m.column("pe_mj").map_err(e)?,
            m.column("source").map_err(e)?,
        );
        let mut em = Vec::new();
        for (line, r) in &m.rows {
            let opt = |c: usize| -> Result<Option<f64>, String> {
                if r[c].trim().is_empty() {
                    Ok(None)
                } else {
                    m.float(*line, r, c).map(Some).map_err(e)
                }
            };
            em.push(Embodied {
                key: r[mk].trim().to_string(),
                gwp_kg: Ranged {
                    value: m.float(*line, r, mg).map_err(e)?,
                    low: m.float(*line, r, mgl).map_err(e)?,
                    high: m.float(*line, r, mgh).map_err(e)?,
                },
                adp_kgsbeq: opt(ma)?,
                pe_mj: opt(mp)?,
                source: r[ms].trim().to_string(),
            });
        }
        Ok(Tables {
            zones: zs,
            server_overhead_kw: param("server_overhead_kw_per_8_gpus")?,
            utilisation: param("utilisation")?,
            basic_water: param("basic_water_l_per_person_day")?,
            embodied: em,
        })
    }

    pub fn embedded() -> Result<Tables, String> {
        Tables::parse(
            include_str!("../../data/electricity_by_zone.csv"),
            include_str!("../../data/site.csv"),
            include_str!("../../data/embodied.csv"),
        )
    }

    /// The zone's row; WORLD is the sum of the country rows (each at its latest year).
    pub fn zone(&self, zone: &str) -> Option<ZoneElectricity> {
        if zone.eq_ignore_ascii_case("WORLD") {
            let twh: f64 = self.zones.iter().map(|z| z.generation_twh).sum();
            let people: f64 = self.zones.iter().map(ZoneElectricity::people).sum();
            let demands = self.zones.iter().filter_map(|z| z.demand);
            let demand = Demand {
                twh: demands.clone().map(|d| d.twh).sum(),
                year: demands.map(|d| d.year).max().unwrap_or(2021),
            };
            return Some(ZoneElectricity {
                zone: "WORLD".into(),
                name: "World (sum of the country rows)".into(),
                generation_twh: twh,
                per_capita_kwh: twh * 1e9 / people,
                year: self.zones.iter().map(|z| z.year).max().unwrap_or(2023),
                demand: Some(demand),
            });
        }
        self.zones
            .iter()
            .find(|z| z.zone.eq_ignore_ascii_case(zone))
            .cloned()
    }

    /// The server row for an accelerator's generation.
    fn server_for(&self, hw: &Accelerator) -> Option<&Embodied> {
        let k = hw.key.as_str();
        let server = if k.starts_with("h100") || k.starts_with("h800") {
            "server-h100"
        } else if k.starts_with("a100") {
            "server-a100"
        } else {
            return None;
        };
        self.embodied.iter().find(|e| e.key == server)
    }
}

#[derive(Debug, Clone, Default)]
pub struct SiteInput {
    pub it_mw: Option<f64>,
    pub facility_mw: Option<f64>,
    pub gpus: Option<f64>,
    pub hardware: Option<Accelerator>,
    pub utilisation: Option<f64>,
    pub facility_gwh: Option<f64>,
    /// The zone's annual electricity, TWh, when the user has a (demand) figure.
    pub zone_twh: Option<f64>,
    pub years: f64,
    /// Hardware lifetime for amortising embodied impacts, years, and where it came from.
    pub hardware_years: f64,
    pub hardware_years_source: String,
}

/// A people-sized comparison, with its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Equivalent {
    pub what: String,
    pub people: Ranged,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbodiedOut {
    pub accelerators: f64,
    pub servers: f64,
    pub lifetime_years: f64,
    /// Whole-fleet impacts, once.
    pub carbon_t: Option<Ranged>,
    pub adp_kgsbeq: Option<f64>,
    pub primary_energy_gj: Option<f64>,
    /// Carbon amortised per year of the lifetime.
    pub carbon_t_per_year: Option<Ranged>,
    /// What has no published figure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteEstimate {
    pub schema: String,
    pub zone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub it_capacity_mw: Option<Ranged>,
    pub it_energy_gwh_per_year: Ranged,
    pub facility_energy_gwh_per_year: Ranged,
    /// Facility energy ÷ the zone's annual electricity demand (or the figure given).
    pub share_of_zone_electricity: Ranged,
    pub zone_electricity_twh: f64,
    /// "demand" (the shipped data) or "given" (--zone-twh).
    pub zone_electricity_basis: String,
    /// The year of the shipped demand figure; absent when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_electricity_year: Option<u32>,
    pub carbon_t_per_year: Ranged,
    pub years: f64,
    pub carbon_t_over_years: Ranged,
    pub water_on_site_m3_per_year: Ranged,
    pub water_off_site_m3_per_year: Ranged,
    pub equivalents: Vec<Equivalent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embodied: Option<EmbodiedOut>,
    pub inputs: Vec<Input>,
    pub chain: Vec<String>,
}

/// A user's number as they would write it: tiny and huge ones in exponent form, never 300
/// zeros.
fn shown(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-4..1e9).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// A given figure must be a number between plausible bounds: far below `min` (a facility
/// of less than a kilowatt, a zone of less than a gigawatt-hour a year) the arithmetic would
/// print absurd shares and tonnages with a straight face.
fn check(what: &str, v: Option<f64>, (min, max): (f64, f64), fix: &str) -> Result<(), String> {
    match v {
        Some(x) if !(x.is_finite() && x >= min && x <= max) => Err(format!(
            "{what} {} is out of range (at least {min}, at most {max}) or not a number; {fix}",
            shown(x)
        )),
        _ => Ok(()),
    }
}

pub fn estimate(
    i: &SiteInput,
    t: &Tables,
    f: &super::train::EstimateFactors,
) -> Result<SiteEstimate, String> {
    check(
        "--it-mw",
        i.it_mw,
        (0.001, 10_000.0),
        "give the IT capacity in MW",
    )?;
    check(
        "--facility-mw",
        i.facility_mw,
        (0.001, 20_000.0),
        "give the facility's grid connection in MW",
    )?;
    check(
        "--facility-gwh",
        i.facility_gwh,
        (0.001, 200_000.0),
        "give the site's published annual consumption in GWh",
    )?;
    check(
        "--gpus",
        i.gpus,
        (1.0, 10_000_000.0),
        "give the number of accelerators",
    )?;
    check(
        "--zone-twh",
        i.zone_twh,
        (0.001, 100_000.0),
        "give the zone's annual electricity in TWh",
    )?;
    if let Some(g) = i.gpus {
        if g.fract() != 0.0 {
            return Err(format!("--gpus {g} is not a whole number of accelerators"));
        }
    }
    if !(i.years.is_finite() && i.years > 0.0 && i.years <= 100.0) {
        return Err(format!("--years {} is not between 0 and 100", i.years));
    }
    if let Some(u) = i.utilisation {
        if !(u.is_finite() && u > 0.0 && u <= 1.0) {
            return Err(format!(
                "--utilisation {u} is not a share of capacity: give the average IT power ÷ IT capacity, more than 0 and at most 1 (e.g. 0.5)"
            ));
        }
    }
    if !(i.hardware_years.is_finite() && i.hardware_years >= 0.25 && i.hardware_years <= 30.0) {
        return Err(format!(
            "--hardware-years {} is not between 0.25 and 30; give the years the hardware serves before it is replaced (servers: 4 to 6)",
            shown(i.hardware_years)
        ));
    }
    let given = [
        i.it_mw.is_some(),
        i.facility_mw.is_some() && i.it_mw.is_none(),
        i.gpus.is_some(),
        i.facility_gwh.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given == 0 {
        return Err(
            "give the site's size: --it-mw MW, --facility-mw MW, --gpus N with --hardware KEY, or --facility-gwh GWH (its published annual consumption)".into(),
        );
    }
    if given > 1 {
        return Err(
            "give one measure of the site's size: --it-mw (with --facility-mw at most, for its PUE), --gpus with --hardware, or --facility-gwh".into(),
        );
    }
    if i.gpus.is_some() && i.hardware.is_none() {
        return Err("--gpus needs --hardware KEY (the accelerator; `estimate train --hardware list` lists them)".into());
    }
    let mut chain = Vec::new();
    let mut inputs = Vec::new();
    // PUE: given, implied by --facility-mw with --it-mw, or the estimates' default.
    let mut pue = f.pue.value;
    let mut pue_source = format!(
        "{}{}",
        f.pue.source,
        f.pue.year.map(|y| format!(" ({y})")).unwrap_or_default()
    );
    if let (Some(it), Some(fac)) = (i.it_mw, i.facility_mw) {
        if f.pue.origin.given() {
            return Err("--it-mw, --facility-mw and --pue: give two of the three".into());
        }
        pue = fac / it;
        if !(1.0..=4.0).contains(&pue) {
            return Err(format!(
                "--facility-mw {fac} ÷ --it-mw {it} = PUE {pue:.2}, not between 1.0 and 4.0: check the two capacities"
            ));
        }
        pue_source = format!("implied: --facility-mw {fac} ÷ --it-mw {it}");
    }
    inputs.push(Input {
        name: "pue".into(),
        value: format!("{pue:.3}"),
        source: pue_source,
        given: f.pue.origin.given() || i.facility_mw.is_some(),
    });
    let util = match i.utilisation {
        Some(u) => Ranged::exact(u),
        None => t.utilisation.ranged(),
    };
    let util_source = if i.utilisation.is_some() {
        "user".to_string()
    } else {
        format!("{} ({})", t.utilisation.source, t.utilisation.year)
    };
    // IT energy per year (GWh).
    let (capacity, it_gwh) = if let Some(gwh) = i.facility_gwh {
        let it = Ranged::exact(gwh / pue);
        chain.push(format!(
            "facility energy = {gwh} GWh a year, as published; IT = facility ÷ PUE {pue:.3} = {:.4} GWh",
            it.value
        ));
        (None, it)
    } else {
        let cap = if let Some(it) = i.it_mw {
            chain.push(format!("IT capacity = {it} MW (given)"));
            Ranged::exact(it)
        } else if let Some(fac) = i.facility_mw {
            let c = Ranged::exact(fac / pue);
            chain.push(format!(
                "IT capacity = facility {fac} MW ÷ PUE {pue:.3} = {:.4} MW",
                c.value
            ));
            c
        } else {
            let hw = i.hardware.as_ref().ok_or("--gpus needs --hardware")?;
            let n = i.gpus.unwrap_or(0.0);
            let o = &t.server_overhead_kw;
            let per = |kw: f64| n * (hw.power_w / 1000.0 + kw / 8.0) / 1000.0;
            let c = Ranged {
                value: per(o.value),
                low: per(o.low),
                high: per(o.high),
            };
            chain.push(format!(
                "IT capacity = {n} × ({} W rated + {} kW per 8-accelerator server ÷ 8) = {:.4} MW (server overhead range {}–{} kW: {})",
                hw.power_w, o.value, c.value, o.low, o.high, o.source
            ));
            inputs.push(Input {
                name: "hardware".into(),
                value: hw.name.clone(),
                source: hw.source.clone(),
                given: true,
            });
            c
        };
        let it = cap.times(util).scale(HOURS_PER_YEAR / 1000.0);
        chain.push(format!(
            "IT energy a year = capacity × utilisation {} × {HOURS_PER_YEAR} h = {:.4} GWh (range {:.4}–{:.4})",
            util.value, it.value, it.low, it.high
        ));
        inputs.push(Input {
            name: "utilisation".into(),
            value: if util.low == util.high {
                util.value.to_string()
            } else {
                format!("{} (range {}–{})", util.value, util.low, util.high)
            },
            source: util_source,
            given: i.utilisation.is_some(),
        });
        (Some(cap), it)
    };
    let facility = if i.facility_gwh.is_some() {
        it_gwh.scale(pue)
    } else {
        let fac = it_gwh.scale(pue);
        chain.push(format!(
            "facility energy = IT × PUE {pue:.3} = {:.4} GWh a year",
            fac.value
        ));
        fac
    };
    // The zone's electricity.
    let zrow = t.zone(&f.zone);
    let (zone_twh, zone_year, zone_src) = match (i.zone_twh, &zrow) {
        (Some(z), _) => (z, None, "user (--zone-twh)".to_string()),
        (
            None,
            Some(ZoneElectricity {
                name,
                demand: Some(d),
                ..
            }),
        ) => (
            d.twh,
            Some(d.year),
            format!(
                "{name}'s electricity demand was {} TWh in {} ({DEMAND_SOURCE})",
                d.twh, d.year
            ),
        ),
        (None, Some(z)) => {
            return Err(format!(
                "zone {} ({}) has no electricity demand figure in data/electricity_by_zone.csv; give --zone-twh TWH, the zone's annual electricity demand (it generated {} TWh in {})",
                crate::term::escape(&f.zone),
                z.name,
                z.generation_twh,
                z.year
            ))
        }
        (None, None) => {
            return Err(format!(
                "zone {} has no annual electricity figure in data/electricity_by_zone.csv (countries only); give --zone-twh TWH, or a country --zone",
                crate::term::escape(&f.zone)
            ))
        }
    };
    let share = facility.scale(1.0 / (zone_twh * 1000.0));
    if share.value > 1.0 {
        return Err(format!(
            "the facility's {:.4} GWh a year is more than the zone's whole demand of {zone_twh} TWh ({zone_src}); check --zone-twh (in TWh) and the facility's size",
            facility.value
        ));
    }
    chain.push(format!(
        "share of the zone's electricity demand = {:.4} GWh ÷ {zone_twh} TWh = {:.3} % ({zone_src})",
        facility.value,
        share.value * 100.0
    ));
    inputs.push(Input {
        name: "zone_electricity_twh".into(),
        value: zone_twh.to_string(),
        source: zone_src,
        given: i.zone_twh.is_some(),
    });
    // Carbon: facility GWh × g/kWh = t.
    let carbon = facility.scale(f.grid.value);
    chain.push(format!(
        "carbon a year = {:.4} GWh × {} gCO2e/kWh = {:.4} t CO2e, location-based ({}{}); over {} years: {:.4} t",
        facility.value,
        f.grid.value,
        carbon.value,
        f.grid.source,
        f.grid.year.map(|y| format!(", {y}")).unwrap_or_default(),
        i.years,
        carbon.value * i.years
    ));
    // Water: GWh × L/kWh = 1e6 L = 1000 m3.
    let on_site = it_gwh.scale(f.wue.value * 1000.0);
    let off_site = facility.scale(f.ewif.value * 1000.0);
    chain.push(format!(
        "water a year: on site = IT × WUE {} L/kWh = {:.4} m3 ({}); in the electricity = facility × EWIF {} L/kWh = {:.4} m3 ({})",
        f.wue.value, on_site.value, f.wue.source, f.ewif.value, off_site.value, f.ewif.source
    ));
    // The site's PUE is its own input (above): the grid's and water's from the factors.
    inputs.extend(f.inputs().into_iter().filter(|x| x.name != "pue"));
    // Equivalents.
    let mut equivalents = Vec::new();
    if let Some(z) = &zrow {
        if let Some(d) = z.demand {
            let people = z.people();
            let kwh = d.twh * 1e9 / people;
            equivalents.push(Equivalent {
                what: format!(
                    "inhabitants of {} whose share of its electricity demand ({kwh:.0} kWh a person: {} TWh in {} over {:.3} million people in {}) equals the site's facility energy",
                    z.name,
                    d.twh,
                    d.year,
                    people / 1e6,
                    z.year
                ),
                people: facility.scale(1e6 / kwh),
                source: format!("{DEMAND_SOURCE}; people: {ZONE_SOURCE}"),
            });
        }
    }
    let bw = &t.basic_water;
    let per_person_m3 = |l_day: f64| l_day * 365.25 / 1000.0;
    let water_people = |w: Ranged| Ranged {
        value: w.value / per_person_m3(bw.value),
        low: w.low / per_person_m3(bw.high),
        high: w.high / per_person_m3(bw.low),
    };
    equivalents.push(Equivalent {
        what: format!(
            "people whose basic water needs ({}–{} L a day) equal the site's on-site water",
            bw.low, bw.high
        ),
        people: water_people(on_site),
        source: format!("{} ({})", bw.source, bw.year),
    });
    equivalents.push(Equivalent {
        what: format!(
            "people whose basic water needs ({}–{} L a day) equal its water on site and in its electricity",
            bw.low, bw.high
        ),
        people: water_people(on_site.plus(off_site)),
        source: format!("{} ({})", bw.source, bw.year),
    });
    // Embodied impacts of the hardware.
    let embodied = match (&i.hardware, i.gpus) {
        (Some(hw), Some(n)) => Some(embodied_of(hw, n, i, t, &mut chain)),
        _ => None,
    };
    inputs.push(Input {
        name: "years".into(),
        value: i.years.to_string(),
        source: if i.years == 1.0 {
            "default".into()
        } else {
            "user".into()
        },
        given: i.years != 1.0,
    });
    Ok(SiteEstimate {
        schema: SCHEMA.into(),
        zone: f.zone.clone(),
        it_capacity_mw: capacity,
        it_energy_gwh_per_year: it_gwh,
        facility_energy_gwh_per_year: facility,
        share_of_zone_electricity: share,
        zone_electricity_twh: zone_twh,
        zone_electricity_basis: if i.zone_twh.is_some() {
            "given"
        } else {
            "demand"
        }
        .into(),
        zone_electricity_year: zone_year,
        carbon_t_per_year: carbon,
        years: i.years,
        carbon_t_over_years: carbon.scale(i.years),
        water_on_site_m3_per_year: on_site,
        water_off_site_m3_per_year: off_site,
        equivalents,
        embodied,
        inputs,
        chain,
    })
}

fn embodied_of(
    hw: &Accelerator,
    n: f64,
    i: &SiteInput,
    t: &Tables,
    chain: &mut Vec<String>,
) -> EmbodiedOut {
    let life = i.hardware_years;
    let servers = (n / 8.0).ceil();
    let acc = t.embodied.iter().find(|e| e.key == hw.key);
    let srv = t.server_for(hw);
    let mut unknown = Vec::new();
    let mut sources = Vec::new();
    if acc.is_none() {
        unknown.push(format!(
            "{}: no published embodied figure (carbon, ADP or primary energy)",
            hw.name
        ));
    }
    if srv.is_none() {
        unknown.push(format!(
            "the servers around {}: no published figure for this generation",
            hw.name
        ));
    }
    for e in [acc, srv].into_iter().flatten() {
        sources.push(format!("{}: {}", e.key, e.source));
    }
    let carbon = match (acc, srv) {
        (Some(a), Some(s)) => Some(
            a.gwp_kg
                .scale(n / 1000.0)
                .plus(s.gwp_kg.scale(servers / 1000.0)),
        ),
        _ => None,
    };
    let sum_opt = |fa: Option<f64>, fs: Option<f64>| match (fa, fs) {
        (Some(a), Some(s)) => Some(a * n + s * servers),
        _ => None,
    };
    let adp = sum_opt(
        acc.and_then(|a| a.adp_kgsbeq),
        srv.and_then(|s| s.adp_kgsbeq),
    );
    let pe = sum_opt(acc.and_then(|a| a.pe_mj), srv.and_then(|s| s.pe_mj)).map(|mj| mj / 1000.0);
    if adp.is_none() && acc.is_some() {
        unknown.push(format!(
            "{}: no published abiotic resource depletion or primary energy",
            hw.name
        ));
    }
    match &carbon {
        Some(c) => chain.push(format!(
            "embodied carbon = {n} accelerators × {} kg + {servers} servers × {} kg = {:.4} t CO2e (range {:.4}–{:.4}), {:.4} t a year over {life} years ({}){}{}",
            acc.map(|a| a.gwp_kg.value).unwrap_or(0.0),
            srv.map(|s| s.gwp_kg.value).unwrap_or(0.0),
            c.value,
            c.low,
            c.high,
            c.value / life,
            i.hardware_years_source,
            adp.map(|a| format!("; ADP {a:.4} kg Sb eq")).unwrap_or_default(),
            pe.map(|p| format!("; primary energy {p:.4} GJ")).unwrap_or_default()
        )),
        None => chain.push(format!(
            "embodied impacts: unknown for {} ({})",
            hw.name,
            unknown.join("; ")
        )),
    }
    EmbodiedOut {
        accelerators: n,
        servers,
        lifetime_years: life,
        carbon_t_per_year: carbon.map(|c| c.scale(1.0 / life)),
        carbon_t: carbon,
        adp_kgsbeq: adp,
        primary_energy_gj: pe,
        unknown,
        sources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factors::{Factor, Origin};

    fn factors(
        zone: &str,
        pue: f64,
        grid: f64,
        wue: f64,
        ewif: f64,
    ) -> super::super::train::EstimateFactors {
        super::super::train::EstimateFactors {
            in_cloud: false,
            pue: Factor::new(pue, "", "t", None),
            grid: Factor::new(grid, "gCO2e/kWh", "t", Some(2023)),
            wue: Factor::new(wue, "L/kWh", "t", None),
            ewif: Factor::new(ewif, "L/kWh", "t", None),
            zone: zone.into(),
        }
    }

    fn input() -> SiteInput {
        SiteInput {
            years: 1.0,
            hardware_years: 6.0,
            hardware_years_source: "t".into(),
            ..Default::default()
        }
    }

    fn hw(k: &str) -> Option<Accelerator> {
        super::super::hardware::HardwareTable::embedded()
            .get(k)
            .ok()
            .cloned()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn a_capacity_gives_energy_share_carbon_and_water_by_hand() {
        let t = Tables::embedded().expect("tables");
        // 100 MW IT at 0.5 for 8766 h = 438.3 GWh; × PUE 1.2 = 525.96 GWh.
        let e = estimate(
            &SiteInput {
                it_mw: Some(100.0),
                utilisation: Some(0.5),
                zone_twh: Some(50.0),
                years: 10.0,
                ..input()
            },
            &t,
            &factors("IRL", 1.2, 300.0, 0.5, 2.0),
        )
        .expect("estimate");
        assert!(close(e.it_energy_gwh_per_year.value, 438.3));
        assert!(close(e.facility_energy_gwh_per_year.value, 525.96));
        assert!(close(e.share_of_zone_electricity.value, 525.96 / 50_000.0));
        assert!(close(e.carbon_t_per_year.value, 157_788.0));
        assert!(close(e.carbon_t_over_years.value, 1_577_880.0));
        assert!(close(e.water_on_site_m3_per_year.value, 219_150.0));
        assert!(close(e.water_off_site_m3_per_year.value, 1_051_920.0));
        // Basic water needs at 75 L a day: 27.39375 m3 a person a year.
        let q = &e.equivalents[1];
        assert!(close(q.people.value, 219_150.0 / 27.39375), "{q:?}");
        assert!(q.people.low < q.people.value && q.people.value < q.people.high);
        // Ireland's electricity demand per inhabitant: 31.11 TWh (2021) over the
        // 31.43 TWh ÷ 6215.2 kWh = 5.0569 million people of its generation row.
        let per_person = 31.11e9 / (31.43e9 / 6215.2);
        assert!(close(e.equivalents[0].people.value, 525.96e6 / per_person));
        assert!(
            e.equivalents[0].what.contains("6152 kWh a person"),
            "{:?}",
            e.equivalents[0]
        );
        assert_eq!(e.zone_electricity_basis, "given");
        assert_eq!(e.zone_electricity_year, None);
        assert!(e.embodied.is_none());
    }

    #[test]
    fn the_default_utilisation_gives_a_range_and_facility_mw_sets_the_pue() {
        let t = Tables::embedded().expect("tables");
        let e = estimate(
            &SiteInput {
                it_mw: Some(100.0),
                facility_mw: Some(130.0),
                ..input()
            },
            &t,
            &factors("FRA", 1.1, 50.0, 0.0, 1.0),
        )
        .expect("estimate");
        let it = e.it_energy_gwh_per_year;
        assert!(close(it.value, 438.3) && close(it.low, 350.64) && close(it.high, 788.94));
        assert!(close(e.facility_energy_gwh_per_year.value, 438.3 * 1.3));
        assert!(e
            .inputs
            .iter()
            .any(|i| i.name == "pue" && i.source.starts_with("implied")));
    }

    #[test]
    fn accelerators_bring_server_overhead_and_embodied_impacts() {
        let t = Tables::embedded().expect("tables");
        let e = estimate(
            &SiteInput {
                gpus: Some(16.0),
                hardware: hw("h100"),
                utilisation: Some(1.0),
                ..input()
            },
            &t,
            &factors("FRA", 1.0, 50.0, 0.0, 1.0),
        )
        .expect("estimate");
        // 16 × (0.7 + 1.2 / 8) kW = 13.6 kW.
        let cap = e.it_capacity_mw.expect("capacity");
        assert!(close(cap.value, 0.0136) && close(cap.high, 16.0 * (0.7 + 4.6 / 8.0) / 1000.0));
        let m = e.embodied.expect("embodied");
        assert_eq!((m.accelerators, m.servers), (16.0, 2.0));
        let c = m.carbon_t.expect("carbon");
        assert!(close(c.value, (16.0 * 164.0 + 2.0 * 5700.0) / 1000.0));
        assert!(close(c.high, (16.0 * 273.0 + 2.0 * 5700.0) / 1000.0));
        assert!(close(
            m.adp_kgsbeq.expect("adp"),
            16.0 * 0.00895 + 2.0 * 0.37
        ));
        assert!(close(
            m.primary_energy_gj.expect("pe"),
            (16.0 * 3721.0 + 2.0 * 70000.0) / 1000.0
        ));
        assert!(close(
            m.carbon_t_per_year.expect("per year").value,
            c.value / 6.0
        ));
        // A device with no published figure says so rather than guess.
        let u = estimate(
            &SiteInput {
                gpus: Some(8.0),
                hardware: hw("b200"),
                ..input()
            },
            &t,
            &factors("FRA", 1.0, 50.0, 0.0, 1.0),
        )
        .expect("estimate")
        .embodied
        .expect("embodied");
        assert!(u.carbon_t.is_none() && u.adp_kgsbeq.is_none());
        assert!(
            u.unknown.iter().any(|x| x.contains("B200")),
            "{:?}",
            u.unknown
        );
    }

    /// docs/validation.md, section 4: Ireland's data centres, 6,334 GWh metered in 2023
    /// (CSO), against the zone's demand.
    #[test]
    fn irelands_data_centres_share_is_as_documented() {
        let t = Tables::embedded().expect("tables");
        let e = estimate(
            &SiteInput {
                facility_gwh: Some(6334.0),
                ..input()
            },
            &t,
            &factors("IRL", 1.1, 290.8, 0.0, 1.4769),
        )
        .expect("estimate");
        // 6,334 GWh ÷ 31,110 GWh (Ireland's demand in 2021) = 20.36 %.
        assert_eq!(
            format!("{:.2}", e.share_of_zone_electricity.value * 100.0),
            "20.36"
        );
        assert_eq!(e.zone_electricity_twh, 31.11);
        assert_eq!(e.zone_electricity_basis, "demand");
        assert_eq!(e.zone_electricity_year, Some(2021));
        // Against the CSO's own denominator, 30,600 GWh of metered consumption: 20.7 %.
        let cso = estimate(
            &SiteInput {
                facility_gwh: Some(6334.0),
                zone_twh: Some(30.6),
                ..input()
            },
            &t,
            &factors("IRL", 1.1, 290.8, 0.0, 1.4769),
        )
        .expect("estimate");
        assert_eq!(
            format!("{:.1}", cso.share_of_zone_electricity.value * 100.0),
            "20.7"
        );
    }

    #[test]
    fn bad_inputs_name_the_fix() {
        let t = Tables::embedded().expect("tables");
        let f = factors("FRA", 1.1, 50.0, 0.0, 1.0);
        let err = |i: SiteInput, f: &super::super::train::EstimateFactors| {
            estimate(&i, &t, f).expect_err("refused")
        };
        let cases: Vec<(SiteInput, &str)> = vec![
            (input(), "give the site's size"),
            (
                SiteInput {
                    it_mw: Some(-5.0),
                    ..input()
                },
                "--it-mw -5",
            ),
            (
                SiteInput {
                    it_mw: Some(f64::NAN),
                    ..input()
                },
                "--it-mw NaN",
            ),
            (
                SiteInput {
                    it_mw: Some(1e9),
                    ..input()
                },
                "at most 10000",
            ),
            (
                SiteInput {
                    it_mw: Some(10.0),
                    utilisation: Some(1.2),
                    ..input()
                },
                "at most 1",
            ),
            (
                SiteInput {
                    it_mw: Some(10.0),
                    gpus: Some(8.0),
                    hardware: hw("h100"),
                    ..input()
                },
                "give one measure",
            ),
            (
                SiteInput {
                    facility_gwh: Some(10.0),
                    it_mw: Some(1.0),
                    ..input()
                },
                "give one measure",
            ),
            (
                SiteInput {
                    gpus: Some(8.0),
                    ..input()
                },
                "--gpus needs --hardware",
            ),
            (
                SiteInput {
                    gpus: Some(8.5),
                    hardware: hw("h100"),
                    ..input()
                },
                "whole number",
            ),
            (
                SiteInput {
                    it_mw: Some(100.0),
                    facility_mw: Some(50.0),
                    ..input()
                },
                "not between 1.0 and 4.0",
            ),
            (
                SiteInput {
                    it_mw: Some(1.0),
                    years: 0.0,
                    ..input()
                },
                "--years",
            ),
        ];
        for (i, want) in cases {
            let e = err(i, &f);
            assert!(e.contains(want), "{e} (wanted {want})");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let mut given = factors("FRA", 1.3, 50.0, 0.0, 1.0);
        given.pue.origin = Origin::Flag("--pue".into());
        let e = err(
            SiteInput {
                it_mw: Some(100.0),
                facility_mw: Some(130.0),
                ..input()
            },
            &given,
        );
        assert!(e.contains("give two of the three"), "{e}");
        let e = err(
            SiteInput {
                it_mw: Some(1.0),
                ..input()
            },
            &factors("US-VA", 1.1, 50.0, 0.0, 1.0),
        );
        assert!(e.contains("--zone-twh"), "{e}");
        // A country with generation but no demand figure: refused, with the fix and what is known.
        let e = err(
            SiteInput {
                it_mw: Some(1.0),
                ..input()
            },
            &factors("BMU", 1.1, 50.0, 0.0, 1.0),
        );
        assert!(
            e.contains("no electricity demand figure")
                && e.contains("--zone-twh")
                && e.contains("Bermuda"),
            "{e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
        let ok = estimate(
            &SiteInput {
                it_mw: Some(1.0),
                zone_twh: Some(0.6),
                ..input()
            },
            &t,
            &factors("BMU", 1.1, 50.0, 0.0, 1.0),
        )
        .expect("with --zone-twh");
        assert_eq!(ok.zone_electricity_twh, 0.6);
    }

    proptest::proptest! {
        /// The zone table's parser takes any text (a user's data file) without panicking, and
        /// a row it accepts has a positive demand with a plausible year.
        #[test]
        fn the_zone_table_never_panics(
            d in "(\\PC{0,8}|[0-9.eE+-]{0,8})",
            y in "(\\PC{0,6}|[0-9.eE+-]{0,6})",
            junk in "\\PC{0,40}",
        ) {
            let head = "zone,name,generation_twh,per_capita_kwh,year,demand_twh,demand_year\n";
            let site = include_str!("../../data/site.csv");
            let emb = include_str!("../../data/embodied.csv");
            let _ = Tables::parse(&format!("{head}{junk}\n"), site, emb);
            if let Ok(t) = Tables::parse(&format!("{head}AAA,A,1,1000,2023,{d},{y}\n"), site, emb) {
                if let Some(x) = t.zones[0].demand {
                    proptest::prop_assert!(x.twh.is_finite() && x.twh > 0.0 && (1900..=2200).contains(&x.year));
                }
            }
        }
    }

    #[test]
    fn demand_column_is_checked() {
        let head = "zone,name,generation_twh,per_capita_kwh,year,demand_twh,demand_year\n";
        let site = include_str!("../../data/site.csv");
        let emb = include_str!("../../data/embodied.csv");
        let t = Tables::parse(
            &format!("{head}AAA,A,1.0,1000,2023,,\nBBB,B,2.0,1000,2023,3.5,2021\n"),
            site,
            emb,
        )
        .expect("parses");
        assert_eq!(t.zone("AAA").and_then(|z| z.demand), None);
        assert_eq!(
            t.zone("BBB").and_then(|z| z.demand),
            Some(Demand {
                twh: 3.5,
                year: 2021
            })
        );
        for bad in ["0", "-1", "NaN"] {
            let e = Tables::parse(
                &format!("{head}AAA,A,1.0,1000,2023,{bad},2021\n"),
                site,
                emb,
            )
            .expect_err("refused");
            assert!(e.contains("demand_twh"), "{e}");
        }
        let e = Tables::parse(&format!("{head}AAA,A,1.0,1000,2023,1.0,20.5\n"), site, emb)
            .expect_err("refused");
        assert!(e.contains("demand_year"), "{e}");
    }

    #[test]
    fn the_world_is_the_sum_of_its_countries() {
        let t = Tables::embedded().expect("tables");
        let w = t.zone("WORLD").expect("world");
        let sum: f64 = t.zones.iter().map(|z| z.generation_twh).sum();
        assert!(close(w.generation_twh, sum));
        // The country demand rows sum to within 0.1 % of Our World in Data's own World row
        // for 2021 (27,782.79 TWh).
        let d = w.demand.expect("world demand");
        assert_eq!(d.year, 2021);
        assert!((d.twh / 27_782.79 - 1.0).abs() < 0.001, "{d:?}");
        assert_eq!(t.zones.iter().filter(|z| z.demand.is_some()).count(), 210);
        assert!(
            w.per_capita_kwh > 2000.0 && w.per_capita_kwh < 5000.0,
            "{w:?}"
        );
        assert!(t.zone("irl").is_some() && t.zone("ZZZ").is_none());
    }

    /// docs/validation.md, section 4: Meta's 2023 data-centre water from its energy, PUE
    /// and WUE.
    #[test]
    fn metas_fleet_water_is_as_documented() {
        let t = Tables::embedded().expect("tables");
        let f = |gwh: f64| {
            estimate(
                &SiteInput {
                    facility_gwh: Some(gwh),
                    ..input()
                },
                &t,
                &factors("USA", 1.08, 369.5, 0.26, 3.13),
            )
            .expect("estimate")
            .water_on_site_m3_per_year
            .value
        };
        // m3 ÷ 1000 = megalitres.
        assert_eq!(format!("{:.0}", f(14_975.435) / 1000.0), "3605");
        assert_eq!(
            format!("{:.0}", (f(14_975.435) / 1000.0 / 3881.0 - 1.0) * 100.0),
            "-7"
        );
        assert_eq!(format!("{:.0}", f(14_975.435 - 2_187.020) / 1000.0), "3079");
    }
}

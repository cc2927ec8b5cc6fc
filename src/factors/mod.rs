//! The conversion factors decompute applies (PUE, grid carbon intensity, water intensity,
//! CPU TDPs and power-model constants), loaded from the data files shipped under `data/`
//! (embedded at build time) or from a directory the user points at, each value carried with
//! its source and year so every printed figure can be traced.

pub mod cloud;
pub mod cpu_tdp;
pub mod zones;

use crate::csvdata::{self, CsvError};
use crate::units::{GramsPerKwh, LitresPerKwh};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use cpu_tdp::{TdpSource, TdpTable};
pub use zones::{ZoneError, ZoneRow, ZoneTable};

/// Source of the grid carbon intensity table.
pub const GRID_SOURCE: &str = "Ember and Energy Institute via Our World in Data (CC BY 4.0), \
    compiled in CodeCarbon 3.3.2 global_energy_mix.json";
/// Source of the water-intensity-of-electricity table.
pub const WATER_SOURCE: &str = "WRI, Reig et al. 2020, 'Guidance for calculating water use embedded in \
    purchased electricity', per-country factors as compiled in EcoLogits 0.11.3 electricity_mixes.json";

/// Where a value decompute used came from: an explicit value carried with it, never guessed
/// from a missing field or from the wording of its citation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "from")]
pub enum Origin {
    /// A command-line flag (`--pue`).
    Flag(String),
    /// An environment variable (`DECOMPUTE_ZONE`).
    Env(String),
    /// The user's config file, with its path and key.
    Config(String),
    /// The team's policy file, with its path.
    Policy(String),
    /// A table from `--data-dir`, with the file's path.
    DataDir(String),
    /// A table shipped with decompute (`data/grid_intensity.csv`).
    Shipped(String),
    /// A grid signal read during the run (`file:/run/grid`).
    Signal(String),
    /// Another tool's file the record was imported from (`CodeCarbon 3.3.2`).
    Imported(String),
    /// decompute's documented default when nothing was given.
    Default,
}

impl Origin {
    /// Whether a person gave this value (flag, environment, config or policy).
    pub fn given(&self) -> bool {
        matches!(
            self,
            Origin::Flag(_) | Origin::Env(_) | Origin::Config(_) | Origin::Policy(_)
        )
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(x) => write!(f, "{x}"),
            Origin::Env(x) => write!(f, "environment {x}"),
            Origin::Config(x) => write!(f, "config {x}"),
            Origin::Policy(x) => write!(f, "policy {x}"),
            Origin::DataDir(x) => write!(f, "data file {x}"),
            Origin::Shipped(x) => write!(f, "shipped {x}"),
            Origin::Signal(x) => write!(f, "grid signal {x}"),
            Origin::Imported(x) => write!(f, "imported from {x}"),
            Origin::Default => write!(f, "default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Given<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Given<T> {
    pub fn new(value: T, origin: Origin) -> Given<T> {
        Given { value, origin }
    }

    /// A value given with the command-line flag `flag`.
    pub fn flag(value: T, flag: &str) -> Given<T> {
        Given::new(value, Origin::Flag(flag.to_string()))
    }
}

/// A factor value with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    pub value: f64,
    pub unit: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<u32>,
    pub origin: Origin,
}

impl Factor {
    /// A factor from a table or the literature (origin: shipped data, by default).
    pub fn new(value: f64, unit: &str, source: impl Into<String>, year: Option<u32>) -> Factor {
        Factor {
            value,
            unit: unit.to_string(),
            source: source.into(),
            year,
            origin: Origin::Default,
        }
    }

    /// The same factor, marked with its origin.
    pub fn from(mut self, origin: Origin) -> Factor {
        self.origin = origin;
        self
    }

    /// A value a person gave: its citation says who and where.
    pub fn user(value: f64, unit: &str, origin: Origin) -> Factor {
        Factor {
            value,
            unit: unit.to_string(),
            source: format!("user value ({origin})"),
            year: None,
            origin,
        }
    }

    /// "source, year" for one-line explanations.
    pub fn cite(&self) -> String {
        match self.year {
            Some(y) => format!("{} ({y})", self.source),
            None => self.source.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error(transparent)]
    Cloud(#[from] cloud::CloudError),
    #[error("cannot read data file {path}: {error}; fix the path given by --data-dir / DECOMPUTE_DATA_DIR or unset it to use the shipped data")]
    Io { path: String, error: std::io::Error },
    #[error("{file}: missing constant '{key}'; add a row for it (see data/SOURCES.md)")]
    MissingConstant { file: String, key: String },
    #[error("{origin}: {what} {value} is out of range; {fix}")]
    OutOfRange {
        what: &'static str,
        value: f64,
        fix: &'static str,
        origin: Origin,
    },
    #[error(
        "{origin}: unknown PUE preset '{value}'; use a number from 1.0 to 4.0 or one of: {presets}"
    )]
    UnknownPueFrom {
        value: String,
        presets: String,
        origin: Origin,
    },
    #[error("--data-dir {0}: no such directory; create it (with the tables to substitute) or drop the option to use the shipped data")]
    NoDataDir(String),
}

/// The power-model constants from `data/constants.csv`.
#[derive(Debug, Clone)]
pub struct Constants {
    pub dram_w_per_gb: Factor,
    pub cpu_default_tdp_w: Factor,
    pub vcpu_min_w: Factor,
    pub vcpu_max_w: Factor,
    /// Load (0–1) to fraction-of-TDP points, ascending in load.
    pub cpu_curve: Vec<(f64, f64)>,
    pub cpu_curve_source: Factor,
    /// Model FLOP utilisation for training estimates: (default, low, high).
    pub mfu: (Factor, Factor, Factor),
    /// Average power as a fraction of rated power: (default, low, high).
    pub power_factor: (Factor, Factor, Factor),
    pub lifetime_years: Factor,
    pub lifetime_use: Factor,
}

/// A PUE preset from `data/pue.csv`.
#[derive(Debug, Clone)]
pub struct PuePreset {
    pub name: String,
    pub factor: Factor,
}

/// Every shipped (or substituted) table, each with its origin.
#[derive(Debug, Clone)]
pub struct FactorData {
    pub grid: ZoneTable,
    pub water: ZoneTable,
    pub cpu_tdp: TdpSource,
    pub pue: Vec<PuePreset>,
    pub constants: Constants,
    pub cloud: cloud::CloudTable,
    /// Origin of each table by file name (shipped, or a file of `--data-dir`).
    pub origins: Vec<(&'static str, Origin)>,
}

impl FactorData {
    /// Where the table `file` (e.g. `grid_intensity.csv`) came from.
    pub fn origin(&self, file: &str) -> Origin {
        self.origins
            .iter()
            .find(|(f, _)| *f == file)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| Origin::Shipped(format!("data/{file}")))
    }
}

const EMBEDDED: [(&str, &str); 7] = [
    (
        "grid_intensity.csv",
        include_str!("../../data/grid_intensity.csv"),
    ),
    (
        "water_intensity.csv",
        include_str!("../../data/water_intensity.csv"),
    ),
    ("cpu_tdp.csv", include_str!("../../data/cpu_tdp.csv")),
    ("pue.csv", include_str!("../../data/pue.csv")),
    ("constants.csv", include_str!("../../data/constants.csv")),
    (
        "cloud_regions.csv",
        include_str!("../../data/cloud_regions.csv"),
    ),
    (
        "cloud_providers.csv",
        include_str!("../../data/cloud_providers.csv"),
    ),
];

fn embedded_text(name: &str) -> &'static str {
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or("")
}

impl FactorData {
    /// The data compiled into the binary.
    pub fn embedded() -> Result<FactorData, FactorError> {
        Self::from_texts(|_| Ok(None), None)
    }

    /// Data from `dir`, file by file, falling back to the embedded copy for files absent there.
    pub fn from_dir(dir: &Path) -> Result<FactorData, FactorError> {
        if !dir.is_dir() {
            return Err(FactorError::NoDataDir(dir.display().to_string()));
        }
        let read = |name: &str| -> Result<Option<String>, FactorError> {
            let path = dir.join(name);
            match crate::infile::read_text(&path, crate::infile::DATA_LIMIT) {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(FactorError::Io {
                    path: path.display().to_string(),
                    error: std::io::Error::other(e.to_string()),
                }),
            }
        };
        // A user's own CPU table is validated now, so its errors come before the run.
        let tdp = read("cpu_tdp.csv")?
            .map(|t| TdpTable::parse("cpu_tdp.csv", &t))
            .transpose()?;
        let mut data = Self::from_texts(read, tdp)?;
        for (name, _) in EMBEDDED {
            let path = dir.join(name);
            if path.is_file() {
                data.origins
                    .push((name, Origin::DataDir(path.display().to_string())));
            }
        }
        let (g, w) = (
            data.origin("grid_intensity.csv"),
            data.origin("water_intensity.csv"),
        );
        let (k, po) = (data.origin("constants.csv"), data.origin("pue.csv"));
        data.grid.set_origin(g);
        data.water.set_origin(w);
        if let Origin::DataDir(_) = k {
            let c = &mut data.constants;
            for f in [
                &mut c.dram_w_per_gb,
                &mut c.cpu_default_tdp_w,
                &mut c.vcpu_min_w,
                &mut c.vcpu_max_w,
                &mut c.cpu_curve_source,
                &mut c.lifetime_years,
                &mut c.lifetime_use,
            ] {
                f.origin = k.clone();
            }
        }
        if let Origin::DataDir(_) = po {
            for p in &mut data.pue {
                p.factor.origin = po.clone();
            }
        }
        Ok(data)
    }

    /// `read` gives a file's text, or None for the shipped copy.
    fn from_texts(
        read: impl Fn(&str) -> Result<Option<String>, FactorError>,
        tdp: Option<TdpTable>,
    ) -> Result<FactorData, FactorError> {
        let zones = |name: &'static str, col: &'static str| -> Result<ZoneTable, FactorError> {
            Ok(match read(name)? {
                Some(t) => ZoneTable::parse(name, &t, col)?,
                None => ZoneTable::embedded(name, embedded_text(name), col),
            })
        };
        let grid = zones("grid_intensity.csv", "g_co2e_per_kwh")?;
        let water = zones("water_intensity.csv", "l_per_kwh")?;
        let read = |name: &str| -> Result<String, FactorError> {
            Ok(read(name)?.unwrap_or_else(|| embedded_text(name).to_string()))
        };
        let cpu_tdp = match tdp {
            Some(t) => TdpSource::Parsed(t),
            None => TdpSource::embedded(embedded_text("cpu_tdp.csv")),
        };
        let pue = parse_pue("pue.csv", &read("pue.csv")?)?;
        let constants = parse_constants("constants.csv", &read("constants.csv")?)?;
        let cloud =
            cloud::CloudTable::parse(&read("cloud_regions.csv")?, &read("cloud_providers.csv")?)?;
        Ok(FactorData {
            grid,
            water,
            cpu_tdp,
            pue,
            constants,
            cloud,
            origins: Vec::new(),
        })
    }
}

fn parse_pue(file: &str, text: &str) -> Result<Vec<PuePreset>, FactorError> {
    let t = csvdata::parse(file, text)?;
    let (nc, vc, yc, sc) = (
        t.column("preset")?,
        t.column("pue")?,
        t.column("year")?,
        t.column("source")?,
    );
    let mut out = Vec::new();
    for (line, r) in &t.rows {
        let v = t.float(*line, r, vc)?;
        if !(1.0..=4.0).contains(&v) {
            return Err(t
                .row_error(*line, format!("PUE {v} outside 1.0–4.0"))
                .into());
        }
        out.push(PuePreset {
            name: r[nc].trim().to_string(),
            factor: Factor::new(v, "", r[sc].trim(), r[yc].trim().parse().ok())
                .from(Origin::Shipped("data/pue.csv".into())),
        });
    }
    Ok(out)
}

fn parse_constants(file: &str, text: &str) -> Result<Constants, FactorError> {
    let t = csvdata::parse(file, text)?;
    let (kc, vc, uc, yc, sc) = (
        t.column("key")?,
        t.column("value")?,
        t.column("unit")?,
        t.column("year")?,
        t.column("source")?,
    );
    let mut all = Vec::new();
    for (line, r) in &t.rows {
        let v = t.float(*line, r, vc)?;
        if !(0.0..=1e6).contains(&v) {
            return Err(t
                .row_error(*line, format!("constant {v} is outside 0–1e6"))
                .into());
        }
        all.push((
            r[kc].trim().to_string(),
            Factor::new(v, r[uc].trim(), r[sc].trim(), r[yc].trim().parse().ok())
                .from(Origin::Shipped("data/constants.csv".into())),
        ));
    }
    let get = |key: &str| {
        all.iter()
            .find(|(k, _)| k == key)
            .map(|(_, f)| f.clone())
            .ok_or_else(|| FactorError::MissingConstant {
                file: file.to_string(),
                key: key.to_string(),
            })
    };
    let mut curve: Vec<(f64, f64)> = all
        .iter()
        .filter_map(|(k, f)| {
            k.strip_prefix("cpu_curve_")
                .and_then(|p| p.parse::<f64>().ok())
                .map(|pct| (pct / 100.0, f.value))
        })
        .collect();
    curve.sort_by(|a, b| a.0.total_cmp(&b.0));
    if curve.len() < 2 || curve[0].0 != 0.0 || curve[curve.len() - 1].0 != 1.0 {
        return Err(FactorError::MissingConstant {
            file: file.to_string(),
            key: "cpu_curve_0 … cpu_curve_100 (a load curve from 0 % to 100 %)".into(),
        });
    }
    Ok(Constants {
        dram_w_per_gb: get("dram_w_per_gb")?,
        cpu_default_tdp_w: get("cpu_default_tdp_w")?,
        vcpu_min_w: get("vcpu_min_w")?,
        vcpu_max_w: get("vcpu_max_w")?,
        cpu_curve_source: get("cpu_curve_0")?,
        cpu_curve: curve,
        mfu: (get("mfu_default")?, get("mfu_low")?, get("mfu_high")?),
        power_factor: (
            get("power_factor_default")?,
            get("power_factor_low")?,
            get("power_factor_high")?,
        ),
        lifetime_years: get("embodied_lifetime_years")?,
        lifetime_use: get("embodied_utilisation")?,
    })
}

/// What the user asked for, each value with where it came from; `None` means "the default".
#[derive(Debug, Clone, Default)]
pub struct ConversionRequest {
    pub zone: Option<Given<String>>,
    pub pue: Option<Given<String>>,
    pub grid_intensity: Option<Given<f64>>,
    pub wue: Option<Given<f64>>,
    pub ewif: Option<Given<f64>>,
}

/// The factors that turn IT energy into facility energy, carbon and water.
#[derive(Debug, Clone, Serialize)]
pub struct Conversion {
    pub zone: String,
    pub zone_name: String,
    /// Set when the zone was not chosen by the user (WORLD by default), or other caveats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub pue: Factor,
    pub grid: Factor,
    pub wue: Factor,
    pub ewif: Factor,
    /// The cloud region the zone named, if it named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<cloud::Region>,
}

impl Conversion {
    pub fn grid_intensity(&self) -> GramsPerKwh {
        GramsPerKwh(self.grid.value)
    }
    pub fn wue(&self) -> LitresPerKwh {
        LitresPerKwh(self.wue.value)
    }
    pub fn ewif(&self) -> LitresPerKwh {
        LitresPerKwh(self.ewif.value)
    }
}

/// Resolves the factors for a request: the user's values win, then the zone's table rows.
pub fn resolve(data: &FactorData, req: &ConversionRequest) -> Result<Conversion, FactorError> {
    let mut notes = Vec::new();
    let zone_text = match &req.zone {
        Some(z) if !z.value.trim().is_empty() => z.value.clone(),
        _ => {
            notes.push(
                "no zone given: using the WORLD average; pass --zone (ISO 3166 code) or set DECOMPUTE_ZONE".into(),
            );
            "WORLD".to_string()
        }
    };
    let region = data.cloud.find(&zone_text).transpose()?;
    let provider = region
        .as_ref()
        .and_then(|r| data.cloud.provider(&r.provider));
    let grid_row = match &region {
        Some(r) => data.grid.get(r.grid_zone())?,
        None => data.grid.get(&zone_text)?,
    };
    let grid = match &req.grid_intensity {
        Some(g) => {
            check_range(
                "grid intensity (gCO2e/kWh)",
                g,
                0.0,
                3000.0,
                "give gCO2e/kWh, 0 to 3000",
            )?;
            Factor::user(g.value, "gCO2e/kWh", g.origin.clone())
        }
        None => Factor::new(
            grid_row.value,
            "gCO2e/kWh",
            data.grid.source_of(&grid_row, GRID_SOURCE),
            grid_row.year,
        )
        .from(data.origin("grid_intensity.csv")),
    };
    let ewif = match &req.ewif {
        Some(v) => {
            check_range("EWIF (L/kWh)", v, 0.0, 100.0, "give L/kWh, 0 to 100")?;
            Factor::user(v.value, "L/kWh", v.origin.clone())
        }
        None => {
            // A subdivision (US-VA) has its country's water factor.
            let country = match grid_row.code.split_once('-') {
                Some((a2, _)) if grid_row.basis == "subdivision" => a2.to_string(),
                _ => grid_row.code.clone(),
            };
            let row = data
                .water
                .get(&country)
                .or_else(|_| data.water.get("WORLD"))?;
            let base = data.water.source_of(&row, WATER_SOURCE);
            let src = if row.basis == "world-default" {
                notes.push(format!(
                    "no country water intensity for {}: the world value is used (WRI has none for it)",
                    grid_row.code
                ));
                format!("{base}; world value, none published for {}", grid_row.code)
            } else {
                base
            };
            Factor::new(row.value, "L/kWh", src, row.year.or(Some(2020)))
                .from(data.origin("water_intensity.csv"))
        }
    };
    let wue = match &req.wue {
        Some(v) => {
            check_range(
                "WUE (L/kWh)",
                v,
                0.0,
                20.0,
                "give L/kWh of IT energy, 0 to 20",
            )?;
            Factor::user(v.value, "L/kWh", v.origin.clone())
        }
        None => match provider {
            Some(p) => match &p.wue {
                Some((v, y, src)) => Factor::new(*v, "L/kWh", format!("{}: {src}", p.name), Some(*y))
                    .from(data.origin("cloud_providers.csv")),
                None => {
                    notes.push(format!(
                        "{}: {}; on-site water is not counted: pass --wue",
                        p.name, p.missing
                    ));
                    Factor::new(
                        0.0,
                        "L/kWh",
                        format!("not counted: {} ({}); pass --wue", p.missing, p.name),
                        None,
                    )
                }
            },
            None => Factor::new(
                0.0,
                "L/kWh",
                "default: no on-site cooling water (a personal machine); pass --wue for a data centre",
                None,
            ),
        },
    };
    let pue = match (
        req.pue.as_ref(),
        provider.and_then(|p| p.pue.as_ref().map(|x| (p, x))),
    ) {
        (None, Some((p, (v, y, src)))) => {
            Factor::new(*v, "", format!("{}: {src}", p.name), Some(*y))
                .from(data.origin("cloud_providers.csv"))
        }
        (given, _) => resolve_pue(data, given)?,
    };
    let zone_name = match &region {
        Some(r) => format!("{} — {} ({})", grid_row.name, r.key(), r.location),
        None => grid_row.name.clone(),
    };
    Ok(Conversion {
        zone: grid_row.code.clone(),
        zone_name,
        notes,
        pue,
        grid,
        wue,
        ewif,
        cloud: region,
    })
}

/// A PUE from a preset name or a number; the `personal` preset when nothing was given.
pub fn resolve_pue(
    data: &FactorData,
    given: Option<&Given<String>>,
) -> Result<Factor, FactorError> {
    let (text, origin) = match given {
        Some(g) => (g.value.trim(), g.origin.clone()),
        None => match data.pue.iter().find(|p| p.name == "personal") {
            Some(_) => ("personal", Origin::Default),
            // A substituted pue.csv without the default preset: a personal machine has no
            // facility around it, PUE 1 by definition.
            None => {
                return Ok(Factor::new(
                    1.0,
                    "",
                    "default: a personal machine, no facility overhead (PUE 1 by definition)",
                    None,
                ))
            }
        },
    };
    if let Ok(v) = text.parse::<f64>() {
        check_range("PUE", &Given::new(v, origin.clone()), 1.0, 4.0, "PUE is facility energy / IT energy: give a number from 1.0 to 4.0 or a preset (see `decompute factors`)")?;
        return Ok(Factor::user(v, "", origin));
    }
    data.pue
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(text))
        .map(|p| {
            let mut f = p.factor.clone();
            f.source = format!("preset '{}': {}", p.name, f.source);
            if origin.given() {
                // Chosen by a person: the preset's own table stays the source of the number.
                f.source = format!("{} (chosen with {origin})", f.source);
                f.origin = origin.clone();
            }
            f
        })
        .ok_or_else(|| FactorError::UnknownPueFrom {
            value: crate::term::escape(text),
            presets: data
                .pue
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            origin,
        })
}

fn check_range(
    what: &'static str,
    v: &Given<f64>,
    lo: f64,
    hi: f64,
    fix: &'static str,
) -> Result<(), FactorError> {
    if v.value.is_finite() && v.value >= lo && v.value <= hi {
        Ok(())
    } else {
        Err(FactorError::OutOfRange {
            what,
            value: v.value,
            fix,
            origin: v.origin.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> FactorData {
        FactorData::embedded().expect("shipped data parses")
    }

    #[test]
    fn shipped_tables_cover_about_two_hundred_countries() {
        let d = data();
        assert!(d.grid.rows().len() >= 200, "{}", d.grid.rows().len());
        assert!(d.water.rows().len() >= 200);
        assert!(d.grid.rows().iter().all(|r| r.year.is_some()));
        assert_eq!(d.constants.cpu_curve.first(), Some(&(0.0, 0.12)));
    }

    #[test]
    fn resolves_zone_defaults_and_overrides() {
        let d = data();
        let c = resolve(
            &d,
            &ConversionRequest {
                zone: Some(Given::flag("fr".into(), "--zone")),
                ..Default::default()
            },
        )
        .expect("FR");
        assert_eq!(c.zone, "FRA");
        assert_eq!(c.grid.value, 56.0);
        assert_eq!(c.pue.value, 1.0);
        assert_eq!(c.wue.value, 0.0);
        assert!(c.notes.is_empty());
        let w = resolve(&d, &ConversionRequest::default()).expect("world");
        assert_eq!(w.zone, "WORLD");
        assert!(w.notes[0].contains("WORLD"));
        let u = resolve(
            &d,
            &ConversionRequest {
                zone: Some(Given::flag("DE".into(), "--zone")),
                grid_intensity: Some(Given::flag(100.0, "--grid-intensity")),
                pue: Some(Given::flag("hyperscale".into(), "--pue")),
                ..Default::default()
            },
        )
        .expect("override");
        assert_eq!(u.grid.value, 100.0);
        assert_eq!(u.grid.source, "user value (--grid-intensity)");
        assert_eq!(u.grid.origin, Origin::Flag("--grid-intensity".into()));
        assert_eq!(u.pue.value, 1.10);
        assert!(
            u.pue.source.contains("preset 'hyperscale'"),
            "{}",
            u.pue.source
        );
        assert!(
            u.pue.source.contains("chosen with --pue"),
            "{}",
            u.pue.source
        );
        // Without --pue, the default preset says it is the default.
        assert_eq!(c.pue.origin, Origin::Shipped("data/pue.csv".into()));
    }

    #[test]
    fn absurd_values_are_refused_with_the_fix() {
        let d = data();
        for (pue, ok) in [
            ("0.8", false),
            ("1.2", true),
            ("9", false),
            ("cloud", false),
            ("average", true),
        ] {
            assert_eq!(
                resolve_pue(&d, Some(&Given::flag(pue.to_string(), "--pue"))).is_ok(),
                ok,
                "{pue}"
            );
        }
        let e = resolve(
            &d,
            &ConversionRequest {
                grid_intensity: Some(Given::flag(-5.0, "--grid-intensity")),
                ..Default::default()
            },
        )
        .expect_err("neg");
        assert!(e.to_string().contains("--grid-intensity"), "{e}");
        // A bad value from the config file is blamed on the config file, not a flag.
        let e = resolve(
            &d,
            &ConversionRequest {
                wue: Some(Given::new(
                    50.0,
                    Origin::Config("/home/a/config.toml: wue".into()),
                )),
                ..Default::default()
            },
        )
        .expect_err("config");
        assert!(
            e.to_string().starts_with("config /home/a/config.toml: wue"),
            "{e}"
        );
        assert!(!e.to_string().contains("--"), "{e}");
    }

    #[test]
    fn a_data_dir_overrides_file_by_file() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join("pue.csv"),
            "preset,pue,year,source\nlab,1.3,2025,our meter\n",
        )
        .expect("write");
        let d = FactorData::from_dir(dir.path()).expect("loads");
        let lab = resolve_pue(&d, Some(&Given::flag("lab".into(), "--pue"))).expect("lab");
        assert_eq!(lab.value, 1.3);
        assert!(matches!(lab.origin, Origin::Flag(_)));
        assert!(d.grid.rows().len() > 200);
        std::fs::write(
            dir.path().join("grid_intensity.csv"),
            "zone,alpha2,name,g_co2e_per_kwh,year,basis\nFRA,FR,France,42,2025,country\n",
        )
        .expect("write");
        let d = FactorData::from_dir(dir.path()).expect("loads");
        let c = resolve(
            &d,
            &ConversionRequest {
                zone: Some(Given::flag("FR".into(), "--zone")),
                ..Default::default()
            },
        )
        .expect("FR");
        assert_eq!(c.grid.value, 42.0);
        assert!(matches!(c.grid.origin, Origin::DataDir(_)));
        assert!(!c.grid.source.contains("Ember"), "{}", c.grid.source);
        assert!(c.grid.source.contains("--data-dir"), "{}", c.grid.source);
        // A table value beyond any real grid is refused.
        std::fs::write(
            dir.path().join("grid_intensity.csv"),
            "zone,alpha2,name,g_co2e_per_kwh,year,basis\nFRA,FR,France,1e308,2025,country\n",
        )
        .expect("write");
        assert!(FactorData::from_dir(dir.path()).is_err());
        assert!(matches!(
            FactorData::from_dir(&dir.path().join("missing")),
            Err(FactorError::NoDataDir(_))
        ));
        std::fs::write(dir.path().join("grid_intensity.csv"), "zone,alpha2\nFRA\n").expect("write");
        let e = FactorData::from_dir(dir.path()).expect_err("malformed");
        assert!(e.to_string().contains("grid_intensity.csv: line 2"), "{e}");
    }
}

//! Per-zone factor tables (grid carbon intensity, water intensity of electricity): parsing
//! from CSV text and forgiving lookup by ISO 3166 alpha-3, alpha-2 or country name, with
//! close matches offered when a zone is unknown.

use crate::csvdata::{self, CsvError};

/// One zone's value with the year it describes and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneRow {
    /// ISO 3166-1 alpha-3 code, or `WORLD`.
    pub code: String,
    pub alpha2: String,
    pub name: String,
    pub value: f64,
    pub year: Option<u32>,
    /// `country`, `derived`, `world-default`...: whether the value is the country's own.
    pub basis: String,
    /// The row's own citation, when its table has a `source` column.
    pub source: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ZoneError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("unknown zone '{zone}'; {hint}")]
    Unknown { zone: String, hint: String },
}

#[derive(Debug, Clone)]
pub struct ZoneTable {
    rows: std::sync::Arc<std::sync::OnceLock<Vec<ZoneRow>>>,
    /// Where the table came from (shipped, or a `--data-dir` file).
    origin: Option<super::Origin>,
    /// For the shipped tables: the text, parsed only when a lookup needs it (every run
    /// looks up one zone; parsing ~215 rows would cost a millisecond of each).
    lazy: Option<(&'static str, &'static str, &'static str)>,
}

impl ZoneTable {
    /// A shipped table, validated by the test suite and parsed on demand.
    pub fn embedded(file: &'static str, text: &'static str, value_col: &'static str) -> ZoneTable {
        ZoneTable {
            rows: Default::default(),
            origin: None,
            lazy: Some((file, text, value_col)),
        }
    }

    /// Marks the table as coming from `origin` (a file of `--data-dir`).
    pub fn set_origin(&mut self, origin: super::Origin) {
        self.origin = Some(origin);
    }

    /// The citation of a row: its own `source` cell; else, for a substituted table, the
    /// file it came from (never the shipped table's source); else `shipped`.
    pub fn source_of(&self, row: &ZoneRow, shipped: &str) -> String {
        if let Some(s) = &row.source {
            return s.clone();
        }
        match &self.origin {
            Some(super::Origin::DataDir(path)) => {
                format!("{path} (substituted with --data-dir; the table has no source column)")
            }
            _ if row.basis == "derived" => {
                format!(
                    "{shipped}; {} = generation-weighted mean of the country rows",
                    row.code
                )
            }
            _ => shipped.to_string(),
        }
    }

    /// Every row (parsing a lazy table now).
    pub fn rows(&self) -> &[ZoneRow] {
        self.rows.get_or_init(|| match self.lazy {
            Some((file, text, col)) => Self::parse(file, text, col)
                .map(|t| t.rows().to_vec())
                .unwrap_or_default(),
            None => Vec::new(),
        })
    }

    /// A lazy table's row for a code, parsing only the header and that line.
    fn quick(&self, up: &str) -> Option<ZoneRow> {
        let (file, text, col) = self.lazy?;
        if self.rows.get().is_some() {
            return None;
        }
        let header = text.lines().next()?;
        let line = text.lines().skip(1).find(|l| {
            let mut it = l.split(',');
            let (code, a2) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            code.eq_ignore_ascii_case(up) || (!a2.is_empty() && a2.eq_ignore_ascii_case(up))
        })?;
        Self::parse(file, &format!("{header}\n{line}\n"), col)
            .ok()?
            .rows()
            .first()
            .cloned()
    }
    /// Parses a table with columns `zone,alpha2,name,<value_col>[,year],basis`. Values must be
    /// finite and non-negative.
    pub fn parse(file: &str, text: &str, value_col: &str) -> Result<ZoneTable, ZoneError> {
        let t = csvdata::parse(file, text)?;
        let (zc, ac, nc, vc, bc) = (
            t.column("zone")?,
            t.column("alpha2")?,
            t.column("name")?,
            t.column(value_col)?,
            t.column("basis")?,
        );
        let yc = t.column("year").ok();
        let sc = t.column("source").ok();
        // A grid intensity above 3000 g/kWh or a water intensity above 1000 L/kWh is no
        // grid on earth: a table holding one is wrong, not extreme.
        let max = if value_col.starts_with('g') {
            3000.0
        } else {
            1000.0
        };
        let mut rows = Vec::with_capacity(t.rows.len());
        for (line, r) in &t.rows {
            let value = t.float(*line, r, vc)?;
            if !(0.0..=max).contains(&value) {
                return Err(t
                    .row_error(*line, format!("{value_col} {value} is outside 0–{max}"))
                    .into());
            }
            let year = match yc {
                Some(c) if !r[c].trim().is_empty() => Some(t.year(*line, r, c)?),
                _ => None,
            };
            let code = r[zc].trim().to_ascii_uppercase();
            if code.is_empty() {
                return Err(t.row_error(*line, "empty zone code").into());
            }
            rows.push(ZoneRow {
                code,
                alpha2: r[ac].trim().to_ascii_uppercase(),
                name: r[nc].trim().to_string(),
                value,
                year,
                basis: r[bc].trim().to_string(),
                source: sc
                    .map(|c| r[c].trim().to_string())
                    .filter(|s| !s.is_empty()),
            });
        }
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(rows);
        Ok(ZoneTable {
            rows: std::sync::Arc::new(cell),
            origin: None,
            lazy: None,
        })
    }

    /// Finds a zone by alpha-3, alpha-2 or exact name, ignoring case. The codes people use
    /// that ISO 3166 does not (UK for GB, EL for Greece in EU statistics) are accepted.
    pub fn get(&self, zone: &str) -> Result<ZoneRow, ZoneError> {
        let z = zone.trim();
        let mut up = z.to_ascii_uppercase();
        if let Some((_, iso)) = ALIASES.iter().find(|(a, _)| *a == up) {
            up = (*iso).to_string();
        }
        if let Some(r) = self.quick(&up) {
            return Ok(r);
        }
        self.rows()
            .iter()
            .find(|r| r.code == up || (!r.alpha2.is_empty() && r.alpha2 == up))
            .or_else(|| self.rows().iter().find(|r| r.name.eq_ignore_ascii_case(z)))
            .cloned()
            .ok_or_else(|| ZoneError::Unknown {
                zone: z.to_string(),
                hint: self.hint(z),
            })
    }

    fn hint(&self, zone: &str) -> String {
        let matches = self.close_matches(zone, 5);
        if matches.is_empty() {
            "use an ISO 3166 country code (FR or FRA) or WORLD; `decompute factors --zones` lists them".into()
        } else {
            format!(
                "did you mean {}? (`decompute factors --zones` lists all)",
                matches.join(", ")
            )
        }
    }

    /// Up to `n` zones whose code, alpha-2 or name is close to `zone`.
    pub fn close_matches(&self, zone: &str, n: usize) -> Vec<String> {
        let z = zone.to_ascii_lowercase();
        let mut scored: Vec<(usize, String)> = self
            .rows()
            .iter()
            .filter_map(|r| {
                let name = r.name.to_ascii_lowercase();
                let d = [
                    edit_distance(&z, &r.code.to_ascii_lowercase()),
                    if r.alpha2.is_empty() {
                        usize::MAX
                    } else {
                        edit_distance(&z, &r.alpha2.to_ascii_lowercase())
                    },
                    if z.len() >= 3 && name.contains(&z) {
                        0
                    } else {
                        edit_distance(&z, &name)
                    },
                ]
                .into_iter()
                .min()
                .unwrap_or(usize::MAX);
                let limit = if z.len() <= 3 { 1 } else { 2 };
                (d <= limit).then(|| (d, format!("{} ({})", r.code, r.name)))
            })
            .collect();
        scored.sort();
        scored.into_iter().take(n).map(|(_, s)| s).collect()
    }
}

/// Codes in common use that are not the ISO 3166 alpha-2 of their country.
const ALIASES: &[(&str, &str)] = &[("UK", "GB"), ("EL", "GR")];

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "zone,alpha2,name,g_co2e_per_kwh,year,basis\n\
        WORLD,,World,480.6,2023,derived\n\
        FRA,FR,France,56.0,2023,country\n\
        FIN,FI,Finland,79.2,2023,country\n\
        DEU,DE,Germany,380.9,2023,country\n";

    #[test]
    fn finds_by_any_code_or_name() {
        let t = ZoneTable::parse("g.csv", T, "g_co2e_per_kwh").expect("parses");
        assert_eq!(t.get("fr").expect("alpha2").value, 56.0);
        assert_eq!(t.get("FRA").expect("alpha3").year, Some(2023));
        assert_eq!(t.get("germany").expect("name").code, "DEU");
        assert_eq!(t.get("world").expect("world").basis, "derived");
    }

    #[test]
    fn unknown_zone_lists_close_matches() {
        let t = ZoneTable::parse("g.csv", T, "g_co2e_per_kwh").expect("parses");
        let msg = t.get("FRN").expect_err("unknown").to_string();
        assert!(msg.contains("FRA (France)"), "{msg}");
        assert!(msg.contains("FIN (Finland)"), "{msg}");
        let msg = t.get("Atlantis").expect_err("unknown").to_string();
        assert!(msg.contains("ISO 3166"), "{msg}");
    }

    #[test]
    fn malformed_tables_name_the_line() {
        let bad = "zone,alpha2,name,g_co2e_per_kwh,year,basis\nFRA,FR,France,lots,2023,country\n";
        let msg = ZoneTable::parse("g.csv", bad, "g_co2e_per_kwh")
            .expect_err("bad")
            .to_string();
        assert_eq!(
            msg,
            "g.csv: line 2: 'lots' in column 'g_co2e_per_kwh' is not a number"
        );
        let neg = "zone,alpha2,name,g_co2e_per_kwh,year,basis\nFRA,FR,France,-1,2023,country\n";
        assert!(ZoneTable::parse("g.csv", neg, "g_co2e_per_kwh").is_err());
    }

    #[test]
    fn common_aliases() {
        let t = ZoneTable::parse(
            "g.csv",
            "zone,alpha2,name,g_co2e_per_kwh,year,basis\nGBR,GB,United Kingdom,200,2023,country\nGRC,GR,Greece,300,2023,country\n",
            "g_co2e_per_kwh",
        )
        .expect("parses");
        assert_eq!(t.get("UK").expect("UK is GB").code, "GBR");
        assert_eq!(t.get("uk").expect("uk").code, "GBR");
        assert_eq!(t.get("EL").expect("EU code for Greece").code, "GRC");
    }

    proptest::proptest! {
        #[test]
        fn lookups_never_panic(z in "\\PC{0,12}") {
            let t = ZoneTable::parse("g.csv", T, "g_co2e_per_kwh").expect("parses");
            let _ = t.get(&z);
        }

        #[test]
        fn tables_never_panic(s in "\\PC{0,200}") {
            let _ = ZoneTable::parse("g.csv", &format!("zone,alpha2,name,v,year,basis\n{s}"), "v");
        }
    }
}

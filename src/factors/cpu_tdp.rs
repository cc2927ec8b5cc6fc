//! The CPU TDP table (`data/cpu_tdp.csv`) and the matching of a `/proc/cpuinfo` model name
//! against it. Marketing names carry noise ("(R)", "CPU @ 2.50GHz"); we normalise both sides
//! and require the model number to match, so "AMD EPYC" alone never borrows a random EPYC's TDP.

use crate::csvdata::{self, CsvError};
use crate::units::Watts;

#[derive(Debug, Clone)]
pub struct TdpTable {
    rows: Vec<(String, Watts)>,
}

/// The shipped table, parsed on first use: most runs (a VM, RAPL, `--cpu-tdp`) never
/// look a CPU up, and parsing ~5,000 rows would cost a few milliseconds of every run.
#[derive(Debug, Clone)]
pub enum TdpSource {
    Embedded(&'static str, std::sync::Arc<std::sync::OnceLock<TdpTable>>),
    Parsed(TdpTable),
}

impl TdpSource {
    pub fn embedded(text: &'static str) -> TdpSource {
        TdpSource::Embedded(text, Default::default())
    }

    /// The table; the embedded copy is validated by the test suite, so a parse failure
    /// there yields an empty table (every CPU then gets the default TDP) rather than a panic.
    pub fn table(&self) -> &TdpTable {
        match self {
            TdpSource::Parsed(t) => t,
            TdpSource::Embedded(text, cell) => cell.get_or_init(|| {
                TdpTable::parse("cpu_tdp.csv", text).unwrap_or(TdpTable { rows: Vec::new() })
            }),
        }
    }
}

impl TdpTable {
    pub fn parse(file: &str, text: &str) -> Result<TdpTable, CsvError> {
        let t = csvdata::parse(file, text)?;
        let (mc, tc) = (t.column("model")?, t.column("tdp_w")?);
        let mut rows = Vec::with_capacity(t.rows.len());
        for (line, r) in &t.rows {
            let tdp = t.float(*line, r, tc)?;
            if tdp <= 0.0 {
                return Err(t.row_error(*line, format!("TDP must be positive, got {tdp}")));
            }
            rows.push((r[mc].trim().to_string(), Watts(tdp)));
        }
        Ok(TdpTable { rows })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table entry matching a cpuinfo model name: an exact normalised match, else the most
    /// specific entry all of whose tokens (including a model number) appear in the name.
    /// Rows are normalised here, not at parse time: most runs never look a CPU up.
    pub fn lookup(&self, cpuinfo_model: &str) -> Option<(&str, Watts)> {
        let want = normalise(cpuinfo_model);
        if want.is_empty() {
            return None;
        }
        let mut best: Option<(usize, &str, Watts)> = None;
        for (name, w) in &self.rows {
            let t = normalise(name);
            if t == want {
                return Some((name, *w));
            }
            let specific = t.iter().any(|tok| tok.chars().any(|c| c.is_ascii_digit()));
            if specific && t.iter().all(|tok| want.contains(tok)) {
                let score = t.iter().map(String::len).sum::<usize>();
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, name, *w));
                }
            }
        }
        best.map(|(_, name, w)| (name, w))
    }
}

/// Lower-case tokens without trademark marks, clock speeds and filler words.
pub fn normalise(name: &str) -> Vec<String> {
    let cleaned = name
        .replace("(R)", " ")
        .replace("(r)", " ")
        .replace("(TM)", " ")
        .replace("(tm)", " ")
        .replace(['®', '™'], " ");
    let before_at = cleaned.split('@').next().unwrap_or("");
    before_at
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(str::to_ascii_lowercase)
        .filter(|t| {
            !t.is_empty()
                && !matches!(
                    t.as_str(),
                    "cpu" | "processor" | "with" | "radeon" | "graphics"
                )
                && !t.ends_with("-core")
                && !t.ends_with("ghz")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str =
        "model,tdp_w\nIntel Xeon Platinum 8175M,240\nAMD EPYC 7763,280\nAMD EPYC 7B13,240\n\
        Intel Core i7-8700,65\nIntel Core i7-8700K,95\n\"AMD Ryzen 7 5800X, boxed\",105\n";

    #[test]
    fn matches_cpuinfo_names() {
        let t = TdpTable::parse("cpu.csv", T).expect("parses");
        let cases = [
            ("Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz", Some(240.0)),
            ("AMD EPYC 7763 64-Core Processor", Some(280.0)),
            ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", Some(95.0)),
            ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", Some(65.0)),
            ("AMD EPYC", None),
            ("", None),
            ("QEMU Virtual CPU version 2.5+", None),
        ];
        for (name, tdp) in cases {
            assert_eq!(t.lookup(name).map(|(_, w)| w.0), tdp, "{name}");
        }
    }

    #[test]
    fn shipped_table_parses_and_matches() {
        let t =
            TdpTable::parse("cpu_tdp.csv", include_str!("../../data/cpu_tdp.csv")).expect("parses");
        assert!(t.len() > 4000);
        assert!(t.lookup("AMD EPYC 7763 64-Core Processor").is_some());
    }
}

//! The CPU TDP table (`data/cpu_tdp.csv`) and the matching of a `/proc/cpuinfo` model name
//! against it. Marketing names carry noise ("(R)", "CPU @ 2.50GHz"); we normalise both sides
//! and require the model number to match, so "AMD EPYC" alone never borrows a random EPYC's TDP.

use crate::csvdata::{self, CsvError};
use crate::units::Watts;

#[derive(Debug, Clone)]
pub struct TdpTable {
    rows: Vec<(String, Vec<String>, Watts)>,
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
            let name = r[mc].trim().to_string();
            let tokens = normalise(&name);
            rows.push((name, tokens, Watts(tdp)));
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
    pub fn lookup(&self, cpuinfo_model: &str) -> Option<(&str, Watts)> {
        let want = normalise(cpuinfo_model);
        if want.is_empty() {
            return None;
        }
        if let Some((name, _, w)) = self.rows.iter().find(|(_, t, _)| *t == want) {
            return Some((name, *w));
        }
        self.rows
            .iter()
            .filter(|(_, t, _)| {
                t.iter().any(|tok| tok.chars().any(|c| c.is_ascii_digit()))
                    && t.iter().all(|tok| want.contains(tok))
            })
            .max_by_key(|(_, t, _)| t.iter().map(String::len).sum::<usize>())
            .map(|(name, _, w)| (name.as_str(), *w))
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

//! The accelerator table (`data/hardware.csv`): peak dense 16-bit FLOP/s (never the sparse
//! marketing figure), rated power, memory and, where published, embodied carbon. Keys are
//! forgiving (`h100`, `H100-SXM5-80GB`), and an unknown key lists close matches.

use crate::csvdata::{self, CsvError};
use crate::factors::zones::edit_distance;

#[derive(Debug, Clone, PartialEq)]
pub struct Accelerator {
    pub key: String,
    pub name: String,
    pub aliases: Vec<String>,
    /// Peak dense BF16/FP16 tensor throughput, FLOP/s.
    pub peak_flops: f64,
    pub power_w: f64,
    pub memory_gb: f64,
    pub embodied_kg: Option<f64>,
    pub embodied_source: String,
    /// `S` cross-checked against a secondary source, `U` datasheet value not re-read here.
    pub check: String,
    pub source: String,
    /// The model FLOP utilisation published runs on this generation reached: (default, low,
    /// high, source); `None` where none is published (the general default applies).
    pub mfu: Option<(f64, f64, f64, String)>,
    /// Measured GPU energy per output token relative to the H100 at the same model and
    /// batch, with its source; `None` where unmeasured (then scaled by power ÷ peak).
    pub infer_vs_h100: Option<(f64, String)>,
    /// Average power per device measured in published training runs: (value, low, high,
    /// source); `None` where none is published (rated power × the utilisation factor).
    pub train_power: Option<(f64, f64, f64, String)>,
}

#[derive(Debug, Clone)]
pub struct HardwareTable {
    pub rows: Vec<Accelerator>,
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

impl HardwareTable {
    pub fn parse(text: &str) -> Result<HardwareTable, CsvError> {
        let t = csvdata::parse("hardware.csv", text)?;
        let c = |n: &str| t.column(n);
        let (k, n, a, f, p, m, e, es, ch, s) = (
            c("key")?,
            c("name")?,
            c("aliases")?,
            c("dense_tflops_16bit")?,
            c("power_w")?,
            c("memory_gb")?,
            c("embodied_kgco2e")?,
            c("embodied_source")?,
            c("check")?,
            c("source")?,
        );
        let mfu_cols = (
            c("mfu").ok(),
            c("mfu_low").ok(),
            c("mfu_high").ok(),
            c("mfu_source").ok(),
        );
        let ratio_cols = (c("infer_vs_h100").ok(), c("infer_vs_h100_source").ok());
        let power_cols = (
            c("train_power_w").ok(),
            c("train_power_low").ok(),
            c("train_power_high").ok(),
            c("train_power_source").ok(),
        );
        let mut rows = Vec::new();
        for (line, r) in &t.rows {
            let tflops = t.float(*line, r, f)?;
            let power = t.float(*line, r, p)?;
            if tflops <= 0.0 || power <= 0.0 {
                return Err(t.row_error(*line, "throughput and power must be positive"));
            }
            rows.push(Accelerator {
                key: r[k].trim().to_string(),
                name: r[n].trim().to_string(),
                aliases: r[a]
                    .split(';')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect(),
                peak_flops: tflops * 1e12,
                power_w: power,
                memory_gb: t.float(*line, r, m)?,
                embodied_kg: if r[e].trim().is_empty() {
                    None
                } else {
                    Some(t.float(*line, r, e)?)
                },
                embodied_source: r[es].trim().to_string(),
                check: r[ch].trim().to_string(),
                source: r[s].trim().to_string(),
                mfu: match mfu_cols {
                    (Some(v), Some(lo), Some(hi), Some(src)) if !r[v].trim().is_empty() => {
                        let (v, lo, hi) = (
                            t.float(*line, r, v)?,
                            t.float(*line, r, lo)?,
                            t.float(*line, r, hi)?,
                        );
                        if !(0.0 < lo && lo <= v && v <= hi && hi <= 1.0) {
                            return Err(
                                t.row_error(*line, "MFU needs 0 < mfu_low ≤ mfu ≤ mfu_high ≤ 1")
                            );
                        }
                        Some((v, lo, hi, r[src].trim().to_string()))
                    }
                    _ => None,
                },
                infer_vs_h100: match ratio_cols {
                    (Some(v), Some(src)) if !r[v].trim().is_empty() => {
                        let x = t.float(*line, r, v)?;
                        if !(0.05..=20.0).contains(&x) {
                            return Err(t.row_error(*line, "infer_vs_h100 outside 0.05–20"));
                        }
                        Some((x, r[src].trim().to_string()))
                    }
                    _ => None,
                },
                train_power: match power_cols {
                    (Some(v), Some(lo), Some(hi), Some(src)) if !r[v].trim().is_empty() => {
                        let (v, lo, hi) = (
                            t.float(*line, r, v)?,
                            t.float(*line, r, lo)?,
                            t.float(*line, r, hi)?,
                        );
                        if !(0.0 < lo && lo <= v && v <= hi) {
                            return Err(
                                t.row_error(*line, "train power needs 0 < low ≤ value ≤ high")
                            );
                        }
                        Some((v, lo, hi, r[src].trim().to_string()))
                    }
                    _ => None,
                },
            });
        }
        Ok(HardwareTable { rows })
    }

    pub fn embedded() -> HardwareTable {
        Self::shipped().clone()
    }

    /// The shipped table, parsed once per process.
    pub fn shipped() -> &'static HardwareTable {
        static T: std::sync::OnceLock<HardwareTable> = std::sync::OnceLock::new();
        T.get_or_init(|| {
            Self::parse(include_str!("../../data/hardware.csv"))
                .unwrap_or(HardwareTable { rows: Vec::new() })
        })
    }

    /// Finds an accelerator by key, alias or name, ignoring case and punctuation.
    pub fn get(&self, key: &str) -> Result<&Accelerator, String> {
        let want = norm(key);
        if let Some(a) = self.rows.iter().find(|a| {
            norm(&a.key) == want
                || norm(&a.name) == want
                || a.aliases.iter().any(|x| norm(x) == want)
        }) {
            return Ok(a);
        }
        let mut close: Vec<(usize, &str)> = self
            .rows
            .iter()
            .map(|a| {
                let d = std::iter::once(&a.key)
                    .chain(a.aliases.iter())
                    .map(|x| {
                        let nx = norm(x);
                        if nx.contains(&want) || want.contains(&nx) {
                            0
                        } else {
                            edit_distance(&want, &nx)
                        }
                    })
                    .min()
                    .unwrap_or(usize::MAX);
                (d, a.key.as_str())
            })
            .filter(|(d, _)| *d <= 3)
            .collect();
        close.sort();
        let hint = if close.is_empty() {
            format!(
                "known: {}",
                self.rows
                    .iter()
                    .map(|a| a.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "did you mean {}?",
                close
                    .iter()
                    .take(5)
                    .map(|(_, k)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(format!("unknown hardware '{key}'; {hint}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgiving_keys_and_dense_figures() {
        let t = HardwareTable::embedded();
        assert!(t.rows.len() >= 20);
        for (k, want) in [
            ("h100", "h100-sxm"),
            ("H100-SXM5-80GB", "h100-sxm"),
            ("A100", "a100-80gb-sxm"),
            ("tpu v3", "tpu-v3"),
            ("MI300X", "mi300x"),
        ] {
            assert_eq!(t.get(k).map(|a| a.key.as_str()), Ok(want), "{k}");
        }
        assert_eq!(
            t.get("h100").expect("h100").peak_flops,
            989e12,
            "dense, not the sparse 1979"
        );
        let e = t.get("h10").expect_err("unknown");
        assert!(e.contains("did you mean") && e.contains("h100"), "{e}");
        assert!(t.get("abacus").expect_err("unknown").contains("known:"));
    }
}

//! The notable models of `data/notable_models.csv`: the scale on which any run is placed,
//! from AlexNet (about 5 × 10^17 FLOP, 2012) to today's frontier (10^25 FLOP and more).

use crate::csvdata::{self, CsvError};

#[derive(Debug, Clone, PartialEq)]
pub struct NotableModel {
    pub name: String,
    pub year: u32,
    pub flop: f64,
    pub params: Option<f64>,
    pub tokens: Option<f64>,
    /// Published (or, as `boundary` says, derived from published inputs) energy, MWh.
    pub energy_mwh: Option<f64>,
    /// What the energy covers (GPU only, facility, …).
    pub boundary: String,
    pub source: String,
}

pub fn parse(text: &str) -> Result<Vec<NotableModel>, CsvError> {
    let t = csvdata::parse("notable_models.csv", text)?;
    let (n, y, f, p, tk, s) = (
        t.column("name")?,
        t.column("year")?,
        t.column("training_flop")?,
        t.column("params")?,
        t.column("tokens")?,
        t.column("source")?,
    );
    let (en, bd) = (t.column("energy_mwh")?, t.column("boundary")?);
    let opt = |line: usize, r: &[String], c: usize| -> Result<Option<f64>, CsvError> {
        if r[c].trim().is_empty() {
            Ok(None)
        } else {
            t.float(line, r, c).map(Some)
        }
    };
    let mut out = Vec::new();
    for (line, r) in &t.rows {
        out.push(NotableModel {
            name: r[n].trim().to_string(),
            year: t.float(*line, r, y)? as u32,
            flop: t.float(*line, r, f)?,
            params: opt(*line, r, p)?,
            tokens: opt(*line, r, tk)?,
            energy_mwh: opt(*line, r, en)?,
            boundary: r[bd].trim().to_string(),
            source: r[s].trim().to_string(),
        });
    }
    out.sort_by(|a, b| a.flop.total_cmp(&b.flop));
    Ok(out)
}

pub fn embedded() -> Vec<NotableModel> {
    parse(include_str!("../../data/notable_models.csv")).unwrap_or_default()
}

/// "7× AlexNet, 1/10,000,000 of Llama 3.1 405B": the work against the smallest model above
/// it and the largest below (or the ends of the scale).
pub fn compare(flop: f64, models: &[NotableModel]) -> String {
    let ratio = |a: f64, b: f64, name: &str| {
        let r = a / b;
        if (0.95..1.05).contains(&r) {
            format!("about as much as {name}")
        } else if r >= 1.0 {
            format!("{}× {name}", human_ratio(r))
        } else if r >= 0.5 {
            format!("{:.0} % of {name}", 100.0 * r)
        } else {
            format!("1/{} of {name}", human_ratio(1.0 / r))
        }
    };
    let (Some(first), Some(last)) = (models.first(), models.last()) else {
        return String::new();
    };
    let below = models.iter().rev().find(|m| m.flop <= flop);
    let above = models.iter().find(|m| m.flop > flop);
    let mut parts = Vec::new();
    match below {
        Some(b) => parts.push(ratio(flop, b.flop, &b.name)),
        None => parts.push(ratio(flop, first.flop, &first.name)),
    }
    if let Some(a) = above {
        if a.name != last.name {
            parts.push(ratio(flop, a.flop, &a.name));
        }
    }
    if below.map(|b| b.name != last.name).unwrap_or(true) {
        parts.push(ratio(flop, last.flop, &last.name));
    }
    parts.dedup();
    parts.join(", ")
}

/// 7, 35, 1,200, 10,000,000 — rounded to two significant figures, with separators.
pub fn human_ratio(r: f64) -> String {
    if !r.is_finite() {
        return "∞".into();
    }
    if r < 10.0 {
        return format!("{}", (r * 10.0).round() / 10.0);
    }
    // Beyond a billion, digits stop meaning anything to a reader: a power of ten does.
    if r >= 1e9 {
        let e = r.log10().floor() as i32;
        let m = r / 10f64.powi(e);
        return format!("{:.1} × 10^{e}", m);
    }
    let mag = 10f64.powi(r.log10().floor() as i32 - 1);
    let v = ((r / mag).round() * mag) as u64;
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_naturally_at_any_size() {
        assert_eq!(human_ratio(3.04), "3");
        assert_eq!(human_ratio(12345.0), "12,000");
        assert_eq!(human_ratio(2.6e14), "2.6 × 10^14");
        assert_eq!(human_ratio(f64::INFINITY), "∞");
    }

    #[test]
    fn scale_from_alexnet_to_the_frontier() {
        let m = embedded();
        assert!(m.len() >= 10);
        assert_eq!(m[0].name, "AlexNet");
        assert!(m.last().expect("last").flop >= 1e25);
        let s = compare(3.2e18, &m);
        assert!(
            s.starts_with("6.8× AlexNet") && s.contains("1/16,000,000 of Gemini 1.0 Ultra"),
            "{s}"
        );
        assert_eq!(human_ratio(7.02), "7");
        assert_eq!(human_ratio(11_875_000.0), "12,000,000");
        let big = compare(1e26, &m);
        assert!(big.contains("2× Gemini 1.0 Ultra"), "{big}");
        // Near a model: never "1/1 of" or "1× ".
        let bloom = m
            .iter()
            .find(|x| x.name == "BLOOM-176B")
            .expect("bloom")
            .flop;
        let near = compare(bloom * 0.98, &m);
        assert!(near.contains("about as much as BLOOM-176B"), "{near}");
        let most = compare(bloom * 0.7, &m);
        assert!(!most.contains("1/1 ") && !most.contains("1× "), "{most}");
    }
}

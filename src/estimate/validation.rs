//! Checks `estimate infer` against measurements it was not fitted on: the ML.ENERGY
//! leaderboard rows of `data/ml_energy_inference.csv` (v2 and v3; H100, B200, A100; dense and
//! mixture-of-experts; 2.6 B to 671 B), grouped as the issue that asked for it groups them.
//! For each group: the median of estimate ÷ measured, the median and worst error factor
//! (max(r, 1/r)), and how often the measurement falls inside the stated band. The rows the
//! fit was calibrated on (`data/inference_calibration.csv`) are left out.

use super::hardware::HardwareTable;
use super::infer::{self, InferInput, Precision};
use crate::csvdata;

/// One measured row.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub dataset: String,
    pub model: String,
    pub total_b: f64,
    pub active_b: f64,
    pub precision: Precision,
    pub gpu: String,
    pub gpus: f64,
    pub batch: f64,
    pub j_per_token: f64,
}

pub fn parse(text: &str) -> Result<Vec<Measured>, String> {
    let t = csvdata::parse("ml_energy_inference.csv", text).map_err(|e| e.to_string())?;
    let c = |n: &str| t.column(n).map_err(|e| e.to_string());
    let (d, m, tp, ap, wp, g, ng, mb, e) = (
        c("dataset")?,
        c("model")?,
        c("total_params_b")?,
        c("active_params_b")?,
        c("weight_precision")?,
        c("gpu")?,
        c("num_gpus")?,
        c("max_batch")?,
        c("energy_per_output_token_j")?,
    );
    t.rows
        .iter()
        .map(|(line, r)| {
            let f = |col: usize| t.float(*line, r, col).map_err(|e| e.to_string());
            Ok(Measured {
                dataset: r[d].trim().to_string(),
                model: r[m].trim().to_string(),
                total_b: f(tp)?,
                active_b: f(ap)?,
                precision: match r[wp].trim() {
                    "fp8" => Precision::Fp8,
                    _ => Precision::Bf16,
                },
                gpu: r[g].trim().to_string(),
                gpus: f(ng)?,
                batch: f(mb)?,
                j_per_token: f(e)?,
            })
        })
        .collect()
}

/// Which group a row belongs to.
pub fn group(m: &Measured) -> &'static str {
    let v2 = m.dataset.starts_with("ml.energy-v2");
    if m.total_b <= 4.0 {
        "models ≤ 4 B (v2 rows only; --stack older)"
    } else if v2 {
        "v2, larger models (--stack older)"
    } else if m.active_b < m.total_b && m.gpu == "H100" {
        "mixture-of-experts, H100 (v3)"
    } else if m.active_b < m.total_b {
        "mixture-of-experts, B200 (v3)"
    } else if m.gpu == "H100" {
        "dense, H100 (v3)"
    } else {
        "dense, B200 (v3)"
    }
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    pub group: &'static str,
    pub rows: usize,
    pub median_ratio: f64,
    pub median_error: f64,
    pub worst_error: f64,
    pub inside_band: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Estimates every row not in the calibration and sums up by group.
pub fn run(rows: &[Measured]) -> Result<Vec<GroupStats>, String> {
    let per = ratios(rows)?;
    Ok(summarise(&per))
}

/// One row's result: its group, estimate ÷ measured, whether the band holds the measurement.
pub type RowResult = (&'static str, f64, bool);

/// The routing of the mixture-of-experts models measured, from their model cards: (routed
/// experts, used per token). Mixtral-8x22B 8 and 2; Qwen3-30B-A3B and Qwen3-235B-A22B 128
/// and 8; DeepSeek-V3.1 256 and 8 (plus one shared expert); Llama-4-Scout 16 and 1 (plus one
/// shared).
pub fn routing_of(model: &str) -> Option<infer::Routing> {
    let m = model.to_ascii_lowercase();
    let (experts, per_token) = if m.contains("mixtral-8x22b") || m.contains("mixtral-8x7b") {
        (8.0, 2.0)
    } else if m.contains("qwen3-235b-a22b") || m.contains("qwen3-30b-a3b") {
        (128.0, 8.0)
    } else if m.contains("deepseek-v3") || m.contains("deepseek-r1") {
        (256.0, 8.0)
    } else if m.contains("llama-4-scout") {
        (16.0, 1.0)
    } else {
        return None;
    };
    Some(infer::Routing { experts, per_token })
}

/// Estimates every row not in the calibration.
pub fn ratios(rows: &[Measured]) -> Result<Vec<RowResult>, String> {
    ratios_at(rows, infer::MOE_THETA)
}

/// [`ratios`] with another mixture-of-experts exponent θ.
pub fn ratios_at(rows: &[Measured], theta: f64) -> Result<Vec<RowResult>, String> {
    ratios_with(rows, theta, false)
}

/// [`ratios_at`], the routed form (experts counted one by one, [`routing_of`]) or not.
pub fn ratios_with(rows: &[Measured], theta: f64, routed: bool) -> Result<Vec<RowResult>, String> {
    let hw = HardwareTable::embedded();
    let reference = hw.get("h100-sxm")?.clone();
    let fitted = infer::calibrated()?;
    let calibrated =
        infer::parse_calibration(include_str!("../../data/inference_calibration.csv"))?;
    let factors = super::train::EstimateFactors {
        in_cloud: false,
        pue: crate::factors::Factor::new(1.0, "", "validation", None),
        grid: crate::factors::Factor::new(0.0, "", "validation", None),
        wue: crate::factors::Factor::new(0.0, "", "validation", None),
        ewif: crate::factors::Factor::new(0.0, "", "validation", None),
        zone: "WORLD".into(),
    };
    let mut per: Vec<RowResult> = Vec::new();
    for m in rows {
        let in_fit = m.dataset.starts_with("ml.energy-v3")
            && m.gpu == "H100"
            && calibrated.iter().any(|c| {
                m.model.ends_with(&c.model) && c.batch == m.batch && c.params_b == m.total_b
            });
        if in_fit {
            continue;
        }
        let key = match m.gpu.as_str() {
            "H100" => "h100-sxm",
            "B200" => "b200",
            "A100-40GB" => "a100-40gb-sxm",
            other => return Err(format!("no accelerator for '{other}'")),
        };
        let input = InferInput {
            tokens_in: 0.0,
            embodied: None,
            routing: if routed { routing_of(&m.model) } else { None },
            params: m.total_b * 1e9,
            active_params: (m.active_b < m.total_b).then_some(m.active_b * 1e9),
            hardware: Some(hw.get(key)?.clone()),
            reference: Some(reference.clone()),
            count: Some(m.gpus),
            tokens_out: 1.0,
            requests: None,
            batch: m.batch,
            precision: m.precision,
            stack: if m.dataset.starts_with("ml.energy-v2") {
                infer::Stack::Older
            } else {
                infer::Stack::Current
            },
        };
        let e = infer::estimate_at(&input, fitted, &factors, theta)
            .map_err(|e| format!("{} on {} × {}: {e}", m.model, m.gpus, m.gpu))?;
        let b = e.gpu_energy_per_token_j;
        let inside = b.low <= m.j_per_token && m.j_per_token <= b.high;
        per.push((group(m), b.value / m.j_per_token, inside));
    }
    Ok(per)
}

/// One mixture-of-experts model left out: θ chosen on the other models' v3 rows (the value
/// of 0, 0.1 … 1 with the least median error), then its own rows estimated with it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOut {
    pub model: String,
    pub theta: f64,
    pub rows: usize,
    pub median_error: f64,
    pub worst_error: f64,
    pub inside_band: usize,
}

/// θ of 0, 0.1 … 1 with the least median error over `rows`.
pub fn fit_theta(rows: &[Measured], routed: bool) -> Result<f64, String> {
    let err = |r: f64| r.max(1.0 / r);
    let mut best = (f64::INFINITY, 0.5);
    for t in 0..=10 {
        let theta = f64::from(t) / 10.0;
        let e = median(
            ratios_with(rows, theta, routed)?
                .iter()
                .map(|p| err(p.1))
                .collect(),
        );
        if e < best.0 - 1e-12 {
            best = (e, theta);
        }
    }
    Ok(best.1)
}

/// The v3 mixture-of-experts rows, which θ is fitted on.
pub fn moe_v3(rows: &[Measured]) -> Vec<Measured> {
    rows.iter()
        .filter(|m| m.active_b < m.total_b && m.dataset.starts_with("ml.energy-v3"))
        .cloned()
        .collect()
}

/// Leave-one-model-out over the v3 mixture-of-experts rows, for the routed form or not.
pub fn moe_left_out(rows: &[Measured], routed: bool) -> Result<Vec<LeftOut>, String> {
    let moe: Vec<&Measured> = rows
        .iter()
        .filter(|m| m.active_b < m.total_b && m.dataset.starts_with("ml.energy-v3"))
        .collect();
    let base = |m: &str| m.trim_end_matches("-FP8").to_string();
    let mut models: Vec<String> = moe.iter().map(|m| base(&m.model)).collect();
    models.sort();
    models.dedup();
    let err = |r: f64| r.max(1.0 / r);
    let mut out = Vec::new();
    for held in &models {
        let (test, train): (Vec<Measured>, Vec<Measured>) = moe
            .iter()
            .map(|m| (*m).clone())
            .partition(|m| &base(&m.model) == held);
        let theta = fit_theta(&train, routed)?;
        let per = ratios_with(&test, theta, routed)?;
        out.push(LeftOut {
            model: held.rsplit('/').next().unwrap_or(held).to_string(),
            theta,
            rows: per.len(),
            median_error: median(per.iter().map(|p| err(p.1)).collect()),
            worst_error: per.iter().map(|p| err(p.1)).fold(1.0, f64::max),
            inside_band: per.iter().filter(|p| p.2).count(),
        });
    }
    Ok(out)
}

/// The leave-one-model-out results of both forms as a Markdown table (docs/validation.md).
pub fn left_out_table(uniform: &[LeftOut], routed: &[LeftOut]) -> String {
    let mut o = String::from("| model left out | rows | uniform: θ chosen | median error | worst | inside the band | routed: θ chosen | median error | worst | inside the band |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (u, r) in uniform.iter().zip(routed) {
        o.push_str(&format!(
            "| {} | {} | {:.1} | ×{:.2} | ×{:.2} | {} of {} | {:.1} | ×{:.2} | ×{:.2} | {} of {} |\n",
            u.model, u.rows, u.theta, u.median_error, u.worst_error, u.inside_band, u.rows,
            r.theta, r.median_error, r.worst_error, r.inside_band, r.rows
        ));
    }
    o
}

/// Figures per group.
pub fn summarise(per: &[RowResult]) -> Vec<GroupStats> {
    let mut groups: Vec<&'static str> = per.iter().map(|p| p.0).collect();
    groups.sort();
    groups.dedup();
    groups
        .into_iter()
        .map(|g| {
            let rs: Vec<&RowResult> = per.iter().filter(|p| p.0 == g).collect();
            let err = |r: f64| r.max(1.0 / r);
            GroupStats {
                group: g,
                rows: rs.len(),
                median_ratio: median(rs.iter().map(|p| p.1).collect()),
                median_error: median(rs.iter().map(|p| err(p.1)).collect()),
                worst_error: rs.iter().map(|p| err(p.1)).fold(1.0, f64::max),
                inside_band: rs.iter().filter(|p| p.2).count(),
            }
        })
        .collect()
}

/// The groups as a Markdown table (docs/validation.md).
pub fn table(stats: &[GroupStats]) -> String {
    let mut o = String::from(
        "| group | rows | median estimate ÷ measured | median error | worst error | inside the band |\n|---|---|---|---|---|---|\n",
    );
    for s in stats {
        o.push_str(&format!(
            "| {} | {} | {:.2} | ×{:.2} | ×{:.2} | {} of {} |\n",
            s.group, s.rows, s.median_ratio, s.median_error, s.worst_error, s.inside_band, s.rows
        ));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_per_group_are_as_documented() {
        let rows = parse(include_str!("../../data/ml_energy_inference.csv")).expect("rows");
        assert_eq!(rows.len(), 394);
        let stats = run(&rows).expect("validation");
        let t = table(&stats);
        // The table in docs/validation.md, section 3, is this one: a change to the model
        // that moves any figure must update the page.
        let doc = include_str!("../../docs/validation.md");
        assert!(
            doc.contains(&t),
            "docs/validation.md is out of date; the table is now:\n{t}"
        );
    }

    #[test]
    fn the_mixture_of_experts_exponent_is_the_fit_on_the_v3_rows() {
        let rows = parse(include_str!("../../data/ml_energy_inference.csv")).expect("rows");
        let moe = moe_v3(&rows);
        assert_eq!(moe.len(), 116);
        assert_eq!(fit_theta(&moe, false).expect("fit"), infer::MOE_THETA);
    }

    #[test]
    fn mixture_of_experts_left_out_one_model_at_a_time_is_as_documented() {
        let rows = parse(include_str!("../../data/ml_energy_inference.csv")).expect("rows");
        let uniform = moe_left_out(&rows, false).expect("uniform");
        let routed = moe_left_out(&rows, true).expect("routed");
        assert_eq!(uniform.len(), 4);
        let t = left_out_table(&uniform, &routed);
        let doc = include_str!("../../docs/validation.md");
        assert!(
            doc.contains(&t),
            "docs/validation.md section 3c is out of date; the table is now:\n{t}"
        );
    }

    #[test]
    fn the_older_stack_factor_is_the_median_of_the_measured_pairs() {
        let rows = parse(include_str!("../../data/ml_energy_inference.csv")).expect("rows");
        let name = |m: &Measured| {
            m.model
                .rsplit('/')
                .next()
                .unwrap_or("")
                .trim_start_matches("Meta-")
                .to_ascii_lowercase()
        };
        let mut pairs: Vec<f64> = rows
            .iter()
            .filter(|o| o.dataset.starts_with("ml.energy-v2"))
            .filter_map(|o| {
                rows.iter()
                    .find(|n| {
                        n.dataset.starts_with("ml.energy-v3")
                            && name(n) == name(o)
                            && n.gpu == o.gpu
                            && n.gpus == o.gpus
                            && n.batch == o.batch
                    })
                    .map(|n| o.j_per_token / n.j_per_token)
            })
            .collect();
        pairs.sort_by(f64::total_cmp);
        assert_eq!(pairs.len(), 7, "{pairs:?}");
        let (f, lo, hi) = infer::OLDER_STACK;
        assert!((median(pairs.clone()) - f).abs() < 0.01, "{pairs:?}");
        assert!(
            (pairs[0] - lo).abs() < 0.01 && (pairs[6] - hi).abs() < 0.01,
            "{pairs:?}"
        );
    }

    #[test]
    fn fp8_rows_are_read_as_documented() {
        let rows = parse(include_str!("../../data/ml_energy_inference.csv")).expect("rows");
        let fp8: Vec<Measured> = rows
            .into_iter()
            .filter(|m| m.precision == Precision::Fp8)
            .collect();
        let per = ratios(&fp8).expect("validation");
        assert_eq!(per.len(), 34);
        let err = median(per.iter().map(|p| p.1.max(1.0 / p.1)).collect());
        // docs/validation.md and the warning for int8/int4 quote this figure.
        assert_eq!(format!("{err:.2}"), "1.17");
    }
}

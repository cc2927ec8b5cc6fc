//! The inference estimator: GPU energy per output token as a function of model size and
//! batch (concurrent requests), calibrated on the ML.ENERGY leaderboard's measurements
//! (`data/inference_calibration.csv`: NVML energy on H100 with vLLM). For each measured
//! model, energy per token fits `e0 + k / B` closely (a fixed per-token cost plus a cost
//! shared by the batch); across models `k` grows in proportion to N and `e0` as a power of N.
//! So: `E(N, B) = a·N^b + c·N / B` (N in billions of active parameters), fitted by least
//! squares at start-up; below the smallest calibrated model the per-token term is held. A
//! mixture-of-experts model takes the weights its batch touches (active plus the experts
//! reached) in the batch-shared term and N_active^0.4·N_total^0.6 in the per-token one; an older
//! serving stack costs a measured 1.65×; more devices than the
//! calibration used cost (count / theirs)^0.325. Other accelerators are scaled by their
//! energy per peak FLOP relative to the H100. The figure covers the GPUs only, before PUE: host CPU, memory, network and
//! idle capacity are not included.

use super::hardware::Accelerator;
use super::{Input, Ranged};
use crate::csvdata;
use serde::{Deserialize, Serialize};

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub model: String,
    pub params_b: f64,
    pub batch: f64,
    pub j_per_token: f64,
}

pub fn parse_calibration(text: &str) -> Result<Vec<Point>, String> {
    let t = csvdata::parse("inference_calibration.csv", text).map_err(|e| e.to_string())?;
    let c = |n: &str| t.column(n).map_err(|e| e.to_string());
    let (m, p, b, j) = (
        c("model")?,
        c("params_b")?,
        c("batch")?,
        c("gpu_j_per_token")?,
    );
    let mut out = Vec::new();
    for (line, r) in &t.rows {
        let f = |col: usize| t.float(*line, r, col).map_err(|e| e.to_string());
        out.push(Point {
            model: r[m].clone(),
            params_b: f(p)?,
            batch: f(b)?,
            j_per_token: f(j)?,
        });
    }
    Ok(out)
}

/// The fitted model `E = a·max(N, n_min)^b + c·N/B`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// The smallest calibrated model (billions of parameters): below it the per-token term
    /// is held, not extrapolated (a GPU's fixed per-step costs do not shrink with the
    /// model; the power law fitted on 8–70 B read 2.6–4 B models 2.5× low).
    #[serde(default)]
    pub n_min: f64,
}

impl Fit {
    pub fn per_token_term(&self, params_b: f64) -> f64 {
        self.a * params_b.max(self.n_min).powf(self.b)
    }

    pub fn j_per_token(&self, params_b: f64, batch: f64) -> f64 {
        self.per_token_term(params_b) + self.c * params_b / batch.max(1.0)
    }
}

/// The serving software the figure stands for. The calibration measured vLLM 0.11 (the
/// ML.ENERGY leaderboard v3, 2025); the leaderboard's previous runs (v2, 2024 serving
/// stacks) spent more energy for the same model, GPUs and batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    #[default]
    Current,
    Older,
    /// Plain Hugging Face `transformers` `generate` (eager, no serving engine).
    Transformers,
}

/// Energy per token of plain Hugging Face `generate` ÷ this model's current-stack estimate,
/// with its range: measured on an H200 (Llama-3.1-8B shape, bf16, 512 tokens in, 256 out):
/// 0.301 J/token at batch 64 against an estimate of 0.112 (×2.69), 1.537 at batch 8 against
/// 0.436 (×3.53); the geometric mean of the two. decompute's H200 check, December 2026
/// (`shared/reference/gpu-h200-2026-12`).
pub const TRANSFORMERS_STACK: (f64, f64, f64) = (3.08, 2.69, 3.53);

/// Energy per token of the older stack ÷ the current one, with its range: the median over
/// the seven pairs measured in both leaderboard versions (Llama 3.1 70B on 4 × H100 at
/// batch 64–1024; `data/ml_energy_inference.csv`). A test recomputes it from those rows.
pub const OLDER_STACK: (f64, f64, f64) = (1.65, 1.61, 1.82);

impl Stack {
    pub fn parse(s: &str) -> Result<Stack, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "current" | "v3" => Ok(Stack::Current),
            "older" | "v2" => Ok(Stack::Older),
            "transformers" | "hf" => Ok(Stack::Transformers),
            _ => Err(format!(
                "stack '{}' is not one of current (vLLM 0.11-era, 2025), older (2024 serving stacks), transformers (plain Hugging Face generate)",
                crate::term::escape(s)
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stack::Current => "current",
            Stack::Older => "older",
            Stack::Transformers => "transformers",
        }
    }
}

fn linreg(xs: &[f64], ys: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - slope * mx, slope)
}

/// Fits per model `e0 + k/B`, then `k = c·N` and `e0 = a·N^b`.
pub fn fit(points: &[Point]) -> Result<Fit, String> {
    let mut models: Vec<&str> = points.iter().map(|p| p.model.as_str()).collect();
    models.dedup();
    let mut ns = Vec::new();
    let mut e0s = Vec::new();
    let mut ks = Vec::new();
    for m in &models {
        let pts: Vec<&Point> = points.iter().filter(|p| p.model == *m).collect();
        if pts.len() < 2 {
            continue;
        }
        let xs: Vec<f64> = pts.iter().map(|p| 1.0 / p.batch).collect();
        let ys: Vec<f64> = pts.iter().map(|p| p.j_per_token).collect();
        let (e0, k) = linreg(&xs, &ys);
        ns.push(pts[0].params_b);
        e0s.push(e0.max(1e-6));
        ks.push(k.max(0.0));
    }
    if ns.len() < 2 {
        return Err("the calibration needs two models with two batch sizes each".into());
    }
    let c = ks.iter().zip(&ns).map(|(k, n)| k / n).sum::<f64>() / ns.len() as f64;
    let (ln_a, b) = linreg(
        &ns.iter().map(|n| n.ln()).collect::<Vec<_>>(),
        &e0s.iter().map(|e| e.ln()).collect::<Vec<_>>(),
    );
    Ok(Fit {
        a: ln_a.exp(),
        b,
        c,
        n_min: ns.iter().copied().fold(f64::INFINITY, f64::min),
    })
}

/// Numeric precision of the served weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Bf16,
    Fp16,
    Fp8,
    Int8,
    Int4,
}

impl Precision {
    pub fn parse(s: &str) -> Result<Precision, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "fp16" | "float16" => Ok(Precision::Fp16),
            "fp8" => Ok(Precision::Fp8),
            "int8" => Ok(Precision::Int8),
            "int4" => Ok(Precision::Int4),
            _ => Err(format!(
                "precision '{}' is not one of bf16, fp16, fp8, int8, int4",
                crate::term::escape(s)
            )),
        }
    }

    /// Bytes a weight takes.
    pub fn bytes(self) -> f64 {
        match self {
            Precision::Bf16 | Precision::Fp16 => 2.0,
            Precision::Fp8 | Precision::Int8 => 1.0,
            Precision::Int4 => 0.5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
        }
    }
}

/// The share of a mixture-of-experts model's expert weights a batch of `batch` tokens
/// touches in a step, when each token uses a share `active ÷ total` of them at random:
/// `1 − (1 − active/total)^batch`. Close to 1 at large batch (every expert read), small at
/// batch 8 for a sparse model (DeepSeek-V3's 37 of 671 B: 36 %). Without it the batch term
/// took every expert at every batch and read DeepSeek-V3.1 at batch 8 3.2× high.
pub fn expert_coverage(active_b: f64, total_b: f64, batch: f64) -> f64 {
    if total_b <= 0.0 || active_b >= total_b {
        return 1.0;
    }
    1.0 - (1.0 - active_b / total_b).powf(batch.max(1.0))
}

/// The share of a device's memory the weights may take at most: vLLM's default
/// `gpu_memory_utilization` (0.9), which must also hold a KV cache (the measured
/// Mixtral-8x22B on 8 × A100-40GB held its 282 GB of weights in 88 % of 320 GB).
pub const WEIGHT_SHARE: f64 = 0.9;

/// How energy per token grows with the number of devices at a fixed batch: `(count /
/// calibration count)^γ`. γ = 0.325 is the median over the 39 pairs of ML.ENERGY measurements
/// (v2 and v3; same model, device and batch, the count doubled) in the project's reference
/// data: ×1.25 per doubling (Qwen3-30B-A3B at batch 8: 0.653 J on 1 H100, 0.823 J on 2).
/// The v3 H100 pairs span 0.25–0.43, which bounds the band.
pub const COUNT_EXPONENT: (f64, f64, f64) = (0.325, 0.25, 0.43);

/// The calibration's deployments held the weights in at most half of each device's memory
/// (8 B and 14 B models on 1 H100, 32 B on 2, 70 B on 4): the count the fit stands for.
pub const CALIBRATION_WEIGHT_SHARE: f64 = 0.5;

/// The device count the energy fit stands for at this size.
pub fn calibration_count(params: f64, precision: Precision, memory_gb: f64) -> f64 {
    (params * precision.bytes() / 1e9 / (memory_gb * CALIBRATION_WEIGHT_SHARE))
        .ceil()
        .max(1.0)
}

/// The fewest devices whose memory holds `params` weights at `precision`.
pub fn least_count(params: f64, precision: Precision, memory_gb: f64) -> f64 {
    (params * precision.bytes() / 1e9 / (memory_gb * WEIGHT_SHARE))
        .ceil()
        .max(1.0)
}

#[derive(Debug, Clone, Default)]
pub struct InferInput {
    pub params: f64,
    pub active_params: Option<f64>,
    pub hardware: Option<Accelerator>,
    pub reference: Option<Accelerator>,
    pub count: Option<f64>,
    pub tokens_out: f64,
    /// Input (prompt) tokens, per request when `requests` is given: their prefill.
    pub tokens_in: f64,
    pub requests: Option<f64>,
    pub batch: f64,
    pub precision: Precision,
    pub stack: Stack,
    /// The hardware's embodied carbon and how it is amortised, to give the serving
    /// devices' share; None leaves it out.
    pub embodied: Option<Embodied>,
    /// A mixture of experts' routing, where known (model card): how many routed experts
    /// and how many each token uses.
    pub routing: Option<Routing>,
}

/// How a mixture-of-experts model routes its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    /// Routed experts per layer (shared experts, always used, are not counted).
    pub experts: f64,
    /// Routed experts each token uses.
    pub per_token: f64,
}

impl Routing {
    /// The weights always read (attention, embeddings, shared experts) and one routed
    /// expert's size, in the units of `active` and `total`: from `total = dense + E·e` and
    /// `active = dense + k·e`. None where the sizes and routing contradict each other.
    pub fn split(self, active: f64, total: f64) -> Option<(f64, f64)> {
        let (e, k) = (self.experts, self.per_token);
        if !(k >= 1.0 && e > k && total > active) {
            return None;
        }
        let expert = (total - active) / (e - k);
        let dense = active - k * expert;
        (dense >= 0.0).then_some((dense, expert))
    }

    /// The weights a batch of `batch` tokens reads in a step: the always-used ones, plus
    /// each routed expert with the chance that at least one token picks it,
    /// `1 − (1 − k/E)^B`.
    pub fn touched(self, active: f64, total: f64, batch: f64) -> Option<f64> {
        let (dense, expert) = self.split(active, total)?;
        let reached = 1.0 - (1.0 - self.per_token / self.experts).powf(batch.max(1.0));
        Some(dense + self.experts * expert * reached)
    }
}

/// A mixture of experts' per-token term takes `N_active^(1−θ) · N_total^θ`: the step's
/// fixed per-token costs grow with more than the active weights (routing, expert-parallel
/// exchanges) but far less than all of them. θ = 0.6 is fitted (the least median error of
/// 0, 0.1 … 1) on the 116 measured v3 mixture-of-experts rows, and checked leaving one model
/// out at a time (docs/validation.md, section 3c); it was 0.5, chosen by hand.
pub const MOE_THETA: f64 = 0.6;

/// A device's embodied carbon and the hours over which it is spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Embodied {
    pub kg_per_device: f64,
    pub source: String,
    pub lifetime_years: f64,
    /// The share of its life a device is busy.
    pub utilisation: f64,
}

/// Prefill (reading the prompt) is compute-bound: 2 FLOP per active parameter per input
/// token at this share of the device's dense peak (centre, most efficient, least): the
/// H100 MFU range of data/hardware.csv (0.30–0.50, compute-bound work), centre 0.40.
pub const PREFILL_MFU: (f64, f64, f64) = (0.40, 0.50, 0.30);
/// The devices' mean power while serving, as a share of their rated power: ML.ENERGY v3's
/// H100 rows at batch 64 drew 514–525 W of 700 W per GPU (data/inference_calibration.csv's
/// source): 0.73–0.75; the band takes 0.6–0.9.
pub const SERVING_POWER_SHARE: (f64, f64, f64) = (0.74, 0.6, 0.9);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferEstimate {
    pub schema: String,
    pub gpu_energy_per_token_j: Ranged,
    pub tokens: f64,
    pub it_energy_kwh: Ranged,
    pub facility_energy_kwh: Ranged,
    pub carbon_kg: Ranged,
    pub water_l: Ranged,
    /// GPU energy of the prompts' prefill (part of `it_energy_kwh`).
    #[serde(default = "Ranged::zero")]
    pub prefill_energy_kwh: Ranged,
    /// The serving devices' embodied carbon for the time the estimate holds them, kg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embodied_kg: Option<Ranged>,
    /// One request's figures, when `requests` was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request: Option<PerRequest>,
    pub covers: String,
    pub fit: Fit,
    pub inputs: Vec<Input>,
    pub chain: Vec<String>,
    /// Inputs outside what the calibration covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub const SCHEMA: &str = "decompute.estimate-infer/1";

/// One request's share of an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerRequest {
    pub requests: f64,
    pub facility_energy_wh: Ranged,
    pub carbon_g: Ranged,
    pub water_ml: Ranged,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embodied_g: Option<Ranged>,
}

/// The most tokens an estimate takes, in all (requests × tokens each).
pub const MAX_TOKENS: f64 = 1e18;

/// The batch sizes (concurrent requests) the shipped calibration measured.
pub const CALIBRATED_BATCH: (f64, f64) = (8.0, 256.0);

/// Band on the H100 (the spread of dense models around the fit: 42 of 53 unfitted v3 rows
/// inside) and, wider, on other hardware (scaled, not measured).
pub const BAND_H100: (f64, f64) = (0.8, 1.4);
pub const BAND_OTHER: (f64, f64) = (0.6, 1.8);
/// Other accelerators whose ratio to the H100 was measured: the spread of the pairs.
pub const BAND_MEASURED_RATIO: (f64, f64) = (0.65, 1.6);
/// Mixture-of-experts models: the form below was chosen on measured H100 rows, not fitted,
/// and errs more: a wider band (docs/validation.md, section 3).
pub const BAND_MOE_H100: (f64, f64) = (0.6, 1.8);
pub const BAND_MOE_OTHER: (f64, f64) = (0.45, 2.4);

pub fn estimate(
    i: &InferInput,
    fitted: Fit,
    f: &super::train::EstimateFactors,
) -> Result<InferEstimate, String> {
    estimate_at(i, fitted, f, MOE_THETA)
}

/// [`estimate`] with another mixture-of-experts exponent θ (the validation's search).
pub fn estimate_at(
    i: &InferInput,
    fitted: Fit,
    f: &super::train::EstimateFactors,
    theta: f64,
) -> Result<InferEstimate, String> {
    if !(i.batch >= 1.0 && i.batch <= 4096.0) || i.batch.fract() != 0.0 {
        return Err(format!(
            "--batch {} is not a number of concurrent requests; give a whole number from 1 to 4096",
            i.batch
        ));
    }
    let mut warnings = Vec::new();
    if !(CALIBRATED_BATCH.0..=CALIBRATED_BATCH.1).contains(&i.batch) {
        warnings.push(format!(
            "--batch {} is outside the measured {}–{} concurrent requests; the figure is extrapolated",
            i.batch, CALIBRATED_BATCH.0, CALIBRATED_BATCH.1
        ));
    }
    if let Some(a) = i.active_params {
        if a > i.params {
            return Err(
                "--active-params is more than --params; active parameters are a subset".into(),
            );
        }
    }
    let n_b = i.active_params.unwrap_or(i.params) / 1e9;
    let hw = i
        .hardware
        .as_ref()
        .ok_or("--hardware is required (e.g. h100)")?;
    let reference = i
        .reference
        .as_ref()
        .ok_or("the H100 reference row is missing from data/hardware.csv")?;
    // The weights must fit in the devices' memory.
    let weights_gb = i.params * i.precision.bytes() / 1e9;
    let least = least_count(i.params, i.precision, hw.memory_gb);
    let count = match i.count {
        Some(c) if c < least => {
            let lower = [Precision::Fp8, Precision::Int4]
                .into_iter()
                .filter(|p| p.bytes() < i.precision.bytes())
                .find(|p| least_count(i.params, *p, hw.memory_gb) <= c);
            return Err(format!(
                "{:.0} GB of {} weights do not fit on {c} × {} ({} GB each, {:.0} % of it for weights): give --count {least}{}",
                weights_gb,
                i.precision.name(),
                hw.name,
                hw.memory_gb,
                WEIGHT_SHARE * 100.0,
                lower
                    .map(|p| format!(" or --precision {}", p.name()))
                    .unwrap_or_default()
            ));
        }
        Some(c) => c,
        None => calibration_count(i.params, i.precision, hw.memory_gb),
    };
    let cal_count = calibration_count(i.params, i.precision, hw.memory_gb);
    let ratio = count / cal_count;
    let (g, g_lo, g_hi) = COUNT_EXPONENT;
    let (count_f, count_lo, count_hi) = if ratio >= 1.0 {
        (ratio.powf(g), ratio.powf(g_lo), ratio.powf(g_hi))
    } else {
        (ratio.powf(g), ratio.powf(g_hi), ratio.powf(g_lo))
    };
    // A mixture-of-experts model reads the weights of the experts its batch touches (the
    // batch-shared term; expert by expert where the routing is given), and its per-token
    // cost sits between its active and total size (routing, expert parallelism):
    // N_active^(1−θ)·N_total^θ, θ fitted on the measured MoE rows ([`MOE_THETA`]).
    let total_b = i.params / 1e9;
    let moe = n_b < total_b;
    let routed = i
        .routing
        .filter(|_| moe)
        .and_then(|r| r.touched(n_b, total_b, i.batch).map(|t| (r, t)));
    if let Some(r) = i
        .routing
        .filter(|r| r.experts.fract() != 0.0 || r.per_token.fract() != 0.0)
    {
        return Err(format!(
            "--experts {} and --experts-per-token {} count experts; give whole numbers (the model card's)",
            r.experts, r.per_token
        ));
    }
    if let (Some(r), None, true) = (i.routing, routed, moe) {
        return Err(format!(
            "{} experts with {} per token cannot make {n_b} B active of {total_b} B total; check --experts and --experts-per-token",
            r.experts, r.per_token
        ));
    }
    let coverage = expert_coverage(n_b, total_b, i.batch);
    let (n_tok, n_batch) = match (moe, routed) {
        (true, Some((_, touched))) => (n_b.powf(1.0 - theta) * total_b.powf(theta), touched),
        (true, None) => (
            n_b.powf(1.0 - theta) * total_b.powf(theta),
            n_b + (total_b - n_b) * coverage,
        ),
        (false, _) => (n_b, n_b),
    };
    let base = fitted.per_token_term(n_tok) + fitted.c * n_batch / i.batch.max(1.0);
    let (stack_f, stack_lo, stack_hi) = match i.stack {
        Stack::Current => (1.0, 1.0, 1.0),
        Stack::Older => OLDER_STACK,
        Stack::Transformers => TRANSFORMERS_STACK,
    };
    let same = hw.key == reference.key
        || (hw.peak_flops == reference.peak_flops && hw.power_w == reference.power_w);
    let scaled = (hw.power_w / hw.peak_flops) / (reference.power_w / reference.peak_flops);
    let scale = match (&hw.infer_vs_h100, same) {
        (_, true) => 1.0,
        (Some((r, _)), false) => *r,
        (None, false) => scaled,
    };
    let (lo, hi) = match (moe, same, hw.infer_vs_h100.is_some()) {
        (false, true, _) => BAND_H100,
        (false, false, true) => BAND_MEASURED_RATIO,
        (false, false, false) => BAND_OTHER,
        (true, true, _) => BAND_MOE_H100,
        (true, false, _) => BAND_MOE_OTHER,
    };
    let per = base * scale * count_f * stack_f;
    let per_token = Ranged {
        value: per,
        low: base * scale * count_lo * stack_lo * lo,
        high: base * scale * count_hi * stack_hi * hi,
    };
    let requests = i.requests.unwrap_or(1.0);
    let tokens = i.tokens_out * requests;
    if !(i.tokens_in.is_finite() && i.tokens_in >= 0.0) {
        return Err(format!(
            "--tokens-in {} is not a number of tokens; give 0 or more",
            i.tokens_in
        ));
    }
    // Far beyond any service (Google reported about 10^15 tokens a month across its
    // products in 2025): a typo, not a workload, refused rather than printed as 10^22 TWh.
    for (flag, n) in [
        ("--tokens-in", i.tokens_in * requests),
        ("--tokens-out", tokens),
    ] {
        if n > MAX_TOKENS {
            return Err(format!(
                "{flag} {n:e} tokens in all is beyond any workload (at most {MAX_TOKENS:e}); check the number and --requests"
            ));
        }
    }
    // Prefill: 2 FLOP per active parameter per input token, compute-bound, at the devices'
    // serving power.
    let prefill_flop = 2.0 * n_b * 1e9 * i.tokens_in * requests;
    let (mfu, mfu_hi, mfu_lo) = PREFILL_MFU;
    let (share, share_lo, share_hi) = SERVING_POWER_SHARE;
    let prefill_j = |m: f64, s: f64| prefill_flop / (hw.peak_flops * m) * hw.power_w * s;
    let prefill = Ranged {
        value: prefill_j(mfu, share),
        low: prefill_j(mfu_hi, share_lo),
        high: prefill_j(mfu_lo, share_hi),
    };
    let it = per_token.scale(tokens).plus(prefill).scale(1.0 / 3.6e6);
    let prefill_kwh = prefill.scale(1.0 / 3.6e6);
    let facility = it.scale(f.pue.value);
    let carbon = facility.scale(f.grid.value / 1000.0);
    let water = it.scale(f.wue.value).plus(facility.scale(f.ewif.value));
    let floored = n_tok < fitted.n_min;
    let n_tok_shown = n_tok.max(fitted.n_min);
    let mut chain = vec![if let Some((r, _)) = routed {
        let (dense, expert) = r.split(n_b, total_b).unwrap_or_default();
        format!(
            "GPU J/token on H100 = a·(N_active^(1−θ)·N_total^θ)^b + c·N_touched/B = {:.4}·{n_tok_shown:.3}^{:.3} + {:.4}·{n_batch:.1}/{} = {base:.4} J (mixture of experts, θ = {theta}: N_touched = {dense:.2} B always read (attention, embeddings, shared experts) + {} routed experts of {expert:.3} B × (1 − (1 − {}/{})^{}), each expert's chance that one of the batch's tokens picks it; a, b, c fitted to ML.ENERGY leaderboard v3, Apache-2.0)",
            fitted.a, fitted.b, fitted.c, i.batch, r.experts, r.per_token, r.experts, i.batch
        )
    } else if moe {
        format!(
            "GPU J/token on H100 = a·(N_active^(1−θ)·N_total^θ)^b + c·N_touched/B = {:.4}·{n_tok_shown:.3}^{:.3} + {:.4}·{n_batch:.1}/{} = {base:.4} J (mixture of experts, θ = {theta}: N_touched = N_active + (N_total − N_active)·(1 − (1 − N_active/N_total)^B), the weights a batch of {} reads, {:.0} % of the experts; a, b, c fitted to ML.ENERGY leaderboard v3, Apache-2.0)",
            fitted.a, fitted.b, fitted.c, i.batch, i.batch, coverage * 100.0
        )
    } else {
        format!(
            "GPU J/token on H100 = a·N^b + c·N/B = {:.4}·{n_tok_shown:.3}^{:.3} + {:.4}·{n_b:.3}/{} = {base:.4} J (fit to ML.ENERGY leaderboard v3, Apache-2.0)",
            fitted.a, fitted.b, fitted.c, i.batch
        )
    }];
    if floored {
        chain.push(format!(
            "the per-token term is held at the smallest calibrated model ({} B), not extrapolated down to {n_tok:.3} B (a GPU's fixed per-step costs do not shrink with the model)",
            fitted.n_min
        ));
    }
    match (&hw.infer_vs_h100, same) {
        (_, true) => {}
        (Some((r, src)), false) => chain.push(format!(
            "× {r} for {} ({src})",
            hw.name
        )),
        (None, false) => chain.push(format!(
            "scaled to {} by energy per peak FLOP (an assumption: no measured ratio): ({} W / {:.3e}) / ({} W / {:.3e}) = {scale:.3}",
            hw.name, hw.power_w, hw.peak_flops, reference.power_w, reference.peak_flops
        )),
    }
    if ratio != 1.0 {
        chain.push(format!(
            "× (count / calibration count)^γ = ({count} / {cal_count})^{g} = {count_f:.3} (γ from the measured effect of more devices at a fixed batch; band {g_lo}–{g_hi})"
        ));
    }
    if i.stack == Stack::Older {
        chain.push(format!(
            "× {stack_f} for an older serving stack (range {stack_lo}–{stack_hi}: the same model, GPUs and batch measured in ML.ENERGY leaderboard v2 and v3)"
        ));
    }
    if i.stack == Stack::Transformers {
        chain.push(format!(
            "× {stack_f} for plain Hugging Face generate, no serving engine (range {stack_lo}–{stack_hi}: measured on an H200, Llama-3.1-8B shape at batch 64 and 8, against this estimate; decompute's H200 check, 2026)"
        ));
    }
    chain.push(format!(
        "tokens = {} output tokens{}",
        i.tokens_out,
        i.requests
            .map(|r| format!(" × {r} requests"))
            .unwrap_or_default()
    ));
    if i.tokens_in > 0.0 {
        chain.push(format!(
            "prefill = 2 × {n_b:.3}e9 active parameters × {} input tokens{} / ({:.3e} FLOP/s × MFU {mfu} ({mfu_lo}–{mfu_hi})) × {} W × {share} ({share_lo}–{share_hi}) = {:.4} J (compute-bound; the calibration's chat prompts are short, so a short prompt overlaps the per-token figure a little)",
            i.tokens_in,
            i.requests.map(|r| format!(" × {r} requests")).unwrap_or_default(),
            hw.peak_flops,
            hw.power_w,
            prefill.value
        ));
    }
    chain.push(format!(
        "GPU energy = {per:.4} J × {tokens}{} = {:.4e} kWh (GPU only, before PUE)",
        if i.tokens_in > 0.0 { " + prefill" } else { "" },
        it.value
    ));
    chain.push(format!("facility = × PUE {} = {:.4e} kWh; carbon = × {} gCO2e/kWh = {:.4e} kg; water = IT × {} + facility × {} = {:.4e} L", f.pue.value, facility.value, f.grid.value, carbon.value, f.wue.value, f.ewif.value, water.value));
    // The devices' embodied carbon for the device-hours the tokens hold them: GPU energy
    // over the devices' serving power.
    let embodied_kg = i.embodied.as_ref().map(|e| {
        let life_h = e.lifetime_years * 8766.0 * e.utilisation;
        let hours = |j: f64, s: f64| j * 3.6e6 / (hw.power_w * s) / 3600.0;
        let kg = Ranged {
            value: hours(it.value, share),
            low: hours(it.low, share_hi),
            high: hours(it.high, share_lo),
        }
        .scale(e.kg_per_device / life_h);
        chain.push(format!(
            "embodied = {} kg per device × device-hours ({:.4e} kWh ÷ ({} W × {share})) / ({} y × 8766 h × {}) = {:.4e} kg ({}; not in carbon above)",
            e.kg_per_device, it.value, hw.power_w, e.lifetime_years, e.utilisation, kg.value, e.source
        ));
        kg
    });
    let per_request = i.requests.map(|r| PerRequest {
        requests: r,
        facility_energy_wh: facility.scale(1000.0 / r),
        carbon_g: carbon.scale(1000.0 / r),
        water_ml: water.scale(1000.0 / r),
        embodied_g: embodied_kg.map(|k| k.scale(1000.0 / r)),
    });
    let mut inputs = vec![
        Input {
            name: "params".into(),
            value: format!("{:.3e}", i.params),
            source: "user".into(),
            given: true,
        },
        Input {
            name: "batch".into(),
            value: i.batch.to_string(),
            source: if i.batch == 64.0 {
                "default (the leaderboard's reference batch)".into()
            } else {
                "user".into()
            },
            given: i.batch != 64.0,
        },
        Input {
            name: "hardware".into(),
            value: hw.name.clone(),
            source: hw.source.clone(),
            given: true,
        },
    ];
    if let Some(a) = i.active_params {
        inputs.push(Input {
            name: "active_params".into(),
            value: format!("{a:.3e}"),
            source: "user".into(),
            given: true,
        });
    }
    inputs.push(Input {
        name: "count".into(),
        value: count.to_string(),
        source: match i.count {
            Some(_) => format!("user (at least {least} to hold the weights; the energy fit stands for {cal_count})"),
            None => format!(
                "default: as the calibration deployed models, {} holding {weights_gb:.0} GB of {} weights in at most {:.0} % of their memory",
                hw.name,
                i.precision.name(),
                CALIBRATION_WEIGHT_SHARE * 100.0
            ),
        },
        given: i.count.is_some(),
    });
    inputs.push(Input {
        name: "precision".into(),
        value: i.precision.name().into(),
        source: "sets the weight memory and so the devices the energy fit stands for (fitted at bf16; checked on measured fp8 rows)".into(),
        given: i.precision != Precision::Bf16,
    });
    inputs.push(Input {
        name: "stack".into(),
        value: i.stack.name().into(),
        source: match i.stack {
            Stack::Current => "default: the calibration's vLLM 0.11 (2025)".into(),
            Stack::Older => "user: a 2024-era serving stack".into(),
            Stack::Transformers => "user: plain Hugging Face transformers generate (measured ×2.69–3.53 on an H200, decompute's H200 check, 2026)".into(),
        },
        given: i.stack != Stack::Current,
    });
    if i.tokens_in > 0.0 {
        inputs.push(Input {
            name: "tokens_in".into(),
            value: i.tokens_in.to_string(),
            source: "user: prompt tokens, whose prefill is added".into(),
            given: true,
        });
    }
    inputs.extend(f.inputs());
    match i.precision {
        Precision::Bf16 | Precision::Fp16 | Precision::Fp8 => {}
        p => warnings.push(format!(
            "--precision {} sets the weight memory and the device count; its energy per token is not measured (fp8 is: its 34 measured rows are read with a median error of ×1.17)",
            p.name()
        )),
    }
    Ok(InferEstimate {
        schema: SCHEMA.into(),
        gpu_energy_per_token_j: per_token,
        tokens,
        it_energy_kwh: it,
        facility_energy_kwh: facility,
        carbon_kg: carbon,
        water_l: water,
        prefill_energy_kwh: prefill_kwh,
        embodied_kg,
        per_request,
        covers: "GPU energy only (NVML), at steady state; host, network and idle capacity excluded; facility figures add PUE; embodied carbon apart".into(),
        fit: fitted,
        inputs,
        chain,
        warnings,
    })
}

/// The model fitted on the measurements shipped in `data/inference_calibration.csv`.
pub fn calibrated() -> Result<Fit, String> {
    // Fitted once per process: a process estimating every API request (decompute.api)
    // would otherwise refit for each.
    static FIT: std::sync::OnceLock<Result<Fit, String>> = std::sync::OnceLock::new();
    FIT.get_or_init(|| {
        let pts = parse_calibration(include_str!("../../data/inference_calibration.csv"))?;
        fit(&pts)
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPU energy only: PUE 1, no carbon or water.
    fn no_facility() -> super::super::train::EstimateFactors {
        super::super::train::EstimateFactors {
            in_cloud: false,
            pue: crate::factors::Factor::new(1.0, "", "t", None),
            grid: crate::factors::Factor::new(0.0, "", "t", None),
            wue: crate::factors::Factor::new(0.0, "", "t", None),
            ewif: crate::factors::Factor::new(0.0, "", "t", None),
            zone: "WORLD".into(),
        }
    }

    fn cal() -> Vec<Point> {
        parse_calibration(include_str!("../../data/inference_calibration.csv"))
            .expect("calibration")
    }

    #[test]
    fn the_fit_reproduces_the_measurements() {
        let pts = cal();
        let f = fit(&pts).expect("fit");
        // Every measured point within 25 %; the reference batch (64) within 12 %.
        for p in &pts {
            let e = f.j_per_token(p.params_b, p.batch);
            let err = (e - p.j_per_token).abs() / p.j_per_token;
            assert!(
                err < 0.25,
                "{} b={}: model {e:.3} vs measured {} ({:.0} %)",
                p.model,
                p.batch,
                p.j_per_token,
                err * 100.0
            );
            if p.batch == 64.0 {
                assert!(
                    err < 0.12,
                    "{} at b=64: {e:.3} vs {}",
                    p.model,
                    p.j_per_token
                );
            }
        }
        // Batch dominates: 8 vs 256 concurrent requests differ several-fold.
        assert!(f.j_per_token(8.0, 8.0) / f.j_per_token(8.0, 256.0) > 4.0);
    }

    #[test]
    fn routing_counts_the_experts_a_batch_reads() {
        // DeepSeek-V3: 671 B, 37 B active, 8 of 256 routed experts.
        let r = Routing {
            experts: 256.0,
            per_token: 8.0,
        };
        let (dense, expert) = r.split(37.0, 671.0).expect("consistent");
        assert!((dense + 256.0 * expert - 671.0).abs() < 1e-9);
        assert!((dense + 8.0 * expert - 37.0).abs() < 1e-9);
        // One token reads the always-read part and its 8 experts: the active weights.
        assert!((r.touched(37.0, 671.0, 1.0).expect("b=1") - 37.0).abs() < 1e-9);
        // A large batch reads every expert; batch 8 about 22 % of them.
        assert!((r.touched(37.0, 671.0, 4096.0).expect("big") - 671.0).abs() < 0.01);
        let b8 = r.touched(37.0, 671.0, 8.0).expect("b=8");
        assert!(b8 > 37.0 && b8 < 0.3 * 671.0, "{b8}");
        // Routing that cannot give these sizes is refused, in the estimate too.
        assert!(Routing {
            experts: 8.0,
            per_token: 8.0
        }
        .split(37.0, 671.0)
        .is_none());
        assert!(Routing {
            experts: 4.0,
            per_token: 2.0
        }
        .split(37.0, 671.0)
        .is_none());
        let h100 = super::super::hardware::HardwareTable::embedded()
            .get("h100")
            .expect("h100")
            .clone();
        let input = |routing| InferInput {
            params: 671e9,
            active_params: Some(37e9),
            hardware: Some(h100.clone()),
            reference: Some(h100.clone()),
            count: Some(10.0),
            tokens_out: 1.0,
            batch: 8.0,
            precision: Precision::Fp8,
            routing,
            ..Default::default()
        };
        let f = fit(&cal()).expect("fit");
        let uniform = estimate(&input(None), f, &no_facility()).expect("uniform");
        let routed = estimate(&input(Some(r)), f, &no_facility()).expect("routed");
        // At batch 8 the routed form reads fewer experts than the uniform one.
        assert!(routed.gpu_energy_per_token_j.value < uniform.gpu_energy_per_token_j.value);
        assert!(
            routed.chain[0].contains("256 routed experts"),
            "{}",
            routed.chain[0]
        );
        let bad = estimate(
            &input(Some(Routing {
                experts: 4.0,
                per_token: 2.0,
            })),
            f,
            &no_facility(),
        )
        .expect_err("contradiction");
        assert!(bad.contains("--experts"), "{bad}");
        let half = estimate(
            &input(Some(Routing {
                experts: 256.5,
                per_token: 8.0,
            })),
            f,
            &no_facility(),
        )
        .expect_err("half an expert");
        assert!(half.contains("whole numbers"), "{half}");
    }

    #[test]
    fn prompts_embodied_carbon_and_requests_add_up() {
        let h100 = super::super::hardware::HardwareTable::embedded()
            .get("h100")
            .expect("h100")
            .clone();
        let f = fit(&cal()).expect("fit");
        let factors = no_facility();
        let input = |tokens_in: f64, requests: Option<f64>| InferInput {
            params: 8e9,
            hardware: Some(h100.clone()),
            reference: Some(h100.clone()),
            tokens_out: 500.0,
            tokens_in,
            requests,
            batch: 64.0,
            embodied: Some(Embodied {
                kg_per_device: 164.0,
                source: "test".into(),
                lifetime_years: 6.0,
                utilisation: 0.85,
            }),
            ..Default::default()
        };
        let short = estimate(&input(0.0, None), f, &factors).expect("estimate");
        let long = estimate(&input(10_000.0, None), f, &factors).expect("estimate");
        // 2 × 8e9 × 10,000 FLOP at 40 % of 989 TFLOP/s and 0.74 × 700 W: 209.5 J.
        let prefill_j = long.prefill_energy_kwh.value * 3.6e6;
        assert!((prefill_j - 209.5).abs() < 0.5, "{prefill_j}");
        assert!(
            long.prefill_energy_kwh.low < prefill_j / 3.6e6
                && long.prefill_energy_kwh.high > prefill_j / 3.6e6
        );
        let added = (long.it_energy_kwh.value - short.it_energy_kwh.value) * 3.6e6;
        assert!((added - prefill_j).abs() < 1e-6, "{added} vs {prefill_j}");
        assert_eq!(short.prefill_energy_kwh.value, 0.0);
        // Embodied: device-hours = energy / (0.74 × 700 W), over 6 y × 8766 h × 0.85.
        let kg = short.embodied_kg.expect("embodied").value;
        let hours = short.it_energy_kwh.value * 1000.0 / (0.74 * 700.0);
        assert!(
            (kg - 164.0 * hours / (6.0 * 8766.0 * 0.85)).abs() < 1e-12,
            "{kg}"
        );
        // Ten requests: ten times the energy, each request a tenth.
        let ten = estimate(&input(10_000.0, Some(10.0)), f, &factors).expect("estimate");
        let per = ten.per_request.expect("per request");
        assert!((ten.it_energy_kwh.value / long.it_energy_kwh.value - 10.0).abs() < 1e-9);
        assert!(
            (per.facility_energy_wh.value - ten.facility_energy_kwh.value * 100.0).abs() < 1e-9
        );
        assert!(per.embodied_g.is_some() && long.per_request.is_none());
        let bad = estimate(&input(-1.0, None), f, &factors).expect_err("negative tokens");
        assert!(bad.contains("--tokens-in"), "{bad}");
        let bad = estimate(&input(1e14, Some(1e6)), f, &factors).expect_err("a typo");
        assert!(
            bad.contains("beyond any workload") && bad.contains("--requests"),
            "{bad}"
        );
    }

    #[test]
    fn weights_must_fit_and_batches_be_whole() {
        // 405 B at bf16 = 810 GB: 12 H100s of 80 GB at 90 % for weights; 6 at fp8.
        assert_eq!(least_count(405e9, Precision::Bf16, 80.0), 12.0);
        assert_eq!(least_count(405e9, Precision::Fp8, 80.0), 6.0);
        assert_eq!(least_count(8e9, Precision::Bf16, 80.0), 1.0);
        let h100 = super::super::hardware::HardwareTable::embedded()
            .get("h100")
            .expect("h100")
            .clone();
        let f = fit(&cal()).expect("fit");
        let factors = no_facility();
        let input = |count: Option<f64>, batch: f64, precision: Precision| InferInput {
            tokens_in: 0.0,
            embodied: None,
            params: 405e9,
            hardware: Some(h100.clone()),
            reference: Some(h100.clone()),
            count,
            tokens_out: 1000.0,
            batch,
            precision,
            ..Default::default()
        };
        let e = estimate(&input(Some(1.0), 64.0, Precision::Bf16), f, &factors)
            .expect_err("810 GB on 80");
        assert!(
            e.contains("810 GB") && e.contains("--count 12") && !e.contains("--precision"),
            "{e}"
        );
        let e =
            estimate(&input(Some(4.0), 64.0, Precision::Bf16), f, &factors).expect_err("4 < 12");
        assert!(e.contains("--precision int4"), "{e}");
        let e =
            estimate(&input(Some(8.0), 64.0, Precision::Bf16), f, &factors).expect_err("8 < 12");
        assert!(e.contains("--precision fp8"), "{e}");
        assert!(estimate(&input(Some(8.0), 64.0, Precision::Fp8), f, &factors).is_ok());
        // By default the count the calibration would have used: 810 GB in half of 80 GB each.
        let ok = estimate(&input(None, 64.0, Precision::Bf16), f, &factors).expect("default count");
        assert!(
            ok.inputs
                .iter()
                .any(|x| x.name == "count" && x.value == "21"),
            "{:?}",
            ok.inputs
        );
        // Twice the devices at the same batch: ×2^0.325 = 1.25 per token.
        let twice = estimate(&input(Some(42.0), 64.0, Precision::Bf16), f, &factors).expect("42");
        let r = twice.gpu_energy_per_token_j.value / ok.gpu_energy_per_token_j.value;
        assert!((r - 2f64.powf(0.325)).abs() < 1e-9, "{r}");
        assert!(twice.gpu_energy_per_token_j.high / ok.gpu_energy_per_token_j.high > r);
        assert!(estimate(&input(None, 1.5, Precision::Bf16), f, &factors)
            .expect_err("fractional batch")
            .contains("whole number"));
        let far =
            estimate(&input(None, 1024.0, Precision::Bf16), f, &factors).expect("extrapolated");
        assert!(far.warnings[0].contains("extrapolated"));
    }

    #[test]
    fn experts_touched_grow_with_the_batch() {
        // Dense: every weight every step.
        assert_eq!(expert_coverage(8.0, 8.0, 8.0), 1.0);
        // DeepSeek-V3 (37 of 671 B): a third of the experts at batch 8, nearly all at 256.
        let c8 = expert_coverage(37.0, 671.0, 8.0);
        assert!((c8 - 0.365).abs() < 0.01, "{c8}");
        assert!(expert_coverage(37.0, 671.0, 256.0) > 0.999);
        assert!(expert_coverage(37.0, 671.0, 16.0) > c8);
    }

    #[test]
    fn small_models_hold_the_per_token_term_and_older_stacks_cost_more() {
        let h100 = super::super::hardware::HardwareTable::embedded()
            .get("h100")
            .expect("h100")
            .clone();
        let f = fit(&cal()).expect("fit");
        assert_eq!(f.n_min, 8.0);
        // Held at 8 B: a 3 B and an 8 B model differ only in the batch-shared term.
        assert_eq!(f.per_token_term(3.0), f.per_token_term(8.0));
        assert!(f.per_token_term(14.0) > f.per_token_term(8.0));
        let factors = no_facility();
        let input = |params: f64, stack: Stack| InferInput {
            tokens_in: 0.0,
            embodied: None,
            params,
            hardware: Some(h100.clone()),
            reference: Some(h100.clone()),
            tokens_out: 1.0,
            batch: 64.0,
            stack,
            ..Default::default()
        };
        let small = estimate(&input(3e9, Stack::Current), f, &factors).expect("3 B");
        assert!(
            small
                .chain
                .iter()
                .any(|c| c.contains("held at the smallest calibrated model")),
            "{:?}",
            small.chain
        );
        let now = estimate(&input(70e9, Stack::Current), f, &factors).expect("70 B");
        let old = estimate(&input(70e9, Stack::Older), f, &factors).expect("70 B older");
        let r = old.gpu_energy_per_token_j.value / now.gpu_energy_per_token_j.value;
        assert!((r - OLDER_STACK.0).abs() < 1e-9, "{r}");
        assert!(old.chain.iter().any(|c| c.contains("older serving stack")));
        assert!(old
            .inputs
            .iter()
            .any(|i| i.name == "stack" && i.value == "older"));
        assert!(Stack::parse("v2").is_ok() && Stack::parse("newest").is_err());
    }
}

//! `decompute estimate train|infer|site`: the footprint of AI before it runs, every assumption
//! shown. Bad or insufficient inputs get one line saying what would work.

use super::{print_stdout, FactorArgs};
use crate::estimate::datacentre;
use crate::estimate::hardware::HardwareTable;
use crate::estimate::{infer, parse_count, query, train, Footprint, Ranged};
use crate::factors;
use crate::settings::PolicyChoice;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// What the factor options' defaults become in an estimate (their help describes a run's).
const DATACENTRE_DEFAULTS: &str = "Estimates stand for a data centre: when no PUE is given (flag, DECOMPUTE_*, config, a cloud zone) they use the hyperscale preset, 1.1, not a personal machine's 1.0; when no on-site water is given, the mean of the hyperscalers' published fleet WUE, 0.21 L/kWh, not 0. --explain shows both with their sources.";

#[derive(Debug, Args)]
pub struct EstimateCmd {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// A training run: FLOP, device-hours, energy, carbon, water (and embodied carbon)
    Train(Box<TrainArgs>),
    /// Inference: energy per output token and in total
    Infer(Box<InferArgs>),
    /// A data centre: its electricity (and share of the zone's), carbon, water and the
    /// embodied impacts of its hardware, from public inputs
    Site(Box<SiteArgs>),
}

#[derive(Debug, Args)]
#[command(after_help = DATACENTRE_DEFAULTS)]
pub struct SiteArgs {
    /// IT capacity, MW
    #[arg(long, value_name = "MW", allow_hyphen_values = true)]
    pub it_mw: Option<f64>,
    /// Facility capacity (grid connection), MW; with --it-mw it sets the PUE
    #[arg(long, value_name = "MW", allow_hyphen_values = true)]
    pub facility_mw: Option<f64>,
    /// Number of accelerators (with --hardware): IT power from the accelerator table plus a
    /// per-server overhead for CPUs, memory and network
    #[arg(long, value_name = "N", value_parser = parse_count, allow_hyphen_values = true)]
    pub gpus: Option<f64>,
    /// Accelerator (h100, a100, …; `estimate train --hardware list`)
    #[arg(long, value_name = "KEY")]
    pub hardware: Option<String>,
    /// Average IT power ÷ IT capacity [default: 0.5, range 0.4–0.9, see --explain]
    #[arg(long, value_name = "U", allow_hyphen_values = true)]
    pub utilisation: Option<f64>,
    /// The site's published annual consumption, GWh (instead of a capacity)
    #[arg(long, value_name = "GWH", allow_hyphen_values = true)]
    pub facility_gwh: Option<f64>,
    /// The zone's annual electricity demand, TWh [default: its demand from
    /// data/electricity_by_zone.csv, Ember/Energy Institute via Our World in Data]
    #[arg(long, value_name = "TWH", allow_hyphen_values = true)]
    pub zone_twh: Option<f64>,
    /// Years of operation for the totals
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub years: f64,
    /// Hardware lifetime over which embodied impacts are amortised [default: 6, the BLOOM
    /// paper's]
    #[arg(long, value_name = "Y", allow_hyphen_values = true)]
    pub hardware_years: Option<f64>,
    #[command(flatten)]
    pub common: Common,
}

/// Conversion and output options shared by both estimates.
#[derive(Debug, Args)]
pub struct Common {
    /// Print the JSON estimate on stdout (the summary goes to stderr), as --json does in
    /// every command (`--json FILE`, the old form, still writes FILE)
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        default_missing_value = "-",
        help_heading = "Output"
    )]
    pub json: Option<PathBuf>,
    /// Write the JSON estimate to FILE
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "json",
        help_heading = "Output"
    )]
    pub json_file: Option<PathBuf>,
    /// Print the calculation with every input and its source
    #[arg(long, help_heading = "Output")]
    pub explain: bool,
    #[command(flatten)]
    pub factors: FactorArgs,
}

#[derive(Debug, Args)]
#[command(after_help = DATACENTRE_DEFAULTS)]
pub struct TrainArgs {
    /// Total parameters (70e9, 70B)
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub params: Option<f64>,
    /// Active parameters per token (mixture-of-experts)
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub active_params: Option<f64>,
    /// Training tokens (2T, 2e12)
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub tokens: Option<f64>,
    /// Training compute in FLOP, instead of 6·N·D
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub flop: Option<f64>,
    /// Accelerator (h100, a100, tpu-v4, mi300x…; see `decompute estimate train --hardware list`)
    #[arg(long, value_name = "KEY")]
    pub hardware: Option<String>,
    /// Number of devices (with --days)
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub count: Option<f64>,
    /// Total device-hours
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub device_hours: Option<f64>,
    /// Wall-clock days (with --count)
    #[arg(long)]
    pub days: Option<f64>,
    /// Model FLOP utilisation, 0–1 [default: by the device's generation, from published runs:
    /// V100 0.20, A100 0.35, H100 0.40; see --explain]
    #[arg(long)]
    pub mfu: Option<f64>,
    /// Average power per device, W [default: measured in published runs where there is one
    /// (V100, TPU v3), else rated power × 0.8, range 0.6–1.0]
    #[arg(long)]
    pub power_w: Option<f64>,
    /// Add amortised manufacturing (embodied) carbon of the devices
    #[arg(long)]
    pub embodied: bool,
    /// Embodied carbon per device, kg CO2e, where data/hardware.csv has none (implies
    /// --embodied)
    #[arg(long, value_name = "KG", allow_hyphen_values = true)]
    pub embodied_kg: Option<f64>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
#[command(after_help = DATACENTRE_DEFAULTS)]
pub struct InferArgs {
    /// Total parameters (8e9, 8B)
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true, required_unless_present = "model", conflicts_with = "model")]
    pub params: Option<f64>,
    /// Active parameters per token (mixture-of-experts)
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true, conflicts_with = "model")]
    pub active_params: Option<f64>,
    /// A mixture of experts' routed experts per layer (the model card's; shared experts not
    /// counted): with --experts-per-token, the batch's weights are counted expert by expert
    #[arg(long, value_parser = parse_count, requires_all = ["experts_per_token", "active_params"])]
    pub experts: Option<f64>,
    /// Routed experts each token uses (top-k)
    #[arg(long, value_parser = parse_count, requires = "experts")]
    pub experts_per_token: Option<f64>,
    /// A model by the name its API uses (gpt-4o, claude-sonnet-4-5, mistral-large-latest,
    /// llama-3.1-70b…): its sizes from the shipped registry (`decompute models`), as ranges
    /// where the provider publishes none
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// The model's provider, where a name is served by several (openai, anthropic, google,
    /// mistral, cohere, open-weight)
    #[arg(long, value_name = "NAME", requires = "model")]
    pub provider: Option<String>,
    /// Accelerator [default: h100, what the calibration measured; for --model, the one its
    /// provider is assumed to serve on (data/hosted_providers.csv)]
    #[arg(long, value_name = "KEY")]
    pub hardware: Option<String>,
    /// Number of devices serving the model [default: the fewest whose memory holds the
    /// weights]
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub count: Option<f64>,
    /// Output tokens (per request when --requests is given)
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub tokens_out: f64,
    /// Input (prompt) tokens, per request when --requests is given: their prefill is added
    /// (compute-bound, 2 FLOP per active parameter per token)
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub tokens_in: Option<f64>,
    /// Number of requests
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub requests: Option<f64>,
    /// Concurrent requests served together (the dominant variable)
    #[arg(long, default_value_t = 64.0)]
    pub batch: f64,
    /// Precision of the served weights: bf16, fp16, fp8, int8, int4 (sets the memory the
    /// weights need, and so the least --count)
    #[arg(long, default_value = "bf16", value_parser = infer::Precision::parse)]
    pub precision: infer::Precision,
    /// Serving software: current (vLLM 0.11-era, 2025, what the calibration measured),
    /// older (2024 stacks: 1.65× the energy per token, measured) or transformers (plain
    /// Hugging Face generate, no serving engine: 3.08×, 2.69–3.53, measured on an H200)
    #[arg(long, default_value = "current", value_parser = infer::Stack::parse)]
    pub stack: infer::Stack,
    #[command(flatten)]
    pub common: Common,
}

/// The settings and factors of an estimate: the flags', environment's and config file's,
/// with the data-centre defaults of [`datacentre::factors`].
fn factors_for(c: &Common) -> anyhow::Result<(train::EstimateFactors, factors::FactorData)> {
    let settings = super::settings(super::said(PolicyChoice::NotRead, &[&c.factors]))?;
    let data = settings.factor_data()?;
    let conv = settings.conversion(&data)?;
    Ok((datacentre::factors(conv, &data), data))
}

/// `--explain`: the formulas, then every input with whether it was given and its source.
fn explain(o: &mut String, chain: &[String], inputs: &[crate::estimate::Input]) {
    o.push_str("how\n");
    for l in chain {
        o.push_str(&format!("  {l}\n"));
    }
    o.push_str("inputs\n");
    for i in inputs {
        o.push_str(&format!(
            "  {:<24} {:<28} {} — {}\n",
            i.name,
            i.value,
            if i.given { "given" } else { "default" },
            i.source
        ));
    }
}

fn r(x: &Ranged, unit: &str) -> String {
    // Large counts in digits grouped by thousands at three significant figures
    // ("140,000 h"), never an exponent.
    let f = |v: f64| {
        if v.abs() >= 1e5 && v.is_finite() {
            let mag = 10f64.powi(v.abs().log10().floor() as i32 - 2);
            let rounded = format!("{:.0}", (v / mag).round() * mag);
            let (sign, digits) = rounded
                .strip_prefix('-')
                .map_or(("", rounded.as_str()), |d| ("-", d));
            let mut grouped = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            format!("{sign}{grouped}")
        } else {
            crate::units::sig3(v)
        }
    };
    if x.low == x.high {
        format!("{} {unit}", f(x.value))
    } else {
        format!("{} {unit} ({}–{})", f(x.value), f(x.low), f(x.high))
    }
}

/// A figure with its band in people's units, each end with its SI prefix ("152 Wh
/// (122 Wh–213 Wh)", "8.53 mg CO2e …"), never "0.000152 kWh" or "1.402e5 t".
fn shown(x: &Ranged, show: impl Fn(f64) -> String) -> String {
    if x.low == x.high {
        show(x.value)
    } else {
        format!("{} ({}–{})", show(x.value), show(x.low), show(x.high))
    }
}

fn kwh(v: f64) -> String {
    crate::units::Joules(v * crate::units::J_PER_KWH).to_string()
}

fn kg_co2e(v: f64) -> String {
    crate::units::GramsCo2e(v * 1000.0).to_string()
}

/// The IT, facility, carbon and water lines both estimates print.
fn footprint(o: &mut String, e: &impl Footprint, f: &train::EstimateFactors) {
    let [it, facility, carbon, water] = e.footprint();
    o.push_str(&format!("  IT energy        {}\n", shown(it, kwh)));
    o.push_str(&format!("  facility energy  {}\n", shown(facility, kwh)));
    o.push_str(&format!(
        "  carbon           {}  ({} at {} gCO2e/kWh)\n",
        shown(carbon, kg_co2e),
        f.zone,
        f.grid.value
    ));
    o.push_str(&format!(
        "  water            {}\n",
        shown(water, |v| crate::units::Litres(v).to_string())
    ));
}

/// The text summary (on stderr when the JSON goes to stdout) and the JSON, if asked for.
fn output(c: &Common, text: &str, json: String) -> anyhow::Result<()> {
    match super::json_target(&c.json, &c.json_file) {
        Some(p) if p.as_os_str() == "-" => {
            crate::term::say_raw(text);
            print_stdout(&json)
        }
        Some(p) => {
            print_stdout(text)?;
            Ok(crate::outfile::write(&p, json.as_bytes())?)
        }
        None => print_stdout(text),
    }
}

/// A training estimate from its arguments (the CLI's and the Python package's).
pub fn train_estimate(t: &TrainArgs) -> anyhow::Result<train::TrainEstimate> {
    let hw = HardwareTable::embedded();
    let (f, data) = factors_for(&t.common)?;
    let hardware = match &t.hardware {
        Some(k) => Some(hw.get(k).map_err(|e| anyhow::anyhow!(e))?.clone()),
        None => None,
    };
    let input = train::TrainInput {
        params: t.params,
        active_params: t.active_params,
        tokens: t.tokens,
        flop: t.flop,
        hardware,
        count: t.count,
        device_hours: t.device_hours,
        days: t.days,
        mfu: t.mfu,
        power_w: t.power_w,
        embodied: t.embodied,
        embodied_kg: t.embodied_kg,
    };
    let e = train::estimate(&input, &f, &data.constants).map_err(|e| anyhow::anyhow!(e))?;
    Ok(e)
}

/// An inference estimate from its arguments (the CLI's and the Python package's).
pub fn infer_estimate(i: &InferArgs) -> anyhow::Result<infer::InferEstimate> {
    Ok(infer_with_factors(i)?.0)
}

/// An inference estimate and the factors it used (a hosted model's provider's data centre
/// where known).
pub fn infer_with_factors(
    i: &InferArgs,
) -> anyhow::Result<(infer::InferEstimate, train::EstimateFactors)> {
    let (f, data) = factors_for(&i.common)?;
    let q = query::Query {
        routing: match (i.experts, i.experts_per_token) {
            (Some(experts), Some(per_token)) => Some(infer::Routing { experts, per_token }),
            _ => None,
        },
        params: i.params,
        active_params: i.active_params,
        model: i.model.clone(),
        provider: i.provider.clone(),
        hardware: i.hardware.clone(),
        count: i.count,
        tokens_out: i.tokens_out,
        tokens_in: i.tokens_in.unwrap_or(0.0),
        requests: i.requests,
        batch: i.batch,
        precision: i.precision,
        stack: i.stack,
    };
    query::estimate(&q, f, &data).map_err(|e| anyhow::anyhow!(e))
}

#[derive(Parser)]
#[command(name = "decompute estimate", no_binary_name = true)]
struct Arguments {
    #[command(subcommand)]
    what: What,
}

/// Why [`json_from_args`] gave no estimate.
#[derive(Debug)]
pub enum ArgsError {
    /// The arguments do not parse: clap's first line.
    Usage(String),
    /// The estimate refused its inputs.
    Refused(String),
}

/// `decompute estimate train|infer ARGS…` as a JSON document, for callers with arguments in
/// the command's own words (the Python package's keywords): one grammar, this one.
pub fn json_from_args(args: &[String]) -> Result<String, ArgsError> {
    let a = Arguments::try_parse_from(args).map_err(|e| {
        let text = e.to_string();
        ArgsError::Usage(
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_string(),
        )
    })?;
    let refused = |e: anyhow::Error| ArgsError::Refused(format!("{e:#}"));
    let v = match a.what {
        What::Train(t) => serde_json::to_string(&train_estimate(&t).map_err(refused)?),
        What::Infer(i) => serde_json::to_string(&infer_estimate(&i).map_err(refused)?),
        What::Site(_) => {
            return Err(ArgsError::Refused(
                "site estimates are not offered in Python yet; use `decompute estimate site`"
                    .into(),
            ))
        }
    };
    v.map_err(|e| ArgsError::Refused(e.to_string()))
}

pub fn main(a: EstimateCmd) -> anyhow::Result<()> {
    let hw = HardwareTable::embedded();
    match a.what {
        What::Train(t) => {
            if t.hardware.as_deref() == Some("list") {
                let mut o = String::from("key               dense 16-bit TFLOP/s  power W  memory GB  embodied kg  name\n");
                for x in &hw.rows {
                    o.push_str(&format!(
                        "{:<17} {:>20} {:>8} {:>10} {:>12}  {}\n",
                        x.key,
                        x.peak_flops / 1e12,
                        x.power_w,
                        x.memory_gb,
                        x.embodied_kg
                            .map(|k| k.to_string())
                            .unwrap_or_else(|| "unknown".into()),
                        x.name
                    ));
                }
                return print_stdout(&o);
            }
            let (f, _) = factors_for(&t.common)?;
            let e = train_estimate(&t)?;
            for w in &e.warnings {
                crate::say!("decompute: warning: {w}");
            }
            let mut o = String::from("training estimate\n");
            if let Some(fl) = &e.flop {
                let models = crate::estimate::models::embedded();
                o.push_str(&format!(
                    "  compute          {:.3e} FLOP ({})\n",
                    fl.value,
                    crate::estimate::models::compare(fl.value, &models)
                ));
            }
            o.push_str(&format!("  device-hours     {}\n", r(&e.device_hours, "h")));
            footprint(&mut o, &e, &f);
            if let Some(em) = &e.embodied_kg {
                o.push_str(&format!("  embodied carbon  {}\n", shown(em, kg_co2e)));
            }
            if t.common.explain {
                explain(&mut o, &e.chain, &e.inputs);
            }
            output(&t.common, &o, serde_json::to_string_pretty(&e)? + "\n")
        }
        What::Infer(i) => {
            let (f, _) = factors_for(&i.common)?;
            let e = infer_estimate(&i)?;
            for w in &e.warnings {
                crate::say!("decompute: warning: {w}");
            }
            let mut o = String::from("inference estimate\n");
            o.push_str(&format!("  GPU energy/token {}  (GPU only, before PUE; comparable to the ML.ENERGY leaderboard)\n", shown(&e.gpu_energy_per_token_j, |v| crate::units::Joules(v).to_string())));
            o.push_str(&format!("  tokens           {}\n", e.tokens));
            footprint(&mut o, &e, &f);
            if let Some(k) = &e.embodied_kg {
                o.push_str(&format!(
                    "  embodied         {}  (the serving GPUs' manufacture, amortised; not in carbon above)\n",
                    shown(k, kg_co2e)
                ));
            }
            if let Some(r) = &e.per_request {
                o.push_str(&format!(
                    "  per request      {}, {}, {}{}\n",
                    shown(&r.facility_energy_wh, |v| crate::units::Joules(v * 3600.0)
                        .to_string()),
                    shown(&r.carbon_g, |v| kg_co2e(v / 1000.0)),
                    shown(&r.water_ml, |v| crate::units::Litres(v / 1000.0)
                        .to_string()),
                    r.embodied_g
                        .as_ref()
                        .map(|g| format!(" (+ {} embodied)", shown(g, |v| kg_co2e(v / 1000.0))))
                        .unwrap_or_default()
                ));
            }
            o.push_str(&format!("  covers           {}\n", e.covers));
            if i.common.explain {
                explain(&mut o, &e.chain, &e.inputs);
            }
            output(&i.common, &o, serde_json::to_string_pretty(&e)? + "\n")
        }
        What::Site(a) => site(&a, &hw),
    }
}

fn site(a: &SiteArgs, hw: &HardwareTable) -> anyhow::Result<()> {
    use crate::estimate::site;
    let (f, data) = factors_for(&a.common)?;
    let tables = site::Tables::embedded().map_err(|e| anyhow::anyhow!(e))?;
    let hardware = match &a.hardware {
        Some(k) => Some(hw.get(k).map_err(|e| anyhow::anyhow!(e))?.clone()),
        None => None,
    };
    let life = &data.constants.lifetime_years;
    let input = site::SiteInput {
        it_mw: a.it_mw,
        facility_mw: a.facility_mw,
        gpus: a.gpus,
        hardware,
        utilisation: a.utilisation,
        facility_gwh: a.facility_gwh,
        zone_twh: a.zone_twh,
        years: a.years,
        hardware_years: a.hardware_years.unwrap_or(life.value),
        hardware_years_source: match a.hardware_years {
            Some(_) => "user".into(),
            None => format!("{} ({})", life.source, life.year.unwrap_or(0)),
        },
    };
    let e = site::estimate(&input, &tables, &f).map_err(|e| anyhow::anyhow!(e))?;
    let g = |x: &Ranged, unit: &str| r(x, unit);
    let mut o = format!("site estimate ({})\n", e.zone);
    if let Some(c) = &e.it_capacity_mw {
        o.push_str(&format!("  IT capacity      {}\n", g(c, "MW")));
    }
    o.push_str(&format!(
        "  IT energy        {} a year\n",
        g(&e.it_energy_gwh_per_year, "GWh")
    ));
    o.push_str(&format!(
        "  facility energy  {} a year: {} of the zone's electricity demand ({} TWh{})\n",
        g(&e.facility_energy_gwh_per_year, "GWh"),
        g(&e.share_of_zone_electricity.scale(100.0), "%"),
        e.zone_electricity_twh,
        e.zone_electricity_year
            .map(|y| format!(" in {y}"))
            .unwrap_or_else(|| ", given".into())
    ));
    o.push_str(&format!(
        "  carbon           {} a year (location-based); {} over {} years\n",
        g(&e.carbon_t_per_year, "t CO2e"),
        g(&e.carbon_t_over_years, "t CO2e"),
        e.years
    ));
    o.push_str(&format!(
        "  water            {} a year on site, {} in the electricity\n",
        g(&e.water_on_site_m3_per_year, "m3"),
        g(&e.water_off_site_m3_per_year, "m3")
    ));
    for q in &e.equivalents {
        o.push_str(&format!(
            "  as much as       {} {}\n",
            g(&q.people, "").replace("  ", " ").trim_end(),
            q.what
        ));
    }
    if let Some(m) = &e.embodied {
        match (&m.carbon_t, &m.carbon_t_per_year) {
            (Some(c), Some(y)) => o.push_str(&format!(
                "  embodied         {} for {} accelerators and {} servers; {} a year over {} years\n",
                g(c, "t CO2e"),
                m.accelerators,
                m.servers,
                g(y, "t CO2e"),
                m.lifetime_years
            )),
            _ => o.push_str("  embodied         carbon unknown\n"),
        }
        if let Some(a) = m.adp_kgsbeq {
            o.push_str(&format!(
                "                   {} kg Sb eq of abiotic resources (minerals and metals), {} GJ of primary energy\n",
                crate::units::sig3(a),
                m.primary_energy_gj.map(crate::units::sig3).unwrap_or_else(|| "unknown".into())
            ));
        }
        for u in &m.unknown {
            o.push_str(&format!("  unknown          {u}\n"));
        }
    }
    if a.common.explain {
        explain(&mut o, &e.chain, &e.inputs);
        if let Some(m) = &e.embodied {
            for s in &m.sources {
                o.push_str(&format!("  embodied source: {s}\n"));
            }
        }
        for q in &e.equivalents {
            o.push_str(&format!("  equivalent source: {}\n", q.source));
        }
    }
    output(&a.common, &o, serde_json::to_string_pretty(&e)? + "\n")
}

#[cfg(test)]
mod defaults_tests {
    /// The help's figures are the ones the shipped data gives.
    #[test]
    fn the_help_states_the_data_centre_defaults_the_data_gives() {
        let data = crate::factors::FactorData::embedded().unwrap();
        let conv =
            crate::factors::resolve(&data, &crate::factors::ConversionRequest::default()).unwrap();
        let f = super::datacentre::factors(conv, &data);
        let pue = format!("hyperscale preset, {},", f.pue.value);
        let wue = format!("published fleet WUE, {} L/kWh,", f.wue.value);
        assert!(super::DATACENTRE_DEFAULTS.contains(&pue), "{pue}");
        assert!(super::DATACENTRE_DEFAULTS.contains(&wue), "{wue}");
    }
}

//! Requests to hosted AI models (OpenAI, Anthropic, Google, Mistral, or any OpenAI-compatible
//! server) as the ledger keeps them. Nothing of such a request can be measured by its
//! caller: its energy, carbon and water are *estimated* from the model's size (the registry)
//! and the tokens the provider's response reports, by the same estimator as `estimate infer
//! --model`. Each request becomes a record tagged `scope=estimated`, with method
//! `estimated`, so listings, summaries and reports keep it apart from measured runs while
//! project budgets count it. The Python package's `decompute.api` and `ledger import` of a
//! provider's usage export both come here.

pub mod usage;

use crate::estimate::infer::InferEstimate;
use crate::estimate::query::{self, Query};
use crate::estimate::registry;
use crate::estimate::train::EstimateFactors;
use crate::factors::FactorData;
use crate::govern::policy::{self, OnExceed, Policy};
use crate::ledger::{self, Location, RunIdentity, RunRecord, Status, RECORD_SCHEMA};
use crate::report::{
    ComponentReport, EnergySplit, FactorRef, FactorsUsed, HostInfo, Ranged, RunReport,
};
use crate::sample::{Component, Method};
use crate::settings::{Said, Settings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::ledger::ESTIMATED_SCOPE;

/// One request (or, from a usage export, a number of them) to a hosted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// `openai`, `anthropic`, `google`, `mistral`…; None where the server is not the
    /// provider's own (an OpenAI-compatible `base_url`): the model is then looked up by name.
    #[serde(default)]
    pub provider: Option<String>,
    /// The model as the response (or the request) names it.
    pub model: String,
    pub tokens_in: f64,
    pub tokens_out: f64,
    /// Unix seconds when it was sent.
    pub started_unix: f64,
    /// Seconds until the last token arrived.
    #[serde(default)]
    pub duration_s: f64,
    /// The call: `openai chat.completions`, `anthropic messages`, `openai usage export`…
    pub api: String,
    /// Where the token counts come from: `usage` (the response's own), `stream chunks`,
    /// `usage export`…
    #[serde(default)]
    pub counted: String,
    /// How many requests the counts cover (a usage export's day); one by default.
    #[serde(default)]
    pub requests: Option<f64>,
}

/// What a request is estimated to cost, as the Python package hands it back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimated {
    pub model: String,
    pub provider: String,
    pub tokens_in: f64,
    pub tokens_out: f64,
    /// The provider's GPUs' energy (before PUE), as a measured run's workload energy.
    pub energy_j: crate::estimate::Ranged,
    /// With the data centre's PUE.
    pub facility_energy_j: crate::estimate::Ranged,
    pub carbon_g: crate::estimate::Ranged,
    pub water_l: crate::estimate::Ranged,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embodied_g: Option<crate::estimate::Ranged>,
    /// The ledger run id of the record, when it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub estimate: InferEstimate,
}

/// Settings resolved once per process, as `run` resolves them: factor data, zone and PUE,
/// the policy file found from the working directory, the ledger, the default project.
pub struct Book {
    settings: Settings,
    data: FactorData,
    factors: EstimateFactors,
    ledger: Option<Location>,
    /// The ledger, opened at the first request and kept (a file ledger keeps its handle;
    /// a server's connection is released after each use, as a run's is between
    /// checkpoints); dropped after an error, to be opened again.
    open: std::sync::Mutex<Option<Box<dyn crate::ledger::Ledger>>>,
    project: String,
    tags: BTreeMap<String, String>,
}

/// What a [`Book`] is opened with (the Python `track()` keywords).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub project: Option<String>,
    pub tags: Vec<(String, String)>,
    pub ledger: Option<String>,
    pub no_ledger: bool,
    pub zone: Option<String>,
    pub pue: Option<String>,
}

impl Book {
    pub fn open(o: &Options) -> Result<Book, String> {
        let said = Said::keywords(o.zone.clone(), o.pue.clone(), o.ledger.clone());
        let settings = Settings::resolve(said).map_err(|x| x.to_string())?;
        let data = settings.factor_data().map_err(|x| x.to_string())?;
        let conv = settings.conversion(&data).map_err(|x| x.to_string())?;
        let factors = crate::estimate::datacentre::factors(conv, &data);
        let project = match &o.project {
            Some(p) => ledger::parse_project(p)?,
            None => {
                let (_, account) = crate::slurm::env::tags(std::env::vars());
                settings.project(None, account)
            }
        };
        let mut tags = BTreeMap::new();
        for (k, v) in &o.tags {
            let (k, v) = ledger::check_user_tag(k, v)?;
            tags.insert(k, v);
        }
        let ledger = if o.no_ledger {
            None
        } else {
            Some(settings.ledger().map_err(|x| x.to_string())?)
        };
        Ok(Book {
            settings,
            data,
            factors,
            ledger,
            open: std::sync::Mutex::new(None),
            project,
            tags,
        })
    }

    /// Runs `f` on the ledger, opening it if needed; None where this book records nothing.
    fn with_ledger<T>(
        &self,
        f: impl FnOnce(&mut dyn crate::ledger::Ledger) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        let Some(loc) = &self.ledger else {
            return Ok(None);
        };
        let mut held = self
            .open
            .lock()
            .map_err(|_| "the ledger handle is poisoned".to_string())?;
        if held.is_none() {
            *held = Some(loc.open().map_err(|x| x.to_string())?);
        }
        let Some(l) = held.as_mut() else {
            return Ok(None);
        };
        let out = f(l.as_mut());
        match out {
            Ok(v) => {
                l.release();
                Ok(Some(v))
            }
            Err(e) => {
                *held = None;
                Err(e)
            }
        }
    }

    /// The project requests are recorded under.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Where records go, as shown to people (None: not recorded).
    pub fn ledger_shown(&self) -> Option<String> {
        self.ledger.as_ref().map(|l| l.shown())
    }

    /// The policy file in force, if any.
    pub fn policy(&self) -> Option<&Policy> {
        self.settings.policy()
    }

    /// A request's estimate, without recording it.
    pub fn estimate(&self, r: &Request) -> Result<(InferEstimate, EstimateFactors), String> {
        estimate(r, self.factors.clone(), &self.data)
    }

    /// Estimates a request and records it in the ledger (unless this book records nothing)
    /// under the project, with the book's tags and `extra` ones.
    pub fn record(&self, r: &Request, extra: &[(String, String)]) -> Result<Estimated, String> {
        let (e, f) = self.estimate(r)?;
        let mut tags = self.tags.clone();
        for (k, v) in extra {
            let (k, v) = ledger::check_user_tag(k, v)?;
            tags.insert(k, v);
        }
        let identity = RunIdentity {
            id: crate::ulid::new(std::time::SystemTime::now()),
            project: self.project.clone(),
            tags,
            user: ledger::current_user(),
            host: crate::host::hostname(),
            cwd: self.settings.cwd().display().to_string(),
        };
        let rec = record(r, &e, &f, identity)?;
        let id = self.with_ledger(|l| {
            l.import(std::slice::from_ref(&rec))
                .map_err(|x| x.to_string())?;
            Ok(rec.identity.id.clone())
        })?;
        Ok(estimated(r, &e, id))
    }

    /// The first of `project`'s policy budgets found used up now, in words, with what the
    /// policy says to do; None if none is (or there is no policy, or no ledger to count in).
    pub fn exceeded(&self, project: Option<&str>) -> Result<Option<(String, OnExceed)>, String> {
        let project = project.unwrap_or(&self.project);
        let Some(p) = self.settings.policy() else {
            return Ok(None);
        };
        if !p.projects().contains(&project) {
            return Ok(None);
        }
        let now = crate::timefmt::now_s() as i64;
        let Some(st) = self.with_ledger(|l| {
            policy::standings(p, project, now, |s, e| {
                crate::govern::usage::period_usage(&*l, project, s, e)
            })
        })?
        else {
            return Ok(None);
        };
        let action = p.on_exceed.get(project).copied().unwrap_or(OnExceed::Stop);
        Ok(st.iter().find(|s| s.remaining() <= 0.0).map(|s| {
            let m = s.budget.metric;
            (
                format!(
                    "project {project}'s {} budget of {} per {} is used up: {} so far ({})",
                    m.name(),
                    m.show(s.budget.amount),
                    s.budget.period.name(),
                    m.show(s.used),
                    p.path.display()
                ),
                action,
            )
        }))
    }
}

/// The provider to look a request's model up under: the request's where the registry has
/// the model under it, else none (a provider's own name for an open-weight model it serves,
/// or a compatible server's: found by name). An unknown model is an error naming the
/// closest ids.
fn provider_of(r: &Request) -> Result<Option<&str>, String> {
    let reg = registry::shipped()?;
    let model = r.model.as_str();
    match r.provider.as_deref() {
        Some(p) => match registry::find(reg, model, Some(p)) {
            Ok(_) => Ok(Some(p)),
            Err(e) => registry::find(reg, model, None)
                .map(|_| None)
                .map_err(|_| e),
        },
        None => registry::find(reg, model, None).map(|_| None),
    }
}

/// Whether the registry knows the model a request names.
pub fn known(r: &Request) -> bool {
    provider_of(r).is_ok()
}

/// A request's estimate with the factors it used.
pub fn estimate(
    r: &Request,
    f: EstimateFactors,
    data: &FactorData,
) -> Result<(InferEstimate, EstimateFactors), String> {
    check(r)?;
    let mut q = Query::request(&r.model, provider_of(r)?, r.tokens_in, r.tokens_out);
    q.requests = Some(r.requests.unwrap_or(1.0));
    query::estimate(&q, f, data)
}

fn check(r: &Request) -> Result<(), String> {
    let ok = |x: f64| x.is_finite() && (0.0..1e12).contains(&x);
    if !ok(r.tokens_in) || !ok(r.tokens_out) {
        return Err(format!(
            "token counts {} in, {} out are not counts of tokens",
            r.tokens_in, r.tokens_out
        ));
    }
    if r.tokens_in + r.tokens_out == 0.0 {
        return Err("a request with no tokens in or out has nothing to estimate".into());
    }
    let times = r.started_unix.is_finite()
        && r.started_unix > 0.0
        && r.duration_s.is_finite()
        && r.duration_s >= 0.0;
    if !times {
        return Err("the request's start and duration are not times".into());
    }
    if let Some(n) = r.requests {
        if !(n.is_finite() && n >= 1.0) {
            return Err(format!("{n} is not a number of requests"));
        }
    }
    Ok(())
}

/// The figures handed back for one request.
pub fn estimated(r: &Request, e: &InferEstimate, id: Option<String>) -> Estimated {
    let provider = e
        .inputs
        .iter()
        .find(|i| i.name == "model")
        .and_then(|i| i.value.split_once('/').map(|(p, _)| p.to_string()))
        .unwrap_or_default();
    Estimated {
        model: r.model.clone(),
        provider,
        tokens_in: r.tokens_in,
        tokens_out: r.tokens_out,
        energy_j: e.it_energy_kwh.scale(3.6e6),
        facility_energy_j: e.facility_energy_kwh.scale(3.6e6),
        carbon_g: e.carbon_kg.scale(1000.0),
        water_l: e.water_l,
        embodied_g: e.embodied_kg.map(|k| k.scale(1000.0)),
        id,
        estimate: e.clone(),
    }
}

/// The ledger record of an estimated request: its energy as the facility's (the provider's
/// data centre, PUE included, as `run` records a workload's IT energy with its PUE apart),
/// every figure a band, the estimate's chain in the notes, and `scope=estimated`.
pub fn record(
    r: &Request,
    e: &InferEstimate,
    f: &EstimateFactors,
    mut identity: RunIdentity,
) -> Result<RunRecord, String> {
    let it = e.it_energy_kwh.scale(3.6e6);
    let facility = e.facility_energy_kwh.scale(3.6e6);
    let ranged = |x: crate::estimate::Ranged| Ranged {
        value: x.value,
        low: x.low,
        high: x.high,
        host: x.value,
    };
    let model_input = e
        .inputs
        .iter()
        .find(|i| i.name == "model")
        .map(|i| i.value.clone())
        .unwrap_or_else(|| r.model.clone());
    let provider = model_input
        .split_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    let tags = &mut identity.tags;
    tags.insert(ledger::SCOPE_TAG.into(), ESTIMATED_SCOPE.into());
    tags.insert("model".into(), crate::term::fit(&r.model, 200));
    if !provider.is_empty() {
        tags.insert("provider".into(), provider);
    }
    tags.insert("api".into(), crate::term::fit(&r.api, 200));
    // Totals over the requests the record stands for.
    let n = r.requests.unwrap_or(1.0);
    tags.insert("tokens_in".into(), format!("{}", r.tokens_in * n));
    tags.insert("tokens_out".into(), format!("{}", r.tokens_out * n));
    if let Some(n) = r.requests {
        tags.insert("requests".into(), format!("{n}"));
    }
    let ended = r.started_unix + r.duration_s;
    let mut notes = vec![format!(
        "estimated, not measured: {} to {} ({}), {} tokens in and {} out{} ({}); {}",
        match r.requests {
            Some(n) if n != 1.0 => format!("{n} requests"),
            _ => "a request".into(),
        },
        crate::term::line(&model_input),
        crate::term::line(&r.api),
        r.tokens_in,
        r.tokens_out,
        if r.requests.is_some_and(|n| n != 1.0) {
            " each"
        } else {
            ""
        },
        if r.counted.is_empty() {
            "counts from the response"
        } else {
            r.counted.as_str()
        },
        e.covers
    )];
    notes.extend(e.chain.iter().cloned());
    notes.extend(e.warnings.iter().map(|w| format!("warning: {w}")));
    if let Some(k) = &e.embodied_kg {
        notes.push(format!(
            "embodied carbon of the serving GPUs, not in the carbon figure: {:.4e} g ({:.4e}–{:.4e})",
            k.value * 1000.0,
            k.low * 1000.0,
            k.high * 1000.0
        ));
    }
    let report = RunReport {
        schema: crate::report::SCHEMA.into(),
        decompute_version: env!("CARGO_PKG_VERSION").into(),
        command: vec![r.api.clone(), r.model.clone()],
        exit_code: None,
        killed_by_signal: None,
        interrupted_by: None,
        started_at: crate::timefmt::rfc3339_ms((r.started_unix * 1000.0).round() as i64),
        ended_at: crate::timefmt::rfc3339_ms((ended * 1000.0).round() as i64),
        duration_s: r.duration_s,
        interval_s: 0.0,
        host: HostInfo::described(String::new(), String::new(), 0, 0.0),
        processes_followed: 0,
        cpu_time_s: 0.0,
        components: vec![ComponentReport {
            component: Component::Gpu,
            method: Method::Estimated,
            source: format!(
                "estimate infer --model {} (the provider's GPUs, estimated from tokens)",
                crate::term::line(&model_input)
            ),
            host_energy_j: it.value,
            workload_energy_j: it.value,
            low_j: it.low,
            high_j: it.high,
        }],
        energy_j: EnergySplit {
            host: it.value,
            workload: it.value,
            rest: 0.0,
            workload_low: it.low,
            workload_high: it.high,
        },
        modelled_share: 1.0,
        pue: f.pue.value,
        facility_energy_j: ranged(facility),
        carbon_g: ranged(e.carbon_kg.scale(1000.0)),
        water_l: ranged(e.water_l),
        factors: FactorsUsed {
            zone: f.zone.clone(),
            zone_name: f.zone.clone(),
            grid_gco2_per_kwh: FactorRef::from(&f.grid),
            pue: FactorRef::from(&f.pue),
            wue_l_per_kwh: FactorRef::from(&f.wue),
            ewif_l_per_kwh: FactorRef::from(&f.ewif),
            cloud: None,
        },
        notes,
        leftover_processes: Vec::new(),
        governance: None,
        run: None,
        imported: None,
        samples: Vec::new(),
    };
    let mut rec = RunRecord {
        schema: RECORD_SCHEMA.into(),
        identity,
        status: Status::Finished,
        report,
    };
    rec.validate()?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(model: &str, provider: Option<&str>) -> Request {
        Request {
            provider: provider.map(str::to_string),
            model: model.into(),
            tokens_in: 120.0,
            tokens_out: 500.0,
            started_unix: 1_796_400_000.0,
            duration_s: 2.5,
            api: "openai chat.completions".into(),
            counted: "usage".into(),
            requests: None,
        }
    }

    fn factors() -> (EstimateFactors, FactorData) {
        let data = FactorData::embedded().expect("data");
        let s = Settings::resolve_in(Said::default(), std::path::Path::new("/")).expect("settings");
        let conv = s.conversion(&data).expect("conversion");
        (crate::estimate::datacentre::factors(conv, &data), data)
    }

    #[test]
    fn a_request_is_an_estimated_record_apart_from_measured_runs() {
        let (f, data) = factors();
        let r = request("gpt-4o-mini-2024-07-18", Some("openai"));
        let (e, used) = estimate(&r, f, &data).expect("estimate");
        let id = RunIdentity {
            id: "01TEST".into(),
            project: "p".into(),
            tags: BTreeMap::new(),
            user: "u".into(),
            host: "h".into(),
            cwd: String::new(),
        };
        let rec = record(&r, &e, &used, id).expect("record");
        assert_eq!(rec.identity.tags["scope"], ESTIMATED_SCOPE);
        assert_eq!(rec.identity.tags["provider"], "openai");
        assert_eq!(rec.identity.tags["tokens_out"], "500");
        assert_eq!(rec.report.components[0].method, Method::Estimated);
        assert_eq!(
            ledger::modelled_j(&rec.report),
            rec.report.energy_j.workload
        );
        assert!(rec.report.carbon_g.low < rec.report.carbon_g.value);
        assert!(rec.report.carbon_g.value < rec.report.carbon_g.high);
        // The provider's data centre: Azure's PUE.
        assert_eq!(rec.report.pue, 1.18);
        assert!((rec.report.duration_s - 2.5).abs() < 1e-9);
        assert!(rec.report.notes[0].starts_with("estimated, not measured"));
        let back = estimated(&r, &e, None);
        assert!((back.facility_energy_j.value - rec.report.facility_energy_j.value).abs() < 1e-9);
        assert!((back.energy_j.value - rec.report.energy_j.workload).abs() < 1e-9);
    }

    #[test]
    fn a_compatible_server_is_found_by_name_and_nonsense_refused() {
        let (f, data) = factors();
        // A vLLM server's OpenAI-compatible endpoint serving an open-weight model.
        let r = request("meta-llama/Meta-Llama-3.1-8B-Instruct", Some("openai"));
        let (e, _) = estimate(&r, f.clone(), &data).expect("by name");
        assert!(
            e.inputs[0].value.contains("open-weight"),
            "{:?}",
            e.inputs[0]
        );
        let e = estimate(&request("no-such-model", None), f.clone(), &data).expect_err("unknown");
        assert!(e.contains("no model"), "{e}");
        let mut bad = request("gpt-4o", None);
        bad.tokens_out = f64::NAN;
        assert!(estimate(&bad, f.clone(), &data).is_err());
        bad.tokens_out = 0.0;
        bad.tokens_in = 0.0;
        assert!(estimate(&bad, f, &data)
            .expect_err("empty")
            .contains("no tokens"));
    }
}

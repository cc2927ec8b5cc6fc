//! The node agent's metrics for Prometheus: a pure function from the agent's counters to the
//! exposition text, in Prometheus text format 0.0.4 or OpenMetrics 1.0, through the
//! Prometheus project's own Rust client. Units are in the names and counters are in joules,
//! grams and litres, as Prometheus naming asks. Every `cgroup` family sums to the host's.

use super::state::{idx, AgentState, COMPONENTS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

/// What the agent knows about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelfMetrics {
    pub sample_duration_s: f64,
    pub cpu_s: f64,
    pub resident_bytes: f64,
    /// The grid intensity applied (its source is in `info.factors`).
    pub intensity: f64,
    /// What does not change while the agent runs: the node and the factors' citations.
    pub info: Arc<AgentInfo>,
}

/// The node and the factors applied, for the info metrics: long citations live here, once,
/// so the series operators filter by carry short keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentInfo {
    pub node: String,
    pub zone: String,
    pub cpu_model: String,
    /// The GPUs' names, joined by ", " (empty without NVML).
    pub gpu_model: String,
    /// (factor, value, unit, source, year) of grid intensity, PUE, WUE and EWIF.
    pub factors: Vec<(String, f64, String, String, String)>,
}

/// Which text format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The agent's figures as a collector: encoded straight from the counters at each scrape,
/// series by series, with borrowed labels (no metric objects, no hashing of label sets).
#[derive(Debug)]
struct Figures {
    state: Arc<AgentState>,
    me: SelfMetrics,
}

type L<'a> = [(&'a str, &'a str)];

fn family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    series: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, v) in series {
        let l: &L = &labels;
        let mut e = m.encode_family(&l)?;
        match kind {
            MetricType::Counter => e.encode_counter::<NoLabelSet, _, u64>(&v, None)?,
            _ => e.encode_gauge(&v)?,
        }
    }
    Ok(())
}

impl Collector for Figures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.state;
        let me = &self.me;
        let joules = Unit::Joules;
        let comps: Vec<(String, usize)> = COMPONENTS
            .iter()
            .filter(|c| s.host.keys().any(|(k, _)| k == *c))
            .map(|c| (c.to_string(), idx(*c)))
            .collect();
        let host: Vec<(String, String, f64)> = s
            .host
            .iter()
            .map(|((c, m), v)| (c.to_string(), m.to_string(), *v))
            .collect();
        family(
            &mut enc,
            "decompute_host_energy",
            "Energy of the whole host per component, measured or modelled",
            Some(&joules),
            MetricType::Counter,
            host.iter()
                .map(|(c, m, v)| (vec![("component", c.as_str()), ("method", m.as_str())], *v)),
        )?;
        family(
            &mut enc,
            "decompute_host_power",
            "Mean host power per component over the last interval",
            Some(&Unit::Other("watts".into())),
            MetricType::Gauge,
            comps
                .iter()
                .map(|(c, i)| (vec![("component", c.as_str())], s.power[*i])),
        )?;
        let mut cg: Vec<(Vec<(&str, &str)>, f64)> =
            Vec::with_capacity(comps.len() * (s.cgroups.len() + 2));
        for (c, i) in &comps {
            for (path, e) in &s.cgroups {
                let mut l = vec![("cgroup", path.as_str()), ("component", c.as_str())];
                l.extend(e.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                cg.push((l, e.energy[*i]));
            }
            cg.push((
                vec![("cgroup", "_idle"), ("component", c.as_str())],
                s.idle[*i],
            ));
            cg.push((
                vec![("cgroup", "_other"), ("component", c.as_str())],
                s.other[*i],
            ));
        }
        family(
            &mut enc,
            "decompute_cgroup_energy",
            "Energy charged to each cgroup (its own use, not its children's); _idle is what no cgroup used, _other the cgroups beyond --top or expired. Sums to decompute_host_energy_joules_total per component",
            Some(&joules),
            MetricType::Counter,
            cg,
        )?;
        if !s.gpus.is_empty() {
            let gpus: Vec<(&str, &str, f64)> = s
                .gpus
                .iter()
                .map(|(src, v)| {
                    let bus = src.strip_prefix("nvml:").unwrap_or(src);
                    let uuid = s.gpu_uuids.get(bus).map(String::as_str).unwrap_or("");
                    (bus, uuid, *v)
                })
                .collect();
            family(
                &mut enc,
                "decompute_gpu_energy",
                "Energy of each GPU, from NVML",
                Some(&joules),
                MetricType::Counter,
                gpus.iter()
                    .map(|(b, u, v)| (vec![("gpu", *b), ("uuid", *u)], *v)),
            )?;
        }
        family(
            &mut enc,
            "decompute_grid_intensity_grams_per_kwh",
            "Carbon intensity of the electricity applied (location-based), gCO2e/kWh",
            None,
            MetricType::Gauge,
            [(vec![("zone", me.info.zone.as_str())], me.intensity)],
        )?;
        let i = &me.info;
        family(
            &mut enc,
            "decompute_node_info",
            "The node this agent measures: its name, grid zone, CPU and GPU models (value 1)",
            None,
            MetricType::Gauge,
            [(
                vec![
                    ("node", i.node.as_str()),
                    ("zone", i.zone.as_str()),
                    ("cpu_model", i.cpu_model.as_str()),
                    ("gpu_model", i.gpu_model.as_str()),
                ],
                1.0,
            )],
        )?;
        let values: Vec<String> = i.factors.iter().map(|f| f.1.to_string()).collect();
        family(
            &mut enc,
            "decompute_factor_info",
            "Each conversion factor applied, its value, unit, source and year (value 1)",
            None,
            MetricType::Gauge,
            i.factors
                .iter()
                .zip(&values)
                .map(|((name, _, unit, source, year), v)| {
                    (
                        vec![
                            ("factor", name.as_str()),
                            ("zone", i.zone.as_str()),
                            ("value", v.as_str()),
                            ("unit", unit.as_str()),
                            ("source", source.as_str()),
                            ("year", year.as_str()),
                        ],
                        1.0,
                    )
                }),
        )?;
        family(
            &mut enc,
            "decompute_host_carbon",
            "Carbon of the host's energy at the facility (× PUE × grid intensity), gCO2e",
            Some(&Unit::Grams),
            MetricType::Counter,
            [(vec![], s.carbon_g)],
        )?;
        family(
            &mut enc,
            "decompute_host_water",
            "Water of the host's energy: on site (WUE) and off site (EWIF × PUE)",
            Some(&Unit::Other("litres".into())),
            MetricType::Counter,
            [(vec![], s.water_l)],
        )?;
        let sources: Vec<(String, String, &str)> = s
            .sources
            .iter()
            .map(|(c, m, src)| (c.to_string(), m.to_string(), src.as_str()))
            .collect();
        family(
            &mut enc,
            "decompute_source_info",
            "What each component is read from, and whether it is measured or modelled (value 1)",
            None,
            MetricType::Gauge,
            sources.iter().map(|(c, m, src)| {
                (
                    vec![
                        ("component", c.as_str()),
                        ("method", m.as_str()),
                        ("source", *src),
                    ],
                    1.0,
                )
            }),
        )?;
        family(
            &mut enc,
            "decompute_build_info",
            "decompute's version (value 1)",
            None,
            MetricType::Gauge,
            [(vec![("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )?;
        family(
            &mut enc,
            "decompute_sample_duration",
            "Time the last sample took",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            [(vec![], me.sample_duration_s)],
        )?;
        family(
            &mut enc,
            "decompute_cgroups",
            "Cgroups seen in the last sample",
            None,
            MetricType::Gauge,
            [(vec![], s.cgroups_seen as f64)],
        )?;
        family(
            &mut enc,
            "process_cpu",
            "CPU time of the agent itself (user + system)",
            Some(&Unit::Seconds),
            MetricType::Counter,
            [(vec![], me.cpu_s)],
        )?;
        family(
            &mut enc,
            "process_resident_memory",
            "Resident memory of the agent itself",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            [(vec![], me.resident_bytes)],
        )
    }
}

/// The registry of every metric, over a snapshot of the counters.
pub fn registry(state: Arc<AgentState>, me: &SelfMetrics) -> Registry {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Figures {
        state,
        me: me.clone(),
    }));
    reg
}

/// The exposition text.
pub fn text(s: &Arc<AgentState>, me: &SelfMetrics, format: Format) -> String {
    let reg = registry(s.clone(), me);
    let mut out = String::new();
    let r = match format {
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &reg),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &reg),
    };
    if r.is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Component, Method};
    use crate::serve::state::CgroupEntry;

    fn state() -> Arc<AgentState> {
        Arc::new(plain())
    }

    fn plain() -> AgentState {
        let mut s = AgentState::new(10);
        s.host.insert((Component::Cpu, Method::Modelled), 100.0);
        s.power = [5.0, 0.0, 0.0];
        s.cgroups.insert(
            "/system.slice/a.service".into(),
            CgroupEntry {
                energy: [60.0, 0.0, 0.0],
                last_seen: 0.0,
                labels: vec![],
            },
        );
        s.idle = [30.0, 0.0, 0.0];
        s.other = [10.0, 0.0, 0.0];
        s.carbon_g = 1.5;
        s.sources = vec![(Component::Cpu, Method::Modelled, "model:vcpu".into())];
        s
    }

    #[test]
    fn every_metric_the_dashboard_queries_is_exported() {
        let mut s = plain();
        s.gpus.insert("nvml:0000:17:00.0".into(), 5.0);
        let text = text(&Arc::new(s), &SelfMetrics::default(), Format::Prometheus);
        assert!(
            text.contains("decompute_node_info{")
                && text.contains("# TYPE decompute_factor_info gauge")
        );
        let exported: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let dash = include_str!("../../deploy/grafana/decompute.json");
        let v: serde_json::Value = serde_json::from_str(dash).expect("dashboard JSON");
        let mut queried = Vec::new();
        for p in v["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let e = t["expr"].as_str().expect("expr");
                let mut rest = e;
                while let Some(i) = rest.find(|c: char| c.is_ascii_lowercase()) {
                    rest = &rest[i..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    let word = &rest[..end];
                    if word.starts_with("decompute_") || word.starts_with("process_") {
                        queried.push(word.to_string());
                    }
                    rest = &rest[end..];
                }
            }
        }
        assert!(queried.len() >= 8, "{queried:?}");
        // The budget panel reads `budget status --prometheus`, the rest the agent.
        let budget: Vec<&str> = crate::cli::budget::METRICS.iter().map(|m| m.0).collect();
        for q in &queried {
            assert!(
                exported.contains(q.as_str()) || budget.contains(&q.as_str()),
                "the dashboard queries {q}, which the agent does not export: {exported:?}"
            );
        }
    }

    #[test]
    fn both_formats_carry_the_same_figures() {
        let me = SelfMetrics {
            intensity: 56.0,
            info: Arc::new(AgentInfo {
                node: "n1".into(),
                zone: "FRA".into(),
                cpu_model: "AMD EPYC".into(),
                gpu_model: String::new(),
                factors: vec![(
                    "grid_intensity".into(),
                    56.0,
                    "gCO2e/kWh".into(),
                    "Ember".into(),
                    "2023".into(),
                )],
            }),
            ..Default::default()
        };
        let p = text(&state(), &me, Format::Prometheus);
        assert!(
            p.contains("# TYPE decompute_host_energy_joules_total counter"),
            "{p}"
        );
        assert!(
            p.contains(
                "decompute_host_energy_joules_total{component=\"cpu\",method=\"modelled\"} 100"
            ),
            "{p}"
        );
        assert!(
            p.contains(
                "decompute_cgroup_energy_joules_total{cgroup=\"_idle\",component=\"cpu\"} 30"
            ),
            "{p}"
        );
        assert!(
            p.contains("decompute_host_power_watts{component=\"cpu\"} 5"),
            "{p}"
        );
        assert!(!p.contains("# EOF"), "{p}");
        let o = text(&state(), &me, Format::OpenMetrics);
        assert!(o.trim_end().ends_with("# EOF"), "{o}");
        assert!(
            o.contains("# UNIT decompute_host_energy_joules joules"),
            "{o}"
        );
        assert!(o.contains("decompute_host_carbon_grams_total 1.5"), "{o}");
    }
}

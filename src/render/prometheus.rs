//! The node agent's metrics for Prometheus: a pure function from the agent's counters to the
//! exposition text, in Prometheus text format 0.0.4 or OpenMetrics 1.0, through the
//! Prometheus project's own Rust client. Units are in the names and counters are in joules,
//! grams and litres, as Prometheus naming asks. Every `cgroup` family sums to the host's.

use crate::serve::state::{AgentState, COMPONENTS};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;
type FCounter = Counter<f64, AtomicU64>;
type FGauge = Gauge<f64, AtomicU64>;

/// What the agent knows about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelfMetrics {
    pub sample_duration_s: f64,
    pub cpu_s: f64,
    pub resident_bytes: f64,
    /// The grid intensity applied and its source.
    pub intensity: f64,
    pub intensity_source: String,
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

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn counters(reg: &mut Registry, name: &str, help: &str, unit: Unit) -> Family<Labels, FCounter> {
    let f = Family::<Labels, FCounter>::default();
    reg.register_with_unit(name, help, unit, f.clone());
    f
}

fn gauges(
    reg: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> Family<Labels, FGauge> {
    let f = Family::<Labels, FGauge>::default();
    match unit {
        Some(u) => reg.register_with_unit(name, help, u, f.clone()),
        None => reg.register(name, help, f.clone()),
    }
    f
}

/// The registry of every metric, from the counters.
pub fn registry(s: &AgentState, me: &SelfMetrics) -> Registry {
    let mut reg = Registry::default();
    let host = counters(
        &mut reg,
        "decompute_host_energy",
        "Energy of the whole host per component, measured or modelled",
        Unit::Joules,
    );
    for ((c, m), v) in &s.host {
        host.get_or_create(&l(&[
            ("component", &c.to_string()),
            ("method", &m.to_string()),
        ]))
        .inc_by(*v);
    }
    let power = gauges(
        &mut reg,
        "decompute_host_power",
        "Mean host power per component over the last interval",
        Some(Unit::Other("watts".into())),
    );
    for c in COMPONENTS {
        if s.host.keys().any(|(k, _)| *k == c) {
            power
                .get_or_create(&l(&[("component", &c.to_string())]))
                .set(s.power[crate::serve::state::idx(c)]);
        }
    }
    let cg = counters(
        &mut reg,
        "decompute_cgroup_energy",
        "Energy charged to each cgroup (its own use, not its children's); _idle is what no cgroup used, _other the cgroups beyond --top or expired. Sums to decompute_host_energy_joules_total per component",
        Unit::Joules,
    );
    for c in COMPONENTS {
        if !s.host.keys().any(|(k, _)| *k == c) {
            continue;
        }
        let i = crate::serve::state::idx(c);
        let comp = c.to_string();
        for (path, e) in &s.cgroups {
            let mut labels = l(&[("cgroup", path), ("component", &comp)]);
            labels.extend(e.labels.iter().cloned());
            cg.get_or_create(&labels).inc_by(e.energy[i]);
        }
        cg.get_or_create(&l(&[("cgroup", "_idle"), ("component", &comp)]))
            .inc_by(s.idle[i]);
        cg.get_or_create(&l(&[("cgroup", "_other"), ("component", &comp)]))
            .inc_by(s.other[i]);
    }
    if !s.gpus.is_empty() {
        let g = counters(
            &mut reg,
            "decompute_gpu_energy",
            "Energy of each GPU, from NVML",
            Unit::Joules,
        );
        for (src, v) in &s.gpus {
            let bus = src.strip_prefix("nvml:").unwrap_or(src);
            let uuid = s.gpu_uuids.get(bus).map(String::as_str).unwrap_or("");
            g.get_or_create(&l(&[("gpu", bus), ("uuid", uuid)]))
                .inc_by(*v);
        }
    }
    gauges(
        &mut reg,
        "decompute_grid_intensity_grams_per_kwh",
        "Carbon intensity of the electricity applied (location-based), gCO2e/kWh",
        None,
    )
    .get_or_create(&l(&[("source", &me.intensity_source)]))
    .set(me.intensity);
    counters(
        &mut reg,
        "decompute_host_carbon",
        "Carbon of the host's energy at the facility (× PUE × grid intensity), gCO2e",
        Unit::Grams,
    )
    .get_or_create(&Vec::new())
    .inc_by(s.carbon_g);
    counters(
        &mut reg,
        "decompute_host_water",
        "Water of the host's energy: on site (WUE) and off site (EWIF × PUE)",
        Unit::Other("litres".into()),
    )
    .get_or_create(&Vec::new())
    .inc_by(s.water_l);
    let info = gauges(
        &mut reg,
        "decompute_source_info",
        "What each component is read from, and whether it is measured or modelled (value 1)",
        None,
    );
    for (c, m, src) in &s.sources {
        info.get_or_create(&l(&[
            ("component", &c.to_string()),
            ("method", &m.to_string()),
            ("source", src),
        ]))
        .set(1.0);
    }
    gauges(
        &mut reg,
        "decompute_build_info",
        "decompute's version (value 1)",
        None,
    )
    .get_or_create(&l(&[("version", env!("CARGO_PKG_VERSION"))]))
    .set(1.0);
    gauges(
        &mut reg,
        "decompute_sample_duration",
        "Time the last sample took",
        Some(Unit::Seconds),
    )
    .get_or_create(&Vec::new())
    .set(me.sample_duration_s);
    gauges(
        &mut reg,
        "decompute_cgroups",
        "Cgroups seen in the last sample",
        None,
    )
    .get_or_create(&Vec::new())
    .set(s.cgroups_seen as f64);
    counters(
        &mut reg,
        "process_cpu",
        "CPU time of the agent itself (user + system)",
        Unit::Seconds,
    )
    .get_or_create(&Vec::new())
    .inc_by(me.cpu_s);
    gauges(
        &mut reg,
        "process_resident_memory",
        "Resident memory of the agent itself",
        Some(Unit::Bytes),
    )
    .get_or_create(&Vec::new())
    .set(me.resident_bytes);
    reg
}

/// The exposition text.
pub fn text(s: &AgentState, me: &SelfMetrics, format: Format) -> String {
    let reg = registry(s, me);
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

    fn state() -> AgentState {
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
    fn both_formats_carry_the_same_figures() {
        let me = SelfMetrics {
            intensity: 56.0,
            intensity_source: "Ember".into(),
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

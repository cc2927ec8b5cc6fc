//! What the node agent has counted since it started: host energy per component and method,
//! energy per cgroup (with `_idle` and `_other`), per GPU, carbon and water — accumulated
//! interval by interval so that, for every component and at every moment,
//! host = Σ cgroups + `_idle` + `_other` exactly. Pure: fed [`Interval`]s and times, tested
//! by table; the exposition is rendered from it in `serve::exposition`.
//!
//! A cgroup gets series of its own (its "name") while there is room under `--top N`,
//! largest first; the rest is counted in `_other`. A named cgroup keeps its counters after
//! it vanishes, so `rate()` stays right across scrapes, until it has not been seen for the
//! retention time (10 minutes): then its counters fold into `_other` and its series go.

use crate::sample::{Component, Consumer, Method};
use crate::sampler::Interval;
use std::collections::{BTreeMap, HashMap};

/// How long a vanished cgroup keeps its own series, seconds.
pub const RETENTION_S: f64 = 600.0;

/// Index of a component in per-component arrays.
pub fn idx(c: Component) -> usize {
    match c {
        Component::Cpu => 0,
        Component::Dram => 1,
        Component::Gpu => 2,
    }
}

pub const COMPONENTS: [Component; 3] = [Component::Cpu, Component::Dram, Component::Gpu];

/// One named cgroup's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupEntry {
    /// Joules per component.
    pub energy: [f64; 3],
    /// Unix seconds when it was last seen.
    pub last_seen: f64,
    /// Labels parsed from its path (pod, container, Slurm job).
    pub labels: Vec<(String, String)>,
}

/// The agent's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentState {
    /// Joules per (component, method).
    pub host: BTreeMap<(Component, Method), f64>,
    /// Mean power of the last interval per component, W.
    pub power: [f64; 3],
    pub cgroups: HashMap<String, CgroupEntry>,
    pub idle: [f64; 3],
    pub other: [f64; 3],
    /// Joules per GPU source label (`nvml:BUS`).
    pub gpus: BTreeMap<String, f64>,
    /// UUID of each GPU by bus id.
    pub gpu_uuids: BTreeMap<String, String>,
    pub carbon_g: f64,
    pub water_l: f64,
    /// (component, method, source) of what is read now.
    pub sources: Vec<(Component, Method, String)>,
    pub top: usize,
    pub intervals: u64,
    /// Cgroups seen in the last scan.
    pub cgroups_seen: usize,
}

/// Conversion factors the agent applies to host energy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentFactors {
    pub pue: f64,
    pub g_per_kwh: f64,
    pub wue: f64,
    pub ewif: f64,
}

impl AgentState {
    pub fn new(top: usize) -> AgentState {
        AgentState {
            top,
            ..Default::default()
        }
    }

    /// Adds one interval, seen at Unix time `now`.
    pub fn add(&mut self, iv: &Interval, now: f64, f: &AgentFactors) {
        self.expire(now);
        self.intervals += 1;
        self.cgroups_seen = iv.consumers.len();
        let dt = iv.dt.0.max(1e-9);
        let mut power = [0.0; 3];
        let mut sources = Vec::new();
        let mut host_j = 0.0;
        for (i, h) in iv.host.iter().enumerate() {
            let c = idx(h.resource.component);
            *self
                .host
                .entry((h.resource.component, h.method))
                .or_default() += h.energy.0;
            power[c] += h.energy.0 / dt;
            host_j += h.energy.0;
            self.idle[c] += iv.idle(i).0;
            if h.resource.component == Component::Gpu {
                *self.gpus.entry(h.resource.source.clone()).or_default() += h.energy.0;
            }
            let s = (h.resource.component, h.method, h.resource.source.clone());
            if !sources.contains(&s) {
                sources.push(s);
            }
        }
        self.power = power;
        self.sources = sources;
        let kwh = host_j / 3.6e6;
        self.carbon_g += kwh * f.pue * f.g_per_kwh;
        self.water_l += kwh * f.wue + kwh * f.pue * f.ewif;

        // Largest first, so the room under --top goes to the cgroups that use most.
        let mut order: Vec<(usize, f64)> = iv
            .consumers
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.total().0))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (ci, _) in order {
            let c = &iv.consumers[ci];
            let Consumer::Cgroup(path) = &c.usage.consumer else {
                continue;
            };
            let named = self.cgroups.contains_key(path);
            let has_energy = c.parts.iter().any(|p| p.energy.0 > 0.0);
            if !named && (self.cgroups.len() >= self.top || !has_energy) {
                for p in &c.parts {
                    self.other[idx(iv.host[p.resource].resource.component)] += p.energy.0;
                }
                continue;
            }
            let e = self
                .cgroups
                .entry(path.clone())
                .or_insert_with(|| CgroupEntry {
                    energy: [0.0; 3],
                    last_seen: now,
                    labels: labels(path),
                });
            e.last_seen = now;
            for p in &c.parts {
                e.energy[idx(iv.host[p.resource].resource.component)] += p.energy.0;
            }
        }
    }

    /// Folds the counters of cgroups unseen for the retention time into `_other`.
    pub fn expire(&mut self, now: f64) {
        let old: Vec<String> = self
            .cgroups
            .iter()
            .filter(|(_, e)| now - e.last_seen > RETENTION_S)
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            if let Some(e) = self.cgroups.remove(&k) {
                for i in 0..3 {
                    self.other[i] += e.energy[i];
                }
            }
        }
    }

    /// Host joules of a component (all methods).
    pub fn host_total(&self, c: Component) -> f64 {
        self.host
            .iter()
            .filter(|((k, _), _)| *k == c)
            .map(|(_, v)| v)
            .sum()
    }

    /// Σ over every cgroup value (named, `_idle`, `_other`) of a component.
    pub fn cgroup_total(&self, c: Component) -> f64 {
        let i = idx(c);
        self.cgroups.values().map(|e| e.energy[i]).sum::<f64>() + self.idle[i] + self.other[i]
    }
}

/// Labels a cgroup path carries: Kubernetes pod and container (cgroupfs and systemd
/// drivers, containerd, CRI-O and Docker runtimes) and Slurm job (`job_N` segments).
pub fn labels(path: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.iter().any(|s| s.starts_with("kubepods")) {
        for (i, s) in segs.iter().enumerate() {
            // systemd driver: kubepods-burstable-pod1234_5678.slice
            let pod = if let Some(rest) = s.strip_suffix(".slice") {
                rest.rsplit_once("-pod")
                    .map(|(_, uid)| uid.replace('_', "-"))
            } else {
                // cgroupfs driver: pod1234-5678
                s.strip_prefix("pod").map(str::to_string)
            };
            if let Some(uid) = pod.filter(|u| !u.is_empty()) {
                out.push(("pod_uid".to_string(), uid));
                if let Some(c) = segs.get(i + 1) {
                    let id = c
                        .strip_suffix(".scope")
                        .map(|x| x.rsplit_once('-').map(|(_, id)| id).unwrap_or(x))
                        .unwrap_or(c);
                    if !id.is_empty() {
                        out.push(("container_id".to_string(), id.to_string()));
                    }
                }
                break;
            }
        }
    }
    if let Some(job) = segs.iter().find_map(|s| {
        s.strip_prefix("job_")
            .filter(|j| j.bytes().all(|b| b.is_ascii_digit()) && !j.is_empty())
    }) {
        out.push(("slurm_job_id".to_string(), job.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(parts: &[(&str, f64)], host: f64) -> Interval {
        let with_cpu: Vec<(&str, f64, f64)> = parts.iter().map(|(p, e)| (*p, *e, 0.0)).collect();
        crate::sampler::cgroup_interval(&with_cpu, host)
    }

    const F: AgentFactors = AgentFactors {
        pue: 1.5,
        g_per_kwh: 100.0,
        wue: 1.0,
        ewif: 2.0,
    };

    #[test]
    fn conserved_with_top_n_and_retention() {
        let mut s = AgentState::new(2);
        s.add(
            &interval(&[("/a", 5.0), ("/b", 3.0), ("/c", 1.0)], 10.0),
            0.0,
            &F,
        );
        assert_eq!(s.cgroups.len(), 2, "--top 2");
        assert_eq!(s.other[0], 1.0);
        assert_eq!(s.idle[0], 1.0);
        assert!((s.cgroup_total(Component::Cpu) - s.host_total(Component::Cpu)).abs() < 1e-9);
        // /c is now the largest, but the named set is full: it stays in _other.
        s.add(&interval(&[("/a", 1.0), ("/c", 8.0)], 10.0), 500.0, &F);
        assert_eq!(s.other[0], 9.0);
        // /b unseen for more than 10 minutes: folded into _other, room for /c.
        s.add(&interval(&[("/a", 1.0), ("/c", 2.0)], 4.0), 1000.0, &F);
        assert!(!s.cgroups.contains_key("/b"));
        assert!(s.cgroups.contains_key("/c"));
        assert!((s.cgroup_total(Component::Cpu) - s.host_total(Component::Cpu)).abs() < 1e-9);
        assert!((s.carbon_g - 24.0 / 3.6e6 * 1.5 * 100.0).abs() < 1e-12);
        assert!((s.water_l - 24.0 / 3.6e6 * (1.0 + 1.5 * 2.0)).abs() < 1e-12);
        assert_eq!(s.power[0], 4.0);
    }

    #[test]
    fn pods_containers_and_slurm_jobs() {
        let cases: [(&str, &[(&str, &str)]); 5] = [
            (
                "/kubepods/burstable/pod1c9a2f6e-0d4b-4f53-9f1a-2b3c4d5e6f70/6d1f0e9a8b7c",
                &[("pod_uid", "1c9a2f6e-0d4b-4f53-9f1a-2b3c4d5e6f70"), ("container_id", "6d1f0e9a8b7c")],
            ),
            (
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1c9a2f6e_0d4b_4f53_9f1a_2b3c4d5e6f70.slice/cri-containerd-6d1f0e9a8b7c.scope",
                &[("pod_uid", "1c9a2f6e-0d4b-4f53-9f1a-2b3c4d5e6f70"), ("container_id", "6d1f0e9a8b7c")],
            ),
            (
                "/kubepods.slice/kubepods-podabc_def.slice",
                &[("pod_uid", "abc-def")],
            ),
            (
                "/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0",
                &[("slurm_job_id", "4242")],
            ),
            ("/system.slice/nginx.service", &[]),
        ];
        for (path, want) in cases {
            let got = labels(path);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{path}");
        }
    }

    proptest::proptest! {
        #[test]
        fn labels_never_panic(p in "(/[a-z_.0-9é-]{0,20}){0,6}") {
            let _ = labels(&p);
        }
    }
}

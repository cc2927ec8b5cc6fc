//! Driver 2 of the sampling core: `decompute serve`, a node agent for Prometheus. A sampling
//! thread ticks the [`Sampler`] over every cgroup of the machine each interval and adds the
//! interval to the agent's counters; after each tick it publishes an immutable snapshot. A
//! scrape renders whichever snapshot is current: it never waits for a sample and never
//! causes one. The HTTP side is [`http`]; the counters are [`state`]; the exposition is
//! `serve::exposition`.

pub mod exposition;
pub mod http;
pub mod state;

use crate::consumer::cgroups::{Cgroups, Layout};
use crate::detect::Detection;
use crate::factors::Conversion;
use crate::procfs::ProcRoot;
use crate::sampler::{Interval, Sampler};
use exposition::{AgentInfo, Format, SelfMetrics};
use state::{AgentFactors, AgentState};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the agent samples.
#[derive(Debug, Clone)]
pub struct Options {
    pub interval: Duration,
    pub top: usize,
    /// The cgroup hierarchy to read (else found in mountinfo).
    pub cgroup_root: Option<PathBuf>,
    pub procfs_root: PathBuf,
    /// Slurm jobs under `proctrack/linuxproc`: the consumers are the jobs' process trees
    /// (`slurm::steps`), not the cgroups.
    pub slurm_steps: bool,
    /// This cluster's `SlurmdSpoolDir`, to count only its step daemons.
    pub slurm_spool: Option<PathBuf>,
}

/// One published state: the counters and the agent's own figures.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub state: Arc<AgentState>,
    pub me: SelfMetrics,
}

/// Something else that wants every interval (the Slurm job accountant).
pub type Hook = Box<dyn FnMut(&Interval, f64) + Send>;

/// A running agent: the sampling thread and the latest snapshot.
pub struct Agent {
    pub snapshot: Arc<Mutex<Arc<Snapshot>>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// What the agent reads: the cgroup layout and each component's source.
    pub describe: String,
}

/// The agent's own CPU seconds and resident bytes, from `/proc/self`.
fn self_usage() -> (f64, f64) {
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| crate::procfs::pid::parse(&t).ok())
        .map(|s| (s.utime + s.stime) as f64 / crate::procfs::clock_ticks_per_second())
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|pages| pages * crate::procfs::page_size() as f64)
        .unwrap_or(0.0);
    (cpu, rss)
}

impl Agent {
    /// Takes the baselines and starts sampling.
    pub fn start(
        mut detection: Detection,
        conv: &Conversion,
        opts: &Options,
        mut hook: Option<Hook>,
    ) -> Result<Agent, String> {
        let layout = match &opts.cgroup_root {
            Some(r) => Layout::at(r)?,
            None => Layout::detect(&opts.procfs_root)?,
        };
        let gpu = detection.gpu.is_some();
        let gpu_uuids: std::collections::BTreeMap<String, String> = detection
            .gpu
            .as_ref()
            .map(|g| {
                g.devices()
                    .into_iter()
                    .map(|d| (d.bus_id, d.uuid))
                    .collect()
            })
            .unwrap_or_default();
        let slots = detection.slots();
        let describe = format!(
            "{}; {}",
            if opts.slurm_steps {
                "Slurm jobs: the process trees under each slurmstepd (proctrack/linuxproc)"
                    .to_string()
            } else {
                layout.describe()
            },
            slots
                .iter()
                .map(|s| s.source.label())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let consumers: Box<dyn crate::consumer::Consumers> = if opts.slurm_steps {
            Box::new(crate::slurm::steps::SlurmSteps::new(
                ProcRoot::new(&opts.procfs_root),
                opts.slurm_spool.clone(),
            ))
        } else {
            Box::new(Cgroups::new(layout, gpu))
        };
        let mut sampler = Sampler::new(
            ProcRoot::new(&opts.procfs_root),
            slots,
            consumers,
            detection.mem_total_bytes,
            detection.cpu.logical_cpus,
        );
        let factors = AgentFactors {
            pue: conv.pue.value,
            g_per_kwh: conv.grid.value,
            wue: conv.wue.value,
            ewif: conv.ewif.value,
        };
        let factor = |name: &str, f: &crate::factors::Factor| {
            (
                name.to_string(),
                f.value,
                f.unit.clone(),
                f.source.clone(),
                f.year.map(|y| y.to_string()).unwrap_or_default(),
            )
        };
        let info = Arc::new(AgentInfo {
            node: crate::host::hostname(),
            zone: conv.zone.clone(),
            cpu_model: detection.cpu.model_name.clone().unwrap_or_default(),
            gpu_model: detection
                .gpu
                .as_ref()
                .map(|g| {
                    g.devices()
                        .into_iter()
                        .map(|d| d.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            factors: vec![
                factor("grid_intensity", &conv.grid),
                factor("pue", &conv.pue),
                factor("wue", &conv.wue),
                factor("ewif", &conv.ewif),
            ],
        });
        let snapshot = Arc::new(Mutex::new(Arc::new(Snapshot {
            state: Arc::new(AgentState::new(opts.top)),
            me: SelfMetrics {
                intensity: factors.g_per_kwh,
                info: info.clone(),
                ..Default::default()
            },
        })));
        let stop = Arc::new(AtomicBool::new(false));
        let (snap, st, interval, top) = (snapshot.clone(), stop.clone(), opts.interval, opts.top);
        let handle = std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                // Shared with the scrapes by reference count: a tick changes it in place
                // unless a scrape still reads the previous one (then it is copied once).
                let mut state = Arc::new(AgentState::new(top));
                Arc::make_mut(&mut state).gpu_uuids = gpu_uuids;
                let mut ticker = crate::ticker::Ticker::new(Instant::now(), interval);
                let mut warned = 0;
                while !st.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if let Some(wait) = ticker.wait(now) {
                        std::thread::sleep(wait.min(Duration::from_millis(250)));
                        continue;
                    }
                    ticker.fired(now);
                    let iv = sampler.tick();
                    let t = crate::timefmt::now_s();
                    Arc::make_mut(&mut state).add(&iv, t, &factors);
                    if let Some(h) = hook.as_mut() {
                        h(&iv, t);
                    }
                    for w in sampler.warnings.iter().skip(warned) {
                        crate::say!("decompute: warning: {w}");
                    }
                    warned = sampler.warnings.len();
                    let (cpu_s, resident_bytes) = self_usage();
                    let published = Arc::new(Snapshot {
                        state: state.clone(),
                        me: SelfMetrics {
                            sample_duration_s: sampler.last_tick_cost.as_secs_f64(),
                            cpu_s,
                            resident_bytes,
                            intensity: factors.g_per_kwh,
                            info: info.clone(),
                        },
                    });
                    if let Ok(mut s) = snap.lock() {
                        *s = published;
                    }
                }
            })
            .map_err(|e| format!("cannot start the sampling thread: {e}"))?;
        Ok(Agent {
            snapshot,
            stop,
            handle: Some(handle),
            describe,
        })
    }

    /// The current snapshot (never waits for a sample).
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The HTTP handler over this agent's snapshots.
    pub fn handler(&self) -> Arc<dyn Fn(&http::Request) -> http::Response + Send + Sync> {
        let snap = self.snapshot.clone();
        Arc::new(move |r: &http::Request| match r.path.as_str() {
            "/metrics" => {
                let s = snap.lock().map(|s| s.clone()).unwrap_or_default();
                let format = if r.accept.contains("application/openmetrics-text") {
                    Format::OpenMetrics
                } else {
                    Format::Prometheus
                };
                http::Response {
                    status: 200,
                    content_type: format.content_type().into(),
                    body: Arc::new(exposition::text(&s.state, &s.me, format)),
                }
            }
            "/healthz" => http::Response::text(200, "ok\n"),
            _ => http::Response::text(404, "not found: /metrics and /healthz only\n"),
        })
    }

    /// Stops sampling and waits for the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Serves `agent` on `listener` until `stop`.
pub fn serve(agent: &Agent, listener: TcpListener, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    http::serve(listener, agent.handler(), stop)
}

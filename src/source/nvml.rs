//! Measured GPU energy from NVIDIA's NVML, loaded at run time so decompute builds and runs
//! on machines with no NVIDIA driver (the GPU component is then simply absent). Prefers the
//! total-energy counter (Volta and later); otherwise integrates sampled power over measured
//! intervals. A GPU is charged to the workload in the intervals where a process of its tree
//! holds a context on it. NVML sits behind [`GpuBackend`] so this logic is tested without
//! a GPU.

use crate::units::{Joules, Seconds};

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "NVML not available: {0} (no NVIDIA driver, or libnvidia-ml.so.1 not on the library path)"
    )]
    Unavailable(String),
    #[error("NVML error on GPU {index}: {message}")]
    Device { index: u32, message: String },
    /// `DECOMPUTE_NVML_SCRIPT` names a file that cannot be played.
    #[error("{0}; fix the file or unset DECOMPUTE_NVML_SCRIPT")]
    Script(String),
}

/// A GPU as enumerated.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDevice {
    pub index: u32,
    pub name: String,
    pub bus_id: String,
    /// NVML's UUID of the device (`GPU-…`), empty if unknown.
    pub uuid: String,
    /// The total-energy counter is supported (Volta and later).
    pub energy_counter: bool,
    /// The device's idle power where the backend knows it (a script says it); else the
    /// meter learns it as the lowest interval power seen.
    pub idle_w: Option<f64>,
}

/// What decompute needs from a GPU library.
pub trait GpuBackend: Send {
    fn devices(&self) -> Vec<GpuDevice>;
    /// Total energy since the driver loaded, in millijoules.
    fn total_energy_mj(&self, index: u32) -> Result<u64, GpuError>;
    /// Current power draw, in milliwatts.
    fn power_mw(&self, index: u32) -> Result<u32, GpuError>;
    /// Pids holding a compute or graphics context on the device.
    fn pids(&self, index: u32) -> Result<Vec<u32>, GpuError>;
    /// Each process's utilisation of the device since `since_us` (NVML's timestamps, µs),
    /// averaged per process, and the newest timestamp seen; `None` where the driver cannot
    /// say (old drivers, vGPU, some MIG set-ups).
    fn process_utilization(
        &self,
        _index: u32,
        _since_us: u64,
    ) -> Result<Option<(Vec<ProcUtil>, u64)>, GpuError> {
        Ok(None)
    }
    /// What the figures are, for every label: `nvml` (measured) or `nvml-script:FILE`.
    fn label(&self) -> String {
        "nvml".into()
    }
    /// How the figures were obtained: measured by the driver, or scripted.
    fn method(&self) -> crate::sample::Method {
        crate::sample::Method::Measured
    }
}

/// One process's utilisation of a device over an interval, percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcUtil {
    pub pid: u32,
    pub sm: f64,
    pub mem: f64,
}

impl<T: GpuBackend + ?Sized> GpuBackend for Box<T> {
    fn devices(&self) -> Vec<GpuDevice> {
        (**self).devices()
    }
    fn total_energy_mj(&self, index: u32) -> Result<u64, GpuError> {
        (**self).total_energy_mj(index)
    }
    fn power_mw(&self, index: u32) -> Result<u32, GpuError> {
        (**self).power_mw(index)
    }
    fn pids(&self, index: u32) -> Result<Vec<u32>, GpuError> {
        (**self).pids(index)
    }
    fn process_utilization(
        &self,
        index: u32,
        since_us: u64,
    ) -> Result<Option<(Vec<ProcUtil>, u64)>, GpuError> {
        (**self).process_utilization(index, since_us)
    }
    fn label(&self) -> String {
        (**self).label()
    }
    fn method(&self) -> crate::sample::Method {
        (**self).method()
    }
}

/// Averages utilisation samples per process (NVML returns several per process and interval).
pub fn average(samples: &[(u32, u32, u32)]) -> Vec<ProcUtil> {
    let mut acc: std::collections::BTreeMap<u32, (f64, f64, f64)> = Default::default();
    for &(pid, sm, mem) in samples {
        let e = acc.entry(pid).or_default();
        e.0 += f64::from(sm);
        e.1 += f64::from(mem);
        e.2 += 1.0;
    }
    acc.into_iter()
        .map(|(pid, (sm, mem, n))| ProcUtil {
            pid,
            sm: sm / n,
            mem: mem / n,
        })
        .collect()
}

/// How one interval of a device's energy is split among processes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Split {
    /// pid → share of the device's energy (the shares sum to at most 1; what is left over
    /// had no holder, and is no one's).
    pub weights: Vec<(i32, f64)>,
    /// Per-process utilisation was not available: the equal split among context holders.
    pub equal: bool,
}

/// The rule for a shared device (see docs/methodology.md, "A shared GPU"): the part of the
/// interval's energy above the device's idle floor goes to the processes by their share of
/// SM utilisation (memory utilisation where SM is zero for all; no one's if both are); the
/// idle floor goes equally to the processes holding a context; with no holder, nothing is
/// anyone's. Without per-process utilisation, everything is split equally among holders.
pub fn split(energy_j: f64, floor_j: f64, holders: &[i32], util: Option<&[ProcUtil]>) -> Split {
    let mut pids: Vec<i32> = holders.to_vec();
    if let Some(u) = util {
        // A process busy in the interval holds a context even if it left before the read.
        for p in u {
            if let Ok(pid) = i32::try_from(p.pid) {
                if (p.sm > 0.0 || p.mem > 0.0) && !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() || energy_j <= 0.0 {
        return Split {
            weights: Vec::new(),
            equal: util.is_none(),
        };
    }
    let n = pids.len() as f64;
    let Some(util) = util else {
        return Split {
            weights: pids.iter().map(|p| (*p, 1.0 / n)).collect(),
            equal: true,
        };
    };
    let floor = floor_j.clamp(0.0, energy_j);
    let active = energy_j - floor;
    let of = |pid: i32, f: &dyn Fn(&ProcUtil) -> f64| -> f64 {
        util.iter()
            .filter(|u| i32::try_from(u.pid).ok() == Some(pid))
            .map(f)
            .sum::<f64>()
    };
    let sm: Vec<f64> = pids.iter().map(|p| of(*p, &|u| u.sm.max(0.0))).collect();
    let mem: Vec<f64> = pids.iter().map(|p| of(*p, &|u| u.mem.max(0.0))).collect();
    let (basis, total) = if sm.iter().sum::<f64>() > 0.0 {
        (&sm, sm.iter().sum::<f64>())
    } else {
        (&mem, mem.iter().sum::<f64>())
    };
    let weights = pids
        .iter()
        .zip(basis)
        .map(|(p, b)| {
            // Nobody reported using the device: the energy above the floor was not these
            // holders' work (a process NVML does not show, another container's), and stays
            // no one's rather than being pinned on an idle holder.
            let busy = if total > 0.0 { active * b / total } else { 0.0 };
            (*p, (floor / n + busy) / energy_j)
        })
        .collect();
    Split {
        weights,
        equal: false,
    }
}

/// The real NVML, through `nvml-wrapper` (which `dlopen`s the driver library).
pub struct NvmlBackend {
    nvml: &'static nvml_wrapper::Nvml,
    devices: Vec<GpuDevice>,
}

/// NVML, loaded and initialised once per process (a driver load costs milliseconds, and a
/// tracker started per epoch or per request must not pay it each time); the failure too.
fn nvml() -> Result<&'static nvml_wrapper::Nvml, GpuError> {
    static NVML: std::sync::OnceLock<Result<nvml_wrapper::Nvml, String>> =
        std::sync::OnceLock::new();
    NVML.get_or_init(|| nvml_wrapper::Nvml::init().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| GpuError::Unavailable(e.clone()))
}

/// A device call's failure, naming the device.
fn device_error(index: u32) -> impl Fn(nvml_wrapper::error::NvmlError) -> GpuError {
    move |e| GpuError::Device {
        index,
        message: e.to_string(),
    }
}

impl NvmlBackend {
    pub fn open() -> Result<NvmlBackend, GpuError> {
        let nvml = nvml()?;
        let count = nvml
            .device_count()
            .map_err(|e| GpuError::Unavailable(e.to_string()))?;
        let mut devices = Vec::new();
        for index in 0..count {
            let dev = nvml.device_by_index(index).map_err(device_error(index))?;
            let name = dev.name().unwrap_or_else(|_| "unknown NVIDIA GPU".into());
            let bus_id = dev
                .pci_info()
                .map(|p| p.bus_id)
                .unwrap_or_else(|_| format!("index-{index}"));
            let energy_counter = dev.total_energy_consumption().is_ok();
            let uuid = dev.uuid().unwrap_or_default();
            devices.push(GpuDevice {
                index,
                name,
                bus_id,
                uuid,
                energy_counter,
                idle_w: None,
            });
        }
        Ok(NvmlBackend { nvml, devices })
    }

    fn dev(&self, index: u32) -> Result<nvml_wrapper::Device<'_>, GpuError> {
        self.nvml
            .device_by_index(index)
            .map_err(device_error(index))
    }
}

impl GpuBackend for NvmlBackend {
    fn devices(&self) -> Vec<GpuDevice> {
        self.devices.clone()
    }

    fn total_energy_mj(&self, index: u32) -> Result<u64, GpuError> {
        self.dev(index)?
            .total_energy_consumption()
            .map_err(device_error(index))
    }

    fn power_mw(&self, index: u32) -> Result<u32, GpuError> {
        self.dev(index)?.power_usage().map_err(device_error(index))
    }

    fn process_utilization(
        &self,
        index: u32,
        since_us: u64,
    ) -> Result<Option<(Vec<ProcUtil>, u64)>, GpuError> {
        use nvml_wrapper::error::NvmlError;
        match self.dev(index)?.process_utilization_stats(since_us) {
            Ok(samples) => {
                let newest = samples
                    .iter()
                    .map(|s| s.timestamp)
                    .max()
                    .unwrap_or(since_us);
                let raw: Vec<(u32, u32, u32)> = samples
                    .iter()
                    .map(|s| (s.pid, s.sm_util, s.mem_util))
                    .collect();
                Ok(Some((average(&raw), newest)))
            }
            // No sample since the timestamp: nobody used the device.
            Err(NvmlError::NotFound) => Ok(Some((Vec::new(), since_us))),
            Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => Ok(None),
            Err(e) => Err(GpuError::Device {
                index,
                message: e.to_string(),
            }),
        }
    }

    fn pids(&self, index: u32) -> Result<Vec<u32>, GpuError> {
        let d = self.dev(index)?;
        let mut pids: Vec<u32> = Vec::new();
        if let Ok(ps) = d.running_compute_processes() {
            pids.extend(ps.iter().map(|p| p.pid));
        }
        if let Ok(ps) = d.running_graphics_processes() {
            pids.extend(ps.iter().map(|p| p.pid));
        }
        Ok(pids)
    }
}

#[derive(Debug, Clone)]
struct DeviceState {
    dev: GpuDevice,
    last_energy_mj: Option<u64>,
    last_power_w: Option<f64>,
    /// The lowest power the device has drawn over an interval so far: its idle floor.
    floor_w: Option<f64>,
    /// NVML's timestamp of the newest utilisation sample read, µs.
    util_since_us: u64,
}

/// One device's energy over an interval, the processes holding a context on it, and how
/// the energy is split among them.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuInterval {
    pub device: GpuDevice,
    pub energy: Joules,
    pub holders: Vec<i32>,
    pub split: Split,
}

/// Turns a backend's readings into per-interval energy.
pub struct GpuMeter<B: GpuBackend> {
    backend: B,
    state: Vec<DeviceState>,
    /// Read errors seen (a device that fails keeps its last power for that interval).
    pub errors: Vec<String>,
    /// The equal-split fallback was said.
    split_noted: bool,
}

/// Now on NVML's clock for utilisation samples (µs since the Unix epoch).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl<B: GpuBackend> GpuMeter<B> {
    /// Takes the baseline readings.
    pub fn new(backend: B) -> GpuMeter<B> {
        let state = backend
            .devices()
            .into_iter()
            .map(|dev| {
                let last_energy_mj = if dev.energy_counter {
                    backend.total_energy_mj(dev.index).ok()
                } else {
                    None
                };
                let last_power_w = backend.power_mw(dev.index).ok().map(|mw| mw as f64 / 1e3);
                DeviceState {
                    dev,
                    last_energy_mj,
                    last_power_w,
                    floor_w: None,
                    util_since_us: now_us(),
                }
            })
            .collect();
        GpuMeter {
            backend,
            state,
            errors: Vec::new(),
            split_noted: false,
        }
    }

    pub fn devices(&self) -> Vec<GpuDevice> {
        self.state.iter().map(|s| s.dev.clone()).collect()
    }

    /// `nvml` (measured by the driver) or `nvml-script:FILE`.
    pub fn backend_label(&self) -> String {
        self.backend.label()
    }

    /// How the backend's figures are obtained.
    pub fn method(&self) -> crate::sample::Method {
        self.backend.method()
    }

    /// Energy of every device over the interval `dt` just ended, and who holds a context.
    pub fn read(&mut self, dt: Seconds) -> Vec<GpuInterval> {
        let mut out = Vec::with_capacity(self.state.len());
        for s in &mut self.state {
            let idx = s.dev.index;
            let power_now = match self.backend.power_mw(idx) {
                Ok(mw) => Some(mw as f64 / 1e3),
                Err(e) => {
                    self.errors.push(e.to_string());
                    s.last_power_w
                }
            };
            let counter = if s.dev.energy_counter {
                self.backend.total_energy_mj(idx).ok()
            } else {
                None
            };
            let energy = match (counter, s.last_energy_mj) {
                (Some(now), Some(prev)) if now >= prev => Joules((now - prev) as f64 / 1e3),
                _ => {
                    // Trapezoid over the measured interval between two power readings.
                    let a = s.last_power_w.or(power_now).unwrap_or(0.0);
                    let b = power_now.unwrap_or(a);
                    Joules((a + b) / 2.0 * dt.0)
                }
            };
            if counter.is_some() {
                s.last_energy_mj = counter;
            }
            s.last_power_w = power_now;
            let holders: Vec<i32> = match self.backend.pids(idx) {
                Ok(pids) => pids.iter().filter_map(|p| i32::try_from(*p).ok()).collect(),
                Err(e) => {
                    self.errors.push(e.to_string());
                    Vec::new()
                }
            };
            let util = match self.backend.process_utilization(idx, s.util_since_us) {
                Ok(Some((u, newest))) => {
                    s.util_since_us = s.util_since_us.max(newest);
                    Some(u)
                }
                Ok(None) => None,
                Err(e) => {
                    self.errors.push(e.to_string());
                    None
                }
            };
            // The idle floor: the device's known idle power, else (and never above) the
            // lowest interval power seen on it.
            if dt.0 > 0.0 {
                let p = energy.0 / dt.0;
                let seen = s.floor_w.map_or(p, |f| f.min(p));
                s.floor_w = Some(s.dev.idle_w.map_or(seen, |i| i.min(seen)));
            }
            let floor_j = s.floor_w.unwrap_or(0.0) * dt.0;
            let split = split(energy.0, floor_j, &holders, util.as_deref());
            out.push(GpuInterval {
                device: s.dev.clone(),
                energy,
                holders,
                split,
            });
        }
        out
    }
}

impl<B: GpuBackend> crate::source::Source for GpuMeter<B> {
    fn label(&self) -> String {
        self.backend.label()
    }

    fn poll(
        &mut self,
        ctx: &crate::source::PollContext,
    ) -> Result<Vec<crate::source::Reading>, crate::source::SourceError> {
        let (label, method) = (self.backend.label(), self.backend.method());
        let readings: Vec<_> = self
            .read(ctx.dt)
            .into_iter()
            .map(|g| {
                if g.split.equal && !g.split.weights.is_empty() && !self.split_noted {
                    self.split_noted = true;
                    self.errors.push("GPU: the driver gives no per-process utilisation here; a shared GPU's energy is split equally among the processes holding a context, with a band from none to all of it".into());
                }
                // Without per-process utilisation the equal split is a guess: its band runs
                // from nothing to the whole device, never more.
                let holders = g.split.weights.len().max(1) as f64;
                let (low, high) = if g.split.equal {
                    (Joules(0.0), g.energy * holders)
                } else {
                    (g.energy, g.energy)
                };
                crate::source::Reading {
                    resource: crate::sample::Resource {
                        component: crate::sample::Component::Gpu,
                        source: format!("{label}:{}", g.device.bus_id),
                    },
                    method,
                    energy: g.energy,
                    low,
                    high,
                    share: crate::source::ShareBy::Weights(g.split.weights),
                }
            })
            .collect();
        Ok(readings)
    }

    fn warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A simulated driver: counters advance by what the test feeds in.
    struct SimGpu {
        devs: Vec<GpuDevice>,
        energy_mj: Mutex<Vec<u64>>,
        power_mw: Mutex<Vec<u32>>,
        pids: Mutex<Vec<Vec<u32>>>,
    }

    impl GpuBackend for &SimGpu {
        fn devices(&self) -> Vec<GpuDevice> {
            self.devs.clone()
        }
        fn total_energy_mj(&self, i: u32) -> Result<u64, GpuError> {
            Ok(self.energy_mj.lock().expect("lock")[i as usize])
        }
        fn power_mw(&self, i: u32) -> Result<u32, GpuError> {
            Ok(self.power_mw.lock().expect("lock")[i as usize])
        }
        fn pids(&self, i: u32) -> Result<Vec<u32>, GpuError> {
            Ok(self.pids.lock().expect("lock")[i as usize].clone())
        }
    }

    fn dev(index: u32, energy_counter: bool) -> GpuDevice {
        GpuDevice {
            index,
            name: "Sim".into(),
            bus_id: format!("0000:{index:02}:00.0"),
            uuid: format!("GPU-sim-{index}"),
            energy_counter,
            idle_w: None,
        }
    }

    #[test]
    fn counter_device_and_power_integrated_device() {
        let sim = SimGpu {
            devs: vec![dev(0, true), dev(1, false)],
            energy_mj: Mutex::new(vec![1_000_000, 0]),
            power_mw: Mutex::new(vec![300_000, 100_000]),
            pids: Mutex::new(vec![vec![42], vec![7]]),
        };
        let mut m = GpuMeter::new(&sim);
        sim.energy_mj.lock().expect("lock")[0] += 600_500; // 600.5 J
        sim.power_mw.lock().expect("lock")[1] = 200_000;
        let r = m.read(Seconds(2.0));
        assert_eq!(r[0].energy, Joules(600.5));
        assert_eq!(r[0].holders, vec![42]);
        assert_eq!(r[1].energy, Joules(300.0)); // (100 + 200) / 2 W × 2 s
        assert_eq!(r[1].holders, vec![7]);
    }
}

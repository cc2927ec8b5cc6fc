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
}

/// The real NVML, through `nvml-wrapper` (which `dlopen`s the driver library).
pub struct NvmlBackend {
    nvml: nvml_wrapper::Nvml,
    devices: Vec<GpuDevice>,
}

impl NvmlBackend {
    pub fn open() -> Result<NvmlBackend, GpuError> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| GpuError::Unavailable(e.to_string()))?;
        let count = nvml
            .device_count()
            .map_err(|e| GpuError::Unavailable(e.to_string()))?;
        let mut devices = Vec::new();
        for index in 0..count {
            let dev = nvml.device_by_index(index).map_err(|e| GpuError::Device {
                index,
                message: e.to_string(),
            })?;
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
            });
        }
        Ok(NvmlBackend { nvml, devices })
    }

    fn dev(&self, index: u32) -> Result<nvml_wrapper::Device<'_>, GpuError> {
        self.nvml
            .device_by_index(index)
            .map_err(|e| GpuError::Device {
                index,
                message: e.to_string(),
            })
    }
}

impl GpuBackend for NvmlBackend {
    fn devices(&self) -> Vec<GpuDevice> {
        self.devices.clone()
    }

    fn total_energy_mj(&self, index: u32) -> Result<u64, GpuError> {
        self.dev(index)?
            .total_energy_consumption()
            .map_err(|e| GpuError::Device {
                index,
                message: e.to_string(),
            })
    }

    fn power_mw(&self, index: u32) -> Result<u32, GpuError> {
        self.dev(index)?
            .power_usage()
            .map_err(|e| GpuError::Device {
                index,
                message: e.to_string(),
            })
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
}

/// One device's energy over an interval and the processes holding a context on it.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuInterval {
    pub device: GpuDevice,
    pub energy: Joules,
    pub holders: Vec<i32>,
}

/// Turns a backend's readings into per-interval energy.
pub struct GpuMeter<B: GpuBackend> {
    backend: B,
    state: Vec<DeviceState>,
    /// Read errors seen (a device that fails keeps its last power for that interval).
    pub errors: Vec<String>,
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
                }
            })
            .collect();
        GpuMeter {
            backend,
            state,
            errors: Vec::new(),
        }
    }

    pub fn devices(&self) -> Vec<GpuDevice> {
        self.state.iter().map(|s| s.dev.clone()).collect()
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
            let holders = match self.backend.pids(idx) {
                Ok(pids) => pids.iter().filter_map(|p| i32::try_from(*p).ok()).collect(),
                Err(e) => {
                    self.errors.push(e.to_string());
                    Vec::new()
                }
            };
            out.push(GpuInterval {
                device: s.dev.clone(),
                energy,
                holders,
            });
        }
        out
    }
}

impl<B: GpuBackend> crate::source::Source for GpuMeter<B> {
    fn label(&self) -> String {
        "nvml".into()
    }

    fn poll(
        &mut self,
        ctx: &crate::source::PollContext,
    ) -> Result<Vec<crate::source::Reading>, crate::source::SourceError> {
        Ok(self
            .read(ctx.dt)
            .into_iter()
            .map(|g| crate::source::Reading {
                resource: crate::sample::Resource {
                    component: crate::sample::Component::Gpu,
                    source: format!("nvml:{}", g.device.bus_id),
                },
                method: crate::sample::Method::Measured,
                energy: g.energy,
                low: g.energy,
                high: g.energy,
                share: crate::source::ShareBy::Holders(g.holders),
            })
            .collect())
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

//! A scripted NVML, for tests and for anyone checking decompute without a GPU: when
//! `DECOMPUTE_NVML_SCRIPT=FILE` is set, devices, power, the energy counter and per-process
//! utilisation are played from FILE instead of the driver, through the same code after the
//! backend (the meter, the split of a shared device, the sampler). Every figure it gives is
//! labelled `nvml-script:FILE` and counted as scripted, never as measured.
//!
//! The file (JSON): `epoch` (Unix seconds the timeline starts), `devices` (`name`, `uuid`,
//! `bus_id`, optionally `idle_w`, the floor of a shared device's split), and consecutive
//! `segments`, the last lasting for ever, each with `seconds`,
//! `power_w` (one per device) and `processes` (per device, a list of `{"match": TEXT, "sm":
//! %, "mem": %}`): every live process whose command line contains TEXT holds a context on
//! that device and reports those percentages. The energy counter is the integral of power
//! from `epoch`.

use super::nvml::{average, GpuBackend, GpuDevice, GpuError, ProcUtil};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptDevice {
    name: String,
    #[serde(default)]
    uuid: String,
    bus_id: String,
    /// The device's idle power, W (the floor of the split); else learnt as NVML's is.
    #[serde(default)]
    idle_w: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptProcess {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    sm: f64,
    #[serde(default)]
    mem: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Segment {
    seconds: f64,
    power_w: Vec<f64>,
    #[serde(default)]
    processes: Vec<Vec<ScriptProcess>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    epoch: f64,
    devices: Vec<ScriptDevice>,
    segments: Vec<Segment>,
}

/// A scripted driver.
pub struct ScriptBackend {
    path: PathBuf,
    script: Script,
    procfs: PathBuf,
}

impl ScriptBackend {
    /// Reads and checks the script; `procfs` is where live processes are looked for.
    pub fn open(path: &Path, procfs: &Path) -> Result<ScriptBackend, GpuError> {
        let shown = crate::term::escape(&path.display().to_string());
        let text = crate::infile::read_text(path, crate::infile::DATA_LIMIT)
            .map_err(|e| GpuError::Script(format!("DECOMPUTE_NVML_SCRIPT: {e}")))?;
        let script: Script = serde_json::from_str(&text).map_err(|e| {
            GpuError::Script(format!(
                "DECOMPUTE_NVML_SCRIPT {shown} is not an NVML script ({e})"
            ))
        })?;
        let n = script.devices.len();
        let bad = |why: String| GpuError::Script(format!("DECOMPUTE_NVML_SCRIPT {shown}: {why}"));
        if !script.epoch.is_finite() {
            return Err(bad("epoch is not a number".into()));
        }
        if script.segments.is_empty() {
            return Err(bad("no segments".into()));
        }
        for (i, s) in script.segments.iter().enumerate() {
            if !(s.seconds.is_finite() && s.seconds > 0.0) {
                return Err(bad(format!("segment {i}: seconds must be more than 0")));
            }
            if s.power_w.len() != n || s.power_w.iter().any(|p| !(p.is_finite() && *p >= 0.0)) {
                return Err(bad(format!(
                    "segment {i}: power_w needs one power of 0 W or more per device ({n})"
                )));
            }
            if !(s.processes.is_empty() || s.processes.len() == n) {
                return Err(bad(format!(
                    "segment {i}: processes needs one list per device ({n})"
                )));
            }
            let pct = |x: f64| x.is_finite() && (0.0..=100.0).contains(&x);
            if s.processes
                .iter()
                .flatten()
                .any(|p| p.pattern.is_empty() || !pct(p.sm) || !pct(p.mem))
            {
                return Err(bad(format!(
                    "segment {i}: each process needs a non-empty match and sm, mem between 0 and 100"
                )));
            }
        }
        Ok(ScriptBackend {
            path: path.to_path_buf(),
            script,
            procfs: procfs.to_path_buf(),
        })
    }

    fn t(&self) -> f64 {
        crate::timefmt::now_s() - self.script.epoch
    }

    /// The segment in force at `t` seconds after the epoch (the last lasts for ever).
    fn segment(&self, t: f64) -> Option<&Segment> {
        let mut start = 0.0;
        for s in &self.script.segments {
            if t < start + s.seconds {
                return Some(s);
            }
            start += s.seconds;
        }
        self.script.segments.last()
    }

    /// ∫ power dt from the epoch to `t`, J.
    fn energy_j(&self, index: usize, t: f64) -> f64 {
        let mut start = 0.0;
        let mut e = 0.0;
        let last = self.script.segments.len().saturating_sub(1);
        for (i, s) in self.script.segments.iter().enumerate() {
            let end = if i == last {
                f64::INFINITY
            } else {
                start + s.seconds
            };
            let overlap = (t.min(end) - start).max(0.0);
            e += overlap * s.power_w.get(index).copied().unwrap_or(0.0);
            if t <= end {
                break;
            }
            start = end;
        }
        e
    }

    /// Live processes matching each of the device's script entries: (pid, sm, mem).
    fn matching(&self, index: u32) -> Vec<(u32, u32, u32)> {
        let Some(entries) = self
            .segment(self.t())
            .and_then(|seg| seg.processes.get(index as usize))
        else {
            return Vec::new();
        };
        let Ok(dir) = std::fs::read_dir(&self.procfs) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let words: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            // decompute's own processes name the workload's command too: never holders.
            let own = words
                .first()
                .is_some_and(|w| Path::new(w).file_name().is_some_and(|n| n == "decompute"));
            if own || words.is_empty() {
                continue;
            }
            let line = words.join(" ");
            if let Some(p) = entries.iter().find(|p| line.contains(&p.pattern)) {
                out.push((pid, p.sm.round() as u32, p.mem.round() as u32));
            }
        }
        out
    }
}

impl GpuBackend for ScriptBackend {
    fn devices(&self) -> Vec<GpuDevice> {
        self.script
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| GpuDevice {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                name: d.name.clone(),
                bus_id: d.bus_id.clone(),
                uuid: d.uuid.clone(),
                energy_counter: true,
                idle_w: d.idle_w.filter(|w| w.is_finite() && *w >= 0.0),
            })
            .collect()
    }

    fn total_energy_mj(&self, index: u32) -> Result<u64, GpuError> {
        let j = self.energy_j(index as usize, self.t());
        Ok((j * 1e3).max(0.0) as u64)
    }

    fn power_mw(&self, index: u32) -> Result<u32, GpuError> {
        let w = self
            .segment(self.t())
            .and_then(|seg| seg.power_w.get(index as usize).copied())
            .unwrap_or(0.0);
        Ok((w * 1e3).clamp(0.0, f64::from(u32::MAX)) as u32)
    }

    fn pids(&self, index: u32) -> Result<Vec<u32>, GpuError> {
        Ok(self
            .matching(index)
            .into_iter()
            .map(|(p, _, _)| p)
            .collect())
    }

    fn process_utilization(
        &self,
        index: u32,
        since_us: u64,
    ) -> Result<Option<(Vec<ProcUtil>, u64)>, GpuError> {
        // As NVML does: only processes that used the device are sampled.
        let busy: Vec<(u32, u32, u32)> = self
            .matching(index)
            .into_iter()
            .filter(|(_, sm, mem)| *sm > 0 || *mem > 0)
            .collect();
        let now = (crate::timefmt::now_s() * 1e6) as u64;
        Ok(Some((average(&busy), now.max(since_us))))
    }

    fn label(&self) -> String {
        format!(
            "nvml-script:{}",
            crate::term::escape(&self.path.display().to_string())
        )
    }

    fn method(&self) -> crate::sample::Method {
        crate::sample::Method::Scripted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(d: &Path, epoch: f64) -> PathBuf {
        let p = d.join("gpu.json");
        std::fs::write(
            &p,
            format!(
                r#"{{"epoch": {epoch},
                "devices": [{{"name": "NVIDIA H200", "uuid": "GPU-x", "bus_id": "00000000:00:06.0"}}],
                "segments": [{{"seconds": 1.0, "power_w": [78.0], "processes": [[]]}},
                             {{"seconds": 20.0, "power_w": [690.0], "processes": [[{{"match": "train.py", "sm": 99, "mem": 24}}]]}}]}}"#
            ),
        )
        .expect("w");
        p
    }

    #[test]
    fn the_counter_is_the_integral_of_the_scripted_power() {
        let d = tempfile::tempdir().expect("tmp");
        let b =
            ScriptBackend::open(&script(d.path(), 0.0), Path::new("/nonexistent")).expect("opens");
        assert_eq!(b.energy_j(0, 0.5), 39.0);
        assert_eq!(b.energy_j(0, 3.0), 78.0 + 2.0 * 690.0);
        // The last segment lasts for ever.
        assert_eq!(b.energy_j(0, 101.0), 78.0 + 100.0 * 690.0);
        assert!(b.label().starts_with("nvml-script:"));
        assert_eq!(b.method(), crate::sample::Method::Scripted);
    }

    #[test]
    fn bad_scripts_are_refused_in_words() {
        let d = tempfile::tempdir().expect("tmp");
        for bad in [
            "{}",
            r#"{"epoch": 0, "devices": [], "segments": []}"#,
            r#"{"epoch": 0, "devices": [{"name": "a", "bus_id": "b"}], "segments": [{"seconds": 1, "power_w": []}]}"#,
            r#"{"epoch": 0, "devices": [{"name": "a", "bus_id": "b"}], "segments": [{"seconds": 1, "power_w": [1], "processes": [[{"match": "", "sm": 5}]]}]}"#,
        ] {
            let p = d.path().join("bad.json");
            std::fs::write(&p, bad).expect("w");
            let e = ScriptBackend::open(&p, Path::new("/proc"))
                .err()
                .expect("refused");
            assert!(e.to_string().contains("DECOMPUTE_NVML_SCRIPT"), "{e}");
        }
    }

    #[test]
    fn a_shared_device_is_split_by_utilisation_above_its_idle_floor() {
        use super::super::nvml::split;
        // 690 J in a second, idle floor 78 J: a burner (99 % SM) beside an idle holder.
        let u = [ProcUtil {
            pid: 1,
            sm: 99.0,
            mem: 24.0,
        }];
        let s = split(690.0, 78.0, &[1, 2], Some(&u));
        let w = |p: i32| {
            s.weights
                .iter()
                .find(|(q, _)| *q == p)
                .map(|x| x.1)
                .unwrap_or(0.0)
        };
        assert!(
            (w(2) * 690.0 - 39.0).abs() < 1e-9,
            "the idle holder: half the floor"
        );
        assert!((w(1) * 690.0 - (39.0 + 612.0)).abs() < 1e-9);
        // Two burners at 44 % and 56 %.
        let u = [
            ProcUtil {
                pid: 1,
                sm: 44.0,
                mem: 0.0,
            },
            ProcUtil {
                pid: 2,
                sm: 56.0,
                mem: 0.0,
            },
        ];
        let s = split(700.0, 100.0, &[1, 2], Some(&u));
        let total: f64 = s.weights.iter().map(|x| x.1).sum();
        assert!((total - 1.0).abs() < 1e-12);
        // No utilisation from the driver: the equal split, said so.
        let s = split(700.0, 100.0, &[1, 2], None);
        assert!(s.equal && s.weights.iter().all(|x| (x.1 - 0.5).abs() < 1e-12));
        // No holder: no one's.
        assert!(split(700.0, 100.0, &[], Some(&[])).weights.is_empty());
    }
}

//! Measured CPU and DRAM energy from Linux powercap RAPL counters under
//! `<sysfs root>/class/powercap`. Decides which zones to sum so nothing is counted twice
//! (packages + dram, or psys alone; never core/uncore on top of their package; no MMIO
//! duplicates; mirrored per-die packages once) and turns wrapping microjoule counters into
//! interval energy without dropping the interval in which a counter wrapped.

use crate::units::Joules;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RaplError {
    #[error(
        "no powercap RAPL zones under {0} (a VM, a container without /sys, or a CPU without RAPL)"
    )]
    Absent(String),
    #[error("cannot read {0}: permission denied (root only since Linux 5.10, CVE-2020-8694); run as root, add a udev/chmod rule making energy_uj readable, or pass --cpu-tdp W to model it")]
    PermissionDenied(String),
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: '{text}' is not a counter value")]
    Parse { path: String, text: String },
}

/// One powercap zone as found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Directory name, e.g. `intel-rapl:0:1`.
    pub id: String,
    /// Control type: the id before the first `:` (`intel-rapl`, `intel-rapl-mmio`).
    pub control: String,
    /// Contents of `name`: `package-0`, `core`, `uncore`, `dram`, `psys`, `package-0-die-1`.
    pub name: String,
    /// 1 for a top-level zone, 2 for a subzone.
    pub depth: usize,
    pub dir: PathBuf,
    pub max_range_uj: u64,
}

/// Finds every zone once, whether listed flat in `class/powercap` or nested in its parent.
pub fn find_zones(sysfs_root: &Path) -> Result<Vec<Zone>, RaplError> {
    let base = sysfs_root.join("class/powercap");
    let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let fname = e.file_name().to_string_lossy().to_string();
            let Some((control, _)) = fname.split_once(':') else {
                continue;
            };
            if control.is_empty() {
                continue;
            }
            let p = e.path();
            if (p.join("energy_uj").exists() || p.join("name").exists())
                && !dirs.contains_key(&fname)
            {
                dirs.insert(fname.clone(), p.clone());
                stack.push(p);
            }
        }
    }
    if dirs.is_empty() {
        return Err(RaplError::Absent(base.display().to_string()));
    }
    let mut zones = Vec::new();
    for (id, dir) in dirs {
        let name = match std::fs::read_to_string(dir.join("name")) {
            Ok(n) => n.trim().to_string(),
            Err(_) => continue,
        };
        let max_range_uj = read_counter(&dir.join("max_energy_range_uj")).unwrap_or(0);
        let control = id.split(':').next().unwrap_or("").to_string();
        let depth = id.matches(':').count();
        zones.push(Zone {
            id,
            control,
            name,
            depth,
            dir,
            max_range_uj,
        });
    }
    Ok(zones)
}

/// The zones chosen for each component, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub cpu: Vec<Zone>,
    pub dram: Vec<Zone>,
    /// True when psys alone was used: it covers DRAM too, so DRAM must not be added.
    pub psys_only: bool,
    pub notes: Vec<String>,
}

impl Selection {
    pub fn cpu_label(&self) -> String {
        label(&self.cpu)
    }
    pub fn dram_label(&self) -> String {
        label(&self.dram)
    }
}

fn label(zones: &[Zone]) -> String {
    format!(
        "rapl:{}",
        zones
            .iter()
            .map(|z| z.name.as_str())
            .collect::<Vec<_>>()
            .join("+")
    )
}

/// Chooses a coherent, non-overlapping set of zones. `first` holds each zone's first
/// counter reading, used to spot mirrored per-die packages (identical counters).
pub fn select(zones: &[Zone], first: &BTreeMap<String, u64>) -> Selection {
    let mut notes = Vec::new();
    // MMIO zones duplicate the MSR ones; use them only when no MSR zone has the same name.
    let msr_names: Vec<&str> = zones
        .iter()
        .filter(|z| z.control != "intel-rapl-mmio")
        .map(|z| z.name.as_str())
        .collect();
    let usable: Vec<&Zone> = zones
        .iter()
        .filter(|z| {
            let dup = z.control == "intel-rapl-mmio" && msr_names.contains(&z.name.as_str());
            if dup {
                notes.push(format!(
                    "skipped {} ({}): duplicate of the MSR zone",
                    z.id, z.name
                ));
            }
            !dup
        })
        .collect();
    let mut packages: Vec<Zone> = Vec::new();
    for z in usable
        .iter()
        .filter(|z| z.depth == 1 && z.name.starts_with("package"))
    {
        let socket = package_number(&z.name);
        let mirrored = packages.iter().any(|p| {
            package_number(&p.name) == socket
                && first.get(&p.id).is_some()
                && first.get(&p.id) == first.get(&z.id)
                && p.max_range_uj == z.max_range_uj
        });
        if mirrored {
            notes.push(format!(
                "skipped {} ({}): mirrors another die of package {socket}",
                z.id, z.name
            ));
        } else {
            packages.push((*z).clone());
        }
    }
    let dram: Vec<Zone> = usable
        .iter()
        .filter(|z| z.name == "dram")
        .map(|z| (*z).clone())
        .collect();
    let psys: Vec<Zone> = usable
        .iter()
        .filter(|z| z.depth == 1 && z.name == "psys")
        .map(|z| (*z).clone())
        .collect();
    let ignored: Vec<&str> = usable
        .iter()
        .filter(|z| z.name == "core" || z.name == "uncore")
        .map(|z| z.id.as_str())
        .collect();
    if !ignored.is_empty() {
        notes.push(format!(
            "not added: core/uncore subzones {} (inside their package)",
            ignored.join(", ")
        ));
    }
    if !packages.is_empty() {
        if !psys.is_empty() {
            notes.push("not added: psys (it covers the packages)".into());
        }
        Selection {
            cpu: packages,
            dram,
            psys_only: false,
            notes,
        }
    } else if !psys.is_empty() {
        notes.push(
            "no package zone: psys alone is used; it covers DRAM, so DRAM is not added".into(),
        );
        Selection {
            cpu: psys,
            dram: Vec::new(),
            psys_only: true,
            notes,
        }
    } else {
        Selection {
            cpu: Vec::new(),
            dram,
            psys_only: false,
            notes,
        }
    }
}

fn package_number(name: &str) -> &str {
    name.strip_prefix("package-")
        .map(|r| r.split('-').next().unwrap_or(r))
        .unwrap_or("")
}

/// Classifies an I/O error on a counter file: permission problems get the fixes.
pub fn io_error(path: &Path, source: std::io::Error) -> RaplError {
    if source.kind() == ErrorKind::PermissionDenied {
        RaplError::PermissionDenied(path.display().to_string())
    } else {
        RaplError::Io {
            path: path.display().to_string(),
            error: source,
        }
    }
}

pub fn read_counter(path: &Path) -> Result<u64, RaplError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    parse_counter(&text).ok_or_else(|| RaplError::Parse {
        path: path.display().to_string(),
        text: text.trim().to_string(),
    })
}

pub fn parse_counter(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Turns successive readings of a wrapping counter into increments.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterDiff {
    pub max_range: u64,
    pub last: Option<u64>,
}

impl CounterDiff {
    pub fn new(max_range: u64) -> CounterDiff {
        CounterDiff {
            max_range,
            last: None,
        }
    }

    /// The increment since the previous reading: `None` for the first (baseline) reading; a
    /// smaller value means one wrap, corrected by `max_range`.
    pub fn update(&mut self, cur: u64) -> Option<u64> {
        let prev = self.last.replace(cur)?;
        Some(if cur >= prev {
            cur - prev
        } else {
            self.max_range.saturating_sub(prev) + cur
        })
    }
}

#[derive(Debug)]
struct Counter {
    path: PathBuf,
    diff: CounterDiff,
}

/// Energy per component since the last read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RaplDelta {
    pub cpu: Joules,
    pub dram: Option<Joules>,
}

/// Reads the selected zones; the constructor takes the baseline.
#[derive(Debug)]
pub struct RaplMeter {
    pub selection: Selection,
    cpu: Vec<Counter>,
    dram: Vec<Counter>,
}

impl RaplMeter {
    /// Discovers zones, reads every one once (the baseline), and selects. Fails when no
    /// zone is usable or a selected counter cannot be read.
    pub fn open(sysfs_root: &Path) -> Result<RaplMeter, RaplError> {
        let zones = find_zones(sysfs_root)?;
        let mut first = BTreeMap::new();
        let mut first_err = None;
        for z in &zones {
            match read_counter(&z.dir.join("energy_uj")) {
                Ok(v) => {
                    first.insert(z.id.clone(), v);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let selection = select(&zones, &first);
        if selection.cpu.is_empty() && selection.dram.is_empty() {
            return Err(first_err.unwrap_or_else(|| {
                RaplError::Absent(sysfs_root.join("class/powercap").display().to_string())
            }));
        }
        let counters = |zs: &[Zone]| -> Result<Vec<Counter>, RaplError> {
            zs.iter()
                .map(|z| {
                    let path = z.dir.join("energy_uj");
                    let mut diff = CounterDiff::new(z.max_range_uj);
                    match first.get(&z.id) {
                        Some(v) => {
                            diff.update(*v);
                        }
                        None => {
                            diff.update(read_counter(&path)?);
                        }
                    }
                    Ok(Counter { path, diff })
                })
                .collect()
        };
        let cpu = counters(&selection.cpu)?;
        let dram = counters(&selection.dram)?;
        Ok(RaplMeter {
            selection,
            cpu,
            dram,
        })
    }

    pub fn has_cpu(&self) -> bool {
        !self.cpu.is_empty()
    }

    pub fn has_dram(&self) -> bool {
        !self.dram.is_empty()
    }

    /// Forgets the baselines (after a failed read), so the next read takes fresh ones and
    /// no interval's energy is counted twice.
    pub fn reset(&mut self) {
        for c in self.cpu.iter_mut().chain(self.dram.iter_mut()) {
            c.diff.last = None;
        }
    }

    fn has_baseline(&self) -> bool {
        self.cpu
            .iter()
            .chain(self.dram.iter())
            .all(|c| c.diff.last.is_some())
    }

    /// Energy since the previous read (or since `open`).
    pub fn read(&mut self) -> Result<RaplDelta, RaplError> {
        fn sum(cs: &mut [Counter]) -> Result<Joules, RaplError> {
            let mut uj = 0u64;
            for c in cs.iter_mut() {
                let v = read_counter(&c.path)?;
                uj += c.diff.update(v).unwrap_or(0);
            }
            Ok(Joules(uj as f64 / 1e6))
        }
        let cpu = sum(&mut self.cpu)?;
        let dram = if self.dram.is_empty() {
            None
        } else {
            Some(sum(&mut self.dram)?)
        };
        Ok(RaplDelta { cpu, dram })
    }
}

impl crate::source::Source for RaplMeter {
    fn label(&self) -> String {
        match (self.has_cpu(), self.has_dram()) {
            (true, true) => format!(
                "{} + {}",
                self.selection.cpu_label(),
                self.selection.dram_label()
            ),
            (true, false) => self.selection.cpu_label(),
            _ => self.selection.dram_label(),
        }
    }

    fn poll(
        &mut self,
        _ctx: &crate::source::PollContext,
    ) -> Result<Vec<crate::source::Reading>, crate::source::SourceError> {
        use crate::sample::{Component, Method, Resource};
        use crate::source::{Reading, ShareBy, SourceError};
        let fresh = !self.has_baseline();
        let d = match self.read() {
            Ok(d) => d,
            Err(e) => {
                self.reset();
                return Err(match e {
                    RaplError::PermissionDenied(_) => SourceError::Fallback(e.to_string()),
                    _ => SourceError::Retry(e.to_string()),
                });
            }
        };
        if fresh {
            return Err(SourceError::Baseline);
        }
        let reading = |component, source: String, e: Joules, share| Reading {
            resource: Resource { component, source },
            method: Method::Measured,
            energy: e,
            low: e,
            high: e,
            share,
        };
        let mut out = Vec::with_capacity(2);
        if self.has_cpu() {
            out.push(reading(
                Component::Cpu,
                self.selection.cpu_label(),
                d.cpu,
                ShareBy::CpuTime,
            ));
        }
        if let Some(e) = d.dram {
            out.push(reading(
                Component::Dram,
                self.selection.dram_label(),
                e,
                ShareBy::Memory,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_diff_baseline_then_wrap() {
        let mut d = CounterDiff::new(1000);
        assert_eq!(d.update(900), None);
        assert_eq!(d.update(950), Some(50));
        assert_eq!(d.update(20), Some(70));
        assert_eq!(d.update(20), Some(0));
    }

    #[test]
    fn permission_denied_names_the_fixes() {
        let e = io_error(
            Path::new("/sys/x/energy_uj"),
            std::io::Error::from(ErrorKind::PermissionDenied),
        );
        let msg = e.to_string();
        assert!(
            msg.contains("permission denied") && msg.contains("--cpu-tdp") && msg.contains("root"),
            "{msg}"
        );
        assert!(matches!(
            io_error(Path::new("x"), std::io::Error::from(ErrorKind::NotFound)),
            RaplError::Io { .. }
        ));
    }
}

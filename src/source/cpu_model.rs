//! Modelled CPU power when no RAPL counter can be read. On bare metal: the package TDP
//! (from `data/cpu_tdp.csv`, `--cpu-tdp`, or a documented default) through a sourced
//! load-to-power curve driven by the measured `/proc/stat` utilisation. In a VM, where the
//! guest sees only a slice of a package, a per-vCPU linear model instead (a package TDP
//! would overstate a 2-vCPU guest many times). Every figure comes with a low/high band.

use crate::factors::{Constants, Factor, TdpSource};
use crate::procfs::cpuinfo::CpuInfo;
use crate::units::{Joules, Seconds, Watts};

/// How the CPU's power is modelled, with the provenance of its inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum CpuModel {
    /// Package TDP × curve(load) × packages.
    Tdp {
        tdp: Factor,
        packages: usize,
        curve: Vec<(f64, f64)>,
        curve_source: Factor,
        /// Relative half-width of the uncertainty band (0.25 = ±25 %).
        band: f64,
    },
    /// vCPUs × (min + load × (max − min)).
    Vcpu {
        vcpus: usize,
        min: Factor,
        max: Factor,
        band: f64,
    },
}

/// Band for a TDP from the table or the user: the curve is one server's, the part another.
pub const BAND_KNOWN_TDP: f64 = 0.25;
/// Band for the default TDP of an unknown CPU.
pub const BAND_DEFAULT_TDP: f64 = 0.5;
/// Band for the per-vCPU model: the guest's share of its host is not observable.
pub const BAND_VCPU: f64 = 0.5;

impl CpuModel {
    /// Chooses the model for this machine. `user_tdp` (from `--cpu-tdp`) always wins and
    /// means "this is the power of what I can see" (packages = 1). Returns warnings to show.
    pub fn choose(
        info: &CpuInfo,
        table: &TdpSource,
        k: &Constants,
        user_tdp: Option<crate::factors::Given<Watts>>,
    ) -> (CpuModel, Vec<String>) {
        let mut warnings = Vec::new();
        let tdp_model = |tdp: Factor, packages: usize, band: f64| CpuModel::Tdp {
            tdp,
            packages,
            curve: k.cpu_curve.clone(),
            curve_source: k.cpu_curve_source.clone(),
            band,
        };
        if let Some(w) = user_tdp {
            return (
                tdp_model(Factor::user(w.value.0, "W", w.origin), 1, BAND_KNOWN_TDP),
                warnings,
            );
        }
        let model = info
            .model_name
            .clone()
            .unwrap_or_else(|| "unknown CPU".into());
        let vcpus = info.logical_cpus.max(1);
        if info.hypervisor {
            warnings.push(format!(
                "virtual machine ({model}, {vcpus} vCPUs): CPU power is modelled per vCPU; pass --cpu-tdp W if you know this guest's share"
            ));
            return (
                CpuModel::Vcpu {
                    vcpus,
                    min: k.vcpu_min_w.clone(),
                    max: k.vcpu_max_w.clone(),
                    band: BAND_VCPU,
                },
                warnings,
            );
        }
        match table.table().lookup(&model) {
            Some((name, w)) => (
                tdp_model(
                    Factor::new(
                        w.0,
                        "W",
                        format!("data/cpu_tdp.csv row '{name}' (CodeCarbon CPU table, MIT)"),
                        Some(2024),
                    ),
                    info.packages,
                    BAND_KNOWN_TDP,
                ),
                warnings,
            ),
            None => {
                warnings.push(format!(
                    "CPU '{model}' is not in data/cpu_tdp.csv: using the default TDP of {} W per package (±50 %); pass --cpu-tdp W",
                    k.cpu_default_tdp_w.value
                ));
                (
                    tdp_model(k.cpu_default_tdp_w.clone(), info.packages, BAND_DEFAULT_TDP),
                    warnings,
                )
            }
        }
    }

    /// Host CPU power at `load` (0–1, busy share of all CPUs).
    pub fn power(&self, load: f64) -> Watts {
        let u = if load.is_finite() {
            load.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self {
            CpuModel::Tdp {
                tdp,
                packages,
                curve,
                ..
            } => Watts(tdp.value * *packages as f64 * interpolate(curve, u)),
            CpuModel::Vcpu {
                vcpus, min, max, ..
            } => Watts(*vcpus as f64 * (min.value + u * (max.value - min.value))),
        }
    }

    /// Energy over `dt` at `load`, with its band.
    pub fn energy(&self, load: f64, dt: Seconds) -> (Joules, Joules, Joules) {
        let e = self.power(load).for_(dt);
        let b = self.band();
        (e, e * (1.0 - b), e * (1.0 + b))
    }

    pub fn band(&self) -> f64 {
        match self {
            CpuModel::Tdp { band, .. } | CpuModel::Vcpu { band, .. } => *band,
        }
    }

    /// Short provenance label for reports (`model:tdp`, `model:vcpu`).
    pub fn label(&self) -> &'static str {
        match self {
            CpuModel::Tdp { .. } => "model:tdp",
            CpuModel::Vcpu { .. } => "model:vcpu",
        }
    }

    /// The formula with its inputs and their sources, for `--explain`.
    pub fn explain(&self) -> Vec<String> {
        match self {
            CpuModel::Tdp { tdp, packages, curve, curve_source, band } => vec![
                format!("P_cpu = TDP × packages × curve(load) = {} W × {packages} × curve(load), ±{:.0} %", tdp.value, band * 100.0),
                format!("  TDP {} W: {}", tdp.value, tdp.cite()),
                format!(
                    "  curve (load → fraction of TDP, linear between points): {}; {}",
                    curve.iter().map(|(l, f)| format!("{:.0}%→{f}", l * 100.0)).collect::<Vec<_>>().join(", "),
                    curve_source.cite()
                ),
                "  load = busy / total CPU time over the interval, from /proc/stat".into(),
            ],
            CpuModel::Vcpu { vcpus, min, max, band } => vec![
                format!(
                    "P_cpu = vCPUs × (min + load × (max − min)) = {vcpus} × ({} + load × ({} − {})) W, ±{:.0} %",
                    min.value,
                    max.value,
                    min.value,
                    band * 100.0
                ),
                format!("  min {} W/vCPU: {}", min.value, min.cite()),
                format!("  max {} W/vCPU: {}", max.value, max.cite()),
                "  load = busy / total CPU time over the interval, from /proc/stat".into(),
            ],
        }
    }
}

impl crate::source::Source for CpuModel {
    fn label(&self) -> String {
        CpuModel::label(self).to_string()
    }

    fn poll(
        &mut self,
        ctx: &crate::source::PollContext,
    ) -> Result<Vec<crate::source::Reading>, crate::source::SourceError> {
        let (energy, low, high) = self.energy(ctx.load, ctx.dt);
        Ok(vec![crate::source::Reading {
            resource: crate::sample::Resource {
                component: crate::sample::Component::Cpu,
                source: CpuModel::label(self).to_string(),
            },
            method: crate::sample::Method::Modelled,
            energy,
            low,
            high,
            share: crate::source::ShareBy::CpuTime,
        }])
    }

    fn explain(&self) -> Vec<String> {
        CpuModel::explain(self)
    }
}

/// Piecewise-linear interpolation on sorted (x, y) points, flat outside them.
pub fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    match points {
        [] => 0.0,
        [(_, y)] => *y,
        _ => {
            if x <= points[0].0 {
                return points[0].1;
            }
            for w in points.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                if x <= x1 {
                    return if x1 > x0 {
                        y0 + (y1 - y0) * (x - x0) / (x1 - x0)
                    } else {
                        y1
                    };
                }
            }
            points[points.len() - 1].1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factors::FactorData;

    fn data() -> FactorData {
        FactorData::embedded().expect("data")
    }

    #[test]
    fn teads_curve_points_and_between() {
        let c = data().constants.cpu_curve;
        let table = [
            (0.0, 0.12),
            (0.1, 0.32),
            (0.5, 0.75),
            (1.0, 1.02),
            (0.3, 0.535),
            (0.75, 0.885),
            (1.5, 1.02),
            (-1.0, 0.12),
        ];
        for (x, y) in table {
            assert!(
                (interpolate(&c, x) - y).abs() < 1e-9,
                "curve({x}) = {} not {y}",
                interpolate(&c, x)
            );
        }
    }

    #[test]
    fn bare_metal_uses_the_table_tdp_per_package() {
        let d = data();
        let info = CpuInfo {
            model_name: Some("AMD EPYC 7763 64-Core Processor".into()),
            logical_cpus: 256,
            packages: 2,
            hypervisor: false,
        };
        let (m, w) = CpuModel::choose(&info, &d.cpu_tdp, &d.constants, None);
        assert!(w.is_empty());
        assert_eq!(m.label(), "model:tdp");
        let tdp = d
            .cpu_tdp
            .table()
            .lookup("AMD EPYC 7763")
            .map(|(_, w)| w.0)
            .expect("in table");
        assert!((m.power(0.5).0 - tdp * 2.0 * 0.75).abs() < 1e-9);
        let (e, lo, hi) = m.energy(0.5, Seconds(2.0));
        assert!((e.0 - tdp * 2.0 * 0.75 * 2.0).abs() < 1e-9);
        assert!(lo.0 < e.0 && e.0 < hi.0);
    }

    #[test]
    fn vm_uses_per_vcpu_model_and_user_tdp_wins() {
        let d = data();
        let info = CpuInfo {
            model_name: Some("AMD EPYC".into()),
            logical_cpus: 2,
            packages: 1,
            hypervisor: true,
        };
        let (m, w) = CpuModel::choose(&info, &d.cpu_tdp, &d.constants, None);
        assert_eq!(m.label(), "model:vcpu");
        assert!(w[0].contains("virtual machine"));
        assert!((m.power(0.0).0 - 2.0 * 0.74).abs() < 1e-9);
        assert!((m.power(1.0).0 - 2.0 * 3.5).abs() < 1e-9);
        let (u, _) = CpuModel::choose(
            &info,
            &d.cpu_tdp,
            &d.constants,
            Some(crate::factors::Given::new(
                Watts(10.0),
                crate::factors::Origin::Flag("--cpu-tdp".into()),
            )),
        );
        assert!((u.power(1.0).0 - 10.2).abs() < 1e-9);
    }

    #[test]
    fn unknown_bare_metal_cpu_gets_default_and_warning() {
        let d = data();
        let info = CpuInfo {
            model_name: Some("Mystery 9000".into()),
            logical_cpus: 8,
            packages: 1,
            hypervisor: false,
        };
        let (m, w) = CpuModel::choose(&info, &d.cpu_tdp, &d.constants, None);
        assert!(w[0].contains("not in data/cpu_tdp.csv"));
        assert_eq!(m.band(), BAND_DEFAULT_TDP);
        assert!((m.power(1.0).0 - 85.0 * 1.02).abs() < 1e-9);
    }
}

//! Modelled DRAM power when RAPL has no dram zone: a sourced constant power per GB of
//! installed memory (Green Algorithms), with a band, since DRAM power varies with type,
//! speed and traffic far more than with size alone.

use crate::factors::Factor;
use crate::units::{Joules, Seconds, Watts};

/// Relative half-width of the DRAM model's band.
pub const BAND: f64 = 0.5;

#[derive(Debug, Clone, PartialEq)]
pub struct DramModel {
    pub gb: f64,
    pub w_per_gb: Factor,
}

impl DramModel {
    pub fn power(&self) -> Watts {
        Watts(self.gb * self.w_per_gb.value)
    }

    pub fn energy(&self, dt: Seconds) -> (Joules, Joules, Joules) {
        let e = self.power().for_(dt);
        (e, e * (1.0 - BAND), e * (1.0 + BAND))
    }

    pub fn explain(&self) -> Vec<String> {
        vec![
            format!(
                "P_dram = installed GB × W/GB = {:.1} GB × {} W/GB = {}, ±{:.0} %",
                self.gb,
                self.w_per_gb.value,
                self.power(),
                BAND * 100.0
            ),
            format!("  {} W/GB: {}", self.w_per_gb.value, self.w_per_gb.cite()),
            "  installed GB: MemTotal from /proc/meminfo".into(),
        ]
    }
}

/// The label of the DRAM model in reports.
pub const LABEL: &str = "model:dram-per-gb";

impl crate::source::Source for DramModel {
    fn label(&self) -> String {
        LABEL.into()
    }

    fn poll(
        &mut self,
        ctx: &crate::source::PollContext,
    ) -> Result<Vec<crate::source::Reading>, crate::source::SourceError> {
        let (energy, low, high) = self.energy(ctx.dt);
        Ok(vec![crate::source::Reading {
            resource: crate::sample::Resource {
                component: crate::sample::Component::Dram,
                source: LABEL.into(),
            },
            method: crate::sample::Method::Modelled,
            energy,
            low,
            high,
            share: crate::source::ShareBy::Memory,
        }])
    }

    fn explain(&self) -> Vec<String> {
        DramModel::explain(self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn green_algorithms_constant() {
        let m = super::DramModel {
            gb: 16.0,
            w_per_gb: crate::factors::Factor::new(0.3725, "W/GB", "GA", Some(2021)),
        };
        assert!((m.power().0 - 5.96).abs() < 1e-9);
        let (e, lo, hi) = m.energy(crate::units::Seconds(10.0));
        assert!((e.0 - 59.6).abs() < 1e-9);
        assert!((lo.0 - 29.8).abs() < 1e-9 && (hi.0 - 89.4).abs() < 1e-9);
    }
}

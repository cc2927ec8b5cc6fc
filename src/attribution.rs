//! Splits host energy between the workload and the rest of the machine, interval by
//! interval. CPU: by the workload's share of busy CPU time. DRAM: by its share of installed
//! memory held resident. GPU: a device's whole energy while a workload process holds a
//! context on it. Whatever is not charged to the workload stays with "rest", so
//! host = workload + rest holds exactly: no energy is created or lost.

use crate::units::Joules;

/// Workload share of CPU energy: its CPU time over all busy CPU time in the interval.
/// When the clock-tick counters saw no busy time but the workload ran (a sub-tick run),
/// the workload is charged in full; with neither, nothing.
pub fn cpu_share(workload_cpu_s: f64, busy_cpu_s: f64) -> f64 {
    if busy_cpu_s > 0.0 {
        (workload_cpu_s / busy_cpu_s).clamp(0.0, 1.0)
    } else if workload_cpu_s > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// Workload share of DRAM energy: resident bytes over installed bytes.
pub fn memory_share(workload_rss: u64, installed: u64) -> f64 {
    if installed == 0 {
        0.0
    } else {
        (workload_rss as f64 / installed as f64).clamp(0.0, 1.0)
    }
}

/// Host energy split into (workload, rest); rest is computed as the remainder so the two
/// always add back to the host figure.
pub fn split(host: Joules, share: f64) -> (Joules, Joules) {
    let w = Joules(host.0 * share.clamp(0.0, 1.0));
    (w, host - w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_shares() {
        let cpu = [
            (0.5, 1.0, 0.5),
            (2.0, 1.0, 1.0),
            (0.0, 0.0, 0.0),
            (0.01, 0.0, 1.0),
            (0.0, 3.0, 0.0),
            (-1.0, 2.0, 0.0),
        ];
        for (w, b, want) in cpu {
            assert_eq!(cpu_share(w, b), want, "cpu_share({w}, {b})");
        }
        assert_eq!(memory_share(1 << 30, 4 << 30), 0.25);
        assert_eq!(memory_share(8 << 30, 4 << 30), 1.0);
        assert_eq!(memory_share(1, 0), 0.0);
    }

    #[test]
    fn split_conserves_energy() {
        for (h, s) in [(10.0, 0.3), (0.1, 1.0 / 3.0), (1e9, 0.999_999), (7.0, 2.0)] {
            let (w, r) = split(Joules(h), s);
            assert_eq!(w + r, Joules(h));
            assert!(w.0 >= 0.0 && r.0 >= 0.0);
        }
    }
}

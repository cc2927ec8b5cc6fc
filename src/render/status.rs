//! The live status line shown on a terminal during a run: elapsed time, the workload's
//! power over the last interval and its energy so far.

use crate::units::{Joules, Seconds, Watts};

pub fn line(elapsed: Seconds, power: Watts, energy: Joules, measured: bool) -> String {
    format!(
        "decompute: {}  {}  {} so far ({})",
        clock(elapsed),
        power,
        energy,
        if measured { "measured" } else { "modelled" }
    )
}

/// Elapsed time as h:mm:ss, stable in width while it ticks.
fn clock(t: Seconds) -> String {
    let s = t.0.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_line() {
        use crate::units::*;
        assert_eq!(
            super::line(Seconds(65.4), Watts(12.34), Joules(7200.0), false),
            "decompute: 0:01:05  12.3 W  2.00 Wh so far (modelled)"
        );
    }
}

//! The live status line shown on a terminal during a run: elapsed time, the workload's
//! power over the last interval and its energy so far.

use crate::units::{Joules, Seconds, Watts};

pub fn line(elapsed: Seconds, power: Watts, energy: Joules, measured: bool) -> String {
    format!(
        "decompute: {}  {}  {} so far ({})",
        Seconds(elapsed.0.floor()),
        power,
        energy,
        if measured { "measured" } else { "modelled" }
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_line() {
        use crate::units::*;
        assert_eq!(
            super::line(Seconds(65.4), Watts(12.34), Joules(7200.0), false),
            "decompute: 1m05s  12.3 W  2.00 Wh so far (modelled)"
        );
    }
}

//! Yielding to the grid: decides, reading by reading, whether the workload should be frozen
//! (intensity above `--pause-above`, or stress at or above `--pause-at-stress`) or run
//! (intensity below `--resume-below`, stress below the level), with hysteresis and a minimum
//! time in each state so it does not flap, a bound on the total frozen time (deadlines are
//! met), and a stale signal never freezing a workload forever. Pure: times are seconds.

use crate::signal::Reading;

#[derive(Debug, Clone, PartialEq)]
pub struct YieldPolicy {
    pub pause_above: Option<f64>,
    pub pause_at_stress: Option<u8>,
    /// Defaults to `pause_above`.
    pub resume_below: Option<f64>,
    pub min_state_s: f64,
    pub max_pause_s: Option<f64>,
    pub stale_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Stay,
    Freeze { reason: String },
    Thaw { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Yielder {
    pub policy: YieldPolicy,
    pub frozen: bool,
    since: f64,
    pub paused_s: f64,
    last_good: Option<(f64, Reading)>,
    /// Set once the maximum pause is used up: the workload then runs regardless.
    pub exhausted: bool,
    warned_stale: bool,
    /// The signal is failing to read (warned once per streak).
    failing: bool,
    /// The signal's marginal basis has been said.
    said_marginal: bool,
}

impl Yielder {
    pub fn new(policy: YieldPolicy, now: f64) -> Yielder {
        Yielder {
            policy,
            frozen: false,
            since: now - 1e9,
            paused_s: 0.0,
            last_good: None,
            exhausted: false,
            warned_stale: false,
            failing: false,
            said_marginal: false,
        }
    }

    /// The reading in force (the last good one).
    pub fn current(&self) -> Option<Reading> {
        self.last_good.map(|(_, r)| r)
    }

    fn dirty(&self, r: &Reading) -> bool {
        dirty(r, self.policy.pause_above, self.policy.pause_at_stress)
    }

    fn clean(&self, r: &Reading) -> bool {
        clean(
            r,
            self.policy.resume_below.or(self.policy.pause_above),
            self.policy.pause_at_stress,
        )
    }

    /// Takes one reading (or a read error) at time `now`; `dt` is the time since the last
    /// step (counted as frozen if it was). Returns the decision and any warning to print.
    pub fn step(
        &mut self,
        now: f64,
        dt: f64,
        reading: Result<Reading, String>,
    ) -> (Decision, Option<String>) {
        self.step_with(now, dt, Some((now, reading)))
    }

    /// As [`Self::step`], with the reading's own time, or `None` when no new reading came
    /// since the last step (a slow signal never holds a step up). A signal that stops
    /// reading is said once, and once again when it reads again.
    pub fn step_with(
        &mut self,
        now: f64,
        dt: f64,
        reading: Option<(f64, Result<Reading, String>)>,
    ) -> (Decision, Option<String>) {
        if self.frozen {
            self.paused_s += dt.max(0.0);
        }
        let mut warning = None;
        match reading {
            Some((at, Ok(r))) => {
                self.last_good = Some((at, r));
                self.warned_stale = false;
                if std::mem::take(&mut self.failing) {
                    warning = Some("grid signal readable again".to_string());
                } else if r.marginal && r.intensity.is_some() && !self.said_marginal {
                    warning = Some("grid signal is a marginal rate (MOER): it decides when to pause; carbon is counted with the zone's average intensity".to_string());
                }
                self.said_marginal |= r.marginal;
            }
            Some((_, Err(e))) if !self.failing => {
                self.failing = true;
                warning = Some(format!("grid signal: {e}; keeping the last good value"));
            }
            Some((_, Err(_))) => {}
            None => {}
        }
        let state_age = now - self.since;
        let set = |y: &mut Yielder, frozen: bool| {
            y.frozen = frozen;
            y.since = now;
        };
        if self.frozen {
            if let Some(max) = self.policy.max_pause_s {
                if self.paused_s >= max {
                    self.exhausted = true;
                    set(self, false);
                    return (
                        Decision::Thaw {
                            reason: format!(
                                "maximum pause of {max:.0} s reached; running regardless"
                            ),
                        },
                        warning,
                    );
                }
            }
        }
        let fresh = match self.last_good {
            Some((t, r)) if now - t <= self.policy.stale_s => Some(r),
            _ => None,
        };
        let Some(r) = fresh else {
            if self.frozen {
                set(self, false);
                return (
                    Decision::Thaw {
                        reason: "grid signal stale; running on".into(),
                    },
                    warning,
                );
            }
            if self.last_good.is_some() && !self.warned_stale {
                self.warned_stale = true;
                warning = Some(format!(
                    "grid signal stale for more than {:.0} s; the workload runs on",
                    self.policy.stale_s
                ));
            }
            return (Decision::Stay, warning);
        };
        if self.exhausted || state_age < self.policy.min_state_s {
            return (Decision::Stay, warning);
        }
        if !self.frozen && self.dirty(&r) {
            set(self, true);
            return (
                Decision::Freeze {
                    reason: describe(&r),
                },
                warning,
            );
        }
        if self.frozen && self.clean(&r) {
            set(self, false);
            return (
                Decision::Thaw {
                    reason: describe(&r),
                },
                warning,
            );
        }
        (Decision::Stay, warning)
    }
}

/// Whether a reading should pause work: intensity above `pause_above` (gCO2e/kWh), or
/// stress at or above `pause_at_stress`. The one rule of `run` and `slurm govern`.
pub fn dirty(r: &Reading, pause_above: Option<f64>, pause_at_stress: Option<u8>) -> bool {
    let by_intensity = matches!((r.intensity, pause_above), (Some(i), Some(t)) if i > t);
    let by_stress = matches!((r.stress, pause_at_stress), (Some(s), Some(t)) if s >= t);
    by_intensity || by_stress
}

/// Whether a reading lets paused work go on: intensity below `resume` and stress below
/// `pause_at_stress` (what the signal does not give does not hold work back).
pub fn clean(r: &Reading, resume: Option<f64>, pause_at_stress: Option<u8>) -> bool {
    let intensity_ok = match (r.intensity, resume) {
        (Some(i), Some(t)) => i < t,
        _ => true,
    };
    let stress_ok = match (r.stress, pause_at_stress) {
        (Some(s), Some(t)) => s < t,
        _ => true,
    };
    intensity_ok && stress_ok
}

/// A reading in words: "grid at 450 gCO2e/kWh", "grid stress 2".
pub fn describe(r: &Reading) -> String {
    match (r.intensity, r.stress) {
        (Some(i), Some(s)) => format!("grid at {i} gCO2e/kWh, stress {s}"),
        (Some(i), None) => format!("grid at {i} gCO2e/kWh"),
        (None, Some(s)) => format!("grid stress {s}"),
        (None, None) => "grid signal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(i: f64) -> Result<Reading, String> {
        Ok(Reading {
            intensity: Some(i),
            stress: None,
            marginal: false,
        })
    }

    fn policy() -> YieldPolicy {
        YieldPolicy {
            pause_above: Some(300.0),
            pause_at_stress: None,
            resume_below: Some(250.0),
            min_state_s: 10.0,
            max_pause_s: None,
            stale_s: 900.0,
        }
    }

    #[test]
    fn hysteresis_and_minimum_state() {
        let mut y = Yielder::new(policy(), 0.0);
        assert_eq!(y.step(0.0, 0.0, g(200.0)).0, Decision::Stay);
        assert!(matches!(
            y.step(1.0, 1.0, g(350.0)).0,
            Decision::Freeze { .. }
        ));
        // Between the thresholds: stays frozen (hysteresis).
        assert_eq!(y.step(20.0, 19.0, g(280.0)).0, Decision::Stay);
        // Clean, but within the minimum state time of the last switch? No: 24 s > 10 s.
        assert!(matches!(
            y.step(25.0, 5.0, g(240.0)).0,
            Decision::Thaw { .. }
        ));
        assert!((y.paused_s - 24.0).abs() < 1e-9);
        // Dirty again right after thawing: the minimum state time holds it.
        assert_eq!(y.step(30.0, 5.0, g(400.0)).0, Decision::Stay);
        assert!(matches!(
            y.step(36.0, 6.0, g(400.0)).0,
            Decision::Freeze { .. }
        ));
    }

    #[test]
    fn stress_levels() {
        let p = YieldPolicy {
            pause_above: None,
            pause_at_stress: Some(2),
            resume_below: None,
            min_state_s: 0.0,
            max_pause_s: None,
            stale_s: 900.0,
        };
        let mut y = Yielder::new(p, 0.0);
        let s = |n: u8| {
            Ok(Reading {
                intensity: None,
                stress: Some(n),
                marginal: false,
            })
        };
        assert_eq!(y.step(1.0, 1.0, s(1)).0, Decision::Stay);
        assert!(matches!(y.step(2.0, 1.0, s(2)).0, Decision::Freeze { .. }));
        assert_eq!(y.step(3.0, 1.0, s(3)).0, Decision::Stay);
        assert!(matches!(y.step(4.0, 1.0, s(0)).0, Decision::Thaw { .. }));
    }

    #[test]
    fn max_pause_then_runs_regardless() {
        let mut p = policy();
        p.min_state_s = 0.0;
        p.max_pause_s = Some(60.0);
        let mut y = Yielder::new(p, 0.0);
        assert!(matches!(
            y.step(0.0, 0.0, g(500.0)).0,
            Decision::Freeze { .. }
        ));
        assert_eq!(y.step(30.0, 30.0, g(500.0)).0, Decision::Stay);
        assert!(matches!(
            y.step(61.0, 31.0, g(500.0)).0,
            Decision::Thaw { .. }
        ));
        assert!(y.exhausted);
        assert_eq!(y.step(70.0, 9.0, g(900.0)).0, Decision::Stay);
    }

    #[test]
    fn read_errors_keep_the_last_value_and_staleness_never_freezes_forever() {
        let mut y = Yielder::new(policy(), 0.0);
        assert!(matches!(
            y.step(0.0, 0.0, g(500.0)).0,
            Decision::Freeze { .. }
        ));
        let (d, w) = y.step(100.0, 100.0, Err("cannot read x".into()));
        assert_eq!(d, Decision::Stay);
        assert!(w.expect("warning").contains("last good value"));
        // Said once, not every interval.
        let (_, w) = y.step(101.0, 1.0, Err("cannot read x".into()));
        assert!(w.is_none());
        assert!(matches!(
            y.step(1000.0, 900.0, Err("cannot read x".into())).0,
            Decision::Thaw { .. }
        ));
        // Never freezes on stale data.
        assert_eq!(
            y.step(2000.0, 1000.0, Err("cannot read x".into())).0,
            Decision::Stay
        );
    }
}

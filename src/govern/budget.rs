//! Budgets: limits on a run's energy, carbon, water and wall time, parsed from
//! `--budget energy=500Wh,carbon=200g,water=3L,time=2h` (or a policy file), and checked
//! against the workload's running totals. Warns once at 80 % and once at 100 %; what happens
//! at 100 % (stop, pause, warn) is the caller's decision.

use serde::{Deserialize, Serialize};

pub use crate::units::Metric;

pub use crate::units::split_number;

/// One limit, in base units (J, g, L, s).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub metric: Metric,
    pub value: f64,
}

/// Parses `energy=500Wh,carbon=200g,water=3L,time=2h` (any subset, each at most once).
pub fn parse_budget(text: &str) -> Result<Vec<Limit>, String> {
    let mut out: Vec<Limit> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            format!(
                "budget '{part}' is not name=amount; write e.g. --budget energy=500Wh,carbon=200g"
            )
        })?;
        let metric = Metric::parse(k)?;
        if out.iter().any(|l| l.metric == metric) {
            return Err(format!("{} budget given twice", metric.name()));
        }
        out.push(Limit {
            metric,
            value: metric.parse_amount(v)?,
        });
    }
    if out.is_empty() {
        return Err(
            "empty budget; write e.g. --budget energy=500Wh,carbon=200g,water=3L,time=2h".into(),
        );
    }
    Ok(out)
}

/// What the workload has used so far, in base units.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub energy_j: f64,
    pub carbon_g: f64,
    pub water_l: f64,
    pub time_s: f64,
}

impl Usage {
    pub fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::Energy => self.energy_j,
            Metric::Carbon => self.carbon_g,
            Metric::Water => self.water_l,
            Metric::Time => self.time_s,
        }
    }
}

/// A threshold crossed for the first time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crossing {
    Warning { limit: Limit, used: f64 },
    Exceeded { limit: Limit, used: f64 },
}

/// Checks usage against limits, reporting each 80 % and 100 % crossing once.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    pub limits: Vec<Limit>,
    warned: Vec<Metric>,
    exceeded: Vec<Metric>,
}

impl Checker {
    pub fn new(limits: Vec<Limit>) -> Checker {
        Checker {
            limits,
            warned: Vec::new(),
            exceeded: Vec::new(),
        }
    }

    pub fn check(&mut self, u: &Usage) -> Vec<Crossing> {
        let mut out = Vec::new();
        for l in &self.limits {
            let used = u.get(l.metric);
            if used >= l.value && !self.exceeded.contains(&l.metric) {
                self.exceeded.push(l.metric);
                self.warned.push(l.metric);
                out.push(Crossing::Exceeded { limit: *l, used });
            } else if used >= 0.8 * l.value && !self.warned.contains(&l.metric) {
                self.warned.push(l.metric);
                out.push(Crossing::Warning { limit: *l, used });
            }
        }
        out
    }

    /// The first limit currently at or over 100 %, if any.
    pub fn over(&self, u: &Usage) -> Option<Limit> {
        self.limits
            .iter()
            .copied()
            .find(|l| u.get(l.metric) >= l.value)
    }

    /// Forgets that a metric was exceeded (its limit was raised or a period renewed).
    pub fn reset(&mut self, limits: Vec<Limit>) {
        self.limits = limits;
        self.warned.clear();
        self.exceeded.clear();
    }
}

/// What a project's budget leaves one run: its amount less what the project's other runs
/// used, as their last checkpoints in the ledger say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub metric: Metric,
    pub amount: f64,
    pub others: f64,
}

impl Share {
    pub fn limit(&self) -> Limit {
        Limit {
            metric: self.metric,
            value: self.amount - self.others,
        }
    }
}

/// The limits a set of shares puts on a run (the tightest per metric).
pub fn share_limits(shares: &[Share]) -> Vec<Limit> {
    tightest(&[], &shares.iter().map(Share::limit).collect::<Vec<_>>())
}

/// Combines two sets of limits, keeping the tighter one per metric.
pub fn tightest(a: &[Limit], b: &[Limit]) -> Vec<Limit> {
    let mut out: Vec<Limit> = a.to_vec();
    for l in b {
        match out.iter_mut().find(|x| x.metric == l.metric) {
            Some(x) => x.value = x.value.min(l.value),
            None => out.push(*l),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        let cases = [
            ("energy=500Wh", Metric::Energy, 1.8e6),
            ("energy=2kWh", Metric::Energy, 7.2e6),
            ("energy=3MJ", Metric::Energy, 3e6),
            ("energy=1MWh", Metric::Energy, 3.6e9),
            ("energy=10kJ", Metric::Energy, 1e4),
            ("energy=7J", Metric::Energy, 7.0),
            ("carbon=200g", Metric::Carbon, 200.0),
            ("carbon=1.5kg", Metric::Carbon, 1500.0),
            ("carbon=2t", Metric::Carbon, 2e6),
            ("carbon=40mg", Metric::Carbon, 0.04),
            ("water=3L", Metric::Water, 3.0),
            ("water=250mL", Metric::Water, 0.25),
            ("water=1m3", Metric::Water, 1000.0),
            ("time=2h", Metric::Time, 7200.0),
            ("time=90min", Metric::Time, 5400.0),
            ("time=1d", Metric::Time, 86400.0),
            ("time=30s", Metric::Time, 30.0),
            ("energy=1e3J", Metric::Energy, 1000.0),
            ("energy=2.5E-1kWh", Metric::Energy, 0.25 * 3.6e6),
        ];
        for (text, metric, value) in cases {
            let b = parse_budget(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(b, vec![Limit { metric, value }], "{text}");
        }
        assert_eq!(
            parse_budget("energy=500Wh,carbon=200g,water=3L,time=2h")
                .expect("all")
                .len(),
            4
        );
    }

    #[test]
    fn malformed_budgets_say_why() {
        for (text, needle) in [
            ("energy=500", "unit"),
            ("energy=500W", "'W' not accepted"),
            ("power=5W", "unknown budget 'power'"),
            ("energy=-5Wh", "number"),
            ("energy=0Wh", "more than zero"),
            ("carbon", "name=amount"),
            ("carbon=1g,carbon=2g", "twice"),
            ("", "empty"),
            ("energy=1e999J", "too large"),
            ("carbon=1e13g", "too large"),
            ("time=101d,energy=é", "number"),
            ("water=5é", "'é' not accepted"),
        ] {
            let e = parse_budget(text).expect_err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn a_four_hundred_digit_budget_is_too_large() {
        let e = parse_budget(&format!("energy={}J", "9".repeat(400))).expect_err("huge");
        assert!(e.contains("too large"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn budgets_never_panic(s in "\\PC{0,60}") {
            let _ = parse_budget(&s);
        }

        #[test]
        fn near_misses_never_panic(s in "(energy|carbon|water|time|é)=[0-9.eE+-]{0,12}(J|kWh|g|kg|L|mL|h|min|é|µ)?(,.{0,8})?") {
            if let Ok(ls) = parse_budget(&s) {
                for l in ls {
                    proptest::prop_assert!(l.value > 0.0 && l.value.is_finite());
                }
            }
        }
    }

    #[test]
    fn warns_at_80_then_exceeds_once() {
        let mut t = Checker::new(vec![Limit {
            metric: Metric::Energy,
            value: 100.0,
        }]);
        let at = |j: f64| Usage {
            energy_j: j,
            ..Default::default()
        };
        assert!(t.check(&at(50.0)).is_empty());
        assert!(matches!(t.check(&at(80.0))[..], [Crossing::Warning { .. }]));
        assert!(t.check(&at(90.0)).is_empty());
        assert!(matches!(
            t.check(&at(100.0))[..],
            [Crossing::Exceeded { .. }]
        ));
        assert!(t.check(&at(120.0)).is_empty());
        assert!(t.over(&at(120.0)).is_some());
        // Jumping straight past 100 % gives only the exceeded event.
        let mut t = Checker::new(vec![Limit {
            metric: Metric::Time,
            value: 10.0,
        }]);
        assert_eq!(
            t.check(&Usage {
                time_s: 11.0,
                ..Default::default()
            })
            .len(),
            1
        );
    }

    #[test]
    fn tightest_of_run_and_policy() {
        let a = [Limit {
            metric: Metric::Energy,
            value: 10.0,
        }];
        let b = [
            Limit {
                metric: Metric::Energy,
                value: 5.0,
            },
            Limit {
                metric: Metric::Carbon,
                value: 1.0,
            },
        ];
        assert_eq!(
            tightest(&a, &b),
            vec![
                Limit {
                    metric: Metric::Energy,
                    value: 5.0
                },
                Limit {
                    metric: Metric::Carbon,
                    value: 1.0
                }
            ]
        );
    }
}

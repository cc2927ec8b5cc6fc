//! The governor of one run: each interval it takes the workload's energy so far and the grid
//! reading, keeps running carbon and water (interval by interval, with the signal's intensity
//! when there is one), checks the budget, and tells the run loop to freeze, thaw or stop the
//! workload. It also keeps the record of what it did: pauses with their cause, the carbon
//! avoided, the budget that tripped.

use super::budget::{Crossing, Limit, Tracker, Usage};
use super::policy::OnExceed;
use super::yielding::{Decision, Yielder};
use crate::signal::Signal;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the run loop should do after this interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Directive {
    Continue,
    Freeze,
    Thaw,
    Stop { grace: Duration },
}

/// Recomputes the run's limits while it is paused for its budget (a raised budget in the
/// policy file, or a new period). Returns the new limits, in this run's terms.
pub type BudgetRefresh = Box<dyn FnMut(&Usage) -> Option<Vec<Limit>>>;

pub struct GovernorConfig {
    pub limits: Vec<Limit>,
    pub on_exceed: OnExceed,
    pub grace: Duration,
    pub grid: Option<(Signal, super::yielding::YieldPolicy)>,
    pub grid_timeout: Duration,
    pub pue: f64,
    pub wue: f64,
    pub ewif: f64,
    /// The zone's yearly intensity, used when there is no signal (or no reading yet).
    pub zone_intensity: f64,
    pub refresh: Option<BudgetRefresh>,
    pub forced: bool,
    pub policy: Option<String>,
}

/// One frozen stretch of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    pub start_s: f64,
    pub end_s: f64,
    /// `grid` or `budget`.
    pub cause: String,
    pub reason: String,
    /// Estimated carbon not emitted at the grid's intensity during the pause, versus running
    /// at the threshold intensity (grid pauses only), g.
    pub avoided_g: f64,
}

/// The budget used against its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitUse {
    pub metric: super::budget::Metric,
    pub limit: f64,
    pub used: f64,
}

/// What the governor did, stored in the report and the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Record {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budget: Vec<LimitUse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exceed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<LimitUse>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_signal: Option<String>,
    /// How the workload was (or would have been) frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_method: Option<String>,
    /// Energy-weighted mean intensity the carbon was computed with, g/kWh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_mean_gco2_per_kwh: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<Pause>,
    pub paused_s: f64,
    pub carbon_avoided_g: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub max_pause_reached: bool,
}

pub struct Governor {
    cfg: GovernorConfig,
    tracker: Tracker,
    yielder: Option<Yielder>,
    usage: Usage,
    last_workload_j: f64,
    last_elapsed: f64,
    facility_kwh: f64,
    weighted_intensity: f64,
    grid_frozen: bool,
    budget_paused: bool,
    frozen: bool,
    stopping: bool,
    open_pause: Option<Pause>,
    power_before_w: f64,
    pub record: Record,
}

impl Governor {
    pub fn new(cfg: GovernorConfig, now_unix: f64) -> Governor {
        let yielder = cfg
            .grid
            .as_ref()
            .map(|(_, p)| Yielder::new(p.clone(), now_unix));
        let record = Record {
            on_exceed: (!cfg.limits.is_empty())
                .then(|| format!("{:?}", cfg.on_exceed).to_lowercase()),
            forced: cfg.forced,
            policy: cfg.policy.clone(),
            grid_signal: cfg.grid.as_ref().map(|(s, _)| s.label()),
            ..Default::default()
        };
        Governor {
            tracker: Tracker::new(cfg.limits.clone()),
            cfg,
            yielder,
            usage: Usage::default(),
            last_workload_j: 0.0,
            last_elapsed: 0.0,
            facility_kwh: 0.0,
            weighted_intensity: 0.0,
            grid_frozen: false,
            budget_paused: false,
            frozen: false,
            stopping: false,
            open_pause: None,
            power_before_w: 0.0,
            record,
        }
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The intensity in force now: the signal's last good reading, else the zone's.
    fn intensity(&self) -> f64 {
        self.yielder
            .as_ref()
            .and_then(|y| y.current())
            .and_then(|r| r.intensity)
            .unwrap_or(self.cfg.zone_intensity)
    }

    /// One interval. `workload_j` is the workload's IT energy so far; `elapsed_s` the run's
    /// wall time. Returns the directive and messages for the user.
    pub fn tick(
        &mut self,
        now_unix: f64,
        elapsed_s: f64,
        workload_j: f64,
    ) -> (Directive, Vec<String>) {
        self.step(now_unix, elapsed_s, workload_j, true)
    }

    /// The last interval, closed after the command ended: accounts and reports crossings,
    /// but there is nothing left to freeze or stop.
    pub fn last(&mut self, now_unix: f64, elapsed_s: f64, workload_j: f64) -> Vec<String> {
        self.step(now_unix, elapsed_s, workload_j, false).1
    }

    fn step(
        &mut self,
        now_unix: f64,
        elapsed_s: f64,
        workload_j: f64,
        running: bool,
    ) -> (Directive, Vec<String>) {
        let mut msgs = Vec::new();
        let dt = (elapsed_s - self.last_elapsed).max(0.0);
        let de = (workload_j - self.last_workload_j).max(0.0);
        self.last_elapsed = elapsed_s;
        self.last_workload_j = workload_j;
        if !self.frozen && dt > 0.0 {
            self.power_before_w = de / dt;
        }

        // Grid reading (carbon of this interval uses the intensity in force during it: the
        // last reading, or this one if there was none yet).
        let had_reading = self.yielder.as_ref().and_then(|y| y.current()).is_some();
        let mut before = self.intensity();
        let mut grid_decision = Decision::Stay;
        if let (Some(y), Some((sig, _))) = (self.yielder.as_mut(), self.cfg.grid.as_ref()) {
            let (d, warning) = y.step(now_unix, dt, sig.read(now_unix, self.cfg.grid_timeout));
            if let Some(w) = warning {
                msgs.push(w);
            }
            grid_decision = d;
            if !had_reading {
                before = y.current().and_then(|r| r.intensity).unwrap_or(before);
            }
            self.record.paused_s = y.paused_s;
            self.record.max_pause_reached = y.exhausted;
        }
        let fac_kwh = de * self.cfg.pue / 3.6e6;
        self.facility_kwh += fac_kwh;
        self.weighted_intensity += fac_kwh * before;
        self.usage = Usage {
            energy_j: workload_j,
            carbon_g: self.usage.carbon_g + fac_kwh * before,
            water_l: self.usage.water_l + de / 3.6e6 * self.cfg.wue + fac_kwh * self.cfg.ewif,
            time_s: elapsed_s,
        };
        if let Some(p) = self.open_pause.as_mut() {
            if p.cause == "grid" {
                if let Some(t) = self.cfg.grid.as_ref().and_then(|(_, p)| p.pause_above) {
                    p.avoided_g +=
                        self.power_before_w * dt / 3.6e6 * self.cfg.pue * (before - t).max(0.0);
                }
            }
        }
        match grid_decision {
            Decision::Freeze { reason } => {
                self.grid_frozen = true;
                msgs.push(format!("pausing the workload: {reason}"));
                self.open(elapsed_s, "grid", reason);
            }
            Decision::Thaw { reason } => {
                self.grid_frozen = false;
                msgs.push(format!("resuming the workload: {reason}"));
            }
            Decision::Stay => {}
        }

        // Budget.
        for c in self.tracker.check(&self.usage) {
            match c {
                Crossing::Warning { limit, used } => msgs.push(format!(
                    "{} budget past 80 %: {} of {} ({:.0} %)",
                    limit.metric.name(),
                    limit.metric.show(used),
                    limit.metric.show(limit.value),
                    100.0 * used / limit.value
                )),
                Crossing::Exceeded { limit, used } => {
                    msgs.push(format!(
                        "{} budget used up: {} of {}{}",
                        limit.metric.name(),
                        limit.metric.show(used),
                        limit.metric.show(limit.value),
                        match self.cfg.on_exceed {
                            _ if !running => "; the command had already ended".to_string(),
                            OnExceed::Stop => format!("; stopping the workload (SIGTERM, SIGKILL after {} s)", self.cfg.grace.as_secs_f64()),
                            OnExceed::Pause => "; pausing the workload until the budget is raised or its period renews (Ctrl-C to end)".into(),
                            OnExceed::Warn => "; continuing (--on-exceed warn)".into(),
                        }
                    ));
                    if !running {
                        continue;
                    }
                    if self.cfg.on_exceed == OnExceed::Stop && !self.stopping {
                        self.stopping = true;
                        self.record.stopped_by = Some(LimitUse {
                            metric: limit.metric,
                            limit: limit.value,
                            used,
                        });
                        self.record_budget();
                        self.close(elapsed_s);
                        return (
                            Directive::Stop {
                                grace: self.cfg.grace,
                            },
                            msgs,
                        );
                    }
                    if self.cfg.on_exceed == OnExceed::Pause && !self.budget_paused {
                        self.budget_paused = true;
                        self.open(
                            elapsed_s,
                            "budget",
                            format!("{} budget used up", limit.metric.name()),
                        );
                    }
                }
            }
        }
        if self.budget_paused {
            if let Some(new) = self.cfg.refresh.as_mut().and_then(|r| r(&self.usage)) {
                if new.iter().all(|l| self.usage.get(l.metric) < l.value) {
                    self.budget_paused = false;
                    self.tracker.reset(new);
                    msgs.push("resuming the workload: budget raised or period renewed".into());
                }
            }
        }
        self.record_budget();

        let want = self.grid_frozen || self.budget_paused;
        let directive = match (want, self.frozen) {
            (true, false) => Directive::Freeze,
            (false, true) => {
                self.close(elapsed_s);
                Directive::Thaw
            }
            _ => Directive::Continue,
        };
        self.frozen = want;
        (directive, msgs)
    }

    fn open(&mut self, at: f64, cause: &str, reason: String) {
        if self.open_pause.is_none() {
            self.open_pause = Some(Pause {
                start_s: at,
                end_s: at,
                cause: cause.into(),
                reason,
                avoided_g: 0.0,
            });
        }
    }

    fn close(&mut self, at: f64) {
        if let Some(mut p) = self.open_pause.take() {
            p.end_s = at;
            self.record.carbon_avoided_g += p.avoided_g;
            self.record.pauses.push(p);
        }
    }

    fn record_budget(&mut self) {
        self.record.budget = self
            .tracker
            .limits
            .iter()
            .map(|l| LimitUse {
                metric: l.metric,
                limit: l.value,
                used: self.usage.get(l.metric),
            })
            .collect();
    }

    /// Closes the books at the end of the run.
    pub fn finish(&mut self, elapsed_s: f64) -> Record {
        self.close(elapsed_s);
        self.record_budget();
        if self.cfg.grid.is_some() {
            self.record.grid_mean_gco2_per_kwh = Some(self.mean_intensity());
        }
        self.record.clone()
    }

    /// Energy-weighted mean intensity over the run (the zone's if nothing was used).
    pub fn mean_intensity(&self) -> f64 {
        if self.facility_kwh > 0.0 {
            self.weighted_intensity / self.facility_kwh
        } else {
            self.intensity()
        }
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    pub fn stopping(&self) -> bool {
        self.stopping
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::govern::budget::Metric;
    use crate::govern::yielding::YieldPolicy;

    fn cfg(limits: Vec<Limit>, on: OnExceed) -> GovernorConfig {
        GovernorConfig {
            limits,
            on_exceed: on,
            grace: Duration::from_secs(5),
            grid: None,
            grid_timeout: Duration::from_secs(1),
            pue: 1.0,
            wue: 0.0,
            ewif: 0.0,
            zone_intensity: 100.0,
            refresh: None,
            forced: false,
            policy: None,
        }
    }

    #[test]
    fn budget_stop_trips_in_the_interval_it_is_crossed() {
        let mut g = Governor::new(
            cfg(
                vec![Limit {
                    metric: Metric::Energy,
                    value: 1000.0,
                }],
                OnExceed::Stop,
            ),
            0.0,
        );
        let (d, m) = g.tick(1.0, 1.0, 700.0);
        assert_eq!(d, Directive::Continue);
        assert!(m.is_empty());
        let (d, m) = g.tick(2.0, 2.0, 850.0);
        assert_eq!(d, Directive::Continue);
        assert!(
            m[0].contains("past 80 %") && m[0].contains("(85 %)"),
            "{m:?}"
        );
        let (d, m) = g.tick(3.0, 3.0, 1001.0);
        assert_eq!(
            d,
            Directive::Stop {
                grace: Duration::from_secs(5)
            }
        );
        assert!(m[0].contains("used up"), "{m:?}");
        assert_eq!(
            g.record.stopped_by.as_ref().map(|s| s.metric),
            Some(Metric::Energy)
        );
    }

    #[test]
    fn carbon_is_summed_interval_by_interval_with_the_signal() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("grid");
        std::fs::write(&f, "100").expect("write");
        let mut c = cfg(
            vec![Limit {
                metric: Metric::Carbon,
                value: 1e9,
            }],
            OnExceed::Warn,
        );
        c.grid = Some((
            Signal::File(f.clone()),
            YieldPolicy {
                pause_above: Some(300.0),
                pause_at_stress: None,
                resume_below: None,
                min_state_s: 0.0,
                max_pause_s: None,
                stale_s: 900.0,
            },
        ));
        let mut g = Governor::new(c, 0.0);
        g.tick(0.0, 0.0, 0.0);
        g.tick(1.0, 1.0, 3.6e6); // 1 kWh at 100 g/kWh
        std::fs::write(&f, "500").expect("write");
        // The reading of 500 arrives at the end of this interval: this kWh is charged at
        // the intensity in force during it (100), and the workload is frozen from now on.
        let (d, _) = g.tick(2.0, 2.0, 7.2e6);
        assert_eq!(d, Directive::Freeze);
        assert!((g.usage().carbon_g - 200.0).abs() < 1e-9);
        let (d, _) = g.tick(3.0, 3.0, 7.2e6);
        assert_eq!(d, Directive::Continue);
        std::fs::write(&f, "50").expect("write");
        let (d, _) = g.tick(4.0, 4.0, 7.2e6);
        assert_eq!(d, Directive::Thaw);
        g.tick(5.0, 5.0, 10.8e6); // 1 kWh at 50
        let r = g.finish(5.0);
        assert!((g.usage().carbon_g - 250.0).abs() < 1e-9);
        assert!((g.mean_intensity() - 250.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.pauses.len(), 1);
        assert_eq!((r.pauses[0].start_s, r.pauses[0].end_s), (2.0, 4.0));
        // Frozen 2 s at 500 g/kWh vs the 300 threshold, at the 3.6 MW it drew before.
        assert!(
            (r.carbon_avoided_g - 3.6e6 * 2.0 / 3.6e6 * 200.0).abs() < 1e-6,
            "{}",
            r.carbon_avoided_g
        );
    }

    #[test]
    fn budget_pause_resumes_when_refreshed() {
        let mut c = cfg(
            vec![Limit {
                metric: Metric::Energy,
                value: 100.0,
            }],
            OnExceed::Pause,
        );
        let raised = std::rc::Rc::new(std::cell::Cell::new(false));
        let r2 = raised.clone();
        c.refresh = Some(Box::new(move |_| {
            r2.get().then(|| {
                vec![Limit {
                    metric: Metric::Energy,
                    value: 1000.0,
                }]
            })
        }));
        let mut g = Governor::new(c, 0.0);
        assert_eq!(g.tick(1.0, 1.0, 150.0).0, Directive::Freeze);
        assert_eq!(g.tick(2.0, 2.0, 150.0).0, Directive::Continue);
        raised.set(true);
        assert_eq!(g.tick(3.0, 3.0, 150.0).0, Directive::Thaw);
        assert_eq!(g.finish(3.0).pauses[0].cause, "budget");
    }
}

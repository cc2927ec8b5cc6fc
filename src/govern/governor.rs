//! The governor of one run: each interval it takes the workload's energy so far and the
//! latest grid reading (read on another thread; the governor never waits for it), keeps
//! running carbon and water (interval by interval, with the signal's intensity when there is
//! one), checks the budgets, and tells the run loop to freeze, thaw or stop the workload. It
//! also says when it next needs a sample (a time budget's end, or when an energy, carbon or
//! water budget will run out at the present power), so limits act on their own deadline and
//! not on the next tick. It keeps the record of what it did: pauses with their cause, the
//! carbon avoided, the budget that tripped.

use super::budget::{self, Checker, Crossing, Limit, Metric, Share, Usage};
use super::policy::OnExceed;
use super::yielding::{Decision, Yielder};
use crate::signal::reader::Latest;
use std::time::Duration;

/// What the run loop should do after this interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Directive {
    Continue,
    Freeze,
    Thaw,
    Stop { grace: Duration },
}

pub struct GovernorConfig {
    /// The run's own limits (`--budget`).
    pub limits: Vec<Limit>,
    /// What the project's budgets leave this run (from the policy and the ledger).
    pub project: Vec<Share>,
    pub on_exceed: OnExceed,
    pub grace: Duration,
    /// The grid signal's label and the yielding policy.
    pub grid: Option<(String, super::yielding::YieldPolicy)>,
    pub pue: f64,
    pub wue: f64,
    pub ewif: f64,
    /// The zone's yearly intensity, used when there is no signal (or no reading yet).
    pub zone_intensity: f64,
    pub forced: bool,
    pub policy: Option<String>,
}

pub use crate::report::{LimitUse, Pause, Record};

/// A pause in progress, with what is needed to value it at its end.
struct OpenPause {
    pause: Pause,
    /// Workload power before the pause, W.
    power_w: f64,
    /// ∫ intensity dt and ∫ dt over the pause.
    intensity_s: f64,
    seconds: f64,
}

pub struct Governor {
    cfg: GovernorConfig,
    tracker: Checker,
    yielder: Option<Yielder>,
    usage: Usage,
    last_workload_j: f64,
    last_elapsed: f64,
    facility_kwh: f64,
    weighted_intensity: f64,
    signal_kwh: f64,
    /// Usage at the last checkpoint the ledger was sent.
    published: Usage,
    grid_frozen: bool,
    budget_paused: bool,
    frozen: bool,
    stopping: bool,
    open_pause: Option<OpenPause>,
    power_w: f64,
    pub record: Record,
}

impl Governor {
    pub fn new(cfg: GovernorConfig, now_unix: f64) -> Governor {
        let yielder = cfg
            .grid
            .as_ref()
            .map(|(_, p)| Yielder::new(p.clone(), now_unix));
        let limits = budget::tightest(&cfg.limits, &budget::share_limits(&cfg.project));
        let record = Record {
            on_exceed: (!limits.is_empty()).then(|| format!("{:?}", cfg.on_exceed).to_lowercase()),
            forced: cfg.forced,
            policy: cfg.policy.clone(),
            grid_signal: cfg.grid.as_ref().map(|(s, _)| s.clone()),
            ..Default::default()
        };
        Governor {
            tracker: Checker::new(limits),
            cfg,
            yielder,
            usage: Usage::default(),
            last_workload_j: 0.0,
            last_elapsed: 0.0,
            facility_kwh: 0.0,
            weighted_intensity: 0.0,
            signal_kwh: 0.0,
            published: Usage::default(),
            grid_frozen: false,
            budget_paused: false,
            frozen: false,
            stopping: false,
            open_pause: None,
            power_w: 0.0,
            record,
        }
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The intensity in force now and whether it is the signal's: the signal's last good
    /// reading, else the zone's yearly value.
    fn intensity(&self) -> (f64, bool) {
        match self
            .yielder
            .as_ref()
            .and_then(|y| y.current())
            .and_then(|r| r.average())
        {
            Some(i) => (i, true),
            None => (self.cfg.zone_intensity, false),
        }
    }

    /// New shares of the project's budgets (the other runs used more, the budget was
    /// raised, or a period renewed). A run paused for its budget resumes if they allow it.
    pub fn update_project(&mut self, shares: Vec<Share>) -> Vec<String> {
        let mut msgs = Vec::new();
        let limits = budget::tightest(&self.cfg.limits, &budget::share_limits(&shares));
        let changed = limits != self.tracker.limits;
        self.cfg.project = shares;
        if !changed {
            return msgs;
        }
        if self.budget_paused {
            if limits.iter().all(|l| self.usage.get(l.metric) < l.value) {
                self.budget_paused = false;
                self.tracker.reset(limits);
                msgs.push("resuming the workload: budget raised or period renewed".into());
            } else {
                self.tracker.limits = limits;
            }
        } else {
            // Keep what was already said; only the values move.
            self.tracker.limits = limits;
        }
        self.record_budget();
        msgs
    }

    /// Whether the project's budgets are near their end (past 80 % with the other runs'
    /// use, or paused for them): then every interval is checkpointed and the others' use
    /// re-read, so concurrent runs see each other promptly.
    pub fn needs_fresh_usage(&self) -> bool {
        self.budget_paused
            || self
                .cfg
                .project
                .iter()
                .any(|s| s.others + self.usage.get(s.metric) >= 0.8 * s.amount)
    }

    /// Whether this run has used, since its last checkpoint, 5 % of one of its project's
    /// budgets: then it checkpoints now, so the use the other runs cannot see stays small
    /// whatever the checkpoint interval (with N runs, at most N × 5 % of the budget).
    pub fn publish_due(&self) -> bool {
        self.cfg
            .project
            .iter()
            .any(|s| self.usage.get(s.metric) - self.published.get(s.metric) >= 0.05 * s.amount)
    }

    /// Notes that the usage so far was sent to the ledger.
    pub fn published(&mut self) {
        self.published = self.usage;
    }

    /// Whether any project budget applies.
    pub fn has_project_limits(&self) -> bool {
        !self.cfg.project.is_empty()
    }

    /// Seconds until the earliest limit would be reached at the present power: the end of a
    /// time budget, or when energy, carbon or water would run out. None when nothing will
    /// trip (no limits, all already reached, paused, or no power drawn).
    pub fn deadline(&self) -> Option<f64> {
        if self.stopping || self.frozen {
            return None;
        }
        let (intensity, _) = self.intensity();
        let kwh_per_s = self.power_w / 3.6e6;
        self.tracker
            .limits
            .iter()
            .filter_map(|l| {
                let left = l.value - self.usage.get(l.metric);
                if left <= 0.0 {
                    return None;
                }
                let rate = match l.metric {
                    Metric::Time => 1.0,
                    Metric::Energy => self.power_w,
                    Metric::Carbon => kwh_per_s * self.cfg.pue * intensity,
                    Metric::Water => kwh_per_s * (self.cfg.wue + self.cfg.pue * self.cfg.ewif),
                };
                (rate > 0.0).then(|| left / rate)
            })
            .min_by(f64::total_cmp)
    }

    /// One interval. `workload_j` is the workload's IT energy so far; `elapsed_s` the run's
    /// wall time; `reading` the grid signal's newest reading, if one came since the last.
    pub fn tick(
        &mut self,
        now_unix: f64,
        elapsed_s: f64,
        workload_j: f64,
        reading: Option<Latest>,
    ) -> (Directive, Vec<String>) {
        self.step(now_unix, elapsed_s, workload_j, reading, true)
    }

    /// The last interval, closed after the command ended: accounts and reports crossings,
    /// but there is nothing left to freeze or stop.
    pub fn last(
        &mut self,
        now_unix: f64,
        elapsed_s: f64,
        workload_j: f64,
        reading: Option<Latest>,
    ) -> Vec<String> {
        self.step(now_unix, elapsed_s, workload_j, reading, false).1
    }

    fn step(
        &mut self,
        now_unix: f64,
        elapsed_s: f64,
        workload_j: f64,
        reading: Option<Latest>,
        running: bool,
    ) -> (Directive, Vec<String>) {
        let mut msgs = Vec::new();
        let dt = (elapsed_s - self.last_elapsed).max(0.0);
        let de = (workload_j - self.last_workload_j).max(0.0);
        self.last_elapsed = elapsed_s;
        self.last_workload_j = workload_j;
        if !self.frozen && dt > 0.0 {
            self.power_w = de / dt;
        }

        // The carbon of this interval uses the intensity in force during it: the last
        // reading, or this one if there was none yet.
        let had_reading = self.yielder.as_ref().and_then(|y| y.current()).is_some();
        let (mut before, mut from_signal) = self.intensity();
        let mut grid_decision = Decision::Stay;
        if let Some(y) = self.yielder.as_mut() {
            let (d, warning) = y.step_with(now_unix, dt, reading.map(|l| (l.at, l.result)));
            if let Some(w) = warning {
                msgs.push(w);
            }
            grid_decision = d;
            if !had_reading {
                if let Some(i) = y.current().and_then(|r| r.average()) {
                    before = i;
                    from_signal = true;
                }
            }
            self.record.paused_s = y.paused_s;
            self.record.max_pause_reached = y.exhausted;
        }
        let fac_kwh = de * self.cfg.pue / 3.6e6;
        self.facility_kwh += fac_kwh;
        self.weighted_intensity += fac_kwh * before;
        if from_signal {
            self.signal_kwh += fac_kwh;
        }
        self.usage = Usage {
            energy_j: workload_j,
            carbon_g: self.usage.carbon_g + fac_kwh * before,
            water_l: self.usage.water_l + de / 3.6e6 * self.cfg.wue + fac_kwh * self.cfg.ewif,
            time_s: elapsed_s,
        };
        if let Some(p) = self.open_pause.as_mut() {
            p.intensity_s += before * dt;
            p.seconds += dt;
        }
        let (now_intensity, _) = self.intensity();
        match grid_decision {
            Decision::Freeze { reason } => {
                self.grid_frozen = true;
                msgs.push(format!("pausing the workload: {reason}"));
                self.open(elapsed_s, "grid", reason);
            }
            Decision::Thaw { reason } => {
                self.grid_frozen = false;
                msgs.push(format!("resuming the workload: {reason}"));
                if let Some(p) = self.open_pause.as_mut() {
                    p.pause.reason = format!("{}; resumed: {reason}", p.pause.reason);
                }
            }
            Decision::Stay => {}
        }

        // Budgets.
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
                            project_budget: self.project_budget_of(&limit),
                        });
                        self.record_budget();
                        self.close(elapsed_s, now_intensity);
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
        self.record_budget();

        let want = self.grid_frozen || self.budget_paused;
        let directive = match (want, self.frozen) {
            (true, false) => Directive::Freeze,
            (false, true) => {
                self.close(elapsed_s, now_intensity);
                Directive::Thaw
            }
            _ => Directive::Continue,
        };
        self.frozen = want;
        (directive, msgs)
    }

    fn open(&mut self, at: f64, cause: &str, reason: String) {
        if self.open_pause.is_none() {
            self.open_pause = Some(OpenPause {
                pause: Pause {
                    start_s: at,
                    end_s: at,
                    cause: cause.into(),
                    reason,
                    avoided_g: 0.0,
                },
                power_w: self.power_w,
                intensity_s: 0.0,
                seconds: 0.0,
            });
        }
    }

    /// Ends the open pause. Work deferred by a grid pause avoided carbon only as far as the
    /// grid it resumed on (`resume_intensity`) is cleaner than the grid it waited out.
    fn close(&mut self, at: f64, resume_intensity: f64) {
        if let Some(o) = self.open_pause.take() {
            let mut p = o.pause;
            p.end_s = at;
            if p.cause == "grid" && o.seconds > 0.0 {
                let waited = o.intensity_s / o.seconds;
                let deferred_kwh = o.power_w * o.seconds / 3.6e6 * self.cfg.pue;
                p.avoided_g = deferred_kwh * (waited - resume_intensity).max(0.0);
            }
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
                project_budget: self.project_budget_of(l),
            })
            .collect();
    }

    /// The whole amount of the project budget `l` is the remainder of, when it is one.
    fn project_budget_of(&self, l: &crate::govern::budget::Limit) -> Option<f64> {
        self.cfg
            .project
            .iter()
            .find(|s| s.metric == l.metric && s.limit().value == l.value)
            .map(|s| s.amount)
    }

    /// Closes the books at the end of the run. A pause still open when the run ended
    /// avoided nothing: the work was not done later, it was not done.
    pub fn finish(&mut self, elapsed_s: f64) -> Record {
        if let Some(mut o) = self.open_pause.take() {
            o.pause.end_s = elapsed_s;
            o.pause.reason = format!("{}; the run ended while paused", o.pause.reason);
            self.record.pauses.push(o.pause);
        }
        self.record_budget();
        if self.cfg.grid.is_some() {
            self.record.grid_mean_gco2_per_kwh = Some(self.mean_intensity());
            self.record.grid_signal_share = Some(if self.facility_kwh > 0.0 {
                self.signal_kwh / self.facility_kwh
            } else {
                0.0
            });
        }
        self.record.clone()
    }

    /// Energy-weighted mean intensity over the run (the intensity in force if nothing was
    /// used).
    pub fn mean_intensity(&self) -> f64 {
        if self.facility_kwh > 0.0 {
            self.weighted_intensity / self.facility_kwh
        } else {
            self.intensity().0
        }
    }

    /// The grid factor the run's carbon was computed with, when a signal was configured:
    /// the signal's energy-weighted mean, credited to the signal only for the share of
    /// energy it actually priced; `None` if it priced none (the zone's factor stands).
    pub fn grid_factor(&self, zone: &crate::factors::Factor) -> Option<crate::factors::Factor> {
        let (label, _) = self.cfg.grid.as_ref()?;
        let share = if self.facility_kwh > 0.0 {
            self.signal_kwh / self.facility_kwh
        } else if self.intensity().1 {
            1.0
        } else {
            0.0
        };
        if share <= 0.0 {
            return None;
        }
        let source = if share >= 0.9995 {
            format!(
                "grid signal {label}, read every interval; energy-weighted mean of the intervals"
            )
        } else {
            format!(
                "grid signal {label} for {:.0} % of the energy; the zone's yearly value ({}) for the rest, while the signal had no reading",
                share * 100.0,
                zone.cite()
            )
        };
        Some(crate::factors::Factor {
            value: self.mean_intensity(),
            unit: "gCO2e/kWh".into(),
            source,
            year: None,
            origin: crate::factors::Origin::Signal(label.clone()),
        })
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
    use crate::signal::Reading;

    fn cfg(limits: Vec<Limit>, on: OnExceed) -> GovernorConfig {
        GovernorConfig {
            limits,
            project: Vec::new(),
            on_exceed: on,
            grace: Duration::from_secs(5),
            grid: None,
            pue: 1.0,
            wue: 0.0,
            ewif: 0.0,
            zone_intensity: 100.0,
            forced: false,
            policy: None,
        }
    }

    fn grid(i: f64, at: f64, seq: u64) -> Option<Latest> {
        Some(Latest {
            seq,
            at,
            result: Ok(Reading {
                intensity: Some(i),
                stress: None,
                marginal: false,
            }),
        })
    }

    fn yielding(max_pause: Option<f64>) -> (String, YieldPolicy) {
        (
            "file:/run/grid".into(),
            YieldPolicy {
                pause_above: Some(300.0),
                pause_at_stress: None,
                resume_below: None,
                min_state_s: 0.0,
                max_pause_s: max_pause,
                stale_s: 900.0,
            },
        )
    }

    fn energy(v: f64) -> Vec<Limit> {
        vec![Limit {
            metric: Metric::Energy,
            value: v,
        }]
    }

    #[test]
    fn budget_stop_trips_in_the_interval_it_is_crossed() {
        let mut g = Governor::new(cfg(energy(1000.0), OnExceed::Stop), 0.0);
        let (d, m) = g.tick(1.0, 1.0, 700.0, None);
        assert_eq!(d, Directive::Continue);
        assert!(m.is_empty());
        let (d, m) = g.tick(2.0, 2.0, 850.0, None);
        assert_eq!(d, Directive::Continue);
        assert!(
            m[0].contains("past 80 %") && m[0].contains("(85 %)"),
            "{m:?}"
        );
        let (d, m) = g.tick(3.0, 3.0, 1001.0, None);
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
    fn deadlines_come_from_the_limits_and_the_power() {
        let mut c = cfg(energy(1000.0), OnExceed::Stop);
        c.limits.push(Limit {
            metric: Metric::Time,
            value: 10.0,
        });
        let mut g = Governor::new(c, 0.0);
        // Nothing drawn yet: only the time budget can trip, in 10 s.
        assert_eq!(g.deadline(), Some(10.0));
        // 100 W: 700 J left of the energy budget after 3 s → 7 s, time 7 s too.
        g.tick(1.0, 3.0, 300.0, None);
        let d = g.deadline().expect("deadline");
        assert!((d - 7.0).abs() < 1e-9, "{d}");
        g.tick(2.0, 4.0, 700.0, None); // 400 W now: 300 J left → 0.75 s
        assert!((g.deadline().expect("d") - 0.75).abs() < 1e-9);
    }

    #[test]
    fn carbon_is_summed_interval_by_interval_with_the_signal() {
        let mut c = cfg(
            vec![Limit {
                metric: Metric::Carbon,
                value: 1e9,
            }],
            OnExceed::Warn,
        );
        c.grid = Some(yielding(None));
        let mut g = Governor::new(c, 0.0);
        g.tick(0.0, 0.0, 0.0, grid(100.0, 0.0, 1));
        g.tick(1.0, 1.0, 3.6e6, None); // 1 kWh at 100 g/kWh
                                       // The reading of 500 arrives at the end of this interval: this kWh is charged at
                                       // the intensity in force during it (100), and the workload is frozen from now on.
        let (d, _) = g.tick(2.0, 2.0, 7.2e6, grid(500.0, 2.0, 2));
        assert_eq!(d, Directive::Freeze);
        assert!((g.usage().carbon_g - 200.0).abs() < 1e-9);
        let (d, _) = g.tick(3.0, 3.0, 7.2e6, None);
        assert_eq!(d, Directive::Continue);
        let (d, _) = g.tick(4.0, 4.0, 7.2e6, grid(50.0, 4.0, 3));
        assert_eq!(d, Directive::Thaw);
        g.tick(5.0, 5.0, 10.8e6, None); // 1 kWh at 50
        let r = g.finish(5.0);
        assert!((g.usage().carbon_g - 250.0).abs() < 1e-9);
        assert!((g.mean_intensity() - 250.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.pauses.len(), 1);
        assert_eq!((r.pauses[0].start_s, r.pauses[0].end_s), (2.0, 4.0));
        // 2 s deferred at the 3.6 MW drawn before: 2 kWh, waited out at 500 g/kWh and
        // done at 50 → 900 g avoided.
        assert!(
            (r.carbon_avoided_g - 2.0 * 450.0).abs() < 1e-6,
            "{}",
            r.carbon_avoided_g
        );
        assert_eq!(r.grid_signal_share, Some(1.0));
        let zone = crate::factors::Factor::new(100.0, "gCO2e/kWh", "table", Some(2023));
        let f = g.grid_factor(&zone).expect("the signal priced the energy");
        assert!(matches!(f.origin, crate::factors::Origin::Signal(_)));
    }

    #[test]
    fn no_carbon_is_avoided_when_the_grid_never_cleared() {
        let mut c = cfg(Vec::new(), OnExceed::Warn);
        c.grid = Some(yielding(Some(2.0)));
        let mut g = Governor::new(c, 0.0);
        g.tick(0.0, 1.0, 3.6e6, grid(500.0, 0.0, 1));
        assert!(g.is_frozen());
        g.tick(1.0, 2.0, 3.6e6, grid(500.0, 1.0, 2));
        // The maximum pause runs out with the grid as dirty: the work runs anyway.
        let (d, m) = g.tick(3.5, 4.5, 3.6e6, grid(500.0, 3.5, 3));
        assert_eq!(d, Directive::Thaw, "{m:?}");
        let r = g.finish(6.0);
        assert!(r.max_pause_reached);
        assert_eq!(r.carbon_avoided_g, 0.0);
    }

    #[test]
    fn an_unreadable_signal_is_not_credited() {
        let mut c = cfg(Vec::new(), OnExceed::Warn);
        c.grid = Some(yielding(None));
        let mut g = Governor::new(c, 0.0);
        let bad = |seq| {
            Some(Latest {
                seq,
                at: 0.0,
                result: Err("cannot read /run/grid".into()),
            })
        };
        let (_, m) = g.tick(1.0, 1.0, 3.6e6, bad(1));
        assert_eq!(m.len(), 1, "said once: {m:?}");
        let (_, m) = g.tick(2.0, 2.0, 7.2e6, bad(2));
        assert!(m.is_empty(), "not every interval: {m:?}");
        let r = g.finish(2.0);
        assert_eq!(r.grid_signal_share, Some(0.0));
        let zone = crate::factors::Factor::new(100.0, "gCO2e/kWh", "table", Some(2023));
        assert!(g.grid_factor(&zone).is_none(), "the zone's factor stands");
        // Half priced by the signal: the source says so.
        let mut c = cfg(Vec::new(), OnExceed::Warn);
        c.grid = Some(yielding(None));
        let mut g = Governor::new(c, 0.0);
        g.tick(1.0, 1.0, 3.6e6, bad(1));
        g.tick(2.0, 2.0, 7.2e6, grid(200.0, 2.0, 2));
        let f = g.grid_factor(&zone).expect("partly");
        assert!(f.source.contains("50 %"), "{}", f.source);
    }

    fn share(amount: f64, others: f64) -> Vec<Share> {
        vec![Share {
            metric: Metric::Energy,
            amount,
            others,
        }]
    }

    #[test]
    fn budget_pause_resumes_when_the_project_leaves_room() {
        let mut c = cfg(Vec::new(), OnExceed::Pause);
        c.project = share(100.0, 0.0);
        let mut g = Governor::new(c, 0.0);
        assert_eq!(g.tick(1.0, 1.0, 150.0, None).0, Directive::Freeze);
        assert!(g.needs_fresh_usage());
        assert_eq!(g.tick(2.0, 2.0, 150.0, None).0, Directive::Continue);
        let m = g.update_project(share(1000.0, 0.0));
        assert!(m[0].contains("resuming"), "{m:?}");
        assert_eq!(g.tick(3.0, 3.0, 150.0, None).0, Directive::Thaw);
        assert_eq!(g.finish(3.0).pauses[0].cause, "budget");
        // Others used more: the limit tightens and trips at once.
        let mut c = cfg(Vec::new(), OnExceed::Stop);
        c.project = share(1000.0, 0.0);
        let mut g = Governor::new(c, 0.0);
        g.tick(1.0, 1.0, 500.0, None);
        g.update_project(share(1000.0, 600.0));
        assert!(matches!(
            g.tick(2.0, 2.0, 510.0, None).0,
            Directive::Stop { .. }
        ));
    }

    #[test]
    fn project_use_is_published_in_small_steps_and_near_the_end() {
        let mut c = cfg(Vec::new(), OnExceed::Stop);
        c.project = share(100.0, 50.0);
        let mut g = Governor::new(c, 0.0);
        g.tick(1.0, 1.0, 4.0, None);
        assert!(!g.publish_due() && !g.needs_fresh_usage());
        g.tick(2.0, 2.0, 5.0, None);
        assert!(g.publish_due(), "5 % of the budget unpublished");
        g.published();
        assert!(!g.publish_due());
        g.tick(3.0, 3.0, 31.0, None);
        assert!(g.needs_fresh_usage(), "50 + 31 ≥ 80 % of 100");
    }
}

//! A process measuring itself: the driver behind the Python package's `decompute.track()`.
//! The calling process and its children are the workload (a [`ProcessTree`] that includes
//! its root), sampled on the same core as `run` and `serve` on a thread of its own; budgets
//! (the tracker's own and the policy file's project budgets) are checked every interval and
//! an exceeded one is *reported* (the caller decides: raise, warn); at stop the run is
//! recorded in the ledger like a `run`. Several trackers in one process measure the same
//! process: every one started while another is active is *nested* (tag `nested_in`), and
//! ledger totals and budgets count only the outermost, so nothing is counted twice.

use crate::consumer::tree::ProcessTree;
use crate::govern::budget::{self, Limit, Usage};
use crate::ledger::{RunIdentity, RunRecord, Status, RECORD_SCHEMA};
use crate::procfs::ProcRoot;
use crate::report::{RunMeta, RunReport};
use crate::sample::{Consumer, PowerRow, Totals};
use crate::sampler::Sampler;
use crate::settings::{Said, Settings};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use crate::ledger::NESTED_TAG;

/// What a tracker is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub project: Option<String>,
    pub tags: Vec<(String, String)>,
    /// A ledger path or `postgres://` URL; `None` for the usual one.
    pub ledger: Option<String>,
    /// Record nothing.
    pub no_ledger: bool,
    pub interval: Duration,
    /// `energy=500Wh,carbon=200g,water=3L,time=2h`.
    pub budget: Option<String>,
    pub zone: Option<String>,
    pub pue: Option<String>,
    /// The command line shown in the record (the Python script).
    pub command: Vec<String>,
}

impl Options {
    /// The options as the CLI would take them, checked by the same rules (one validation
    /// for `run` and `track()`): an interval of 0.1–60 s, a budget that parses, a project
    /// and tags as `--project` and `--tag` accept them (trimmed). Returns the normalised
    /// options or the CLI's one-line refusal.
    pub fn checked(mut self) -> Result<Options, String> {
        crate::ticker::check_interval(self.interval)?;
        if let Some(b) = &self.budget {
            budget::parse_budget(b)?;
        }
        if let Some(p) = &self.project {
            self.project = Some(crate::ledger::parse_project(p)?);
        }
        self.tags = self
            .tags
            .iter()
            .map(|(k, v)| crate::ledger::check_user_tag(k, v))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

/// Figures so far, shared with the sampling thread.
#[derive(Debug, Default)]
struct Shared {
    totals: Totals,
    samples: Vec<PowerRow>,
    cpu_s: f64,
    /// The first budget found exceeded, in words.
    exceeded: Option<String>,
    warnings: Vec<String>,
    /// Intervals closed so far (scheduled or asked for by `energy_now_j`).
    ticks: u64,
}

/// How a tracked block ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Finished,
    /// Left by an exception.
    Failed,
    /// Ended because a budget was used up (its exception raised in the block).
    StoppedByBudget,
}

/// Trackers active in this process, outermost first.
static ACTIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A running tracker.
pub struct Tracker {
    identity: RunIdentity,
    started_at: std::time::SystemTime,
    started: Instant,
    interval: Duration,
    shared: Arc<Mutex<Shared>>,
    /// Signalled by the sampling thread after each interval it closes.
    ticked: Arc<Condvar>,
    stop: Arc<AtomicBool>,
    /// Asks the sampling thread to close an interval now (a fresh, partial one).
    tick_now: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    conv: crate::factors::Conversion,
    host: crate::report::HostInfo,
    ledger: Option<crate::ledger::Location>,
    notes: Vec<String>,
    command: Vec<String>,
    nested: bool,
}

fn usage_of(t: &Totals, conv: &crate::factors::Conversion, secs: f64) -> Usage {
    let (_, carbon, water) = crate::report::convert(t.workload(), conv);
    Usage {
        energy_j: t.workload().0,
        carbon_g: carbon.0,
        water_l: water.0,
        time_s: secs,
    }
}

impl Tracker {
    /// Resolves everything as `run` would (config file, factor data, the machine's meters,
    /// the policy file found from the working directory, the ledger) and starts sampling.
    pub fn start(o: &Options) -> Result<Tracker, String> {
        let o = &o.clone().checked()?;
        let said = Said::keywords(o.zone.clone(), o.pue.clone(), o.ledger.clone());
        let settings = Settings::resolve(said).map_err(|x| x.to_string())?;
        let data = settings.factor_data().map_err(|x| x.to_string())?;
        let conv = settings.conversion(&data).map_err(|x| x.to_string())?;
        let probe = settings.probe().map_err(|x| x.to_string())?;
        let policy = settings.policy().cloned();
        let cwd = settings.cwd().to_path_buf();
        let mut limits: Vec<Limit> = match &o.budget {
            Some(b) => budget::parse_budget(b)?,
            None => Vec::new(),
        };
        // Project, as `run` chooses it (a Slurm job's account included).
        let (slurm_tags, account) = crate::slurm::env::tags(std::env::vars());
        let project = settings.project(o.project.as_deref(), account);
        let ledger = if o.no_ledger {
            None
        } else {
            Some(settings.ledger().map_err(|x| x.to_string())?)
        };
        let mut notes: Vec<String> = settings
            .policy_warning()
            .map(str::to_string)
            .into_iter()
            .collect();
        // The project's budgets: what the others left.
        if let (Some(p), Some(loc)) = (&policy, &ledger) {
            if p.projects().contains(&project.as_str()) {
                let l = loc.open().map_err(|x| x.to_string())?;
                let now = crate::timefmt::now_s() as i64;
                let st = crate::govern::policy::standings(p, &project, now, |s, en| {
                    crate::govern::usage::period_usage(l.as_ref(), &project, s, en)
                })?;
                for pl in crate::govern::policy::remaining_limits(&st) {
                    match limits.iter_mut().find(|x| x.metric == pl.metric) {
                        Some(x) => x.value = x.value.min(pl.value),
                        None => limits.push(pl),
                    }
                }
                notes.push(format!("project budgets of {} apply", p.path.display()));
            }
        }
        let mut tags: std::collections::BTreeMap<String, String> = slurm_tags;
        tags.extend(o.tags.iter().cloned());
        let id = crate::ulid::new(std::time::SystemTime::now());
        let nested = {
            let mut a = ACTIVE.lock().map_err(|_| "tracker registry poisoned")?;
            let outer = a.first().cloned();
            a.push(id.clone());
            if let Some(outer) = outer {
                tags.insert(NESTED_TAG.into(), outer);
                true
            } else {
                false
            }
        };
        let identity = RunIdentity {
            id,
            project,
            tags,
            user: crate::ledger::current_user(),
            host: crate::host::hostname(),
            cwd: cwd.display().to_string(),
        };
        let mut detection = crate::detect::Detection::run(&probe, &data);
        notes.extend(detection.warnings.iter().cloned());
        let host = crate::run::host_info(&detection);
        let pid = std::process::id() as i32;
        let tree =
            ProcessTree::including_root(ProcRoot::new(&probe.procfs_root), pid).counting_from_now();
        let mut sampler = Sampler::new(
            ProcRoot::new(&probe.procfs_root),
            detection.slots(),
            tree,
            detection.mem_total_bytes,
            detection.cpu.logical_cpus,
        );
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let ticked = Arc::new(Condvar::new());
        let tick_now = Arc::new(AtomicBool::new(false));
        let (sh, st, interval, conv2) = (shared.clone(), stop.clone(), o.interval, conv.clone());
        let (tk, now_flag) = (ticked.clone(), tick_now.clone());
        let started = Instant::now();
        let handle = std::thread::Builder::new()
            .name("decompute-track".into())
            .spawn(move || {
                let mut checker = budget::Checker::new(limits);
                let mut ticker = crate::ticker::Ticker::new(Instant::now(), interval);
                loop {
                    let done = st.load(Ordering::SeqCst);
                    let asked = now_flag.swap(false, Ordering::SeqCst);
                    let now = Instant::now();
                    if !done && !asked {
                        if let Some(wait) = ticker.wait(now) {
                            // Woken early by `stop` or `energy_now_j` (unpark), else at the
                            // next interval.
                            std::thread::park_timeout(wait);
                            continue;
                        }
                        ticker.fired(now);
                    }
                    let iv = sampler.tick();
                    let mut s = match sh.lock() {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                    for smp in iv.samples() {
                        let mut x = smp.clone();
                        if let Consumer::Cgroup(_) = x.consumer {
                            continue;
                        }
                        if x.consumer != Consumer::Host && x.consumer != Consumer::Idle {
                            x.consumer = Consumer::Workload;
                        }
                        s.totals.add(&x);
                    }
                    s.samples.push(iv.power_row(&Consumer::Workload));
                    s.cpu_s += iv.consumers.iter().map(|c| c.usage.cpu_s).sum::<f64>();
                    let u = usage_of(&s.totals, &conv2, started.elapsed().as_secs_f64());
                    for c in checker.check(&u) {
                        if let budget::Crossing::Exceeded { limit, used } = c {
                            if s.exceeded.is_none() {
                                s.exceeded = Some(format!(
                                    "{} budget used up: {} of {}",
                                    limit.metric.name(),
                                    limit.metric.show(used),
                                    limit.metric.show(limit.value)
                                ));
                            }
                        }
                    }
                    for w in &sampler.warnings {
                        if !s.warnings.contains(w) {
                            s.warnings.push(w.clone());
                        }
                    }
                    s.ticks += 1;
                    drop(s);
                    tk.notify_all();
                    if done {
                        return;
                    }
                }
            })
            .map_err(|x| format!("cannot start the sampling thread: {x}"))?;
        Ok(Tracker {
            identity,
            started_at: std::time::SystemTime::now(),
            started,
            interval: o.interval,
            shared,
            ticked,
            stop,
            tick_now,
            handle: Some(handle),
            conv,
            host,
            ledger,
            notes,
            command: o.command.clone(),
            nested,
        })
    }

    pub fn id(&self) -> &str {
        &self.identity.id
    }

    pub fn nested(&self) -> bool {
        self.nested
    }

    /// The budget found exceeded, if one is.
    pub fn exceeded(&self) -> Option<String> {
        self.shared.lock().ok().and_then(|s| s.exceeded.clone())
    }

    /// The workload's energy up to the last closed interval, J.
    pub fn energy_j(&self) -> f64 {
        self.shared
            .lock()
            .map(|s| s.totals.workload().0)
            .unwrap_or(0.0)
    }

    /// The workload's energy up to now, J: the sampling thread closes a fresh, partial
    /// interval (read from the counters at this call) and this waits for it, so a figure
    /// taken at the end of a short epoch is that epoch's and consecutive calls add up to the
    /// whole. Falls back to the last interval's figure if the thread does not answer within
    /// `patience` (it has stopped, or the machine is starved).
    pub fn energy_now_j(&self, patience: Duration) -> f64 {
        let Ok(s) = self.shared.lock() else {
            return 0.0;
        };
        let seen = s.ticks;
        self.tick_now.store(true, Ordering::SeqCst);
        if let Some(h) = &self.handle {
            h.thread().unpark();
        } else {
            return s.totals.workload().0;
        }
        let deadline = Instant::now() + patience;
        let mut s = s;
        while s.ticks == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = match self.ticked.wait_timeout(s, left) {
                Ok((g, _)) => g,
                Err(_) => return 0.0,
            };
        }
        s.totals.workload().0
    }

    /// Ends the sampling thread (it takes a last, partial interval) and leaves the registry
    /// of active trackers. Idempotent.
    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        if let Ok(mut a) = ACTIVE.lock() {
            a.retain(|x| x != &self.identity.id);
        }
    }

    /// Stops sampling (with a last, partial interval), records the run unless told not to,
    /// and returns its report with how the block ended.
    pub fn stop(mut self, end: End) -> Result<(RunReport, Option<String>), String> {
        let failed = end != End::Finished;
        self.halt();
        let s = self
            .shared
            .lock()
            .map_err(|_| "the sampling thread panicked".to_string())?;
        let secs = self.started.elapsed().as_secs_f64();
        let mut notes = self.notes.clone();
        notes.extend(s.warnings.iter().cloned());
        notes.push(
            "measured by decompute.track(): the calling process and its children (the tracker's own sampling thread included)".into(),
        );
        if self.nested {
            notes.push(format!(
                "nested in tracker {}: counted there, not again in totals and budgets",
                self.identity
                    .tags
                    .get(NESTED_TAG)
                    .cloned()
                    .unwrap_or_default()
            ));
        }
        let exceeded = s.exceeded.clone();
        if let Some(x) = &exceeded {
            notes.push(x.clone());
        }
        let meta = RunMeta {
            command: if self.command.is_empty() {
                vec!["python".into()]
            } else {
                self.command.clone()
            },
            exit_code: Some(if failed { 1 } else { 0 }),
            killed_by_signal: None,
            interrupted_by: None,
            started_at: crate::timefmt::rfc3339(self.started_at),
            ended_at: crate::timefmt::rfc3339(std::time::SystemTime::now()),
            duration_s: secs,
            interval_s: self.interval.as_secs_f64(),
            host: self.host.clone(),
            processes_followed: 1,
            cpu_time_s: s.cpu_s,
            notes,
            leftover_processes: Vec::new(),
        };
        let mut report = crate::report::build(meta, &s.totals, s.samples.clone(), &self.conv);
        // The caller's copy carries who ran it, as `run --json` does (so `ledger import`
        // of it, or a CodeCarbon row of it, knows the run); the ledger's copy does not.
        report.run = Some(self.identity.clone());
        let status = match end {
            End::Finished => Status::Finished,
            End::Failed => Status::Failed,
            End::StoppedByBudget => Status::StoppedByBudget,
        };
        let mut recorded = None;
        if let Some(loc) = &self.ledger {
            let rec = RunRecord {
                schema: RECORD_SCHEMA.into(),
                identity: self.identity.clone(),
                status,
                report: RunReport {
                    run: None,
                    ..report.clone()
                },
            };
            let taken = loc
                .open()
                .and_then(|mut l| l.import(std::slice::from_ref(&rec)));
            match taken {
                Ok(_) => recorded = Some(loc.shown()),
                // Never lost: kept for the next decompute command on this host.
                Err(e) => {
                    let kept = match crate::ledger::spool::keep(loc, &rec) {
                        Ok(f) => format!(
                            "kept in {} for the next decompute command on this host to record",
                            f.display()
                        ),
                        Err(s) => format!("nor spooled ({s})"),
                    };
                    report
                        .notes
                        .push(format!("not recorded in the ledger ({e}); {kept}"));
                    return Ok((report, None));
                }
            }
        }
        Ok((report, recorded))
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trackers of one process nest whatever thread they run on: these tests take turns.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn opts(ledger: &std::path::Path) -> Options {
        Options {
            project: Some("py".into()),
            ledger: Some(ledger.display().to_string()),
            interval: Duration::from_millis(100),
            zone: Some("FR".into()),
            ..Default::default()
        }
    }

    /// What the process used before the tracker started is not the block's (a notebook
    /// starts many trackers; each counted all the CPU since the process began).
    #[test]
    fn cpu_used_before_the_tracker_started_is_not_the_blocks() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().expect("tmp");
        let l = d.path().join("l.sqlite");
        // 1.5 s of this thread's CPU (CPU time, not wall time: a busy machine only slows it).
        let cpu = || {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a valid out-pointer; the thread CPU clock always exists.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
        };
        let t0 = cpu();
        let mut x = 0u64;
        while cpu() - t0 < 1.5 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let t = Tracker::start(&opts(&l)).expect("start");
        let (r, _) = t.stop(End::Finished).expect("stop");
        // Other tests' threads in this process may run meanwhile: at most both cores' worth
        // of the block's own duration, plus slack; never the 1.5 s before it.
        assert!(
            r.cpu_time_s < 0.5 + 2.0 * r.duration_s,
            "{} s of CPU in a {} s block",
            r.cpu_time_s,
            r.duration_s
        );
    }

    #[test]
    fn a_busy_block_is_measured_recorded_and_nested_ones_are_marked() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().expect("tmp");
        let l = d.path().join("l.sqlite");
        let outer = Tracker::start(&opts(&l)).expect("outer");
        let inner = Tracker::start(&opts(&l)).expect("inner");
        assert!(!outer.nested() && inner.nested());
        let until = Instant::now() + Duration::from_millis(400);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let (ri, _) = inner.stop(End::Finished).expect("inner stop");
        let (ro, where_) = outer.stop(End::Finished).expect("outer stop");
        assert!(ro.energy_j.workload > 0.0 && ro.cpu_time_s > 0.1, "{ro:?}");
        assert!(ri.notes.iter().any(|n| n.contains("nested in tracker")));
        assert!(where_.is_some());
        let led = crate::ledger::Location::parse(
            &l.display().to_string(),
            crate::factors::Origin::Default,
        )
        .expect("a path")
        .open()
        .expect("ledger");
        let rows = led.list(&Default::default()).expect("list");
        assert_eq!(rows.len(), 2, "both recorded");
        // Totals count the outer one only.
        let sum = led
            .summary(&crate::ledger::GroupBy::Project, &Default::default())
            .expect("summary");
        assert_eq!(sum[0].runs, 1);
        assert!((sum[0].energy_j - ro.energy_j.workload).abs() < 1e-6);
    }

    #[test]
    fn a_tiny_budget_is_reported_exceeded() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().expect("tmp");
        let mut o = opts(&d.path().join("l.sqlite"));
        o.budget = Some("energy=1mJ".into());
        o.no_ledger = true;
        let t = Tracker::start(&o).expect("start");
        let end = Instant::now() + Duration::from_secs(5);
        while t.exceeded().is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let why = t.exceeded().expect("exceeded");
        assert!(why.contains("energy budget used up"), "{why}");
        let (r, recorded) = t.stop(End::Finished).expect("stop");
        assert!(recorded.is_none());
        assert!(r.notes.iter().any(|n| n.contains("energy budget used up")));
        assert!(Tracker::start(&Options {
            interval: Duration::from_millis(1),
            ..o
        })
        .is_err());
    }
}

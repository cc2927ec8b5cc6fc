//! The node agent's Slurm job accounting (`decompute serve --slurm`): each interval, the
//! energy the sampler attributed to a job's consumers (its cgroups under
//! `proctrack/cgroup`, its step daemons' process trees under `proctrack/linuxproc`) is added
//! to that job's totals, with the host's readings beside it and a power row; when a job's
//! consumers are gone from the node, the job is handed to a writer thread, which asks
//! Slurm how it ended (`squeue --json`, one call for every job a pass needs) and writes the
//! records of a burst in one ledger call. What Slurm said of a job while it ran (its
//! account, user, comment) stands in when Slurm has forgotten it by its end. The tick itself only adds numbers and sends on a channel: Slurm's commands and the
//! ledger are the writer's.

use super::jobs::Job;
use super::steps::{job_of_path, of_node};
use crate::ledger::{self, RunIdentity, RunRecord, Status, RECORD_SCHEMA};
use crate::report::{HostInfo, RunMeta};
use crate::sample::{Consumer, PowerRow, Totals};
use crate::sampler::Interval;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the agent saw of one job on this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobAcc {
    pub totals: Totals,
    pub samples: Vec<PowerRow>,
    /// Wall-clock start of the first interval and end of the last one, Unix seconds.
    pub first_t: f64,
    pub last_t: f64,
    pub cpu_s: f64,
    /// The job was already running when the agent started.
    pub joined_late: bool,
}

/// Why a job's accounting ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its processes (or cgroups) are gone from the node.
    Gone,
    /// The agent stopped while the job ran.
    AgentStopped,
}

/// A job handed to the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub job: u64,
    pub acc: JobAcc,
    pub end: End,
}

/// What the tick tells the writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A job appeared on this node: the writer learns its account, user and comment while
    /// it runs, so its record never depends on Slurm remembering it after `MinJobAge`.
    Started(u64),
    /// A job's accounting ended.
    Ended(Ended),
}

/// The per-interval half: pure bookkeeping, no I/O.
pub struct Accountant {
    jobs: HashMap<u64, JobAcc>,
    tx: mpsc::Sender<Event>,
    ticks: u64,
    /// The Slurm node whose jobs count, where the host's cgroups hold several nodes'.
    node: Option<String>,
}

impl Accountant {
    pub fn new(tx: mpsc::Sender<Event>) -> Accountant {
        Accountant {
            jobs: HashMap::new(),
            tx,
            ticks: 0,
            node: None,
        }
    }

    /// Counts only the jobs of Slurm node `node` when the host's cgroups hold several
    /// nodes' (see [`of_node`]).
    pub fn for_node(mut self, node: &str) -> Accountant {
        self.node = Some(node.to_string());
        self
    }

    /// Jobs being followed now.
    pub fn running(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.jobs.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Adds one interval ending at wall-clock `t` (Unix seconds).
    pub fn tick(&mut self, iv: &Interval, t: f64) {
        self.ticks += 1;
        let first_tick = self.ticks == 1;
        let dt = iv.dt.0.max(1e-9);
        let mut present: BTreeMap<u64, Vec<&Consumer>> = BTreeMap::new();
        for c in &iv.consumers {
            if let Consumer::Cgroup(p) = &c.usage.consumer {
                let ours = self.node.as_deref().is_none_or(|n| of_node(p, n));
                if let Some(job) = job_of_path(p).filter(|_| ours) {
                    present.entry(job).or_default().push(&c.usage.consumer);
                }
            }
        }
        // Per-sample rows only when some job runs: an idle node costs nothing here.
        let samples = if present.is_empty() {
            Vec::new()
        } else {
            iv.samples()
        };
        for (job, consumers) in &present {
            let tx = &self.tx;
            let acc = self.jobs.entry(*job).or_insert_with(|| {
                let _ = tx.send(Event::Started(*job));
                JobAcc {
                    first_t: t - iv.dt.0,
                    joined_late: first_tick,
                    ..Default::default()
                }
            });
            acc.last_t = t;
            for s in &samples {
                match &s.consumer {
                    Consumer::Host => acc.totals.add(s),
                    c if consumers.contains(&c) => {
                        let mut w = s.clone();
                        w.consumer = Consumer::Workload;
                        acc.totals.add(&w);
                    }
                    _ => {}
                }
            }
            let mut row = iv.power_row(&Consumer::Idle);
            row.workload_w = iv
                .consumers
                .iter()
                .filter(|c| consumers.contains(&&c.usage.consumer))
                .map(|c| c.total().0)
                .sum::<f64>()
                / dt;
            acc.samples.push(row);
            acc.cpu_s += iv
                .consumers
                .iter()
                .filter(|c| consumers.contains(&&c.usage.consumer))
                .map(|c| c.usage.cpu_s)
                .sum::<f64>();
        }
        let gone: Vec<u64> = self
            .jobs
            .keys()
            .filter(|j| !present.contains_key(j))
            .copied()
            .collect();
        for job in gone {
            if let Some(acc) = self.jobs.remove(&job) {
                let _ = self.tx.send(Event::Ended(Ended {
                    job,
                    acc,
                    end: End::Gone,
                }));
            }
        }
    }
}

impl Drop for Accountant {
    /// The agent stops: what was seen of the jobs still running is written, and says so.
    fn drop(&mut self) {
        for (job, acc) in self.jobs.drain() {
            let _ = self.tx.send(Event::Ended(Ended {
                job,
                acc,
                end: End::AgentStopped,
            }));
        }
    }
}

/// What the writer needs to turn an ended job into a record.
#[derive(Debug, Clone)]
pub struct Context {
    pub node: String,
    pub host: HostInfo,
    pub conv: crate::factors::Conversion,
    /// The policy file's project, for jobs without an account.
    pub policy_project: Option<String>,
    pub interval_s: f64,
    /// How the jobs' processes were found, for the record's notes.
    pub tracking: String,
}

/// The ledger record of a job on this node.
pub fn record(e: &Ended, job: Option<&Job>, cx: &Context) -> RunRecord {
    let a = &e.acc;
    let name = job.map(|j| j.name.clone()).unwrap_or_default();
    let account = job.map(|j| j.account.clone()).unwrap_or_default();
    let mut tags = BTreeMap::new();
    tags.insert("slurm_job_id".to_string(), e.job.to_string());
    tags.insert("slurm_node".to_string(), cx.node.clone());
    if let Some(j) = job {
        for (k, v) in [
            ("slurm_job_name", &j.name),
            ("slurm_partition", &j.partition),
            ("slurm_account", &j.account),
        ] {
            if !v.is_empty() {
                tags.insert(k.to_string(), v.clone());
            }
        }
    }
    let project = if !account.is_empty() {
        account
    } else {
        cx.policy_project.clone().unwrap_or_else(|| "slurm".into())
    };
    let mut notes = vec![format!(
        "measured by decompute serve --slurm on node {} ({})",
        cx.node, cx.tracking
    )];
    if a.joined_late {
        notes.push(format!(
            "the agent started while this job ran: the record covers from {} only",
            crate::timefmt::rfc3339_s(a.first_t)
        ));
    }
    let status = match (e.end, job.and_then(Job::status)) {
        (End::AgentStopped, _) => {
            notes.push(format!(
                "the agent stopped while this job ran: the record covers until {} only",
                crate::timefmt::rfc3339_s(a.last_t)
            ));
            Status::Interrupted
        }
        (End::Gone, Some(s)) => s,
        (End::Gone, None) => {
            notes.push(
                "Slurm no longer knew the job when it ended here (MinJobAge passed, or squeue failed): its end state is unknown".into(),
            );
            Status::Interrupted
        }
    };
    let exit_code = match (status, job.and_then(|j| j.exit_code)) {
        (Status::Finished, _) => Some(0),
        (Status::Failed, c) => c.or(Some(1)),
        _ => None,
    };
    let meta = RunMeta {
        command: vec![format!("slurm job {}", e.job), name],
        exit_code,
        killed_by_signal: None,
        interrupted_by: match status {
            Status::Cancelled => Some("cancelled by Slurm".into()),
            Status::TimedOut => Some("time limit reached".into()),
            Status::Interrupted => Some("end not seen".into()),
            _ => None,
        },
        started_at: crate::timefmt::rfc3339_s(a.first_t),
        ended_at: crate::timefmt::rfc3339_s(a.last_t),
        duration_s: (a.last_t - a.first_t).max(0.0),
        interval_s: cx.interval_s,
        host: cx.host.clone(),
        processes_followed: 0,
        cpu_time_s: a.cpu_s,
        notes,
        leftover_processes: Vec::new(),
    };
    let mut report = crate::report::build(meta, &a.totals, a.samples.clone(), &cx.conv);
    // Pauses the cluster controller recorded in the job's comment.
    let pauses = job
        .map(|j| super::govern::pauses_in(&j.comment, j.id))
        .unwrap_or_default();
    if !pauses.is_empty() {
        let ps: Vec<crate::govern::governor::Pause> = pauses
            .iter()
            .map(|p| crate::govern::governor::Pause {
                start_s: (p.start - a.first_t).max(0.0),
                // A pause still open ended with the job (cancelled while suspended).
                end_s: (p.end.unwrap_or(a.last_t).max(p.start) - a.first_t).max(0.0),
                cause: p.cause.clone(),
                reason: format!(
                    "suspended by decompute slurm govern{}",
                    p.grid.map(|g| format!(" (grid {g})")).unwrap_or_default()
                ),
                avoided_g: 0.0,
            })
            .collect();
        report.governance = Some(crate::govern::governor::Record {
            paused_s: ps.iter().map(|p| p.end_s - p.start_s).sum(),
            pauses: ps,
            ..Default::default()
        });
    }
    RunRecord {
        schema: RECORD_SCHEMA.into(),
        identity: RunIdentity {
            id: crate::ulid::new(crate::timefmt::system_time(a.last_t)),
            project,
            tags,
            user: job
                .map(|j| j.user.clone())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "unknown".into()),
            host: cx.node.clone(),
            cwd: job.map(|j| j.cwd.clone()).unwrap_or_default(),
        },
        status,
        report,
    }
}

/// The most job ids one `squeue` call is asked about.
const ASK_AT_ONCE: usize = 500;

/// Asks Slurm about jobs: `squeue --json --states=all --jobs ID,ID,…` (in calls of up to
/// 500 ids), falling back to the `--format` form on clusters without `--json`. Jobs Slurm no
/// longer knows are missing from the answer.
/// `stop` ends a wait early (the agent is told to end).
pub fn squeue_jobs(squeue: &str, ids: &[u64], stop: &dyn Fn() -> bool) -> Result<Vec<Job>, String> {
    let run = |args: &[&str]| super::command::run(squeue, args, super::command::DEADLINE, stop);
    let mut out = Vec::new();
    for chunk in ids.chunks(ASK_AT_ONCE) {
        let list = chunk
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let o = run(&["--json", "--states=all", "--jobs", &list])?;
        let jobs = if o.success {
            super::jobs::parse_json(&o.stdout)?
        } else {
            let f = run(&[
                "--noheader",
                "--states=all",
                "--jobs",
                &list,
                "--format",
                super::jobs::FORMAT,
            ])?;
            if !f.success {
                return Err(format!("squeue failed: {}", o.stderr.trim()));
            }
            super::jobs::parse_format(&f.stdout)?
        };
        out.extend(jobs.into_iter().filter(|j| chunk.contains(&j.id)));
    }
    Ok(out)
}

/// How many times an ended job whose end Slurm has not settled yet is asked about again
/// (a pass every 300 ms) before it is written with what is known.
const SETTLE_PASSES: u32 = 10;
/// How often the running jobs' comments (the controller's pause marks) are read again.
const REFRESH: Duration = Duration::from_secs(30);

/// The writer: gathers what the tick sent (jobs started, jobs ended) and, per pass, asks
/// Slurm once about every job it needs (the new ones, the ended ones, and every 30 s the
/// running ones), then writes all the records that are ready in one ledger call. What Slurm
/// said of a job while it ran stands in when Slurm has forgotten it by its end. Records the
/// ledger refuses are kept and retried with the next pass; nothing measured is dropped
/// silently.
pub fn writer(
    rx: mpsc::Receiver<Event>,
    cx: Context,
    mut lookup: impl FnMut(&[u64]) -> Result<Vec<Job>, String>,
    mut write: impl FnMut(&[RunRecord]) -> Result<(), String>,
) {
    let mut known: HashMap<u64, Job> = HashMap::new();
    let mut running: BTreeSet<u64> = BTreeSet::new();
    let mut to_learn: BTreeSet<u64> = BTreeSet::new();
    let mut waiting: Vec<(Ended, u32)> = Vec::new();
    let mut pending: Vec<RunRecord> = Vec::new();
    let mut refreshed = Instant::now();
    let mut slurm_failing = false;
    let mut open = true;
    while open || !waiting.is_empty() {
        // Block for the next event (or, while ended jobs wait to settle, a short while),
        // then take everything already queued: one pass serves a burst.
        let mut events = Vec::new();
        let first = if !open {
            None
        } else if waiting.is_empty() && to_learn.is_empty() {
            rx.recv().ok()
        } else {
            // Ended jobs settle in a pass every 300 ms; jobs only to learn about are asked
            // again every 5 s (a Slurm that does not answer is not hammered).
            let wait = if waiting.is_empty() {
                Duration::from_secs(5)
            } else {
                Duration::from_millis(300)
            };
            match rx.recv_timeout(wait) {
                Ok(e) => Some(e),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            }
        };
        match first {
            Some(e) => events.push(e),
            None if open && waiting.is_empty() && to_learn.is_empty() => open = false,
            None => {}
        }
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        for e in events {
            match e {
                Event::Started(j) => {
                    running.insert(j);
                    to_learn.insert(j);
                }
                Event::Ended(e) => {
                    running.remove(&e.job);
                    waiting.push((e, 0));
                }
            }
        }
        if refreshed.elapsed() >= REFRESH {
            to_learn.extend(running.iter().copied());
            refreshed = Instant::now();
        }
        let ask: BTreeSet<u64> = to_learn
            .iter()
            .copied()
            .chain(waiting.iter().map(|(e, _)| e.job))
            .collect();
        let mut answered: Option<BTreeSet<u64>> = None;
        if !ask.is_empty() {
            let ids: Vec<u64> = ask.iter().copied().collect();
            match lookup(&ids) {
                Ok(jobs) => {
                    if slurm_failing {
                        crate::say!("decompute: note: Slurm answers again");
                        slurm_failing = false;
                    }
                    answered = Some(jobs.iter().map(|j| j.id).collect());
                    for j in jobs {
                        known.insert(j.id, j);
                    }
                    to_learn.clear();
                }
                Err(m) if !slurm_failing => {
                    crate::say!(
                        "decompute: warning: asking Slurm about {} job(s): {m}; asking again",
                        ids.len()
                    );
                    slurm_failing = true;
                }
                Err(_) => {}
            }
        }
        let mut still = Vec::new();
        for (e, passes) in waiting.drain(..) {
            let job = known.get(&e.job);
            let settled = e.end == End::AgentStopped
                || job.is_some_and(|j| j.state.ended())
                // Slurm answered without it: forgotten (MinJobAge passed).
                || answered.as_ref().is_some_and(|a| !a.contains(&e.job))
                || passes + 1 >= SETTLE_PASSES
                || !open;
            if settled {
                pending.push(record(&e, job, &cx));
                known.remove(&e.job);
            } else {
                still.push((e, passes + 1));
            }
        }
        waiting = still;
        if !pending.is_empty() {
            match write(&pending) {
                Ok(()) => pending.clear(),
                Err(m) => crate::say!(
                    "decompute: warning: {} job record(s) not written yet ({m}); retrying with the next",
                    pending.len()
                ),
            }
        }
    }
    if !pending.is_empty() {
        crate::say!(
            "decompute: error: {} Slurm job record(s) could not be written to the ledger: {}",
            pending.len(),
            pending
                .iter()
                .map(|r| r
                    .identity
                    .tags
                    .get("slurm_job_id")
                    .cloned()
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// Writes records into a ledger opened on the writer's thread.
pub fn ledger_writer(loc: ledger::Location) -> impl FnMut(&[RunRecord]) -> Result<(), String> {
    let mut l: Option<Box<dyn ledger::Ledger>> = None;
    move |recs: &[RunRecord]| {
        if l.is_none() {
            l = Some(loc.open().map_err(|e| e.to_string())?);
        }
        let Some(led) = l.as_mut() else {
            return Err("no ledger".into());
        };
        let r = led.import(recs);
        // Nothing held between batches: an agent on every node costs the server no
        // connection while its jobs run.
        led.release();
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                l = None;
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Joules;

    fn interval(jobs: &[(&str, f64, f64)], host: f64) -> Interval {
        crate::sampler::cgroup_interval(jobs, host)
    }

    fn context() -> Context {
        let d = crate::factors::FactorData::embedded().expect("data");
        Context {
            node: "n1".into(),
            host: HostInfo {
                hostname: "n1".into(),
                cpu_model: "x".into(),
                logical_cpus: 2,
                memory_gb: 1.0,
                virtual_machine: false,
                gpus: vec![],
            },
            conv: crate::factors::resolve(&d, &Default::default()).expect("conv"),
            policy_project: None,
            interval_s: 1.0,
            tracking: "test".into(),
        }
    }

    #[test]
    fn a_jobs_steps_are_summed_and_its_end_handed_over_once() {
        let (tx, rx) = mpsc::channel();
        let mut a = Accountant::new(tx);
        // Job 7 (two step cgroups) and job 8 were already running when the agent started.
        a.tick(
            &interval(
                &[
                    ("/slurm/uid_0/job_7/step_batch", 10.0, 1.0),
                    ("/slurm/uid_0/job_7/step_0", 5.0, 0.5),
                    ("/slurm/job_8", 20.0, 2.0),
                    ("/system.slice/sshd.service", 1.0, 0.1),
                ],
                50.0,
            ),
            1000.0,
        );
        a.tick(&interval(&[("/slurm/job_8", 20.0, 2.0)], 30.0), 1001.0);
        assert_eq!(a.running(), vec![8]);
        let ended = |e: Event| match e {
            Event::Ended(e) => e,
            other => panic!("not an end: {other:?}"),
        };
        // Both jobs were announced when first seen, once.
        assert_eq!(rx.try_recv().expect("7"), Event::Started(7));
        assert_eq!(rx.try_recv().expect("8"), Event::Started(8));
        let e = ended(rx.try_recv().expect("job 7 ended"));
        assert_eq!((e.job, e.end), (7, End::Gone));
        assert_eq!(e.acc.totals.workload(), Joules(15.0));
        assert_eq!(e.acc.totals.host(), Joules(50.0));
        assert!((e.acc.cpu_s - 1.5).abs() < 1e-12);
        assert_eq!(e.acc.samples[0].workload_w, 15.0);
        assert!(e.acc.joined_late);
        assert!(rx.try_recv().is_err(), "nothing else ended");
        // The agent stops: job 8 is handed over as such.
        drop(a);
        let e = ended(rx.try_recv().expect("job 8"));
        assert_eq!((e.job, e.end), (8, End::AgentStopped));
        assert_eq!(e.acc.totals.workload(), Joules(40.0));
        assert_eq!(e.acc.samples.len(), 2);
    }

    #[test]
    fn the_record_carries_the_jobs_account_tags_and_end() {
        let cx = context();
        let acc = JobAcc {
            first_t: 1_800_000_000.0,
            last_t: 1_800_000_060.0,
            ..Default::default()
        };
        let e = Ended {
            job: 42,
            acc,
            end: End::Gone,
        };
        let job = Job {
            id: 42,
            name: "train".into(),
            user: "ana".into(),
            account: "climate-lab".into(),
            partition: "gpu".into(),
            state: super::super::jobs::State::Failed,
            exit_code: Some(3),
            comment: "[decompute:paused 1800000010-1800000030 grid 450]".into(),
            reason: String::new(),
            start_time: None,
            end_time: None,
            cwd: "/home/ana".into(),
            nodes: "n1".into(),
        };
        let r = record(&e, Some(&job), &cx);
        assert_eq!(r.identity.project, "climate-lab");
        assert_eq!(r.identity.user, "ana");
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.report.exit_code, Some(3));
        for (k, v) in [
            ("slurm_job_id", "42"),
            ("slurm_job_name", "train"),
            ("slurm_partition", "gpu"),
            ("slurm_account", "climate-lab"),
            ("slurm_node", "n1"),
        ] {
            assert_eq!(r.identity.tags.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!((r.report.duration_s - 60.0).abs() < 1e-9);
        let g = r
            .report
            .governance
            .as_ref()
            .expect("the controller's pause");
        assert_eq!((g.pauses[0].start_s, g.pauses[0].end_s), (10.0, 30.0));
        assert_eq!(g.paused_s, 20.0);
        let mut rr = r.clone();
        assert!(rr.validate().is_ok(), "{:?}", rr.validate());
        // No account, no policy: project "slurm"; unknown end: interrupted and said so.
        let r = record(&e, None, &cx);
        assert_eq!(r.identity.project, "slurm");
        assert_eq!(r.status, Status::Interrupted);
        assert!(r
            .report
            .notes
            .iter()
            .any(|n| n.contains("end state is unknown")));
    }

    #[test]
    fn what_slurm_said_while_a_job_ran_stands_when_it_has_forgotten_the_job() {
        let (tx, rx) = mpsc::channel();
        let job = |state| Job {
            id: 9,
            name: "train".into(),
            user: "ada".into(),
            account: "ml".into(),
            partition: "flex".into(),
            state,
            exit_code: None,
            comment: String::new(),
            reason: String::new(),
            start_time: None,
            end_time: None,
            cwd: "/home/ada".into(),
            nodes: "n1".into(),
        };
        tx.send(Event::Started(9)).expect("send");
        let late = tx.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            late.send(Event::Ended(Ended {
                job: 9,
                acc: JobAcc {
                    first_t: 1_800_000_000.0,
                    last_t: 1_800_000_060.0,
                    ..Default::default()
                },
                end: End::Gone,
            }))
            .expect("send");
        });
        drop(tx);
        let mut answers = vec![vec![], vec![job(super::super::jobs::State::Running)]];
        let mut written = Vec::new();
        writer(
            rx,
            context(),
            |_| Ok(answers.pop().unwrap_or_default()),
            |recs| {
                written.extend(recs.iter().cloned());
                Ok(())
            },
        );
        t.join().expect("sender");
        assert_eq!(written.len(), 1);
        let r = &written[0];
        assert_eq!(r.identity.project, "ml", "the account learnt while it ran");
        assert_eq!(r.identity.user, "ada");
        assert_eq!(
            r.status,
            Status::Interrupted,
            "its end is unknown, and said"
        );
        assert!(r.report.notes.iter().any(|n| n.contains("no longer knew")));
    }

    #[test]
    fn the_writer_retries_what_the_ledger_refused() {
        let (tx, rx) = mpsc::channel();
        let end = |job| {
            Event::Ended(Ended {
                job,
                acc: JobAcc {
                    first_t: 1_800_000_000.0,
                    last_t: 1_800_000_001.0,
                    ..Default::default()
                },
                end: End::Gone,
            })
        };
        // Jobs 1–3 end together (a burst is one pass); job 4 once the writer has asked
        // Slurm about them.
        for j in 1..=3 {
            tx.send(end(j)).expect("send");
        }
        let (asked_tx, asked_rx) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            asked_rx.recv().expect("the first pass asked");
            tx.send(end(4)).expect("send");
        });
        let mut calls = 0;
        let mut written = Vec::new();
        let mut asked = Vec::new();
        writer(
            rx,
            context(),
            |ids| {
                asked.push(ids.to_vec());
                let _ = asked_tx.send(());
                Ok(Vec::new())
            },
            |recs| {
                calls += 1;
                if calls == 1 {
                    return Err("database is down".into());
                }
                written.extend(recs.iter().cloned());
                Ok(())
            },
        );
        t.join().expect("sender");
        assert_eq!(written.len(), 4, "the refused records came with the next");
        assert_eq!(asked, [vec![1, 2, 3], vec![4]], "one question per pass");
        assert_eq!(calls, 2);
    }
}

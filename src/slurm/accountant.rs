//! The node agent's Slurm job accounting (`decompute serve --slurm`): each interval, the
//! energy the sampler attributed to a job's consumers (its cgroups under
//! `proctrack/cgroup`, its step daemons' process trees under `proctrack/linuxproc`) is added
//! to that job's totals, with the host's readings beside it and a power row; when a job's
//! consumers are gone from the node, the job is handed to a writer thread, which asks
//! Slurm how it ended (`squeue --json`) and writes one ledger record for the job on this
//! node. The tick itself only adds numbers and sends on a channel: Slurm's commands and the
//! ledger are the writer's.

use super::jobs::Job;
use super::steps::job_of_path;
use crate::ledger::{self, RunIdentity, RunRecord, Status, RECORD_SCHEMA};
use crate::report::{HostInfo, RunMeta};
use crate::sample::{Consumer, PowerRow, Totals};
use crate::sampler::Interval;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;

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

/// The per-interval half: pure bookkeeping, no I/O.
pub struct Accountant {
    jobs: HashMap<u64, JobAcc>,
    tx: mpsc::Sender<Ended>,
    ticks: u64,
}

impl Accountant {
    pub fn new(tx: mpsc::Sender<Ended>) -> Accountant {
        Accountant {
            jobs: HashMap::new(),
            tx,
            ticks: 0,
        }
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
                if let Some(job) = job_of_path(p) {
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
            let acc = self.jobs.entry(*job).or_insert_with(|| JobAcc {
                first_t: t - iv.dt.0,
                joined_late: first_tick,
                ..Default::default()
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
                let _ = self.tx.send(Ended {
                    job,
                    acc,
                    end: End::Gone,
                });
            }
        }
    }
}

impl Drop for Accountant {
    /// The agent stops: what was seen of the jobs still running is written, and says so.
    fn drop(&mut self) {
        for (job, acc) in self.jobs.drain() {
            let _ = self.tx.send(Ended {
                job,
                acc,
                end: End::AgentStopped,
            });
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

/// Asks Slurm about a job: `squeue --json --states=all --jobs ID`, falling back to the
/// `--format` form on clusters without `--json`.
pub fn squeue_job(squeue: &str, id: u64) -> Result<Option<Job>, String> {
    let run = |args: &[&str]| {
        std::process::Command::new(squeue)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {squeue}: {e}"))
    };
    let ids = id.to_string();
    let o = run(&["--json", "--states=all", "--jobs", &ids])?;
    let jobs = if o.status.success() {
        super::jobs::parse_json(&String::from_utf8_lossy(&o.stdout))?
    } else {
        let o = run(&[
            "--noheader",
            "--states=all",
            "--jobs",
            &ids,
            "--format",
            super::jobs::FORMAT,
        ])?;
        if !o.status.success() {
            return Ok(None);
        }
        super::jobs::parse_format(&String::from_utf8_lossy(&o.stdout))?
    };
    Ok(jobs.into_iter().find(|j| j.id == id))
}

/// The writer: for each ended job, Slurm's word on its end (retried while the job is still
/// completing), then one ledger record. Records the ledger refuses are kept and retried with
/// the next one; nothing measured is dropped silently.
pub fn writer(
    rx: mpsc::Receiver<Ended>,
    cx: Context,
    mut lookup: impl FnMut(u64) -> Result<Option<Job>, String>,
    mut write: impl FnMut(&[RunRecord]) -> Result<(), String>,
) {
    let mut pending: Vec<RunRecord> = Vec::new();
    for e in rx {
        let mut job = None;
        for attempt in 0..10 {
            match lookup(e.job) {
                Ok(Some(j)) if j.state.ended() || e.end == End::AgentStopped => {
                    job = Some(j);
                    break;
                }
                Ok(None) => break,
                // Still completing: ask again shortly.
                Ok(j) => job = j,
                Err(m) => {
                    crate::say!("decompute: warning: slurm job {}: {m}", e.job);
                    break;
                }
            }
            if attempt < 9 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        }
        pending.push(record(&e, job.as_ref(), &cx));
        match write(&pending) {
            Ok(()) => pending.clear(),
            Err(m) => crate::say!(
                "decompute: warning: {} job record(s) not written yet ({m}); retrying with the next",
                pending.len()
            ),
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
        match led.import(recs) {
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
        let e = rx.try_recv().expect("job 7 ended");
        assert_eq!((e.job, e.end), (7, End::Gone));
        assert_eq!(e.acc.totals.workload(), Joules(15.0));
        assert_eq!(e.acc.totals.host(), Joules(50.0));
        assert!((e.acc.cpu_s - 1.5).abs() < 1e-12);
        assert_eq!(e.acc.samples[0].workload_w, 15.0);
        assert!(e.acc.joined_late);
        assert!(rx.try_recv().is_err(), "nothing else ended");
        // The agent stops: job 8 is handed over as such.
        drop(a);
        let e = rx.try_recv().expect("job 8");
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
    fn the_writer_retries_what_the_ledger_refused() {
        let (tx, rx) = mpsc::channel();
        for job in [1, 2] {
            tx.send(Ended {
                job,
                acc: JobAcc {
                    first_t: 1_800_000_000.0,
                    last_t: 1_800_000_001.0,
                    ..Default::default()
                },
                end: End::Gone,
            })
            .expect("send");
        }
        drop(tx);
        let mut calls = 0;
        let mut written = Vec::new();
        writer(
            rx,
            context(),
            |_| Ok(None),
            |recs| {
                calls += 1;
                if calls == 1 {
                    return Err("database is down".into());
                }
                written.extend(recs.iter().cloned());
                Ok(())
            },
        );
        assert_eq!(written.len(), 2, "the refused record came with the next");
    }
}

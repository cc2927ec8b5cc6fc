//! The cluster controller's decisions (`decompute slurm govern`), as a pure function of what
//! Slurm says (the jobs), what the ledger says (which accounts' budgets are used up), what
//! the grid says and what the controller did before (its state): which jobs to hold or
//! release, which flexible jobs to suspend or resume, which over-budget running jobs to
//! warn about, suspend or cancel. The command around it runs `squeue`/`scontrol`/`scancel`
//! and saves the state; here nothing is read or run.
//!
//! Safety: the controller only ever resumes what it suspended itself (its state file, and a
//! marker in the job's comment in case the file is lost), so an operator's suspension is
//! never touched; on start it resumes its own suspensions whose reason no longer holds; a
//! flexible job is never kept suspended beyond `--max-pause` in all.

use super::jobs::{Job, State};
use crate::govern::yielding;
use crate::signal::Reading;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Marks a job the controller suspended, in its comment.
pub const SUSPEND_MARK: &str = "[decompute:suspended]";
/// Starts the controller's note on a held job's comment.
pub const HOLD_MARK: &str = "decompute: ";

/// How the controller yields and enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub flexible_partitions: Vec<String>,
    /// Suspend flexible jobs while the grid's intensity is above this (gCO2e/kWh).
    pub pause_above: Option<f64>,
    /// Suspend flexible jobs while the grid's stress level is at least this (0–3).
    pub pause_at_stress: Option<u8>,
    /// Resume when the grid falls below this [default: pause_above].
    pub resume_below: Option<f64>,
    /// Shortest time in one grid state before switching, seconds.
    pub min_state_s: f64,
    /// Longest time a job may spend suspended for the grid in all, seconds.
    pub max_pause_s: Option<f64>,
    /// Grace before an over-budget running job is cancelled (`on_exceed = "stop"`), seconds.
    pub grace_s: f64,
}

/// What the policy says of an account now.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub used_up: bool,
    /// "energy budget of project X used up for 2026-12; resets 2027-01-01".
    pub message: String,
    /// `warn`, `pause` or `stop`.
    pub on_exceed: String,
}

/// One pause of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseLog {
    pub job: u64,
    pub start: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// `grid` or `budget`.
    pub cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<f64>,
}

/// What the controller remembers between passes (and restarts).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Jobs it suspended: job → cause.
    #[serde(default)]
    pub suspended: BTreeMap<u64, String>,
    /// Jobs it held: job → the comment they had before.
    #[serde(default)]
    pub held: BTreeMap<u64, String>,
    /// Over-budget running jobs first seen at: job → time (for the grace before a cancel).
    #[serde(default)]
    pub over_since: BTreeMap<u64, f64>,
    /// Jobs already warned about.
    #[serde(default)]
    pub warned: Vec<u64>,
    #[serde(default)]
    pub pauses: Vec<PauseLog>,
    /// Whether the grid is dirty, and since when.
    #[serde(default)]
    pub grid_dirty: bool,
    #[serde(default)]
    pub grid_since: f64,
    /// Whether this memory is the controller's own record (read from its state file, or
    /// kept since its first pass). Only while it is not — the state file was lost — is a
    /// job's `[decompute:suspended]` mark believed, and then only on a flexible job: a
    /// comment is the user's to write, so the mark alone never makes a suspension ours.
    #[serde(skip)]
    pub known: bool,
}

impl Memory {
    /// Seconds job `j` has spent suspended for the grid up to `now`.
    pub fn paused_s(&self, j: u64, now: f64) -> f64 {
        self.pauses
            .iter()
            .filter(|p| p.job == j && p.cause == "grid")
            .map(|p| p.end.unwrap_or(now) - p.start)
            .sum()
    }

    /// Forgets action `a`, whose command failed, so the next pass decides it again:
    /// `before` is the memory from before this pass's decisions.
    pub fn forget(&mut self, a: &Action, before: &Memory) {
        match a {
            Action::Suspend { job, .. } => {
                self.suspended.remove(job);
                self.pauses.retain(|p| !(p.job == *job && p.end.is_none()));
            }
            Action::Hold { job, .. } => {
                self.held.remove(job);
            }
            Action::Resume { job, .. } | Action::Release { job, .. } => {
                if let Some(c) = before.suspended.get(job) {
                    self.suspended.insert(*job, c.clone());
                }
                if let Some(c) = before.held.get(job) {
                    self.held.insert(*job, c.clone());
                }
            }
            Action::Cancel { .. } | Action::Warn { .. } => {}
        }
    }

    fn close(&mut self, j: u64, now: f64) {
        for p in self
            .pauses
            .iter_mut()
            .filter(|p| p.job == j && p.end.is_none())
        {
            p.end = Some(now);
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `scontrol hold` and set the comment.
    Hold { job: u64, comment: String },
    /// `scontrol release` and put the old comment back.
    Release { job: u64, comment: String },
    /// `scontrol suspend`, with the mark in the comment.
    Suspend {
        job: u64,
        comment: String,
        why: String,
    },
    /// `scontrol resume`, mark removed.
    Resume {
        job: u64,
        comment: String,
        why: String,
    },
    /// `scancel`.
    Cancel { job: u64, why: String },
    /// Said in the log only.
    Warn { job: u64, why: String },
}

/// The record of a finished pause kept in the job's comment, so the node agent's ledger
/// record of the job shows it: `[decompute:paused 1795953472-1795953530 grid 450]`.
impl Action {
    /// The job the action is about.
    pub fn job(&self) -> u64 {
        match self {
            Action::Hold { job, .. }
            | Action::Release { job, .. }
            | Action::Suspend { job, .. }
            | Action::Resume { job, .. }
            | Action::Cancel { job, .. }
            | Action::Warn { job, .. } => *job,
        }
    }
}

pub fn pause_tag(p: &PauseLog) -> String {
    format!(
        "[decompute:paused {:.0}-{:.0} {}{}]",
        p.start,
        p.end.unwrap_or(p.start),
        p.cause,
        p.grid.map(|g| format!(" {g}")).unwrap_or_default()
    )
}

/// The pauses a job's comment records (see [`pause_tag`]).
pub fn pauses_in(comment: &str, job: u64) -> Vec<PauseLog> {
    let mut out = Vec::new();
    for part in comment.split("[decompute:paused ").skip(1) {
        let Some(body) = part.split(']').next() else {
            continue;
        };
        let mut w = body.split_whitespace();
        let (Some(span), Some(cause)) = (w.next(), w.next()) else {
            continue;
        };
        let Some((a, b)) = span.split_once('-') else {
            continue;
        };
        // "START-" is a pause still open when the comment was read (the job ended while
        // suspended): its end is the job's.
        let end = if b.is_empty() {
            None
        } else {
            match b.parse::<f64>() {
                Ok(e) if e.is_finite() => Some(e),
                _ => continue,
            }
        };
        let Ok(start) = a.parse::<f64>() else {
            continue;
        };
        if !start.is_finite() || end.is_some_and(|e| e < start) {
            continue;
        }
        out.push(PauseLog {
            job,
            start,
            end,
            cause: cause
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect(),
            grid: w
                .next()
                .and_then(|g| g.parse().ok())
                .filter(|g: &f64| g.is_finite()),
        });
    }
    out
}

/// `text` with `part` removed, and the one space joining it to what came before; the
/// rest byte for byte (tabs, newlines, trailing spaces are the user's).
fn cut(text: &str, at: usize, len: usize) -> String {
    let start = if at > 0 && text.get(at - 1..at) == Some(" ") {
        at - 1
    } else {
        at
    };
    format!(
        "{}{}",
        text.get(..start).unwrap_or_default(),
        text.get(at + len..).unwrap_or_default()
    )
}

/// The comment as it was before the controller marked it: the mark and the open pause tag
/// removed, nothing else touched.
fn without_mark(comment: &str) -> String {
    let mut c = comment.to_string();
    if let Some(at) = c.find(SUSPEND_MARK) {
        c = cut(&c, at, SUSPEND_MARK.len());
    }
    // An open pause tag ends in "-" before its cause: "[decompute:paused 1795953472- grid]".
    let mut from = 0;
    while let Some(rel) = c.get(from..).and_then(|t| t.find("[decompute:paused ")) {
        let at = from + rel;
        let Some(len) = c.get(at..).and_then(|t| t.find(']')).map(|e| e + 1) else {
            break;
        };
        let open = c
            .get(at..at + len)
            .and_then(|t| t.split_whitespace().nth(1))
            .is_some_and(|span| span.ends_with('-'));
        if open {
            c = cut(&c, at, len);
        } else {
            from = at + len;
        }
    }
    c
}

/// The comment with the controller's mark and the pause it opens: the user's text exactly,
/// then ` [decompute:suspended] [decompute:paused START- CAUSE GRID]`. The open tag lets the
/// node agent record the pause even if the job ends (is cancelled) while suspended.
fn with_mark(comment: &str, p: &PauseLog) -> String {
    let c = without_mark(comment);
    let open = format!(
        "[decompute:paused {:.0}- {}{}]",
        p.start,
        p.cause,
        p.grid.map(|g| format!(" {g}")).unwrap_or_default()
    );
    if c.is_empty() {
        format!("{SUSPEND_MARK} {open}")
    } else {
        format!("{c} {SUSPEND_MARK} {open}")
    }
}

/// `comment` with `tag` appended after one space (none when the comment is empty).
fn appended(comment: &str, tag: &str) -> String {
    if comment.is_empty() {
        tag.to_string()
    } else {
        format!("{comment} {tag}")
    }
}

/// Suspends running job `j` for `cause` ("grid" or "budget"): remembered as ours, a pause
/// opened in the log and marked in the job's comment.
fn suspend(
    mem: &mut Memory,
    j: &Job,
    now: f64,
    cause: &str,
    grid: Option<f64>,
    why: String,
) -> Action {
    mem.suspended.insert(j.id, cause.into());
    let p = PauseLog {
        job: j.id,
        start: now,
        end: None,
        cause: cause.into(),
        grid,
    };
    let comment = with_mark(&j.comment, &p);
    mem.pauses.push(p);
    Action::Suspend {
        job: j.id,
        comment,
        why,
    }
}

/// The grid state after reading `grid` at `now`, with hysteresis and a minimum time in
/// each state. An unreadable grid keeps the state it had.
pub fn grid_state(cfg: &Config, mem: &Memory, grid: Option<Reading>, now: f64) -> bool {
    let Some(r) = grid else {
        return mem.grid_dirty;
    };
    if cfg.pause_above.is_none() && cfg.pause_at_stress.is_none() {
        return mem.grid_dirty;
    }
    // The same rule as `run`'s yielding: pause above the intensity or at the stress level,
    // resume below --resume-below (default the pausing intensity) and below the level.
    let want = if mem.grid_dirty {
        !yielding::clean(
            &r,
            cfg.resume_below.or(cfg.pause_above),
            cfg.pause_at_stress,
        )
    } else {
        yielding::dirty(&r, cfg.pause_above, cfg.pause_at_stress)
    };
    if want != mem.grid_dirty && now - mem.grid_since < cfg.min_state_s {
        return mem.grid_dirty;
    }
    want
}

/// The thresholds in words: "pausing above 400 gCO2e/kWh or at stress 2".
fn threshold(cfg: &Config) -> String {
    let mut t = Vec::new();
    if let Some(a) = cfg.pause_above {
        t.push(format!("pausing above {a} gCO2e/kWh"));
    }
    if let Some(s) = cfg.pause_at_stress {
        t.push(format!("at stress {s}"));
    }
    t.join(" or ")
}

/// One pass: the actions, with `mem` updated as if they all succeeded.
pub fn decide(
    jobs: &[Job],
    budgets: &BTreeMap<String, Budget>,
    reading: Option<Reading>,
    now: f64,
    cfg: &Config,
    mem: &mut Memory,
) -> Vec<Action> {
    let mut out = Vec::new();
    // What a pause records of the grid: its intensity, else its stress level.
    let grid = reading.and_then(|r| r.intensity.or(r.stress.map(f64::from)));
    let dirty = grid_state(cfg, mem, reading, now);
    if dirty != mem.grid_dirty {
        mem.grid_dirty = dirty;
        mem.grid_since = now;
    }
    // Accounts as Slurm compares them: case-insensitively (budgets are keyed lower case).
    let over = |j: &Job| budgets.get(&j.account.to_lowercase()).filter(|b| b.used_up);
    // Forget jobs that ended or left the queue.
    let live: std::collections::HashSet<u64> = jobs
        .iter()
        .filter(|j| !j.state.ended())
        .map(|j| j.id)
        .collect();
    for j in mem.suspended.keys().copied().collect::<Vec<_>>() {
        if !live.contains(&j) {
            mem.suspended.remove(&j);
            mem.close(j, now);
        }
    }
    mem.held.retain(|j, _| live.contains(j));
    mem.over_since.retain(|j, _| live.contains(j));
    mem.warned.retain(|j| live.contains(j));
    for j in jobs {
        // A suspension is ours if we remember it; a mark in the (user-writable) comment
        // counts only when the state file was lost, and only on a flexible job.
        let ours = mem.suspended.contains_key(&j.id)
            || (!mem.known
                && j.state == State::Suspended
                && j.flexible(&cfg.flexible_partitions)
                && j.comment.contains(SUSPEND_MARK));
        match j.state {
            State::Pending => {
                let held_by_us = mem.held.contains_key(&j.id);
                // A job its user or an operator held is theirs to release: left alone.
                let held_by_others = !held_by_us && j.reason.starts_with("JobHeld");
                match (over(j), held_by_us) {
                    (Some(b), false) if !held_by_others => {
                        let note = format!("{HOLD_MARK}{}", b.message);
                        mem.held.insert(j.id, j.comment.clone());
                        out.push(Action::Hold {
                            job: j.id,
                            comment: if j.comment.is_empty() {
                                note
                            } else {
                                format!("{} | {note}", j.comment)
                            },
                        });
                    }
                    (None, true) => {
                        let old = mem.held.remove(&j.id).unwrap_or_default();
                        // Someone held it on top of us: the user (`JobHeldUser`), or an
                        // operator who rewrote the comment that carried our note. Their hold
                        // is theirs to release; we only forget ours.
                        let held_on_top =
                            j.reason == "JobHeldUser" || !j.comment.contains(HOLD_MARK);
                        if held_on_top {
                            out.push(Action::Warn {
                                job: j.id,
                                why: "its budget allows it again, but someone else holds it too: left held".into(),
                            });
                        } else {
                            out.push(Action::Release {
                                job: j.id,
                                comment: old,
                            });
                        }
                    }
                    _ => {}
                }
            }
            State::Running => {
                if let Some(b) = over(j) {
                    match b.on_exceed.as_str() {
                        "pause" => {
                            out.push(suspend(mem, j, now, "budget", grid, b.message.clone()));
                            continue;
                        }
                        "stop" => {
                            let since = *mem.over_since.entry(j.id).or_insert(now);
                            if now - since >= cfg.grace_s {
                                out.push(Action::Cancel {
                                    job: j.id,
                                    why: format!(
                                        "{} (after {} s of grace)",
                                        b.message, cfg.grace_s
                                    ),
                                });
                                continue;
                            }
                        }
                        _ => {
                            if !mem.warned.contains(&j.id) {
                                mem.warned.push(j.id);
                                out.push(Action::Warn {
                                    job: j.id,
                                    why: b.message.clone(),
                                });
                            }
                        }
                    }
                }
                let flexible = j.flexible(&cfg.flexible_partitions);
                let allowance = cfg.max_pause_s.is_none_or(|m| mem.paused_s(j.id, now) < m);
                if dirty && flexible && allowance {
                    let why = format!(
                        "{} ({})",
                        reading
                            .map(|r| yielding::describe(&r))
                            .unwrap_or_else(|| "the grid as last read".into()),
                        threshold(cfg)
                    );
                    out.push(suspend(mem, j, now, "grid", grid, why));
                }
            }
            State::Suspended if ours => {
                let cause = mem
                    .suspended
                    .get(&j.id)
                    .cloned()
                    .unwrap_or_else(|| "grid".into());
                let why = if cause == "budget" {
                    over(j)
                        .is_none()
                        .then(|| "the budget allows it again".to_string())
                } else if !dirty {
                    Some("the grid is below the threshold again".to_string())
                } else if cfg
                    .max_pause_s
                    .is_some_and(|m| mem.paused_s(j.id, now) >= m)
                {
                    Some(format!(
                        "--max-pause reached ({} s in all)",
                        cfg.max_pause_s.unwrap_or(0.0)
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    mem.suspended.remove(&j.id);
                    mem.close(j.id, now);
                    let mut comment = without_mark(&j.comment);
                    if let Some(p) = mem
                        .pauses
                        .iter()
                        .rev()
                        .find(|p| p.job == j.id && p.end == Some(now))
                    {
                        comment = appended(&comment, &pause_tag(p));
                    }
                    out.push(Action::Resume {
                        job: j.id,
                        comment,
                        why,
                    });
                } else {
                    mem.suspended.entry(j.id).or_insert(cause);
                }
            }
            _ => {}
        }
    }
    mem.known = true;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, account: &str, part: &str, state: State, comment: &str) -> Job {
        Job {
            id,
            name: format!("j{id}"),
            user: "ana".into(),
            account: account.into(),
            partition: part.into(),
            state,
            exit_code: None,
            comment: comment.into(),
            reason: String::new(),
            start_time: None,
            end_time: None,
            cwd: "/".into(),
            nodes: "n1".into(),
        }
    }

    fn g(intensity: f64) -> Option<Reading> {
        Some(Reading {
            intensity: Some(intensity),
            stress: None,
            marginal: false,
        })
    }

    fn cfg() -> Config {
        Config {
            flexible_partitions: vec!["flex".into()],
            pause_above: Some(400.0),
            pause_at_stress: None,
            resume_below: Some(300.0),
            min_state_s: 0.0,
            max_pause_s: Some(3600.0),
            grace_s: 60.0,
        }
    }

    fn used_up(on_exceed: &str) -> BTreeMap<String, Budget> {
        let mut b = BTreeMap::new();
        b.insert(
            "poor".to_string(),
            Budget {
                used_up: true,
                message: "energy budget of project poor used up for 2026-11; resets 2026-12-01"
                    .into(),
                on_exceed: on_exceed.into(),
            },
        );
        b
    }

    #[test]
    fn only_flexible_jobs_yield_and_come_back_with_hysteresis() {
        let mut mem = Memory::default();
        let jobs = vec![
            job(1, "a", "debug", State::Running, "decompute:flexible"),
            job(2, "a", "flex", State::Running, ""),
            job(3, "a", "debug", State::Running, ""),
        ];
        let none = BTreeMap::new();
        let acts = decide(&jobs, &none, g(450.0), 0.0, &cfg(), &mut mem);
        let suspended: Vec<u64> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Suspend { job, comment, .. } => {
                    assert!(comment.contains(SUSPEND_MARK));
                    Some(*job)
                }
                _ => None,
            })
            .collect();
        assert_eq!(suspended, vec![1, 2], "job 3 is not flexible");
        // Between the thresholds: nothing changes.
        let jobs2 = vec![
            job(
                1,
                "a",
                "debug",
                State::Suspended,
                "decompute:flexible [decompute:suspended]",
            ),
            job(2, "a", "flex", State::Suspended, "[decompute:suspended]"),
            job(3, "a", "debug", State::Running, ""),
            job(4, "a", "debug", State::Suspended, "an operator did this"),
        ];
        assert!(decide(&jobs2, &none, g(350.0), 60.0, &cfg(), &mut mem).is_empty());
        // Below: both resume, the operator's job 4 is never touched.
        let acts = decide(&jobs2, &none, g(250.0), 120.0, &cfg(), &mut mem);
        assert_eq!(acts.len(), 2, "{acts:?}");
        assert!(acts.iter().all(|a| matches!(a, Action::Resume { job, comment, .. } if *job != 4 && !comment.contains(SUSPEND_MARK))));
        let Action::Resume { comment, .. } = &acts[0] else {
            panic!("{acts:?}")
        };
        let p = pauses_in(comment, 1);
        assert_eq!(p.len(), 1, "{comment}");
        assert_eq!(
            (p[0].start, p[0].end, p[0].grid),
            (0.0, Some(120.0), Some(450.0))
        );
        assert_eq!(mem.paused_s(1, 1000.0), 120.0);
        assert!(mem.suspended.is_empty());
    }

    #[test]
    fn max_pause_and_min_state_are_kept() {
        let mut c = cfg();
        c.max_pause_s = Some(100.0);
        c.min_state_s = 30.0;
        let mut mem = Memory::default();
        let none = BTreeMap::new();
        let run = vec![job(1, "a", "flex", State::Running, "")];
        let sus = vec![job(1, "a", "flex", State::Suspended, SUSPEND_MARK)];
        // Dirty at 0 (from the initial clean state, since long ago).
        mem.grid_since = -1000.0;
        assert_eq!(decide(&run, &none, g(500.0), 0.0, &c, &mut mem).len(), 1);
        // Clean at 10: too soon to switch (min state 30 s).
        assert!(decide(&sus, &none, g(100.0), 10.0, &c, &mut mem).is_empty());
        // Still dirty at 100: the job has had its 100 s: resumed for its deadline.
        let acts = decide(&sus, &none, g(500.0), 100.0, &c, &mut mem);
        assert!(matches!(&acts[0], Action::Resume { why, .. } if why.contains("--max-pause")));
        // And not suspended again while dirty.
        assert!(decide(&run, &none, g(500.0), 110.0, &c, &mut mem).is_empty());
    }

    #[test]
    fn an_over_budget_accounts_pending_jobs_are_held_then_released() {
        let mut mem = Memory::default();
        let jobs = vec![
            job(5, "poor", "debug", State::Pending, "mine"),
            job(6, "rich", "debug", State::Pending, ""),
        ];
        let acts = decide(&jobs, &used_up("warn"), None, 0.0, &cfg(), &mut mem);
        assert_eq!(
            acts,
            vec![Action::Hold {
                job: 5,
                comment: "mine | decompute: energy budget of project poor used up for 2026-11; resets 2026-12-01".into()
            }]
        );
        // A job its user held is never held (nor later released) by the controller.
        let mut theirs = job(11, "poor", "debug", State::Pending, "");
        theirs.reason = "JobHeldUser".into();
        let mut m2 = Memory::default();
        assert!(decide(
            &[theirs.clone()],
            &used_up("warn"),
            None,
            0.0,
            &cfg(),
            &mut m2
        )
        .is_empty());
        assert!(decide(&[theirs], &BTreeMap::new(), None, 1.0, &cfg(), &mut m2).is_empty());
        // Slurm now shows the comment with the controller's note.
        let mut jobs = jobs;
        jobs[0].comment = "mine | decompute: energy budget of project poor used up for 2026-11; resets 2026-12-01".into();
        // Held: nothing more while the budget is used up.
        assert!(decide(&jobs, &used_up("warn"), None, 10.0, &cfg(), &mut mem).is_empty());
        // The budget is raised: released, its comment as it was.
        let acts = decide(&jobs, &BTreeMap::new(), None, 20.0, &cfg(), &mut mem);
        assert_eq!(
            acts,
            vec![Action::Release {
                job: 5,
                comment: "mine".into()
            }]
        );
    }

    #[test]
    fn running_over_budget_jobs_follow_on_exceed() {
        let jobs = vec![job(7, "poor", "debug", State::Running, "")];
        let mut mem = Memory::default();
        let acts = decide(&jobs, &used_up("warn"), None, 0.0, &cfg(), &mut mem);
        assert!(matches!(acts[..], [Action::Warn { job: 7, .. }]));
        assert!(
            decide(&jobs, &used_up("warn"), None, 1.0, &cfg(), &mut mem).is_empty(),
            "once"
        );
        let mut mem = Memory::default();
        let acts = decide(&jobs, &used_up("pause"), None, 0.0, &cfg(), &mut mem);
        assert!(matches!(acts[..], [Action::Suspend { job: 7, .. }]));
        let mut mem = Memory::default();
        assert!(decide(&jobs, &used_up("stop"), None, 0.0, &cfg(), &mut mem).is_empty());
        let acts = decide(&jobs, &used_up("stop"), None, 61.0, &cfg(), &mut mem);
        assert!(matches!(acts[..], [Action::Cancel { job: 7, .. }]));
    }

    #[test]
    fn comments_come_back_exactly_and_pauses_survive_a_cancel() {
        let user = "keep\tthis\nexactly  ";
        let p = PauseLog {
            job: 1,
            start: 1_795_953_472.0,
            end: None,
            cause: "grid".into(),
            grid: Some(450.0),
        };
        let marked = with_mark(user, &p);
        assert!(marked.starts_with(user) && marked.contains(SUSPEND_MARK));
        assert_eq!(without_mark(&marked), user);
        assert_eq!(without_mark(&with_mark("", &p)), "");
        // Marking twice (a restart) does not stack marks.
        assert_eq!(without_mark(&with_mark(&marked, &p)), user);
        // Cancelled while suspended: the open pause is in the comment, with no end.
        let open = pauses_in(&marked, 1);
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].start, open[0].end), (1_795_953_472.0, None));
        // A closed tag already there is kept; only the open one goes.
        let closed = appended(user, "[decompute:paused 10-20 grid]");
        assert_eq!(without_mark(&with_mark(&closed, &p)), closed);
    }

    #[test]
    fn accounts_match_as_slurm_does_and_holds_on_top_are_left() {
        // Budgets are keyed lower case; Slurm reports the account as created (lower case).
        let jobs = vec![job(3, "AcctA", "debug", State::Pending, "")];
        let mut budgets = used_up("warn");
        let b = budgets.remove("poor").expect("poor");
        budgets.insert("accta".into(), b);
        let mut mem = Memory::default();
        let acts = decide(&jobs, &budgets, None, 0.0, &cfg(), &mut mem);
        assert!(
            matches!(&acts[..], [Action::Hold { job: 3, .. }]),
            "{acts:?}"
        );
        // The budget allows it again, but the user held it too: not released.
        let mut held = job(3, "accta", "debug", State::Pending, "decompute: x");
        held.reason = "JobHeldUser".into();
        let acts = decide(&[held], &BTreeMap::new(), None, 1.0, &cfg(), &mut mem);
        assert!(
            matches!(&acts[..], [Action::Warn { job: 3, .. }]),
            "{acts:?}"
        );
    }

    #[test]
    fn a_users_mark_never_makes_a_suspension_ours() {
        // The state file is there: a comment holding the mark is the user's text, whatever
        // the job. With the file lost, a rigid job's mark is not believed either.
        let jobs = vec![
            job(
                5,
                "a",
                "flex",
                State::Suspended,
                "decompute:flexible [decompute:suspended]",
            ),
            job(6, "a", "batch", State::Suspended, SUSPEND_MARK),
        ];
        let mut mem = Memory {
            known: true,
            ..Memory::default()
        };
        assert!(decide(&jobs, &BTreeMap::new(), g(100.0), 0.0, &cfg(), &mut mem).is_empty());
        let mut lost = Memory::default();
        let acts = decide(&jobs, &BTreeMap::new(), g(100.0), 0.0, &cfg(), &mut lost);
        assert!(
            matches!(&acts[..], [Action::Resume { job: 5, .. }]),
            "{acts:?}"
        );
        // After its first pass the controller's memory is its own: marks count no more.
        assert!(lost.known);
    }

    #[test]
    fn after_a_restart_own_suspensions_are_recognised_by_their_mark() {
        // The state file is lost; the grid is clean: the marked job is resumed, the
        // operator's is not.
        let mut mem = Memory::default();
        let jobs = vec![
            job(8, "a", "flex", State::Suspended, SUSPEND_MARK),
            job(9, "a", "flex", State::Suspended, "maintenance"),
        ];
        let acts = decide(&jobs, &BTreeMap::new(), g(100.0), 0.0, &cfg(), &mut mem);
        assert_eq!(acts.len(), 1);
        assert!(matches!(&acts[0], Action::Resume { job: 8, .. }));
    }

    proptest::proptest! {
        #[test]
        fn comments_never_panic(c in "\\PC{0,120}") {
            let _ = pauses_in(&c, 1);
            let _ = pauses_in(&format!("[decompute:paused {c}"), 1);
        }
    }

    #[test]
    fn stress_levels_pause_and_resume_by_runs_rule() {
        let c = Config {
            pause_above: None,
            pause_at_stress: Some(2),
            resume_below: None,
            ..cfg()
        };
        let stress = |n: u8| {
            Some(Reading {
                intensity: None,
                stress: Some(n),
                marginal: false,
            })
        };
        let mut mem = Memory::default();
        let run = vec![job(1, "a", "flex", State::Running, "")];
        // Stress 1 is below the level; stress 2 pauses, and says so.
        assert!(decide(&run, &BTreeMap::new(), stress(1), 0.0, &c, &mut mem).is_empty());
        let acts = decide(&run, &BTreeMap::new(), stress(2), 10.0, &c, &mut mem);
        match &acts[..] {
            [Action::Suspend { job: 1, why, .. }] => {
                assert!(
                    why.contains("grid stress 2") && why.contains("at stress 2"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        let sus = vec![job(1, "a", "flex", State::Suspended, "")];
        let acts = decide(&sus, &BTreeMap::new(), stress(1), 20.0, &c, &mut mem);
        assert!(
            matches!(&acts[..], [Action::Resume { job: 1, .. }]),
            "{acts:?}"
        );
        // An intensity is never read as a stress level, nor a level as an intensity: a
        // reading of 3 gCO2e/kWh leaves a stress threshold of 2 alone, and stress 3 an
        // intensity threshold of 400.
        let mut mem = Memory::default();
        assert!(decide(&run, &BTreeMap::new(), g(3.0), 0.0, &c, &mut mem).is_empty());
        let mut mem = Memory::default();
        assert!(decide(&run, &BTreeMap::new(), stress(3), 0.0, &cfg(), &mut mem).is_empty());
    }
}

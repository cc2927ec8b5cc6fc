//! The Slurm controller's edges (`decompute slurm govern`): reading the queue with
//! `squeue`, the accounts' budget standings from the policy file and the ledger, carrying
//! out the decisions of [`super::govern`] with `scontrol`/`scancel`, and its memory in a
//! state file written through the one file-writing helper. The command line only parses
//! flags and runs the passes.

use super::govern::{Action, Budget, Memory};
use super::jobs::{self, Job};
use crate::govern::policy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The controller's state file: the one given, else `$XDG_STATE_HOME/decompute/slurm-govern.json`.
pub fn state_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let base = crate::host::state_dir()
        .ok_or_else(|| anyhow::anyhow!("no $HOME or $XDG_STATE_HOME: pass --state FILE"))?;
    Ok(base.join("slurm-govern.json"))
}

/// The controller's memory from its state file (an absent file is a fresh start: nothing
/// known, so the marks in the jobs' comments are trusted).
pub fn load_state(p: &Path) -> anyhow::Result<Memory> {
    match crate::infile::read_text(p, crate::infile::BULK_LIMIT) {
        Ok(t) => serde_json::from_str(&t)
            .map(|m| Memory { known: true, ..m })
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a controller state file ({e}); move it away to start afresh",
                    crate::term::escape(&p.display().to_string())
                )
            }),
        Err(e) if e.is_not_found() => Ok(Memory::default()),
        Err(e) => Err(anyhow::anyhow!(e.to_string())),
    }
}

/// Saves the controller's memory through the one file-writing helper.
pub fn save_state(p: &Path, m: &Memory) -> anyhow::Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    crate::outfile::write(p, (serde_json::to_string_pretty(m)? + "\n").as_bytes())?;
    Ok(())
}

/// The jobs a pass decides on (pending, running, suspended), with only the fields it reads:
/// `squeue --format` of [`jobs::QUEUE_FORMAT`] (id, account, partition, state, reason,
/// comment), a few dozen bytes a job where `--json` gives kilobytes. Jobs that ended are left
/// out: the controller forgets what is no longer in the queue.
/// `stop` ends the wait early (the controller is told to end).
pub fn squeue(stop: &dyn Fn() -> bool) -> anyhow::Result<Vec<Job>> {
    let o = super::command::run(
        "squeue",
        &[
            "--noheader",
            "--all",
            "--states=PENDING,RUNNING,SUSPENDED,CONFIGURING",
            "--format",
            jobs::QUEUE_FORMAT,
        ],
        super::command::DEADLINE,
        stop,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    if !o.success {
        anyhow::bail!("squeue failed: {}", o.stderr.trim());
    }
    jobs::parse_queue(&o.stdout).map_err(|e| anyhow::anyhow!(e))
}

/// Runs one Slurm command (`scontrol …`, `scancel …`); its stderr is the error.
pub fn run_command(args: &[&str]) -> Result<(), String> {
    let Some((program, rest)) = args.split_first() else {
        return Ok(());
    };
    let o = super::command::run(program, rest, super::command::DEADLINE, &|| false)?;
    if o.success {
        Ok(())
    } else {
        Err(format!("{} failed: {}", args.join(" "), o.stderr.trim()))
    }
}

/// Writes a Slurm command for the job ids given.
type Make = Box<dyn Fn(&[u64]) -> Vec<String>>;

/// One Slurm command over a list of jobs.
struct Batch {
    ids: Vec<u64>,
    make: Make,
}

fn id_list(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// `scontrol VERB ID,ID,…`.
fn verb(v: &'static str) -> Make {
    Box::new(move |ids| vec!["scontrol".into(), v.into(), id_list(ids)])
}

/// The comment updates of `jobs` (id, new comment): one `scontrol update JobId=ID,ID,…
/// Comment=C` per distinct comment.
fn comment_batches(jobs: &[(u64, &str)]) -> Vec<Batch> {
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (j, c) in jobs {
        by.entry(c.to_string()).or_default().push(*j);
    }
    by.into_iter()
        .map(|(c, ids)| Batch {
            ids,
            make: Box::new(move |ids| {
                vec![
                    "scontrol".into(),
                    "update".into(),
                    format!("JobId={}", id_list(ids)),
                    format!("Comment={c}"),
                ]
            }),
        })
        .collect()
}

/// The Slurm commands that carry out `actions`, in order, each over as many jobs as take
/// the same command: `scontrol suspend`, `resume`, `hold`, `release` and `update` take job
/// lists, `scancel` several ids. A job's comment is written before it is suspended or
/// released and after it is resumed or held.
fn batches(actions: &[Action]) -> Vec<Batch> {
    let mut hold = Vec::new();
    let mut release = Vec::new();
    let mut suspend = Vec::new();
    let mut resume = Vec::new();
    let mut cancel = Vec::new();
    for a in actions {
        match a {
            Action::Hold { job, comment } => hold.push((*job, comment.as_str())),
            Action::Release { job, comment } => release.push((*job, comment.as_str())),
            Action::Suspend { job, comment, .. } => suspend.push((*job, comment.as_str())),
            Action::Resume { job, comment, .. } => resume.push((*job, comment.as_str())),
            Action::Cancel { job, .. } => cancel.push(*job),
            Action::Warn { .. } => {}
        }
    }
    let ids = |v: &[(u64, &str)]| v.iter().map(|(j, _)| *j).collect::<Vec<_>>();
    let mut out = Vec::new();
    let mut add = |ids: Vec<u64>, make: Make| {
        if !ids.is_empty() {
            out.push(Batch { ids, make });
        }
    };
    add(ids(&hold), verb("hold"));
    for b in comment_batches(&hold) {
        add(b.ids, b.make);
    }
    for b in comment_batches(&release) {
        add(b.ids, b.make);
    }
    add(ids(&release), verb("release"));
    for b in comment_batches(&suspend) {
        add(b.ids, b.make);
    }
    add(ids(&suspend), verb("suspend"));
    add(ids(&resume), verb("resume"));
    for b in comment_batches(&resume) {
        add(b.ids, b.make);
    }
    add(
        cancel,
        Box::new(|ids| {
            std::iter::once("scancel".to_string())
                .chain(ids.iter().map(u64::to_string))
                .collect()
        }),
    );
    out
}

/// An action in words, for the controller's log.
pub fn describe(a: &Action) -> String {
    match a {
        Action::Hold { job, comment } => format!("hold job {job}: {comment}"),
        Action::Release { job, .. } => format!("release job {job}: its budget allows it again"),
        Action::Suspend { job, why, .. } => format!("suspend job {job}: {why}"),
        Action::Resume { job, why, .. } => format!("resume job {job}: {why}"),
        Action::Cancel { job, why } => format!("cancel job {job}: {why}"),
        Action::Warn { job, why } => format!("job {job} runs over budget: {why}"),
    }
}

/// The accounts whose budgets the policy sets, and whether each is used up now.
pub fn budgets(
    p: &policy::Policy,
    l: &dyn crate::ledger::Ledger,
    now: i64,
) -> anyhow::Result<BTreeMap<String, Budget>> {
    let mut out = BTreeMap::new();
    for proj in p.projects() {
        // Slurm keeps account names in lower case: `[budget.acctA]` is account `accta`,
        // whose jobs the agent records under that name.
        let account = proj.to_lowercase();
        let st = policy::standings(p, proj, now, |s, e| {
            let mut u = crate::govern::usage::period_usage(l, proj, s, e)?;
            if account != proj {
                let v = crate::govern::usage::period_usage(l, &account, s, e)?;
                u.energy_j += v.energy_j;
                u.carbon_g += v.carbon_g;
                u.water_l += v.water_l;
                u.time_s += v.time_s;
            }
            Ok(u)
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        let day = |t: i64| {
            crate::timefmt::rfc3339_s(t as f64)
                .chars()
                .take(10)
                .collect::<String>()
        };
        let gone = st
            .iter()
            .find(|s| s.state(now) == policy::BudgetState::UsedUp);
        out.insert(
            account,
            Budget {
                used_up: gone.is_some(),
                message: gone
                    .map(|s| {
                        let start = day(s.period_start);
                        let label = if s.budget.period.name() == "month" {
                            start.chars().take(7).collect()
                        } else {
                            format!("the {} from {start}", s.budget.period.name())
                        };
                        format!(
                            "{} budget of project {proj} used up for {label}; resets {}",
                            s.budget.metric.name(),
                            day(s.period_end)
                        )
                    })
                    .unwrap_or_default(),
                on_exceed: p
                    .on_exceed
                    .get(proj)
                    .map(|a| format!("{a:?}").to_lowercase())
                    .unwrap_or_else(|| "warn".into()),
            },
        );
    }
    Ok(out)
}

/// Carries out `actions` with `run` ([`run_command`] in service) in as few Slurm commands as
/// take them, or only says them when `dry_run`. A command over many jobs that fails is
/// tried again job by job, so exactly the jobs it failed for are known; such a job's later
/// commands are skipped and its action is forgotten in `mem`, so the next pass tries again.
/// Returns the log lines, one per action.
pub fn act(
    actions: &[Action],
    mem: &mut Memory,
    dry_run: bool,
    now: f64,
    mut run: impl FnMut(&[&str]) -> Result<(), String>,
) -> Vec<String> {
    let when = crate::timefmt::rfc3339_s(now);
    if dry_run {
        return actions
            .iter()
            .map(|a| format!("{when} would {}", describe(a)))
            .collect();
    }
    let before = mem.clone();
    let mut failed: BTreeMap<u64, String> = BTreeMap::new();
    let mut exec = |cmd: Vec<String>| {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        run(&args)
    };
    for b in batches(actions) {
        let ids: Vec<u64> = b
            .ids
            .iter()
            .copied()
            .filter(|j| !failed.contains_key(j))
            .collect();
        let e = match ids.as_slice() {
            [] => continue,
            list => match exec((b.make)(list)) {
                Ok(()) => continue,
                Err(e) => e,
            },
        };
        if let [j] = ids[..] {
            failed.insert(j, e);
            continue;
        }
        for j in ids {
            if let Err(e) = exec((b.make)(&[j])) {
                failed.insert(j, e);
            }
        }
    }
    let mut log = Vec::new();
    for a in actions {
        match failed.get(&a.job()) {
            None => log.push(format!("{when} {}", describe(a))),
            Some(e) => {
                log.push(format!("decompute: warning: {}: {e}", describe(a)));
                mem.forget(a, &before);
            }
        }
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_jobs_take_one_command_and_a_failed_one_is_found_job_by_job() {
        let suspend = |job: u64| Action::Suspend {
            job,
            comment: "[decompute:suspended] grid".into(),
            why: "grid".into(),
        };
        let mut actions: Vec<Action> = (1..=500).map(suspend).collect();
        actions.push(Action::Resume {
            job: 900,
            comment: String::new(),
            why: "clean".into(),
        });
        let mut mem = Memory::default();
        for j in 1..=500 {
            mem.suspended.insert(j, "grid".into());
        }
        let mut ran: Vec<String> = Vec::new();
        let log = act(&actions, &mut mem, false, 0.0, |args| {
            ran.push(args.join(" "));
            // Job 13 cannot be suspended (it ended meanwhile): the list fails as a whole.
            if args[1] == "suspend" && args[2].split(',').any(|j| j == "13") {
                Err("Job has already finished".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(ran.len(), 3 + 500 + 1, "{:?}", &ran[..4]);
        assert!(
            ran[0].starts_with("scontrol update JobId=1,2,3,"),
            "{}",
            ran[0]
        );
        assert!(ran[1].starts_with("scontrol suspend 1,2,3,"));
        assert_eq!(ran[2], "scontrol suspend 1", "then job by job");
        assert_eq!(ran[ran.len() - 2], "scontrol resume 900");
        assert_eq!(ran[ran.len() - 1], "scontrol update JobId=900 Comment=");
        let warned: Vec<&String> = log.iter().filter(|l| l.contains("warning")).collect();
        assert_eq!(warned.len(), 1);
        assert!(warned[0].contains("suspend job 13"));
        assert!(!mem.suspended.contains_key(&13) && mem.suspended.contains_key(&14));
    }

    #[test]
    fn a_failed_action_is_forgotten_and_the_others_carried_out() {
        let mut mem = Memory::default();
        let actions = vec![
            Action::Hold {
                job: 7,
                comment: "decompute: budget".into(),
            },
            Action::Cancel {
                job: 8,
                why: "over".into(),
            },
        ];
        mem.held.insert(7, "decompute: budget".into());
        let mut ran: Vec<String> = Vec::new();
        let log = act(&actions, &mut mem, false, 0.0, |args| {
            ran.push(args.join(" "));
            if args[0] == "scontrol" {
                Err("slurmctld down".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(ran, ["scontrol hold 7", "scancel 8"]);
        assert!(log[0].contains("warning: hold job 7") && log[0].contains("slurmctld down"));
        assert!(log[1].ends_with("cancel job 8: over"), "{log:?}");
        assert!(
            !mem.held.contains_key(&7),
            "a hold that failed is tried again"
        );
        let dry = act(&actions, &mut mem, true, 0.0, |_| panic!("dry run ran"));
        assert!(dry[0].contains("would hold job 7"));
    }
}

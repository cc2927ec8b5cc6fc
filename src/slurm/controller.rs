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

/// All jobs, as `squeue` gives them.
pub fn squeue() -> anyhow::Result<Vec<Job>> {
    let run = |args: &[&str]| {
        std::process::Command::new("squeue")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run squeue ({e}); is Slurm installed here?"))
    };
    let o = run(&["--json", "--states=all"])?;
    if o.status.success() {
        return jobs::parse_json(&String::from_utf8_lossy(&o.stdout))
            .map_err(|e| anyhow::anyhow!(e));
    }
    let o = run(&["--noheader", "--states=all", "--format", jobs::FORMAT])?;
    if !o.status.success() {
        anyhow::bail!(
            "squeue failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    jobs::parse_format(&String::from_utf8_lossy(&o.stdout)).map_err(|e| anyhow::anyhow!(e))
}

/// Runs one Slurm command (`scontrol …`, `scancel …`); its stderr is the error.
pub fn run_command(args: &[&str]) -> Result<(), String> {
    let Some((program, rest)) = args.split_first() else {
        return Ok(());
    };
    let o = std::process::Command::new(program)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// The commands an action runs.
pub fn commands(a: &Action) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let comment = |job: u64, c: &str| {
        vec![
            "scontrol".into(),
            "update".into(),
            format!("JobId={job}"),
            format!("Comment={c}"),
        ]
    };
    match a {
        Action::Hold { job, comment: c } => {
            vec![s(&["scontrol", "hold", &job.to_string()]), comment(*job, c)]
        }
        Action::Release { job, comment: c } => vec![
            comment(*job, c),
            s(&["scontrol", "release", &job.to_string()]),
        ],
        Action::Suspend {
            job, comment: c, ..
        } => vec![
            comment(*job, c),
            s(&["scontrol", "suspend", &job.to_string()]),
        ],
        Action::Resume {
            job, comment: c, ..
        } => vec![
            s(&["scontrol", "resume", &job.to_string()]),
            comment(*job, c),
        ],
        Action::Cancel { job, .. } => vec![s(&["scancel", &job.to_string()])],
        Action::Warn { .. } => Vec::new(),
    }
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

/// Carries out `actions` with `run` (one Slurm command at a time; [`run_command`] in
/// service), or only says them when `dry_run`. An action whose command fails is forgotten
/// in `mem`, so the next pass tries again. Returns the log lines, one per action.
pub fn act(
    actions: &[Action],
    mem: &mut Memory,
    dry_run: bool,
    now: f64,
    mut run: impl FnMut(&[&str]) -> Result<(), String>,
) -> Vec<String> {
    let before = mem.clone();
    let when = crate::timefmt::rfc3339_s(now);
    let mut log = Vec::new();
    for a in actions {
        if dry_run {
            log.push(format!("{when} would {}", describe(a)));
            continue;
        }
        let failed = commands(a).iter().find_map(|c| {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            run(&args).err()
        });
        match failed {
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

//! A job step's `SLURM_*` environment as run tags, so `srun decompute run -- …` inside a job
//! is recorded with the same tags the node agent gives the job (`slurm_job_id`,
//! `slurm_job_name`, `slurm_partition`, `slurm_account`, `slurm_node`), and its account as
//! the project when none was given.

use std::collections::BTreeMap;

/// Environment variable → tag.
pub const TAGS: [(&str, &str); 5] = [
    ("SLURM_JOB_ID", "slurm_job_id"),
    ("SLURM_JOB_NAME", "slurm_job_name"),
    ("SLURM_JOB_PARTITION", "slurm_partition"),
    ("SLURM_JOB_ACCOUNT", "slurm_account"),
    ("SLURMD_NODENAME", "slurm_node"),
];

/// The Slurm tags of an environment, and the job's account (the project a run inside a job
/// belongs to). Empty outside a job: without `SLURM_JOB_ID` nothing is read.
pub fn tags<I>(vars: I) -> (BTreeMap<String, String>, Option<String>)
where
    I: IntoIterator<Item = (String, String)>,
{
    let vars: BTreeMap<String, String> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with("SLURM"))
        .collect();
    let mut out = BTreeMap::new();
    if !vars.contains_key("SLURM_JOB_ID") {
        return (out, None);
    }
    for (var, tag) in TAGS {
        if let Some(v) = vars.get(var) {
            let v: String = v.chars().filter(|c| !c.is_control()).take(256).collect();
            if !v.trim().is_empty() {
                out.insert(tag.to_string(), v);
            }
        }
    }
    let account = out.get("slurm_account").cloned();
    (out, account)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_job_steps_variables_become_tags_and_its_account_the_project() {
        let (t, a) = tags(env(&[
            ("SLURM_JOB_ID", "4242"),
            ("SLURM_JOB_NAME", "train"),
            ("SLURM_JOB_PARTITION", "gpu"),
            ("SLURM_JOB_ACCOUNT", "climate-lab"),
            ("SLURMD_NODENAME", "node07"),
            ("SLURM_CPUS_ON_NODE", "8"),
            ("HOME", "/root"),
        ]));
        assert_eq!(t.len(), 5);
        assert_eq!(t["slurm_job_id"], "4242");
        assert_eq!(t["slurm_node"], "node07");
        assert_eq!(a.as_deref(), Some("climate-lab"));
        // Outside a job: nothing, even if some SLURM_ variable is set.
        let (t, a) = tags(env(&[("SLURM_CONF", "/etc/slurm.conf")]));
        assert!(t.is_empty() && a.is_none());
        // No account variable: no project from Slurm.
        let (t, a) = tags(env(&[("SLURM_JOB_ID", "1"), ("SLURM_JOB_ACCOUNT", " ")]));
        assert_eq!(t.len(), 1);
        assert!(a.is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_environment_is_read_without_panicking(
            vars in proptest::collection::vec(("SLURM[A-Z_]{0,12}", "\\PC{0,40}"), 0..10)
        ) {
            let (t, _) = tags(vars);
            for v in t.values() {
                proptest::prop_assert!(v.chars().count() <= 256);
            }
        }
    }
}

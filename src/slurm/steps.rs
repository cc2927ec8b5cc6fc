//! Slurm jobs as consumers under `proctrack/linuxproc`, where jobs have no cgroup of their
//! own: every process under a `slurmstepd` (its title `slurmstepd: [4242.batch]` names the
//! job and step) belongs to that job, all of a job's steps together. Each job is reported
//! as the consumer `/slurm/job_4242` (not a real cgroup: the path only carries the job id,
//! as a `proctrack/cgroup` job's `…/job_4242/…` does, so both label the same way). Only this
//! cluster's jobs count: a step daemon is this `slurmd`'s when its socket is in this
//! cluster's `SlurmdSpoolDir` (`NODE_JOBID.STEPID`), so the jobs of another Slurm cluster
//! sharing the host are left out. CPU time
//! is cumulative per step daemon's tree, as for a run's workload; processes outside every
//! job are nobody's and end up idle.

use crate::consumer::tree::{self, ProcessTree};
use crate::consumer::{Consumers, Usage};
use crate::procfs::ProcRoot;
use crate::sample::Consumer;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// The jobs whose step daemons have a socket among `names` (a `SlurmdSpoolDir`'s entries:
/// `NODENAME_JOBID.STEPID`, `NODENAME_JOBID.STEPID.HETCOMP`; the node name may hold `_`).
pub fn jobs_of_sockets<'a>(names: impl IntoIterator<Item = &'a str>) -> HashSet<u64> {
    names
        .into_iter()
        .filter_map(|n| {
            let (_, rest) = n.rsplit_once('_')?;
            let (job, step) = rest.split_once('.')?;
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let step_ok = step.split('.').all(numeric);
            (numeric(job) && step_ok)
                .then(|| job.parse().ok())
                .flatten()
        })
        .collect()
}

/// The job id in a step daemon's title: `slurmstepd: [4242.batch]` → 4242 (array and
/// het-job ids such as `4242_7` or `4242+1` keep their first number). The title is written
/// over the daemon's own arguments and is cut where they were shorter
/// (`slurmstepd: [1.bat`), so the closing bracket is not required.
pub fn job_of_title(cmdline: &str) -> Option<u64> {
    let t = cmdline.replace('\0', " ");
    let (head, inner) = t.split_once('[')?;
    if !head.trim_start().starts_with("slurmstepd") {
        return None;
    }
    let digits: String = inner.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The consumer path of a job.
pub fn consumer_path(job: u64) -> String {
    format!("/slurm/job_{job}")
}

/// The job id in a consumer path (`…/job_4242/…`), as the agent's labels read it.
pub fn job_of_path(path: &str) -> Option<u64> {
    path.split('/').find_map(|s| {
        s.strip_prefix("job_")
            .filter(|j| !j.is_empty() && j.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|j| j.parse().ok())
    })
}

/// Whether a job's cgroup path belongs to Slurm node `node`. A node run by a slurmd of its
/// own among several on the host (`--enable-multiple-slurmd`) keeps its jobs under
/// `<NodeName>_slurmstepd.scope` (cgroup v2) or `slurm_<NodeName>` (v1); another node's
/// jobs there are not this agent's. The single-slurmd layouts (`slurmstepd.scope`, `slurm`)
/// name no node: their jobs are this node's.
pub fn of_node(path: &str, node: &str) -> bool {
    for seg in path.split('/') {
        if let Some(n) = seg.strip_suffix("_slurmstepd.scope") {
            return n == node;
        }
        if let Some(n) = seg.strip_prefix("slurm_") {
            return n == node;
        }
        if seg == "slurmstepd.scope" || seg == "slurm" {
            return true;
        }
    }
    true
}

/// Every job's process trees on this node.
pub struct SlurmSteps {
    proc_root: ProcRoot,
    /// This cluster's `SlurmdSpoolDir`: only step daemons with a socket there count. `None`:
    /// every step daemon on the host.
    spool: Option<PathBuf>,
    /// Step daemons by (pid, start time): their job and the tree under them.
    steps: HashMap<(i32, u64), (u64, ProcessTree, f64)>,
    /// Problems reading `/proc` (reported by the caller once).
    pub unreadable: Vec<String>,
}

impl SlurmSteps {
    pub fn new(proc_root: ProcRoot, spool: Option<PathBuf>) -> SlurmSteps {
        let mut s = SlurmSteps {
            proc_root,
            spool,
            steps: HashMap::new(),
            unreadable: Vec::new(),
        };
        let _ = s.scan();
        s
    }
}

impl Consumers for SlurmSteps {
    fn scan(&mut self) -> Vec<Usage> {
        let procs = tree::read_all(&self.proc_root, &mut self.unreadable);
        let mut alive = Vec::new();
        // This cluster's jobs, read from its spool directory once per scan, and only when a
        // step daemon not seen before is there to check (a daemon of another cluster is
        // checked again each scan: its socket may appear later).
        let mut ours: Option<HashSet<u64>> = None;
        for p in procs.iter().filter(|p| p.comm == "slurmstepd") {
            let key = (p.pid, p.starttime);
            alive.push(key);
            if self.steps.contains_key(&key) {
                continue;
            }
            let title = std::fs::read(self.proc_root.path(&format!("{}/cmdline", p.pid)))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if let Some(job) = job_of_title(&title) {
                if let Some(spool) = &self.spool {
                    let ours = ours.get_or_insert_with(|| {
                        let names: Vec<String> = std::fs::read_dir(spool)
                            .map(|d| {
                                d.filter_map(|e| e.ok())
                                    .map(|e| e.file_name().to_string_lossy().into_owned())
                                    .collect()
                            })
                            .unwrap_or_default();
                        jobs_of_sockets(names.iter().map(String::as_str))
                    });
                    if !ours.contains(&job) {
                        continue;
                    }
                }
                self.steps.insert(
                    key,
                    (job, ProcessTree::new(self.proc_root.clone(), p.pid), 0.0),
                );
            }
        }
        self.steps.retain(|k, _| alive.contains(k));
        // A job is on the node while it has a task: a process under its step daemons that is
        // not itself a step daemon. Step daemons of a cancelled job can linger for minutes
        // on a busy node after its tasks are gone; the job has ended here all the same (and
        // one whose daemon has not started its task yet is not here yet).
        let daemons: HashSet<i32> = procs
            .iter()
            .filter(|p| p.comm == "slurmstepd")
            .map(|p| p.pid)
            .collect();
        let mut tasked: HashSet<u64> = HashSet::new();
        let mut by_job: HashMap<u64, Usage> = HashMap::new();
        for (job, tree, last) in self.steps.values_mut() {
            let snap = tree.snapshot(&procs);
            if snap.pids.iter().any(|p| !daemons.contains(p)) {
                tasked.insert(*job);
            }
            let cpu = (snap.cpu_s - *last).max(0.0);
            *last = snap.cpu_s;
            let u = by_job.entry(*job).or_insert_with(|| Usage {
                consumer: Consumer::Cgroup(consumer_path(*job)),
                cpu_s: 0.0,
                rss_bytes: 0,
                pids: Vec::new(),
            });
            u.cpu_s += cpu;
            u.rss_bytes += snap.rss_bytes;
            u.pids.extend(snap.pids);
        }
        by_job.retain(|job, _| tasked.contains(job));
        let mut out: Vec<Usage> = by_job.into_values().collect();
        out.sort_by(|a, b| format!("{:?}", a.consumer).cmp(&format!("{:?}", b.consumer)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_clusters_step_daemons_count() {
        let names = [
            "vm_42.4294967291",
            "gpu_node_7_43.0",
            "n1_44.0.1",
            "cred_state",
            "n1_x.0",
            "n1_45.",
        ];
        let jobs = jobs_of_sockets(names);
        let mut v: Vec<u64> = jobs.into_iter().collect();
        v.sort_unstable();
        assert_eq!(v, [42, 43, 44]);
        // A fake /proc with two step daemons; this cluster's spool has only job 42's socket.
        let d = tempfile::tempdir().expect("tmp");
        let spool = d.path().join("spool");
        std::fs::create_dir(&spool).expect("spool");
        std::fs::write(spool.join("vm_42.4294967291"), "").expect("socket");
        let procs = d.path().join("proc");
        for (pid, title) in [
            (100, "slurmstepd: [42.batch]"),
            (200, "slurmstepd: [43.batch]"),
        ] {
            let dir = procs.join(pid.to_string());
            std::fs::create_dir_all(&dir).expect("dir");
            std::fs::write(
                dir.join("stat"),
                format!(
                    "{pid} (slurmstepd) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 50 0"
                ),
            )
            .expect("stat");
            std::fs::write(dir.join("cmdline"), format!("{title}\0")).expect("cmdline");
            // Its task.
            let task = procs.join((pid + 1).to_string());
            std::fs::create_dir_all(&task).expect("dir");
            std::fs::write(
                task.join("stat"),
                format!(
                    "{} (sleep) S {pid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 50 0",
                    pid + 1
                ),
            )
            .expect("stat");
        }
        let mut s = SlurmSteps::new(ProcRoot::new(&procs), Some(spool.clone()));
        let u = s.scan();
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].consumer, Consumer::Cgroup("/slurm/job_42".into()));
        // Job 43's socket appears (its daemon was starting): it counts from then on.
        std::fs::write(spool.join("vm_43.4294967291"), "").expect("socket");
        assert_eq!(s.scan().len(), 2);
    }

    #[test]
    fn titles_and_paths_name_the_job() {
        assert_eq!(job_of_title("slurmstepd: [4242.batch]"), Some(4242));
        assert_eq!(job_of_title("slurmstepd: [7.extern]\0"), Some(7));
        assert_eq!(job_of_title("slurmstepd: [12_3.0]"), Some(12));
        assert_eq!(job_of_title("slurmstepd"), None);
        assert_eq!(job_of_title("slurmstepd: [1.bat d"), Some(1), "a cut title");
        assert_eq!(job_of_title("python [3]"), None);
        assert_eq!(job_of_path("/slurm/job_4242"), Some(4242));
        assert_eq!(
            job_of_path("/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0"),
            Some(4242)
        );
        assert_eq!(job_of_path("/user.slice/job_x"), None);
        // Two slurmds on one host (two clusters, or --enable-multiple-slurmd): each agent
        // counts its own node's scope.
        let v2 = "/system.slice/n1_slurmstepd.scope/job_7/step_0";
        assert!(of_node(v2, "n1") && !of_node(v2, "n2"));
        let v1 = "/slurm_n2/uid_0/job_7/step_batch";
        assert!(of_node(v1, "n2") && !of_node(v1, "n1"));
        assert!(of_node("/system.slice/slurmstepd.scope/job_7", "any"));
        assert!(of_node("/slurm/uid_0/job_7", "any") && of_node("/slurm/job_7", "any"));
    }

    /// A fake `/proc`: a step daemon with a busy child, another job, and a process outside.
    #[test]
    fn each_step_daemons_tree_is_its_jobs() {
        let d = tempfile::tempdir().expect("tmp");
        let stat = |pid: i32, comm: &str, ppid: i32, utime: u64| {
            let dir = d.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).expect("dir");
            std::fs::write(
                dir.join("stat"),
                format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 100 0 50 0"),
            )
            .expect("stat");
            dir
        };
        let a = stat(100, "slurmstepd", 1, 0);
        std::fs::write(a.join("cmdline"), "slurmstepd: [42.batch]\0").expect("cmdline");
        stat(101, "python", 100, 100);
        let b = stat(200, "slurmstepd", 1, 0);
        std::fs::write(b.join("cmdline"), "slurmstepd: [43.0]\0").expect("cmdline");
        stat(201, "sh", 200, 0);
        stat(300, "sshd", 1, 500);
        let mut s = SlurmSteps::new(ProcRoot::new(d.path()), None);
        // The busy child runs 100 more ticks.
        stat(101, "python", 100, 200);
        let u = s.scan();
        assert_eq!(u.len(), 2, "{u:?}");
        let j42 = u
            .iter()
            .find(|x| x.consumer == Consumer::Cgroup("/slurm/job_42".into()))
            .expect("job 42");
        let hz = crate::procfs::clock_ticks_per_second();
        assert!((j42.cpu_s - 100.0 / hz).abs() < 1e-9, "{j42:?}");
        assert!(j42.pids.contains(&101) && !j42.pids.contains(&300));
        // Job 42's task ends while its step daemon lingers (a cancelled job tearing down):
        // the job has ended here.
        std::fs::remove_dir_all(d.path().join("101")).expect("rm");
        let u = s.scan();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].consumer, Consumer::Cgroup("/slurm/job_43".into()));
        std::fs::remove_dir_all(&a).expect("rm");
        assert_eq!(s.scan().len(), 1);
    }
}

//! Follows the workload's process tree: every descendant of the monitor (children,
//! grandchildren and, because the monitor is a child subreaper, daemonised descendants that
//! double-fork away from their parent), keyed by (pid, start time) so a reused pid is never
//! credited. Its CPU time is kept cumulative: live processes' own and reaped-children time
//! from `/proc`, plus the rusage of processes the monitor reaped itself, so a process that
//! exits between two scans still counts.

use crate::procfs::pid::{self, PidStat};
use crate::procfs::ProcRoot;
use std::collections::{HashMap, HashSet};

/// Pids of `root`'s descendants in `procs` (not `root` itself), in breadth-first order.
pub fn descendants(procs: &[PidStat], root: i32) -> Vec<usize> {
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, p) in procs.iter().enumerate() {
        if p.pid != p.ppid {
            children.entry(p.ppid).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    let mut seen = HashSet::new();
    while let Some(pid) = queue.pop() {
        if let Some(kids) = children.get(&pid) {
            for &i in kids {
                if seen.insert(procs[i].pid) {
                    out.push(i);
                    queue.push(procs[i].pid);
                }
            }
        }
    }
    out
}

/// Reads a small file (a `/proc/PID/stat` line is well under 1 KiB) with one `read`
/// into a reused buffer: no size probe, no allocation. `None` if it vanished.
fn read_small<'a>(path: &std::path::Path, buf: &'a mut [u8]) -> Option<&'a str> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            // procfs hands the whole file to one read that has room for it.
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(_) => return None,
        }
    }
    std::str::from_utf8(&buf[..len]).ok()
}

/// One scan of the tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeSnapshot {
    /// Cumulative CPU time of the tree in seconds, including reaped processes.
    pub cpu_s: f64,
    /// Resident memory of the live tree in bytes (shared pages counted once per process).
    pub rss_bytes: u64,
    /// Live (and zombie) pids of the tree.
    pub pids: Vec<i32>,
}

/// Tracks the tree under `monitor_pid` across scans.
#[derive(Debug)]
pub struct ProcessTree {
    proc_root: ProcRoot,
    monitor_pid: i32,
    ticks_per_s: f64,
    page_size: u64,
    reaped_cpu_s: f64,
    seen: HashSet<(i32, u64)>,
    unseen_reaped: usize,
    last_cpu_s: f64,
    /// Processes whose `/proc/PID/stat` could not be parsed (not counted; reported once).
    pub unreadable: Vec<String>,
    /// The workload's own cgroup, when it has one: its `cpu.stat` is the exact CPU time of
    /// everything that ran in it.
    pub cgroup_dir: Option<std::path::PathBuf>,
}

impl ProcessTree {
    pub fn new(proc_root: ProcRoot, monitor_pid: i32) -> ProcessTree {
        ProcessTree {
            proc_root,
            monitor_pid,
            ticks_per_s: crate::procfs::clock_ticks_per_second(),
            page_size: crate::procfs::page_size(),
            reaped_cpu_s: 0.0,
            seen: HashSet::new(),
            unseen_reaped: 0,
            last_cpu_s: 0.0,
            unreadable: Vec::new(),
            cgroup_dir: None,
        }
    }

    /// Adds the CPU time (from `wait4` rusage) of tree processes the monitor reaped, and
    /// counts those of them no scan saw.
    pub fn add_reaped(&mut self, cpu_s: f64, pids: &[i32]) {
        self.reaped_cpu_s += cpu_s.max(0.0);
        for &pid in pids {
            if !self.seen.iter().any(|(p, _)| *p == pid) {
                self.unseen_reaped += 1;
            }
        }
    }

    /// Distinct processes seen so far: by (pid, start time) in scans, plus those the
    /// monitor reaped before any scan saw them. Grandchildren that start and end between
    /// two scans and are reaped by their parent are not counted (their CPU time is).
    pub fn processes_seen(&self) -> usize {
        self.seen.len() + self.unseen_reaped
    }

    /// Reads every `/proc/PID/stat` and returns the tree's state. Processes that vanish
    /// between listing and reading are skipped: that is normal, not an error.
    pub fn scan(&mut self) -> TreeSnapshot {
        let mut procs = Vec::new();
        let mut buf = [0u8; 2048];
        let mut path = self.proc_root.0.clone();
        if let Ok(entries) = std::fs::read_dir(&self.proc_root.0) {
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if !name.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                path.push(name);
                path.push("stat");
                let text = read_small(&path, &mut buf);
                path.pop();
                path.pop();
                let Some(text) = text else { continue };
                match pid::parse(text) {
                    Ok(s) => procs.push(s),
                    Err(problem) => {
                        if self.unreadable.len() < 8 {
                            self.unreadable.push(format!(
                                "{}/{name}/stat: {problem}",
                                self.proc_root.0.display()
                            ));
                        }
                    }
                }
            }
        }
        let before = self.last_cpu_s;
        let mut snap = self.snapshot(&procs);
        if let Some(cg) = self
            .cgroup_dir
            .as_ref()
            .and_then(|d| crate::govern::freeze::Cgroup { dir: d.clone() }.cpu_s())
        {
            snap.cpu_s = cg.max(before);
            self.last_cpu_s = snap.cpu_s;
        }
        snap
    }

    /// The tree's state from already-parsed process stats (the pure half of `scan`).
    pub fn snapshot(&mut self, procs: &[PidStat]) -> TreeSnapshot {
        let members = descendants(procs, self.monitor_pid);
        let mut ticks = 0u64;
        let mut rss = 0u64;
        let mut pids = Vec::with_capacity(members.len());
        for &i in &members {
            let p = &procs[i];
            self.seen.insert((p.pid, p.starttime));
            ticks += p.cpu_with_children();
            rss += p.rss_pages * self.page_size;
            pids.push(p.pid);
        }
        let cpu_s = (ticks as f64 / self.ticks_per_s + self.reaped_cpu_s).max(self.last_cpu_s);
        self.last_cpu_s = cpu_s;
        TreeSnapshot {
            cpu_s,
            rss_bytes: rss,
            pids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, start: u64, ticks: u64) -> PidStat {
        PidStat {
            pid,
            comm: format!("p{pid}"),
            state: 'S',
            ppid,
            session: 1,
            utime: ticks,
            stime: 0,
            cutime: 0,
            cstime: 0,
            starttime: start,
            rss_pages: 1,
        }
    }

    #[test]
    fn finds_children_grandchildren_and_adopted_orphans() {
        // 100 = monitor; 101 child; 102 grandchild; 103 daemon re-parented to the monitor;
        // 200 an unrelated process; 1 init.
        let procs = vec![
            p(1, 0, 1, 0),
            p(100, 1, 5, 0),
            p(101, 100, 6, 0),
            p(102, 101, 7, 0),
            p(103, 100, 8, 0),
            p(200, 1, 9, 0),
        ];
        let mut d: Vec<i32> = descendants(&procs, 100)
            .into_iter()
            .map(|i| procs[i].pid)
            .collect();
        d.sort();
        assert_eq!(d, vec![101, 102, 103]);
        assert!(descendants(&procs, 999).is_empty());
    }

    #[test]
    fn reused_pid_is_a_new_process_and_cpu_never_goes_back() {
        let mut t = ProcessTree::new(ProcRoot::new("/nonexistent"), 100);
        t.ticks_per_s = 100.0;
        let s1 = t.snapshot(&[p(100, 1, 5, 0), p(101, 100, 6, 300)]);
        assert_eq!(s1.cpu_s, 3.0);
        // 101 exits and the monitor reaps it (3.2 s by rusage); an unrelated process later
        // reuses pid 101 outside the tree, and a new child reuses pid 102.
        t.add_reaped(3.2, &[101]);
        let s2 = t.snapshot(&[p(100, 1, 5, 0), p(101, 1, 50, 9999), p(102, 100, 51, 10)]);
        assert!((s2.cpu_s - 3.3).abs() < 1e-9, "{}", s2.cpu_s);
        assert_eq!(t.processes_seen(), 2);
        let s3 = t.snapshot(&[p(100, 1, 5, 0)]);
        assert!(s3.cpu_s >= s2.cpu_s);
    }
}

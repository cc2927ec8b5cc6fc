//! A run's workload as a consumer: every descendant of the monitor (children,
//! grandchildren and, because the monitor is a child subreaper, daemonised descendants that
//! double-fork away from their parent) — or, for a process measuring itself, the process and
//! its descendants — keyed by (pid, start time) so a reused pid is never credited. Its CPU
//! time is kept cumulative: live processes' own and reaped-children time from `/proc`, plus
//! the rusage of processes the monitor reaped itself, so a process that exits between two
//! scans still counts; with a cgroup of its own, the cgroup's counter is exact. Helper
//! processes decompute starts itself (a `cmd:` grid signal, in its own process group) are
//! never part of the workload.

use crate::procfs::pid::{self, PidStat};
use crate::procfs::ProcRoot;
use std::collections::{HashMap, HashSet};

/// Pids of `root`'s descendants in `procs` (not `root` itself). Processes in one of the
/// `excluded` process groups are left out with their own descendants.
pub fn descendants(procs: &[PidStat], root: i32, excluded: &[i32]) -> Vec<usize> {
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, p) in procs.iter().enumerate() {
        if p.pid != p.ppid && !excluded.contains(&p.pgrp) {
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

/// Every `/proc/PID/stat` under `proc_root`, parsed. Processes that vanish between listing
/// and reading are skipped (normal, not an error); lines that do not parse are noted in
/// `unreadable` (at most 8).
pub fn read_all(proc_root: &ProcRoot, unreadable: &mut Vec<String>) -> Vec<PidStat> {
    let mut procs = Vec::new();
    let mut buf = [0u8; 2048];
    let mut path = proc_root.0.clone();
    if let Ok(entries) = std::fs::read_dir(&proc_root.0) {
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
                    if unreadable.len() < 8 {
                        unreadable
                            .push(format!("{}/{name}/stat: {problem}", proc_root.0.display()));
                    }
                }
            }
        }
    }
    procs
}

/// The stats of `root`, its descendants (found through the kernel's
/// `/proc/PID/task/TID/children` lists, not a scan of every process) and the `extra` pids
/// still alive; `None` where the kernel has no `children` files (then every process is read).
/// A machine with thousands of processes costs a tracker's start and stop a few reads, not
/// thousands.
pub fn read_tree(proc_root: &ProcRoot, root: i32, extra: &[i32]) -> Option<Vec<PidStat>> {
    let mut buf = [0u8; 2048];
    let mut list = vec![0u8; 1 << 16];
    let mut seen: HashSet<i32> = HashSet::new();
    let mut queue = vec![root];
    queue.extend_from_slice(extra);
    let mut procs = Vec::new();
    let mut first = true;
    while let Some(pid) = queue.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let dir = proc_root.0.join(pid.to_string());
        let Some(text) = read_small(&dir.join("stat"), &mut buf) else {
            continue;
        };
        if let Ok(st) = pid::parse(text) {
            procs.push(st);
        }
        let Ok(tasks) = std::fs::read_dir(dir.join("task")) else {
            if first {
                return None;
            }
            continue;
        };
        let mut any = false;
        for t in tasks.flatten() {
            let Some(kids) = read_small(&t.path().join("children"), &mut list) else {
                continue;
            };
            any = true;
            queue.extend(
                kids.split_whitespace()
                    .filter_map(|k| k.parse::<i32>().ok()),
            );
        }
        if first && !any {
            // No `children` files under the root: this kernel (or a fake tree) lacks them.
            return None;
        }
        first = false;
    }
    Some(procs)
}

/// One scan of the tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeSnapshot {
    /// Cumulative CPU time of the tree in seconds, including reaped processes.
    pub cpu_s: f64,
    /// Resident memory of the live tree in bytes (shared pages counted once per process).
    pub rss_bytes: u64,
    /// Live pids of the tree (zombies left out).
    pub pids: Vec<i32>,
}

pub use crate::child::Excluded;

/// Tracks the tree under `monitor_pid` across scans.
#[derive(Debug)]
pub struct ProcessTree {
    proc_root: ProcRoot,
    monitor_pid: i32,
    /// Count the root itself (a process measuring itself), not only its descendants.
    include_root: bool,
    /// Helper process groups, never workload.
    pub excluded: Excluded,
    /// Cumulative CPU at the previous consumer scan.
    scanned_cpu_s: f64,
    /// Largest peak memory of processes reaped since the previous consumer scan.
    reaped_max_rss: u64,
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
    /// Live members at the last scan.
    last_pids: Vec<i32>,
}

impl ProcessTree {
    pub fn new(proc_root: ProcRoot, monitor_pid: i32) -> ProcessTree {
        ProcessTree {
            proc_root,
            monitor_pid,
            include_root: false,
            excluded: Default::default(),
            scanned_cpu_s: 0.0,
            reaped_max_rss: 0,
            ticks_per_s: crate::procfs::clock_ticks_per_second(),
            page_size: crate::procfs::page_size(),
            reaped_cpu_s: 0.0,
            seen: HashSet::new(),
            unseen_reaped: 0,
            last_cpu_s: 0.0,
            unreadable: Vec::new(),
            cgroup_dir: None,
            last_pids: Vec::new(),
        }
    }

    /// The tree of `pid` including `pid` itself (a process measuring its own work).
    pub fn including_root(proc_root: ProcRoot, pid: i32) -> ProcessTree {
        let mut t = ProcessTree::new(proc_root, pid);
        t.include_root = true;
        t
    }

    /// The tree with its CPU counted from now: a process measuring itself (the Python
    /// tracker) has used CPU before it started, which is not the tracked block's. (A `run`
    /// monitor's child starts from nothing, so it needs no baseline.)
    pub fn counting_from_now(mut self) -> ProcessTree {
        let snap = ProcessTree::scan(&mut self);
        self.scanned_cpu_s = snap.cpu_s;
        self
    }

    /// Adds what tree processes the monitor reaped used (`wait4` rusage): their CPU time
    /// counts, their peak memory stands in for the resident memory of a tree that ended
    /// before a scan saw it, and those no scan saw are counted.
    pub fn add_reaped(&mut self, r: &crate::child::Reaped) {
        self.reaped_max_rss = self.reaped_max_rss.max(r.max_rss_bytes);
        self.add_reaped_cpu(r.cpu_s, &r.pids);
    }

    /// Adds the CPU time (from `wait4` rusage) of tree processes the monitor reaped, and
    /// counts those of them no scan saw.
    pub fn add_reaped_cpu(&mut self, cpu_s: f64, pids: &[i32]) {
        self.reaped_cpu_s += cpu_s.max(0.0);
        for &pid in pids {
            if !self.seen.iter().any(|(p, _)| *p == pid) {
                self.unseen_reaped += 1;
            }
        }
    }

    /// Cumulative CPU time of the tree so far, seconds.
    pub fn cpu_s(&self) -> f64 {
        self.last_cpu_s
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
        // Members alive at the last scan are read by pid too (one may have escaped the
        // tree, re-parented away).
        let procs = read_tree(&self.proc_root, self.monitor_pid, &self.last_pids)
            .unwrap_or_else(|| read_all(&self.proc_root, &mut self.unreadable));
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
        let excluded = self.excluded.lock().map(|e| e.clone()).unwrap_or_default();
        let mut members = descendants(procs, self.monitor_pid, &excluded);
        if self.include_root {
            if let Some(i) = procs.iter().position(|p| p.pid == self.monitor_pid) {
                members.push(i);
            }
        }
        // Once a member, always a member (by pid and start time, so a reused pid is not):
        // a process that escaped its parent (`setsid`, a double fork) after a scan saw it is
        // still followed, with what it starts, though it was re-parented away from the tree.
        // (A `run` monitor is a subreaper, so nothing escapes it; a process measuring itself
        // cannot be one without reaping its own children's orphans.)
        let mut known: HashSet<usize> = members.iter().copied().collect();
        let escaped: Vec<usize> = procs
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                !known.contains(i)
                    && self.seen.contains(&(p.pid, p.starttime))
                    && !excluded.contains(&p.pgrp)
            })
            .map(|(i, _)| i)
            .collect();
        for &i in &escaped {
            known.insert(i);
            members.push(i);
        }
        for pid in escaped.into_iter().map(|i| procs[i].pid) {
            for i in descendants(procs, pid, &excluded) {
                if known.insert(i) {
                    members.push(i);
                }
            }
        }
        let mut ticks = 0u64;
        let mut rss = 0u64;
        let mut pids = Vec::with_capacity(members.len());
        for &i in &members {
            let p = &procs[i];
            self.seen.insert((p.pid, p.starttime));
            ticks += p.cpu_with_children();
            rss += p.rss_pages * self.page_size;
            // A zombie has ended: its time counts, but it is not a live member.
            if p.state != 'Z' {
                pids.push(p.pid);
            }
        }
        let cpu_s = (ticks as f64 / self.ticks_per_s + self.reaped_cpu_s).max(self.last_cpu_s);
        self.last_cpu_s = cpu_s;
        self.last_pids.clone_from(&pids);
        TreeSnapshot {
            cpu_s,
            rss_bytes: rss,
            pids,
        }
    }
}

impl super::Consumers for ProcessTree {
    fn scan(&mut self) -> Vec<super::Usage> {
        let snap = ProcessTree::scan(self);
        let cpu_s = (snap.cpu_s - self.scanned_cpu_s).max(0.0);
        self.scanned_cpu_s = snap.cpu_s;
        vec![super::Usage {
            consumer: crate::sample::Consumer::Workload,
            cpu_s,
            rss_bytes: snap.rss_bytes.max(std::mem::take(&mut self.reaped_max_rss)),
            pids: snap.pids,
        }]
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
            pgrp: pid,
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
        let mut d: Vec<i32> = descendants(&procs, 100, &[])
            .into_iter()
            .map(|i| procs[i].pid)
            .collect();
        d.sort();
        assert_eq!(d, vec![101, 102, 103]);
        assert!(descendants(&procs, 999, &[]).is_empty());
        // A helper in its own process group (103's) is not workload, nor its children.
        let mut procs = procs;
        procs.push(p(104, 103, 10, 0));
        let mut d: Vec<i32> = descendants(&procs, 100, &[103])
            .into_iter()
            .map(|i| procs[i].pid)
            .collect();
        d.sort();
        assert_eq!(d, vec![101, 102]);
    }

    #[test]
    fn a_member_that_escapes_its_parent_is_still_followed() {
        let mut t = ProcessTree::including_root(ProcRoot::new("/nonexistent"), 10);
        // The tracked process 10, its child 11 and grandchild 12.
        let first = vec![p(10, 1, 5, 100), p(11, 10, 6, 0), p(12, 11, 7, 50)];
        assert_eq!(t.snapshot(&first).pids.len(), 3);
        // 11 exits; 12 (setsid) is re-parented to init and starts 13: both still counted.
        let later = vec![
            p(10, 1, 5, 100),
            p(12, 1, 7, 250),
            p(13, 12, 8, 10),
            p(14, 1, 9, 999),
        ];
        let s = t.snapshot(&later);
        let mut pids = s.pids.clone();
        pids.sort();
        assert_eq!(pids, vec![10, 12, 13]);
        // A process that reuses pid 12 later (another start time) is not.
        let reused = vec![p(10, 1, 5, 100), p(12, 1, 77, 5)];
        assert_eq!(t.snapshot(&reused).pids, vec![10]);
    }

    #[test]
    fn the_tree_is_read_through_the_kernels_children_lists() {
        let me = std::process::id() as i32;
        let mut kid = std::process::Command::new("sleep")
            .arg("2")
            .spawn()
            .expect("spawn");
        let procs = read_tree(&ProcRoot::new("/proc"), me, &[]);
        let _ = kid.kill();
        let _ = kid.wait();
        // Kernels without CONFIG_PROC_CHILDREN have no lists: the full scan is used then.
        if let Some(procs) = procs {
            let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
            assert!(
                pids.contains(&me) && pids.contains(&(kid.id() as i32)),
                "{pids:?}"
            );
            assert!(pids.len() < read_all(&ProcRoot::new("/proc"), &mut Vec::new()).len());
        }
        // A fake tree without task/ directories falls back to the full scan.
        let d = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(d.path().join("7")).expect("mkdir");
        std::fs::write(
            d.path().join("7/stat"),
            "7 (x) S 1 7 7 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 1 1 0\n",
        )
        .expect("w");
        assert!(read_tree(&ProcRoot::new(d.path()), 7, &[]).is_none());
    }

    #[test]
    fn reused_pid_is_a_new_process_and_cpu_never_goes_back() {
        let mut t = ProcessTree::new(ProcRoot::new("/nonexistent"), 100);
        t.ticks_per_s = 100.0;
        let s1 = t.snapshot(&[p(100, 1, 5, 0), p(101, 100, 6, 300)]);
        assert_eq!(s1.cpu_s, 3.0);
        // 101 exits and the monitor reaps it (3.2 s by rusage); an unrelated process later
        // reuses pid 101 outside the tree, and a new child reuses pid 102.
        t.add_reaped_cpu(3.2, &[101]);
        let s2 = t.snapshot(&[p(100, 1, 5, 0), p(101, 1, 50, 9999), p(102, 100, 51, 10)]);
        assert!((s2.cpu_s - 3.3).abs() < 1e-9, "{}", s2.cpu_s);
        assert_eq!(t.processes_seen(), 2);
        let s3 = t.snapshot(&[p(100, 1, 5, 0)]);
        assert!(s3.cpu_s >= s2.cpu_s);
    }
}

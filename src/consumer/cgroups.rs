//! Every cgroup of the machine as a consumer, for the node agent. The hierarchy is found in
//! `/proc/self/mountinfo` (cgroup v2 at `/sys/fs/cgroup`, or the hybrid layout's
//! `/sys/fs/cgroup/unified`; cgroup v1's `cpuacct` and `memory` controllers as a fallback) or
//! given with `--cgroup-root`. CPU time comes from each cgroup's own counter (`cpu.stat`
//! `usage_usec`, v1 `cpuacct.usage`), which keeps counting processes that exited; memory from
//! `memory.current` (v1 `memory.usage_in_bytes`). Both are hierarchical, so each cgroup is
//! charged its *own* share: its counter's growth less its children's, never below zero, and
//! nothing is counted twice. CPU time used outside every cgroup (kernel threads, the root
//! cgroup's processes) belongs to no consumer and ends up idle.

use super::{Consumers, Usage};
use crate::sample::Consumer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The layout of the cgroup hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// cgroup v2 mounted at this directory (pure or hybrid).
    V2(PathBuf),
    /// The hybrid layout: cgroup v2 for the hierarchy and CPU time, with memory still
    /// accounted by cgroup v1's `memory` controller (same paths under its mount).
    Hybrid { v2: PathBuf, memory: PathBuf },
    /// cgroup v1: the `cpuacct` hierarchy and, if mounted, the `memory` one.
    V1 {
        cpuacct: PathBuf,
        memory: Option<PathBuf>,
    },
}

impl Layout {
    /// The cgroup hierarchy from `/proc/self/mountinfo` text: v2 when mounted (the pure or
    /// the hybrid layout), else v1's cpuacct (and memory).
    pub fn from_mountinfo(mountinfo: &str) -> Option<Layout> {
        let mut v1_cpu = None;
        let mut v1_mem = None;
        let mut v2 = None;
        for l in mountinfo.lines() {
            let Some((left, right)) = l.split_once(" - ") else {
                continue;
            };
            let mut r = right.split_whitespace();
            let fstype = r.next().unwrap_or("");
            let _src = r.next();
            let opts = r.next().unwrap_or("");
            let Some(mount) = left.split_whitespace().nth(4) else {
                continue;
            };
            let mount = PathBuf::from(unescape_mount(mount));
            match fstype {
                "cgroup2" => v2 = Some(mount),
                "cgroup" => {
                    let o: Vec<&str> = opts.split(',').collect();
                    if o.contains(&"cpuacct") {
                        v1_cpu = Some(mount);
                    } else if o.contains(&"memory") {
                        v1_mem = Some(mount);
                    }
                }
                _ => {}
            }
        }
        match (v2, v1_mem, v1_cpu) {
            (Some(v2), Some(memory), _) => Some(Layout::Hybrid { v2, memory }),
            (Some(v2), None, _) => Some(Layout::V2(v2)),
            (None, memory, Some(cpuacct)) => Some(Layout::V1 { cpuacct, memory }),
            (None, _, None) => None,
        }
    }

    /// Finds the layout of the machine whose procfs is at `procfs`.
    pub fn detect(procfs: &Path) -> Result<Layout, String> {
        let mi = std::fs::read_to_string(procfs.join("self/mountinfo"))
            .map_err(|e| format!("cannot read {}/self/mountinfo: {e}", procfs.display()))?;
        Layout::from_mountinfo(&mi).ok_or_else(|| {
            "no cgroup hierarchy is mounted (neither cgroup2 nor cgroup v1 cpuacct); pass --cgroup-root".to_string()
        })
    }

    /// The layout under a root given by the user: v2 if it has `cgroup.controllers`, else
    /// v1 if it has `cpuacct.usage` (or a `cpuacct` subdirectory).
    pub fn at(root: &Path) -> Result<Layout, String> {
        if root.join("cgroup.controllers").exists()
            || (root.join("cgroup.procs").exists() && root.join("cpu.stat").exists())
        {
            return Ok(Layout::V2(root.to_path_buf()));
        }
        if root.join("unified/cgroup.controllers").exists() {
            let memory = root.join("memory");
            return Ok(if memory.join("memory.usage_in_bytes").exists() {
                Layout::Hybrid {
                    v2: root.join("unified"),
                    memory,
                }
            } else {
                Layout::V2(root.join("unified"))
            });
        }
        for cpu in [
            root.join("cpuacct"),
            root.join("cpu,cpuacct"),
            root.to_path_buf(),
        ] {
            if cpu.join("cpuacct.usage").exists() {
                let mem = root.join("memory");
                return Ok(Layout::V1 {
                    cpuacct: cpu,
                    memory: mem.join("memory.usage_in_bytes").exists().then_some(mem),
                });
            }
        }
        Err(format!(
            "{} is not a cgroup hierarchy (no cgroup.controllers, no cpuacct.usage); point --cgroup-root at the host's /sys/fs/cgroup",
            root.display()
        ))
    }

    fn cpu_root(&self) -> &Path {
        match self {
            Layout::V2(p) | Layout::Hybrid { v2: p, .. } => p,
            Layout::V1 { cpuacct, .. } => cpuacct,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Layout::V2(p) => format!("cgroup v2 at {}", p.display()),
            Layout::Hybrid { v2, memory } => format!(
                "cgroup v2 at {} (hybrid: memory from v1 at {})",
                v2.display(),
                memory.display()
            ),
            Layout::V1 { cpuacct, memory } => format!(
                "cgroup v1: cpuacct at {}{}",
                cpuacct.display(),
                memory
                    .as_ref()
                    .map(|m| format!(", memory at {}", m.display()))
                    .unwrap_or_default()
            ),
        }
    }
}

/// `\040` and friends in mountinfo paths.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.len() == 3 && oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `usage_usec` of a v2 `cpu.stat`, in seconds.
pub fn parse_cpu_stat(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|us| us as f64 / 1e6)
}

/// One scan of one cgroup: cumulative CPU seconds and current memory (hierarchical).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Counters {
    cpu_s: f64,
    mem: u64,
}

/// Every cgroup of the machine, each charged its own use.
pub struct Cgroups {
    pub layout: Layout,
    /// Read `cgroup.procs` (to match GPU context holders); costs a read per cgroup.
    pub want_pids: bool,
    /// The hierarchy as last walked, and when, and the root's descendant count then.
    tree: Vec<(String, PathBuf)>,
    walked: Option<std::time::Instant>,
    descendants: Option<u64>,
    last: HashMap<String, Counters>,
    /// Paths seen in the last scan.
    pub count: usize,
}

impl Cgroups {
    pub fn new(layout: Layout, want_pids: bool) -> Cgroups {
        let mut c = Cgroups {
            layout,
            want_pids,
            tree: Vec::new(),
            walked: None,
            descendants: None,
            last: HashMap::new(),
            count: 0,
        };
        // The first scan only sets the baselines.
        let _ = c.scan();
        c
    }

    /// Walks the hierarchy: (path as the kernel shows it, directory), parents first.
    fn walk(&self) -> Vec<(String, PathBuf)> {
        let root = self.layout.cpu_root().to_path_buf();
        let mut out = Vec::new();
        let mut stack = vec![("".to_string(), root)];
        while let Some((rel, dir)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                let path = format!("{rel}/{name}");
                out.push((path.clone(), e.path()));
                stack.push((path, e.path()));
            }
        }
        out
    }

    /// `nr_descendants` of the root's `cgroup.stat` (v2): it changes when cgroups come or go.
    fn root_descendants(&self) -> Option<u64> {
        let t = std::fs::read_to_string(self.layout.cpu_root().join("cgroup.stat")).ok()?;
        t.lines()
            .find_map(|l| l.strip_prefix("nr_descendants "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The hierarchy, walked again only when it may have changed: the root's descendant
    /// count moved, a cgroup could not be read last time, or 10 s went by (a cgroup created
    /// and another removed in between leave the count alike). Walking every directory of a
    /// large hierarchy every second would be most of the agent's cost.
    fn hierarchy(&mut self, stale: bool) -> Vec<(String, PathBuf)> {
        let count = self.root_descendants();
        let fresh = self
            .walked
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(10));
        if stale || !fresh || count != self.descendants {
            self.tree = self.walk();
            self.walked = Some(std::time::Instant::now());
            self.descendants = count;
        }
        self.tree.clone()
    }

    fn read(&self, rel: &str, dir: &Path) -> Option<Counters> {
        let number = |p: PathBuf| -> Option<u64> {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| t.trim().parse().ok())
        };
        match &self.layout {
            Layout::V2(_) | Layout::Hybrid { .. } => {
                let cpu_s = std::fs::read_to_string(dir.join("cpu.stat"))
                    .ok()
                    .and_then(|t| parse_cpu_stat(&t))?;
                let mem = number(dir.join("memory.current"))
                    .or_else(|| match &self.layout {
                        Layout::Hybrid { memory, .. } => number(
                            memory
                                .join(rel.trim_start_matches('/'))
                                .join("memory.usage_in_bytes"),
                        ),
                        _ => None,
                    })
                    .unwrap_or(0);
                Some(Counters { cpu_s, mem })
            }
            Layout::V1 { memory, .. } => {
                let ns: u64 = std::fs::read_to_string(dir.join("cpuacct.usage"))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                let mem = memory
                    .as_ref()
                    .and_then(|m| {
                        std::fs::read_to_string(
                            m.join(rel.trim_start_matches('/'))
                                .join("memory.usage_in_bytes"),
                        )
                        .ok()
                    })
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                Some(Counters {
                    cpu_s: ns as f64 / 1e9,
                    mem,
                })
            }
        }
    }
}

/// The parent path of a cgroup path (`/a/b` → `/a`; top level → "").
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// Each cgroup's own growth from hierarchical totals: its growth less its live children's,
/// clamped at zero (a child that vanished leaves its last growth with the parent).
pub fn own_shares(now: &[(String, f64)], before: &HashMap<String, f64>) -> Vec<(String, f64)> {
    let delta: HashMap<&str, f64> = now
        .iter()
        .map(|(p, v)| {
            (
                p.as_str(),
                (v - before.get(p).copied().unwrap_or(*v)).max(0.0),
            )
        })
        .collect();
    let mut children: HashMap<&str, f64> = HashMap::new();
    // The root ("") is no one's child.
    for (p, d) in delta.iter().filter(|(p, _)| !p.is_empty()) {
        *children.entry(parent(p)).or_default() += d;
    }
    now.iter()
        .map(|(p, _)| {
            let d = delta.get(p.as_str()).copied().unwrap_or(0.0);
            let c = children.get(p.as_str()).copied().unwrap_or(0.0);
            (p.clone(), (d - c).max(0.0))
        })
        .collect()
}

impl Consumers for Cgroups {
    fn scan(&mut self) -> Vec<Usage> {
        let mut walked = self.hierarchy(false);
        // The root itself, when it keeps counters (v2 does: the whole system's CPU time):
        // its own share is the processes that sit in no child cgroup (a VM, a box without
        // systemd slices), shown as "/", so `_idle` means idle (Kepler's "system" bucket).
        let root = ("".to_string(), self.layout.cpu_root().to_path_buf());
        walked.insert(0, root.clone());
        let mut now: Vec<(String, PathBuf, Counters)> = Vec::with_capacity(walked.len());
        let mut missing = false;
        for (rel, dir) in &walked {
            match self.read(rel, dir) {
                Some(c) => now.push((rel.clone(), dir.clone(), c)),
                // One that was there last time went away.
                None if self.last.contains_key(rel) => missing = true,
                None => {}
            }
        }
        if missing {
            // Something went: walk again now, so nothing new is missed either.
            walked = self.hierarchy(true);
            walked.insert(0, root);
            now.clear();
            for (rel, dir) in &walked {
                if let Some(c) = self.read(rel, dir) {
                    now.push((rel.clone(), dir.clone(), c));
                }
            }
        }
        let before_cpu: HashMap<String, f64> = self
            .last
            .iter()
            .map(|(k, v)| (k.clone(), v.cpu_s))
            .collect();
        let cpu = own_shares(
            &now.iter()
                .map(|(p, _, c)| (p.clone(), c.cpu_s))
                .collect::<Vec<_>>(),
            &before_cpu,
        );
        // Memory is a level, not a counter: own = current less the children's current.
        let mut child_mem: HashMap<&str, u64> = HashMap::new();
        for (p, _, c) in now.iter().filter(|(p, _, _)| !p.is_empty()) {
            *child_mem.entry(parent(p)).or_default() += c.mem;
        }
        let mut out = Vec::with_capacity(now.len());
        for ((p, dir, c), (_, own_cpu)) in now.iter().zip(cpu) {
            let own_mem = c
                .mem
                .saturating_sub(child_mem.get(p.as_str()).copied().unwrap_or(0));
            let pids = if self.want_pids {
                std::fs::read_to_string(dir.join("cgroup.procs"))
                    .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            out.push(Usage {
                consumer: Consumer::Cgroup(if p.is_empty() { "/".into() } else { p.clone() }),
                cpu_s: own_cpu,
                rss_bytes: own_mem,
                pids,
            });
        }
        self.count = now.len();
        self.last = now.into_iter().map(|(p, _, c)| (p, c)).collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v2_hybrid_and_v1() {
        let pure = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            Layout::from_mountinfo(pure),
            Some(Layout::V2("/sys/fs/cgroup".into()))
        );
        let hybrid = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                      35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            Layout::from_mountinfo(hybrid),
            Some(Layout::Hybrid {
                v2: "/sys/fs/cgroup/unified".into(),
                memory: "/sys/fs/cgroup/memory".into()
            })
        );
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                  35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            Layout::from_mountinfo(v1),
            Some(Layout::V1 {
                cpuacct: "/sys/fs/cgroup/cpu,cpuacct".into(),
                memory: Some("/sys/fs/cgroup/memory".into())
            })
        );
        assert_eq!(Layout::from_mountinfo("1 2 3 / / rw - ext4 x rw\n"), None);
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }

    #[test]
    fn own_share_is_growth_less_children() {
        let before: HashMap<String, f64> = [
            ("/a".to_string(), 10.0),
            ("/a/x".to_string(), 4.0),
            ("/a/y".to_string(), 1.0),
            ("/b".to_string(), 0.0),
        ]
        .into();
        let now = vec![
            ("/a".to_string(), 16.0),
            ("/a/x".to_string(), 7.0),
            ("/a/y".to_string(), 2.0),
            ("/b".to_string(), 0.5),
            ("/c".to_string(), 3.0), // new: baseline only
        ];
        let own: HashMap<String, f64> = own_shares(&now, &before).into_iter().collect();
        assert_eq!(own["/a"], 2.0);
        assert_eq!(own["/a/x"], 3.0);
        assert_eq!(own["/a/y"], 1.0);
        assert_eq!(own["/b"], 0.5);
        assert_eq!(own["/c"], 0.0);
        let total: f64 = own.values().sum();
        assert_eq!(total, 6.5, "the top-level growth, counted once");
    }

    #[test]
    fn scans_a_fake_v2_tree() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        let mk = |rel: &str, usec: u64, mem: u64| {
            let p = r.join(rel.trim_start_matches('/'));
            std::fs::create_dir_all(&p).expect("mkdir");
            std::fs::write(
                p.join("cpu.stat"),
                format!("usage_usec {usec}\nuser_usec 0\n"),
            )
            .expect("w");
            std::fs::write(p.join("memory.current"), format!("{mem}\n")).expect("w");
            std::fs::write(p.join("cgroup.procs"), "").expect("w");
        };
        std::fs::write(r.join("cgroup.controllers"), "cpu memory\n").expect("w");
        mk("/system.slice", 1_000_000, 300);
        mk("/system.slice/nginx.service", 600_000, 200);
        mk("/user.slice", 0, 0);
        let layout = Layout::at(r).expect("v2");
        let mut c = Cgroups::new(layout, true);
        mk("/system.slice", 3_000_000, 300);
        mk("/system.slice/nginx.service", 2_100_000, 200);
        mk("/user.slice", 500_000, 50);
        let u: HashMap<String, (f64, u64)> = c
            .scan()
            .into_iter()
            .map(|u| match u.consumer {
                Consumer::Cgroup(p) => (p, (u.cpu_s, u.rss_bytes)),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!((u["/system.slice/nginx.service"].0 - 1.5).abs() < 1e-9);
        assert!((u["/system.slice"].0 - 0.5).abs() < 1e-9);
        assert!((u["/user.slice"].0 - 0.5).abs() < 1e-9);
        assert_eq!(u["/system.slice"].1, 100);
        assert_eq!(c.count, 3);
    }

    /// The root's own processes (and kernel threads), in no child cgroup, are "/": on a
    /// host without slices all busy CPU lands there, never in `_idle`.
    #[test]
    fn the_roots_own_processes_are_a_consumer() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        let stat = |p: &std::path::Path, usec: u64| {
            std::fs::create_dir_all(p).expect("mkdir");
            std::fs::write(p.join("cpu.stat"), format!("usage_usec {usec}\n")).expect("w");
        };
        std::fs::write(r.join("cgroup.controllers"), "cpu memory\n").expect("w");
        std::fs::write(r.join("cgroup.procs"), "1\n77\n").expect("w");
        stat(r, 10_000_000);
        let layout = Layout::at(r).expect("v2");
        let mut c = Cgroups::new(layout.clone(), true);
        stat(r, 12_500_000);
        let u = c.scan();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].consumer, Consumer::Cgroup("/".into()));
        assert!((u[0].cpu_s - 2.5).abs() < 1e-9, "{}", u[0].cpu_s);
        assert_eq!(u[0].pids, vec![1, 77]);
        // With a slice beside it: the root keeps only what its children did not use.
        stat(&r.join("work.slice"), 0);
        let mut c = Cgroups::new(layout, false);
        stat(r, 15_000_000);
        stat(&r.join("work.slice"), 2_000_000);
        let u: HashMap<String, f64> = c
            .scan()
            .into_iter()
            .map(|u| match u.consumer {
                Consumer::Cgroup(p) => (p, u.cpu_s),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!((u["/"] - 0.5).abs() < 1e-9, "{u:?}");
        assert!((u["/work.slice"] - 2.0).abs() < 1e-9, "{u:?}");
    }

    #[test]
    fn new_and_removed_cgroups_are_seen_at_the_next_scan() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        let mk = |rel: &str| {
            let p = r.join(rel);
            std::fs::create_dir_all(&p).expect("mkdir");
            std::fs::write(p.join("cpu.stat"), "usage_usec 0\n").expect("w");
        };
        std::fs::write(r.join("cgroup.controllers"), "cpu\n").expect("w");
        std::fs::write(r.join("cgroup.stat"), "nr_descendants 1\n").expect("w");
        mk("a");
        let mut c = Cgroups::new(Layout::at(r).expect("v2"), false);
        assert_eq!(c.scan().len(), 1);
        // A new cgroup: the root's descendant count moves, the hierarchy is walked again.
        mk("b");
        std::fs::write(r.join("cgroup.stat"), "nr_descendants 2\n").expect("w");
        assert_eq!(c.scan().len(), 2);
        // One goes (and another comes: the count alike): the failed read walks again.
        std::fs::remove_dir_all(r.join("a")).expect("rm");
        mk("c");
        let seen: Vec<Consumer> = c.scan().into_iter().map(|u| u.consumer).collect();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.contains(&Consumer::Cgroup("/c".into())));
    }

    proptest::proptest! {
        #[test]
        fn mountinfo_never_panics(s in "\\PC{0,200}") {
            let _ = Layout::from_mountinfo(&s);
            let _ = parse_cpu_stat(&s);
            let _ = unescape_mount(&s);
        }
    }
}

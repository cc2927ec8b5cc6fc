//! Freezing and stopping a workload's whole process tree. Preferred: a cgroup v2 of its own
//! (created under decompute's cgroup), whose `cgroup.freeze` stops every member at once —
//! children started meanwhile included — and whose `cpu.stat` gives exact CPU time. Otherwise
//! SIGSTOP/SIGCONT to every process of the tree, re-scanned each interval so new children
//! are caught. A frozen workload is always thawed before decompute exits.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A cgroup v2 created for one workload.
#[derive(Debug)]
pub struct Cgroup {
    pub dir: PathBuf,
}

/// Finds the cgroup v2 mount point in `/proc/self/mountinfo` text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// decompute's own cgroup v2 path from `/proc/self/cgroup` text (the `0::` line).
pub fn own_cgroup(cgroup: &str) -> Option<String> {
    cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
}

impl Cgroup {
    /// Where a workload cgroup would go, if cgroup v2 is mounted and writable here.
    pub fn parent_dir(procfs: &Path) -> Result<PathBuf, String> {
        let mi = std::fs::read_to_string(procfs.join("self/mountinfo"))
            .map_err(|e| format!("no mountinfo: {e}"))?;
        let mount = cgroup2_mount(&mi).ok_or("no cgroup v2 mounted")?;
        let cg = std::fs::read_to_string(procfs.join("self/cgroup"))
            .map_err(|e| format!("no /proc/self/cgroup: {e}"))?;
        let own = own_cgroup(&cg).ok_or("not in a cgroup v2")?;
        let dir = mount.join(own.trim_start_matches('/'));
        // SAFETY: access(2) with a valid NUL-terminated path.
        let writable = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
            .unwrap_or(false);
        if !writable || !dir.join("cgroup.procs").exists() {
            return Err(format!(
                "{} is not writable (no delegated cgroup)",
                dir.display()
            ));
        }
        Ok(dir)
    }

    /// Creates `decompute-<id>` under decompute's cgroup. Empty `decompute-*` cgroups left
    /// by earlier runs (whose trees outlived them) are removed first; populated ones stay.
    pub fn create(procfs: &Path, id: &str) -> Result<Cgroup, String> {
        let parent = Self::parent_dir(procfs)?;
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("decompute-") {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let dir = parent.join(format!("decompute-{id}"));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if !dir.join("cgroup.freeze").exists() {
            let _ = std::fs::remove_dir(&dir);
            return Err("the kernel's cgroup v2 has no freezer (Linux 5.2+)".into());
        }
        Ok(Cgroup { dir })
    }

    /// The file a new process writes "0" to in order to join.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub fn set_frozen(&self, frozen: bool) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.freeze"))?;
        f.write_all(if frozen { b"1" } else { b"0" })
    }

    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// CPU time of everything that ever ran in the cgroup, seconds (`cpu.stat` usage_usec).
    pub fn cpu_s(&self) -> Option<f64> {
        let t = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        t.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|us| us / 1e6)
    }

    /// SIGKILLs every member (`cgroup.kill`, Linux 5.14+), else each pid.
    pub fn kill_all(&self) {
        let ok = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.kill"))
            .and_then(|mut f| f.write_all(b"1"))
            .is_ok();
        if !ok {
            signal_all(&self.pids(), libc::SIGKILL);
        }
    }

    /// Removes the cgroup even if processes still run in it: they are thawed and moved to
    /// the parent cgroup first (where decompute itself runs), so no `decompute-*` cgroup
    /// outlives its run. Returns the pids moved.
    pub fn release(&self) -> Vec<i32> {
        let _ = self.set_frozen(false);
        let left = self.pids();
        if let Some(parent) = self.dir.parent() {
            for p in &left {
                // One pid per write, as the kernel wants.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(parent.join("cgroup.procs"))
                    .and_then(|mut f| f.write_all(p.to_string().as_bytes()));
            }
        }
        self.remove();
        left
    }

    /// Removes the cgroup (only possible once it is empty); thaws it first.
    pub fn remove(&self) -> bool {
        let _ = self.set_frozen(false);
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return true,
                // Already gone: another run tidied it once it was empty.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
                Err(_) => {}
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }
}

/// Marks the runs of `ledger` whose monitor died as interrupted and thaws what they left
/// frozen on this host; returns what was done, in words, for the caller to say. A ledger
/// that cannot be swept (a read-only file, a pooler that refused) is a note, never silence.
pub fn recover(l: &mut dyn crate::ledger::Ledger, procfs: &Path) -> Vec<String> {
    let found = match l.recover() {
        Ok(f) => f,
        Err(e) => {
            return vec![format!(
                "note: the ledger's runs whose monitor died could not be checked this time ({e})"
            )]
        }
    };
    let mut said = Vec::new();
    if found.is_empty() {
        return said;
    }
    said.push(format!(
        "note: {} earlier run(s) whose monitor died were marked interrupted in the ledger",
        found.len()
    ));
    for r in found {
        if let Some(done) = r.thaw.as_ref().and_then(|t| thaw_orphan(t, procfs)) {
            said.push(format!(
                "note: thawed the workload of interrupted run {}: {done}",
                r.id
            ));
        }
    }
    said
}

/// Thaws the workload of a run whose monitor died while it was frozen: its cgroup (thawed,
/// and removed once empty) or its processes (SIGCONT, only to pids whose start time still
/// matches, so a reused pid is never touched). Returns what was done, for the user.
pub fn thaw_orphan(t: &crate::ledger::Thaw, procfs: &Path) -> Option<String> {
    if t.host != crate::host::hostname() {
        return None;
    }
    let mut done = Vec::new();
    if let Some(dir) = &t.cgroup {
        let c = Cgroup {
            dir: PathBuf::from(dir),
        };
        if c.dir.join("cgroup.freeze").exists() {
            let _ = c.set_frozen(false);
            let n = c.pids().len();
            if n == 0 {
                c.remove();
                done.push(format!("cgroup {dir} thawed and removed"));
            } else {
                // The processes run on in the parent cgroup, so nothing keeps the run's own
                // cgroup alive once they end.
                let moved = c.release().len();
                done.push(format!(
                    "cgroup {dir} thawed, its {moved} process(es) moved to the parent cgroup, and removed"
                ));
            }
        }
    }
    let mut n = 0;
    for (pid, start) in &t.pids {
        let alive = std::fs::read_to_string(procfs.join(format!("{pid}/stat")))
            .ok()
            .and_then(|s| crate::procfs::pid::parse(&s).ok())
            .is_some_and(|s| s.starttime == *start);
        if alive && *pid > 1 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(*pid, libc::SIGCONT);
            }
            n += 1;
        }
    }
    if n > 0 {
        done.push(format!("{n} stopped process(es) continued"));
    }
    (!done.is_empty()).then(|| done.join("; "))
}

/// The start times of `pids` (for [`crate::ledger::Thaw`]); vanished ones are left out.
pub fn with_start_times(pids: &[i32], procfs: &Path) -> Vec<(i32, u64)> {
    pids.iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(procfs.join(format!("{p}/stat"))).ok()?;
            crate::procfs::pid::parse(&s)
                .ok()
                .map(|s| (*p, s.starttime))
        })
        .collect()
}

/// Sends `sig` to every pid.
pub fn signal_all(pids: &[i32], sig: i32) {
    for &p in pids {
        if p > 1 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(p, sig);
            }
        }
    }
}

/// How the workload is frozen.
#[derive(Debug)]
pub enum Freezer {
    Cgroup(Cgroup),
    Signals,
}

impl Freezer {
    /// The cgroup v2 freezer when a cgroup can be made here, else signals.
    /// `DECOMPUTE_FREEZER=signals` forces the signal method (tests, or a cgroup that
    /// misbehaves).
    pub fn choose(procfs: &Path, id: &str) -> Freezer {
        if std::env::var("DECOMPUTE_FREEZER").as_deref() == Ok("signals") {
            return Freezer::Signals;
        }
        match Cgroup::create(procfs, id) {
            Ok(c) => Freezer::Cgroup(c),
            Err(_) => Freezer::Signals,
        }
    }

    pub fn method(&self) -> String {
        match self {
            Freezer::Cgroup(c) => format!("cgroup v2 freezer ({})", c.dir.display()),
            Freezer::Signals => "SIGSTOP/SIGCONT to every process of the tree".into(),
        }
    }

    /// Freezes or thaws; `tree` is the current tree (used by the signal method).
    pub fn set(&self, frozen: bool, tree: &[i32]) {
        match self {
            Freezer::Cgroup(c) => {
                if c.set_frozen(frozen).is_err() {
                    signal_all(tree, if frozen { libc::SIGSTOP } else { libc::SIGCONT });
                }
            }
            Freezer::Signals => {
                signal_all(tree, if frozen { libc::SIGSTOP } else { libc::SIGCONT })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v2_mount_and_own_path() {
        let mi = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("1 2 3 / /x rw - ext4 /dev/sda rw\n"), None);
        assert_eq!(
            own_cgroup("4:memory:/x\n0::/user.slice/session-1.scope\n").as_deref(),
            Some("/user.slice/session-1.scope")
        );
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }
}

//! Readers for the parts of `/proc` decompute uses: system CPU time (`stat`), per-process
//! times and memory (`PID/stat`), memory size (`meminfo`) and the CPU model (`cpuinfo`).
//! Every reader takes the procfs root as a parameter (`--procfs-root`), so tests lay out a
//! fake tree and a container can read the host's; parsers take `&str`.

pub mod cpuinfo;
pub mod meminfo;
pub mod pid;
pub mod stat;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {error}; check --procfs-root / DECOMPUTE_PROCFS_ROOT points at a mounted procfs")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: {problem}")]
    Parse { path: String, problem: String },
}

/// The root of a procfs tree (normally `/proc`).
#[derive(Debug, Clone)]
pub struct ProcRoot(pub PathBuf);

impl ProcRoot {
    pub fn new(p: impl Into<PathBuf>) -> ProcRoot {
        ProcRoot(p.into())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    pub fn read(&self, rel: &str) -> Result<String, ProcError> {
        read_path(&self.path(rel))
    }

    /// Reads and parses one file, attaching its path to parse errors.
    pub fn parse<T>(
        &self,
        rel: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ProcError> {
        let text = self.read(rel)?;
        f(&text).map_err(|problem| ProcError::Parse {
            path: self.path(rel).display().to_string(),
            problem,
        })
    }
}

pub fn read_path(p: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(p).map_err(|source| ProcError::Io {
        path: p.display().to_string(),
        error: source,
    })
}

/// A `sysconf` value, or `fallback` where the system gives none.
fn sysconf_or(name: libc::c_int, fallback: i64) -> i64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as i64
    } else {
        fallback
    }
}

/// Clock ticks per second for `/proc` times (USER_HZ).
pub fn clock_ticks_per_second() -> f64 {
    sysconf_or(libc::_SC_CLK_TCK, 100) as f64
}

/// Bytes per memory page, for `rss` in `/proc/PID/stat`.
pub fn page_size() -> u64 {
    sysconf_or(libc::_SC_PAGESIZE, 4096).unsigned_abs()
}

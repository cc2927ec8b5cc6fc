//! Facts about this host that every layer needs and that depend on nothing else of
//! decompute: its name, as the kernel has it (the ledger's `host` column, the Slurm node, the
//! host a frozen workload can be thawed on).

/// The host's name: `/proc/sys/kernel/hostname` (the UTS namespace's, so a container or a
/// test's `unshare --uts` has its own), else `$HOSTNAME`, else `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Where decompute keeps its state on this host (the Slurm controller's memory, the spool of
/// runs not yet recorded): `$XDG_STATE_HOME/decompute`, else `~/.local/state/decompute`.
pub fn state_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state"))
        })
        .map(|d| d.join("decompute"))
}

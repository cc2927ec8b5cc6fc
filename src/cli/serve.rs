//! `decompute serve`: the node agent. Reads flags, starts the agent, serves until SIGTERM or
//! SIGINT, then finishes the answers in flight and exits 0.

use super::{FactorArgs, MachineArgs};
use crate::detect::Detection;
use crate::settings::PolicyChoice;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to serve /metrics on (loopback by default: exposing it is your choice, e.g.
    /// 0.0.0.0:9875 for a cluster)
    #[arg(
        long,
        env = "DECOMPUTE_LISTEN",
        default_value = "127.0.0.1:9875",
        value_name = "ADDR"
    )]
    pub listen: String,
    /// Sampling interval, 100ms to 60s
    #[arg(long, default_value = "1s", value_parser = super::run::parse_interval, value_name = "DURATION")]
    pub interval: Duration,
    /// Cgroups with series of their own (the largest); the rest are summed as _other
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub top: u32,
    /// Root of the cgroup hierarchy [default: found in /proc/self/mountinfo]
    #[arg(long, env = "DECOMPUTE_CGROUP_ROOT", value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,
    /// Account every Slurm job on this node: per-job metrics (`slurm_job_id`) and one ledger
    /// record per job when it ends here (docs/slurm.md)
    #[arg(long)]
    pub slurm: bool,
    /// How Slurm tracks jobs' processes here [default: asked of `scontrol show config`]
    #[arg(long, value_parser = ["cgroup", "linuxproc"], requires = "slurm", value_name = "PLUGIN")]
    pub slurm_proctrack: Option<String>,
    /// This cluster's SlurmdSpoolDir: under proctrack/linuxproc only step daemons with a
    /// socket there are counted (another cluster's jobs on the host are not) [default: asked
    /// of `scontrol show config`]
    #[arg(long, requires = "slurm", value_name = "DIR")]
    pub slurm_spool_dir: Option<PathBuf>,
    /// This Slurm node's name, where several slurmds share the host (two clusters, or
    /// --enable-multiple-slurmd): under proctrack/cgroup only the jobs in its own
    /// `<NodeName>_slurmstepd.scope` are counted [default: $SLURMD_NODENAME, else the host name]
    #[arg(long, requires = "slurm", value_name = "NAME")]
    pub slurm_node: Option<String>,
    #[command(flatten)]
    pub ledger: super::LedgerArgs,
    #[command(flatten)]
    pub machine: MachineArgs,
    #[command(flatten)]
    pub factors: FactorArgs,
}

/// `KEY = VALUE` lines of `scontrol show config`.
fn slurm_config() -> Option<String> {
    let o = crate::slurm::command::run(
        "scontrol",
        &["show", "config"],
        crate::slurm::command::DEADLINE,
        &super::terminating,
    )
    .ok()?;
    o.success.then_some(o.stdout)
}

/// This node's `SlurmdSpoolDir` as `scontrol show config` gives it (`%n` and `%h` are the
/// node's name).
fn spool_dir_of(config: &str, node: &str) -> Option<PathBuf> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "SlurmdSpoolDir")
            .then(|| PathBuf::from(v.trim().replace("%n", node).replace("%h", node)))
    })
}

/// The cluster's `ProctrackType` (`cgroup` or `linuxproc`), from `scontrol show config`.
fn proctrack() -> anyhow::Result<String> {
    let o = crate::slurm::command::run(
        "scontrol",
        &["show", "config"],
        crate::slurm::command::DEADLINE,
        &super::terminating,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot learn how Slurm tracks jobs ({e}); pass --slurm-proctrack cgroup|linuxproc"
        )
    })?;
    let text = o.stdout;
    let found = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "ProctrackType").then(|| v.trim().trim_start_matches("proctrack/").to_string())
    });
    match found {
        Some(p) if p == "cgroup" || p == "linuxproc" => Ok(p),
        Some(p) => anyhow::bail!(
            "ProctrackType proctrack/{p} is not one decompute follows; pass --slurm-proctrack cgroup|linuxproc"
        ),
        None => anyhow::bail!(
            "scontrol show config gave no ProctrackType ({}); pass --slurm-proctrack cgroup|linuxproc",
            o.stderr.trim()
        ),
    }
}

pub fn main(a: ServeArgs) -> anyhow::Result<()> {
    // The policy file only matters to the Slurm accountant (the team's ledger, project).
    let policy = if a.slurm {
        PolicyChoice::Discover
    } else {
        PolicyChoice::NotRead
    };
    let settings = super::settings(super::said(policy, &[&a.factors, &a.machine, &a.ledger]))?;
    let data = settings.factor_data()?;
    let conv = settings.conversion(&data)?;
    let probe = settings.probe()?;
    let listener = std::net::TcpListener::bind(&a.listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}; choose another address with --listen (host:port)",
            a.listen
        )
    })?;
    let detection = Detection::run(&probe, &data);
    for w in &detection.warnings {
        crate::say!("decompute: warning: {w}");
    }
    let mut slurm_steps = false;
    let mut slurm_spool = None;
    let mut hook: Option<crate::serve::Hook> = None;
    let mut writer = None;
    if a.slurm {
        use crate::slurm::accountant;
        let pt = match &a.slurm_proctrack {
            Some(p) => p.clone(),
            None => proctrack()?,
        };
        let node = a
            .slurm_node
            .clone()
            .or_else(|| {
                std::env::var("SLURMD_NODENAME")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(crate::host::hostname);
        slurm_steps = pt == "linuxproc";
        if slurm_steps {
            slurm_spool = match &a.slurm_spool_dir {
                Some(d) => Some(d.clone()),
                None => slurm_config().and_then(|c| spool_dir_of(&c, &node)),
            };
            if let Some(d) = &slurm_spool {
                if std::fs::read_dir(d).is_err() {
                    anyhow::bail!(
                        "the Slurm spool directory {} cannot be read as a directory; pass --slurm-spool-dir with this cluster's SlurmdSpoolDir (scontrol show config | grep SlurmdSpoolDir)",
                        crate::term::escape(&d.display().to_string())
                    );
                }
            }
            match &slurm_spool {
                Some(d) => crate::say!(
                    "decompute: counting the step daemons of this cluster only (sockets in {})",
                    crate::term::escape(&d.display().to_string())
                ),
                None => crate::say!(
                    "decompute: warning: this cluster's SlurmdSpoolDir is unknown (scontrol show config gave none): every slurmstepd on the host is counted; pass --slurm-spool-dir DIR"
                ),
            }
        }
        let policy = settings.policy().cloned();
        let loc = settings.ledger()?;
        let cx = accountant::Context {
            node: node.clone(),
            host: crate::run::host_info(&detection),
            conv: conv.clone(),
            policy_project: policy.as_ref().and_then(|p| p.project.clone()),
            interval_s: a.interval.as_secs_f64(),
            tracking: format!("proctrack/{pt}"),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let mut acc = accountant::Accountant::new(tx).for_node(&node);
        hook = Some(Box::new(move |iv, t| acc.tick(iv, t)));
        crate::say!(
            "decompute: accounting Slurm jobs on {node} (proctrack/{pt}); records to {}",
            loc.shown()
        );
        writer = Some(
            std::thread::Builder::new()
                .name("slurm-writer".into())
                .spawn(move || {
                    accountant::writer(
                        rx,
                        cx,
                        |ids| accountant::squeue_jobs("squeue", ids, &super::terminating),
                        accountant::ledger_writer(loc),
                    )
                })?,
        );
    }
    let opts = crate::serve::Options {
        interval: a.interval,
        top: a.top as usize,
        cgroup_root: a.cgroup_root.clone(),
        procfs_root: a.machine.procfs_root.clone(),
        slurm_steps,
        slurm_spool,
    };
    let agent = crate::serve::Agent::start(detection, &conv, &opts, hook)
        .map_err(|e| anyhow::anyhow!(e))?;
    super::install_termination();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !super::terminating() {
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(a.listen.clone());
    crate::say!(
        "decompute: serving http://{addr}/metrics every {} ({}; zone {}, {} gCO2e/kWh)",
        crate::units::Seconds(a.interval.as_secs_f64()),
        agent.describe,
        conv.zone,
        conv.grid.value
    );
    crate::serve::serve(&agent, listener, stop)?;
    agent.stop();
    // The accountant went with the sampling thread, handing over the jobs still running;
    // the writer finishes them before the agent exits.
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_spool_directory_is_read_from_slurms_config() {
        let c = "Configuration data as of 2026-12-05T00:00:00\nSlurmdPort              = 6818\nSlurmdSpoolDir          = /var/spool/slurmd/%n\n";
        assert_eq!(
            super::spool_dir_of(c, "vm"),
            Some(std::path::PathBuf::from("/var/spool/slurmd/vm"))
        );
        assert_eq!(super::spool_dir_of("SlurmdPort = 1\n", "vm"), None);
    }
}

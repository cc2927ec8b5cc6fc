//! `decompute serve`: the node agent. Reads flags, starts the agent, serves until SIGTERM or
//! SIGINT, then finishes the answers in flight and exits 0.

use super::{FactorArgs, MachineArgs};
use crate::detect::Detection;
use crate::factors;
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
    #[command(flatten)]
    pub machine: MachineArgs,
    #[command(flatten)]
    pub factors: FactorArgs,
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_sig: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// SIGTERM and SIGINT end the agent gracefully.
fn install_termination() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_terminate as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn main(a: ServeArgs) -> anyhow::Result<()> {
    let cfg = a.factors.load_config()?;
    let data = a.factors.data()?;
    let conv = factors::resolve(&data, &a.factors.request(&cfg))?;
    let probe = a.machine.probe(&cfg)?;
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
    let opts = crate::serve::Options {
        interval: a.interval,
        top: a.top as usize,
        cgroup_root: a.cgroup_root.clone(),
        procfs_root: a.machine.procfs_root.clone(),
    };
    let agent = crate::serve::Agent::start(detection, &conv, &opts, None)
        .map_err(|e| anyhow::anyhow!(e))?;
    install_termination();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !TERMINATE.load(Ordering::SeqCst) {
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
    Ok(())
}

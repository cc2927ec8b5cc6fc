//! Consumers: who used the machine in an interval, for the sampler to attribute each
//! source's energy to. A run's consumer is its workload's process tree ([`tree`]); a node
//! agent's are every cgroup of the machine ([`cgroups`]). Each scan reports, per consumer,
//! the CPU time it used since the last scan, the memory it holds and its pids.

pub mod cgroups;
pub mod tree;

use crate::sample::Consumer;

/// What one consumer used in the interval just ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub consumer: Consumer,
    /// CPU seconds used since the previous scan (user + system).
    pub cpu_s: f64,
    /// Resident memory now, bytes.
    pub rss_bytes: u64,
    /// Its live processes (to match GPU context holders).
    pub pids: Vec<i32>,
}

/// A set of consumers the sampler can scan.
pub trait Consumers: Send {
    /// Usage of each consumer since the last call.
    fn scan(&mut self) -> Vec<Usage>;
}

impl Consumers for Box<dyn Consumers> {
    fn scan(&mut self) -> Vec<Usage> {
        (**self).scan()
    }
}

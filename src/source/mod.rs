//! Sources of energy readings, one per meter or model: RAPL counters and NVML (measured),
//! the CPU load curve and DRAM per GB (modelled). Each is a [`Source`]: polled once per
//! interval, it returns the host's energy per resource over that interval, or a typed error
//! that tells the sampler whether to retry next interval, fall back to a model, or stop
//! using it. Sources know nothing about processes; the sampler attributes their energy.

pub mod cpu_model;
pub mod dram_model;
pub mod nvml;
pub mod nvml_script;
pub mod rapl;

use crate::sample::{Method, Resource};
use crate::units::{Joules, Seconds};

/// What a source is told when polled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollContext {
    /// Length of the interval just ended (monotonic clock).
    pub dt: Seconds,
    /// Busy share of all CPUs over it, 0–1 (for load-driven models).
    pub load: f64,
}

/// How a reading's energy is shared between consumers.
#[derive(Debug, Clone, PartialEq)]
pub enum ShareBy {
    /// By each consumer's share of busy CPU time (CPU packages).
    CpuTime,
    /// By each consumer's share of installed memory held resident (DRAM).
    Memory,
    /// By process: each pid's share of the device's energy (a GPU shared by utilisation);
    /// a consumer gets the sum of its processes' shares, what no consumer holds is idle.
    Weights(Vec<(i32, f64)>),
}

/// The host's energy on one resource over one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub resource: Resource,
    pub method: Method,
    pub energy: Joules,
    pub low: Joules,
    pub high: Joules,
    pub share: ShareBy,
}

/// Why a poll gave no reading, and what the sampler should do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The source took a fresh baseline (after a failed read): no reading for this interval,
    /// not a failure. The sampler covers the interval with the fallback model.
    #[error("baseline taken")]
    Baseline,
    /// A read failed that may work next time: the sampler covers this interval with the
    /// fallback model and gives up on the source after a few failures in a row.
    #[error("{0}")]
    Retry(String),
    /// The source cannot work any more: switch to the fallback model for good.
    #[error("{0}")]
    Fallback(String),
    /// The source is gone (a GPU fell off the bus) and nothing replaces it.
    #[error("{0}")]
    Stop(String),
}

/// One meter or model.
pub trait Source: Send {
    /// Short label for reports: `rapl:package-0+package-1`, `model:vcpu`, `nvml`.
    fn label(&self) -> String;
    /// Energy per resource over the interval just ended.
    fn poll(&mut self, ctx: &PollContext) -> Result<Vec<Reading>, SourceError>;
    /// The formula, inputs and their sources, for `--explain` (models only).
    fn explain(&self) -> Vec<String> {
        Vec::new()
    }
    /// Problems met while polling that did not stop it (each is reported once).
    fn warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// A source standing for what a failed one measured, once it is dropped.
pub type Fallback = Box<dyn Source>;

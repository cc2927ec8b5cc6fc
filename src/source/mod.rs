//! Sources of energy readings: measured (RAPL counters, NVML) and modelled (CPU load
//! curve, DRAM per GB). Each reports energy over an interval; the monitor turns those into
//! [`crate::sample::Sample`]s.

pub mod cpu_model;
pub mod dram_model;
pub mod nvml;
pub mod rapl;

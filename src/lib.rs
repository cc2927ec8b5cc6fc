//! decompute: measure, model and limit the energy, carbon and water of computing.
//!
//! The library holds everything; the `decompute` binary parses flags and calls in.
//! Sources read meters (`source::rapl`, `source::nvml`) or model them
//! (`source::cpu_model`, `source::dram_model`); the `monitor` turns readings into
//! [`sample::Sample`]s; `attribution` splits host energy between the workload and the
//! rest; `factors` converts energy into carbon and water with traced sources; `report` and
//! `render` produce what people and machines read.

#[macro_use]
pub mod term;

pub mod child;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod csvdata;
pub mod detect;
pub mod duration;
pub mod estimate;
pub mod factors;
pub mod govern;
pub mod infile;
pub mod ledger;
pub mod outfile;
pub mod procfs;
pub mod render;
pub mod report;
pub mod run;
pub mod sample;
pub mod sampler;
pub mod serve;
pub mod signal;
pub mod slurm;
pub mod source;
pub mod ticker;
pub mod timefmt;
pub mod track;
pub mod ulid;
pub mod units;

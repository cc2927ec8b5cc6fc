//! decompute: measure, model and limit the energy, carbon and water of computing.
//!
//! The library holds everything; the `decompute` binary and the Python extension parse their
//! arguments and call in. Layers, lowest first (an import only points down; see
//! `docs/architecture.md` and `tools/module-cycles.py`):
//! - base: `term`, `host`, `child`, `procfs`, `csvdata`, `duration`, `outfile`, `ulid`,
//!   `infile`, `timefmt`, `units`;
//! - data and model: `factors` (shipped factors with provenance), `sample`, `report` (the
//!   `decompute.run/1` report and the nouns it carries), `ticker`, `signal` (grid signals),
//!   `source` (RAPL, NVML and the models), `config`, `estimate`;
//! - record and limits: `ledger` (the trait, its rules, SQLite and PostgreSQL), `govern`
//!   (budgets, the policy file, the governor);
//! - measuring core: `consumer` (process trees, cgroups), `sampler` (attribution of each
//!   interval), `detect`, `render` (data to bytes);
//! - settings: `settings` (flags, environment, config file and policy file resolved once);
//! - drivers: `run`, `serve`, `slurm`, `track`;
//! - front: `cli`.

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
pub mod host;
pub mod hosted;
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
pub mod settings;
pub mod signal;
pub mod slurm;
pub mod source;
pub mod ticker;
pub mod timefmt;
pub mod track;
pub mod ulid;
pub mod units;

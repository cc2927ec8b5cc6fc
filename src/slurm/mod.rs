//! decompute as a Slurm citizen: the `SLURM_*` variables of a job step as run tags
//! ([`env`]), Slurm's own machine-readable output (`squeue --json`, `--format`) parsed
//! ([`jobs`]), every job's processes on a node under `proctrack/linuxproc` ([`steps`]), the
//! node agent's per-job accounting that writes one ledger record per job and node
//! ([`accountant`]), and the cluster controller that holds over-budget accounts' jobs and
//! suspends flexible ones while the grid is dirty ([`govern`] decides, [`controller`] reads the
//! queue and acts). Slurm's commands are run at
//! the edges, never inside a sampling tick, each with a deadline ([`command`]).

pub mod accountant;
pub mod command;
pub mod controller;
pub mod env;
pub mod govern;
pub mod jobs;
pub mod steps;

//! Limits: budgets that warn, pause or stop a workload, a team policy file of project
//! budgets per period, yielding to a stressed or dirty grid, freezing a process tree, and
//! planning the cleanest start time.

pub mod budget;
pub mod freeze;
pub mod governor;
pub mod period;
pub mod policy;
pub mod usage;
pub mod when;
pub mod yielding;

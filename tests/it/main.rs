//! Integration tests: the library against fake /sys trees, and the real `decompute` binary
//! end to end on this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod estimate;
mod fixtures;
mod interop;
mod ledger;
mod limits;
mod monitor;
mod rapl;
mod serve;
mod team;
mod trust;

//! Integration tests: the library against fake /sys trees, and the real `decompute` binary
//! end to end on this machine.

mod cli;
mod fixtures;
mod monitor;
mod rapl;

//! Integration tests: the library against fake /sys trees, and the real `decompute` binary
//! end to end on this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Runs a test body `fn NAME(ledger: &str)` on a fresh SQLite file and, when the test
/// services are up, on a fresh PostgreSQL database, directly and through PgBouncer in
/// transaction mode.
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                let d = tempfile::tempdir().expect("tmp");
                super::$name(&d.path().join("l.sqlite").display().to_string());
            }
            #[test]
            fn postgres() {
                if let Some(url) = crate::support::postgres_ledger() {
                    super::$name(&url);
                }
            }
            #[test]
            fn pgbouncer() {
                if let Some(url) = crate::support::pgbouncer_ledger() {
                    super::$name(&url);
                }
            }
        }
    };
}

mod cli;
mod controller;
mod estimate;
mod fleet;
mod gpu;
mod grid;
mod interop;
mod ledger;
mod ledger_files;
mod limits;
mod monitor;
mod outputs;
mod policy;
mod processes;
mod provenance;
mod rapl;
mod report;
mod secrets;
mod serve;
mod slurm;
mod support;
mod team;

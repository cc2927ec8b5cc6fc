//! Renderers: pure functions from a report (or a live reading) to text. No I/O here, so
//! every renderer is tested on fixed inputs and new outputs (HTML, Prometheus) slot in.

pub mod explain;
pub mod html;
pub mod ledger;
pub mod scale;
pub mod slurm;
pub mod status;
pub mod summary;
pub mod svg;

use crate::report::RunReport;

/// The versioned JSON report, pretty-printed, with a trailing newline.
pub fn json(report: &RunReport) -> String {
    let mut s =
        serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

/// Snapshot tests: a renderer's whole output compared with a plain file under
/// `tests/fixtures/snapshots/`; `UPDATE_SNAPSHOTS=1 cargo test` rewrites them (review the diff).
#[cfg(test)]
pub(crate) mod snapshot {
    use std::path::PathBuf;

    fn path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/snapshots")
            .join(name)
    }

    pub fn check(name: &str, actual: &str) {
        let p = path(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, actual).expect("write snapshot");
            return;
        }
        let want = std::fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run UPDATE_SNAPSHOTS=1 cargo test to create it",
                p.display()
            )
        });
        if want != actual {
            let line = want
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(actual.lines().count()));
            panic!(
                "{} differs from the renderer's output at line {}:\n  snapshot: {}\n  now:      {}\n(UPDATE_SNAPSHOTS=1 cargo test rewrites it; review the diff)",
                p.display(),
                line + 1,
                want.lines().nth(line).unwrap_or("<end>"),
                actual.lines().nth(line).unwrap_or("<end>")
            );
        }
    }

    /// The demo ledger of `tools/demo-ledger.py`, as records.
    pub fn demo_records() -> Vec<crate::ledger::RunRecord> {
        include_str!("../../tests/fixtures/report/demo.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("record"))
            .collect()
    }

    /// A real `decompute run` record (modelled CPU on a VM).
    pub fn real_record() -> crate::ledger::RunRecord {
        serde_json::from_str(include_str!("../../tests/fixtures/report/template.json"))
            .expect("record")
    }
}

//! Renderers: pure functions from a report (or a live reading) to text. No I/O here, so
//! every renderer is tested on fixed inputs and new outputs (HTML, Prometheus) slot in.

pub mod explain;
pub mod ledger;
pub mod prometheus;
pub mod scale;
pub mod status;
pub mod summary;

use crate::report::RunReport;

/// The versioned JSON report, pretty-printed, with a trailing newline.
pub fn json(report: &RunReport) -> String {
    let mut s =
        serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

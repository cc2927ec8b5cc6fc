//! `decompute slurm status` as text: the controller's grid state, the jobs it holds and
//! suspends now, and every pause it made, from its state file.

use crate::slurm::govern::Memory;
use std::path::Path;

/// A list in words, or "none".
fn listed(items: Vec<String>) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

pub fn controller(path: &Path, m: &Memory) -> String {
    let t = |x: f64| crate::timefmt::rfc3339_s(x);
    let mut o = format!(
        "controller state {}\ngrid {} since {}\n",
        path.display(),
        if m.grid_dirty { "dirty" } else { "clean" },
        if m.grid_since > 0.0 {
            t(m.grid_since)
        } else {
            "-".into()
        }
    );
    let suspended = m.suspended.iter().map(|(j, c)| format!("{j} ({c})"));
    o.push_str(&format!(
        "suspended by the controller: {}\n",
        listed(suspended.collect())
    ));
    let held = m.held.keys().map(u64::to_string);
    o.push_str(&format!("held for a budget: {}\n", listed(held.collect())));
    o.push_str("pauses\n  job        start                 end                   cause   grid\n");
    for p in &m.pauses {
        o.push_str(&format!(
            "  {:<10} {:<21} {:<21} {:<7} {}\n",
            p.job,
            t(p.start),
            p.end.map(t).unwrap_or_else(|| "(suspended)".into()),
            p.cause,
            p.grid.map(|g| g.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    o
}

//! What an empty tracker costs to start and to stop, in the library itself (no Python):
//! the median and range of N start+stop pairs. `bench/tracker-start-stop.sh` runs it beside
//! the Python figures.
//!
//!     cargo run --release --example track_cost [N]

#![allow(clippy::disallowed_macros)] // a benchmark prints its figures

use std::time::{Duration, Instant};

fn main() -> Result<(), String> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().map_err(|_| format!("{a} is not a count")))
        .transpose()?
        .unwrap_or(50);
    let o = decompute::track::Options {
        no_ledger: true,
        interval: Duration::from_secs(1),
        ..Default::default()
    };
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let tr = decompute::track::Tracker::start(&o)?;
        starts.push(t.elapsed());
        let t = Instant::now();
        tr.stop(decompute::track::End::Finished)?;
        stops.push(t.elapsed());
    }
    let show = |name: &str, v: &mut Vec<Duration>| {
        v.sort();
        println!(
            "{name}: median {:.3} ms (min {:.3}, max {:.3}, n {})",
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[0].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3,
            v.len()
        );
    };
    show("start", &mut starts);
    show("stop", &mut stops);
    Ok(())
}

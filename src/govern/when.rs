//! `decompute when`: the start time that minimises the average carbon intensity over a job's
//! duration, searched over a forecast. The average is time-weighted over the forecast's step
//! function, and only windows the forecast covers entirely are considered.

use crate::signal::csv::{end, Series};

/// A candidate start and its mean intensity over the job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: f64,
    pub mean: f64,
}

/// The time-weighted mean of the series over [a, b), or None if not fully covered.
pub fn mean_over(s: &Series, a: f64, b: f64) -> Option<f64> {
    if s.is_empty() || a < s[0].0 || b > end(s) || b <= a {
        return None;
    }
    let stop = end(s);
    let mut total = 0.0;
    for (i, (t, v)) in s.iter().enumerate() {
        let seg_end = s.get(i + 1).map(|n| n.0).unwrap_or(stop);
        let lo = t.max(a);
        let hi = seg_end.min(b);
        if hi > lo {
            total += v * (hi - lo);
        }
    }
    Some(total / (b - a))
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Starting now, if the forecast covers it.
    pub now: Option<Window>,
    /// The best windows (more than one when they tie), earliest first.
    pub best: Vec<Window>,
}

/// Searches starts from `now` to `now + within`: now itself and every forecast step
/// boundary in between (the mean is piecewise linear in the start between boundaries of the
/// window's two ends, so its minimum lies at such a point).
pub fn search(s: &Series, now: f64, duration: f64, within: f64) -> Plan {
    let mut starts = vec![now];
    for (t, _) in s {
        for c in [*t, *t - duration] {
            if c > now && c <= now + within {
                starts.push(c);
            }
        }
    }
    starts.sort_by(f64::total_cmp);
    starts.dedup();
    let windows: Vec<Window> = starts
        .iter()
        .filter_map(|&st| mean_over(s, st, st + duration).map(|m| Window { start: st, mean: m }))
        .collect();
    let min = windows.iter().map(|w| w.mean).fold(f64::INFINITY, f64::min);
    let best = windows
        .iter()
        .copied()
        .filter(|w| (w.mean - min).abs() <= 1e-9 * min.abs().max(1.0))
        .collect();
    Plan {
        now: windows.iter().copied().find(|w| w.start == now),
        best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(vals: &[f64]) -> Series {
        vals.iter()
            .enumerate()
            .map(|(i, v)| (i as f64 * 3600.0, *v))
            .collect()
    }

    #[test]
    fn hand_computed_windows() {
        // Hourly: 300 200 100 100 400 50; a 2 h job.
        let s = series(&[300.0, 200.0, 100.0, 100.0, 400.0, 50.0]);
        assert_eq!(mean_over(&s, 0.0, 7200.0), Some(250.0));
        assert_eq!(
            mean_over(&s, 1800.0, 9000.0),
            Some((300.0 * 0.5 + 200.0 + 100.0 * 0.5) / 2.0)
        );
        assert_eq!(
            mean_over(&s, 5.0 * 3600.0, 7.0 * 3600.0),
            None,
            "past the forecast's end"
        );
        let p = search(&s, 0.0, 7200.0, 24.0 * 3600.0);
        assert_eq!(
            p.now,
            Some(Window {
                start: 0.0,
                mean: 250.0
            })
        );
        assert_eq!(
            p.best,
            vec![Window {
                start: 7200.0,
                mean: 100.0
            }]
        );
        // Restricted to the first hour: the best is at 1 h (200+100)/2 = 150.
        let p = search(&s, 0.0, 7200.0, 3600.0);
        assert_eq!(
            p.best,
            vec![Window {
                start: 3600.0,
                mean: 150.0
            }]
        );
    }

    #[test]
    fn ties_are_all_reported() {
        let s = series(&[100.0, 300.0, 100.0, 300.0]);
        let p = search(&s, 0.0, 3600.0, 4.0 * 3600.0);
        let starts: Vec<f64> = p.best.iter().map(|w| w.start).collect();
        assert_eq!(starts, vec![0.0, 7200.0]);
    }

    #[test]
    fn start_between_steps() {
        let s = series(&[400.0, 100.0, 400.0]);
        // Now is 30 min into the first hour; a 1 h job is best starting at 1 h.
        let p = search(&s, 1800.0, 3600.0, 7200.0);
        assert_eq!(
            p.now,
            Some(Window {
                start: 1800.0,
                mean: 250.0
            })
        );
        assert_eq!(
            p.best,
            vec![Window {
                start: 3600.0,
                mean: 100.0
            }]
        );
    }
}

//! `decompute when`: the start time that minimises the average carbon intensity over a job's
//! duration, searched over a forecast. The average is time-weighted over the forecast's step
//! function; only windows the forecast covers entirely count, and a window that crosses a
//! hole in the forecast (a gap longer than its step) is skipped, never filled in. Prefix
//! integrals make each window's mean a constant-time lookup, so the search is linear in the
//! forecast's length (up to a logarithm).

use crate::signal::csv::{segments, Segment, Series};

/// A candidate start and its mean intensity over the job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: f64,
    pub mean: f64,
}

/// Cumulative covered time and ∫ value dt over a forecast's segments.
pub struct Integral {
    segs: Vec<Segment>,
    len: Vec<f64>,
    int: Vec<f64>,
}

impl Integral {
    pub fn new(s: &Series) -> Integral {
        let segs = segments(s);
        let mut len = Vec::with_capacity(segs.len() + 1);
        let mut int = Vec::with_capacity(segs.len() + 1);
        let (mut l, mut i) = (0.0, 0.0);
        for g in &segs {
            len.push(l);
            int.push(i);
            l += g.end - g.start;
            i += g.value * (g.end - g.start);
        }
        len.push(l);
        int.push(i);
        Integral { segs, len, int }
    }

    /// (covered time, integral) from the forecast's start to `t`.
    fn cum(&self, t: f64) -> (f64, f64) {
        let n = self.segs.partition_point(|g| g.start <= t);
        let Some(j) = n.checked_sub(1) else {
            return (0.0, 0.0);
        };
        let g = &self.segs[j];
        let within = (t - g.start).clamp(0.0, g.end - g.start);
        (self.len[j] + within, self.int[j] + g.value * within)
    }

    /// The time-weighted mean over [a, b), or None if any of it is not covered.
    pub fn mean(&self, a: f64, b: f64) -> Option<f64> {
        if b <= a {
            return None;
        }
        let (la, ia) = self.cum(a);
        let (lb, ib) = self.cum(b);
        let covered = lb - la;
        ((covered - (b - a)).abs() <= 1e-6 * (b - a).max(1.0)).then(|| (ib - ia) / (b - a))
    }

    /// The holes: stretches between segments that no row covers.
    pub fn holes(&self) -> Vec<(f64, f64)> {
        self.segs
            .windows(2)
            .filter(|w| w[1].start > w[0].end + 1e-9)
            .map(|w| (w[0].end, w[1].start))
            .collect()
    }
}

/// The time-weighted mean of the series over [a, b), or None if not fully covered.
pub fn mean_over(s: &Series, a: f64, b: f64) -> Option<f64> {
    Integral::new(s).mean(a, b)
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Starting now, if the forecast covers it.
    pub now: Option<Window>,
    /// The best windows (more than one when they tie), earliest first.
    pub best: Vec<Window>,
    /// Holes in the forecast that candidate windows crossed (and were skipped for).
    pub holes: Vec<(f64, f64)>,
    /// Candidate starts skipped because their window crossed a hole.
    pub skipped: usize,
}

/// Searches starts from `now` to `now + within`: now itself and every segment boundary
/// (and boundary − duration) in between: the mean is piecewise linear in the start between
/// such points, so its minimum lies at one of them.
pub fn search(s: &Series, now: f64, duration: f64, within: f64) -> Plan {
    let f = Integral::new(s);
    let mut starts = vec![now];
    for g in &f.segs {
        for c in [g.start, g.start - duration, g.end, g.end - duration] {
            if c > now && c <= now + within {
                starts.push(c);
            }
        }
    }
    starts.sort_by(f64::total_cmp);
    starts.dedup();
    let holes = f.holes();
    let crosses = |a: f64, b: f64| holes.iter().any(|(h0, h1)| a < *h1 && b > *h0);
    let mut skipped = 0;
    let mut windows = Vec::with_capacity(starts.len());
    for st in starts {
        match f.mean(st, st + duration) {
            Some(m) => windows.push(Window { start: st, mean: m }),
            None if crosses(st, st + duration) => skipped += 1,
            None => {}
        }
    }
    let min = windows.iter().map(|w| w.mean).fold(f64::INFINITY, f64::min);
    let best = windows
        .iter()
        .copied()
        .filter(|w| (w.mean - min).abs() <= 1e-9 * min.abs().max(1.0))
        .collect();
    let used: Vec<(f64, f64)> = holes
        .into_iter()
        .filter(|(h0, h1)| *h1 > now && *h0 < now + within + duration)
        .collect();
    Plan {
        now: windows.iter().copied().find(|w| w.start == now),
        best,
        holes: used,
        skipped,
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
    fn windows_across_a_hole_are_skipped() {
        // Hourly 300, 50, (no row for hours 2–3), 100, 100: a 2 h job cannot use the gap.
        let s: Series = vec![
            (0.0, 300.0),
            (3600.0, 50.0),
            (4.0 * 3600.0, 100.0),
            (5.0 * 3600.0, 100.0),
        ];
        let p = search(&s, 0.0, 7200.0, 24.0 * 3600.0);
        assert_eq!(p.best[0].start, 4.0 * 3600.0, "{p:?}");
        assert_eq!(p.best[0].mean, 100.0);
        assert!(p.skipped > 0);
        assert_eq!(p.holes, vec![(7200.0, 4.0 * 3600.0)]);
    }

    #[test]
    fn a_long_forecast_agrees_with_brute_force() {
        // 100,000 rows: the old quadratic search took tens of seconds; this is linear.
        let s: Series = (0..100_000)
            .map(|i| (i as f64 * 300.0, 100.0 + ((i * 7919) % 500) as f64))
            .collect();
        let p = search(&s, 0.0, 3.0 * 3600.0, 100_000.0 * 300.0);
        assert!(!p.best.is_empty());
        // Brute force on a sample of starts agrees with the prefix sums.
        for w in p.best.iter().take(3) {
            let brute: f64 = s
                .iter()
                .filter(|(t, _)| *t >= w.start && *t < w.start + 3.0 * 3600.0)
                .map(|(_, v)| v)
                .sum::<f64>()
                / 36.0;
            assert!((brute - w.mean).abs() < 1e-6, "{brute} vs {}", w.mean);
        }
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

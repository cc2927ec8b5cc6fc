//! A carbon-intensity time series `timestamp,g_per_kwh` (as exported from Electricity Maps
//! or WattTime; RFC 3339 or Unix-second timestamps, a header row allowed). A value holds
//! from its timestamp until the next one; the last holds for one median step.

use crate::govern::period::parse_time;

/// (Unix seconds, g/kWh), sorted by time.
pub type Series = Vec<(f64, f64)>;

pub fn parse(name: &str, text: &str) -> Result<Series, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut cells = l.split(',').map(str::trim);
        let (Some(ts), Some(v)) = (cells.next(), cells.next()) else {
            return Err(format!(
                "{name}: line {}: need two columns, timestamp,g_per_kwh",
                i + 1
            ));
        };
        let Ok(t) = parse_time(ts) else {
            if out.is_empty() && v.parse::<f64>().is_err() {
                continue; // a header row
            }
            return Err(format!(
                "{name}: line {}: '{ts}' is not a timestamp (RFC 3339 or Unix seconds)",
                i + 1
            ));
        };
        let g: f64 = v
            .parse()
            .map_err(|_| format!("{name}: line {}: '{v}' is not a number of g/kWh", i + 1))?;
        if !g.is_finite() {
            return Err(format!(
                "{name}: line {}: '{v}' is not a finite number of g/kWh",
                i + 1
            ));
        }
        if !(0.0..=3000.0).contains(&g) {
            return Err(format!(
                "{name}: line {}: intensity {g} g/kWh is outside 0–3000",
                i + 1
            ));
        }
        out.push((t, g));
    }
    if out.is_empty() {
        return Err(format!("{name}: no rows; write timestamp,g_per_kwh lines"));
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

/// The typical spacing of the series (median step), used as the last row's duration.
pub fn step(s: &Series) -> f64 {
    let mut d: Vec<f64> = s
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|x| *x > 0.0)
        .collect();
    if d.is_empty() {
        return 3600.0;
    }
    d.sort_by(f64::total_cmp);
    d[d.len() / 2]
}

/// The end of the time the series covers.
pub fn end(s: &Series) -> f64 {
    s.last().map(|l| l.0 + step(s)).unwrap_or(0.0)
}

/// A stretch of time with one value: [start, end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub value: f64,
}

/// The series as segments. A value holds until the next row, unless the next row comes
/// more than one and a half steps later: then it holds one step and the rest is a hole (a
/// missing stretch of the forecast is not the previous value).
pub fn segments(s: &Series) -> Vec<Segment> {
    let st = step(s);
    s.iter()
        .enumerate()
        .map(|(i, (t, v))| {
            let end = match s.get(i + 1) {
                Some((n, _)) if n - t <= 1.5 * st => *n,
                _ => t + st,
            };
            Segment {
                start: *t,
                end,
                value: *v,
            }
        })
        .collect()
}

/// The value in force at `t`, if the series covers it (not before it, after it, or in a hole).
pub fn value_at(s: &Series, t: f64) -> Option<f64> {
    let segs = segments(s);
    let i = segs.partition_point(|g| g.start <= t);
    let g = segs.get(i.checked_sub(1)?)?;
    (t < g.end).then_some(g.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_function_with_header() {
        let s = parse("f.csv", "timestamp,g_per_kwh\n2026-11-29T00:00:00Z,100\n2026-11-29T01:00:00Z,300\n2026-11-29T02:00:00Z,200\n")
            .expect("parses");
        let t0 = parse_time("2026-11-29T00:00:00Z").expect("t");
        assert_eq!(value_at(&s, t0), Some(100.0));
        assert_eq!(value_at(&s, t0 + 3599.0), Some(100.0));
        assert_eq!(value_at(&s, t0 + 3600.0), Some(300.0));
        assert_eq!(value_at(&s, t0 + 3.0 * 3600.0 - 1.0), Some(200.0));
        assert_eq!(value_at(&s, t0 + 3.0 * 3600.0), None);
        assert_eq!(value_at(&s, t0 - 1.0), None);
        // A missing hour is a hole, not the previous value.
        let g = parse("f.csv", "0,100\n3600,200\n10800,300\n14400,300\n").expect("parses");
        assert_eq!(value_at(&g, 5000.0), Some(200.0));
        assert_eq!(value_at(&g, 8000.0), None);
        assert_eq!(value_at(&g, 11000.0), Some(300.0));
        assert!(parse("f.csv", "2026-11-29T00:00:00Z,x\n")
            .expect_err("bad")
            .contains("line 1"));
        assert!(parse("f.csv", "2026-11-29T00:00:00Z,1\nnot-a-time,5\n")
            .expect_err("bad")
            .contains("line 2"));
        assert!(parse("f.csv", "").is_err());
        assert!(parse("f.csv", "2026-11-29T00:00:00Z,NaN\n")
            .expect_err("nan")
            .contains("not a finite number"));
        assert!(parse("f.csv", "2026-11-29T00:00:00Z,-3\n")
            .expect_err("neg")
            .contains("outside"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse("f.csv", &s);
        }

        #[test]
        fn rows_never_panic(rows in proptest::collection::vec("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(Z|é)?,[0-9.eéNa-]{0,8}", 0..6)) {
            if let Ok(s) = parse("f.csv", &rows.join("\n")) {
                let _ = value_at(&s, 1.8e9);
                let _ = step(&s);
            }
        }
    }
}

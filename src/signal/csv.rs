//! A carbon-intensity time series in CSV: `timestamp,value` rows (RFC 3339 or Unix-second
//! timestamps), with or without a header. A header may name the value's unit
//! (`g_per_kwh`, `gCO2e/kWh`, `kg/MWh`, `lbs/MWh`, `moer`): it is converted to gCO2e/kWh or
//! refused, never read as g/kWh. A wider table (Electricity Maps' CSV export) is read by its
//! header: the time column and the intensity column, life-cycle before direct when it offers
//! both (the shipped zone factors are life-cycle). A value holds from its timestamp until
//! the next one; the last holds for one median step; a gap longer than that is a hole.

use super::forecast::{csv_unit, Basis, Forecast};
use crate::timefmt::parse_time;

/// (Unix seconds, g/kWh), sorted by time.
pub type Series = Vec<(f64, f64)>;

/// Reads a CSV forecast (named `name` in errors).
pub fn parse(name: &str, text: &str) -> Result<Forecast, String> {
    let table = crate::csvdata::parse(name, text).map_err(|e| match e {
        crate::csvdata::CsvError::Empty { .. } => {
            format!("{name}: no rows; write timestamp,g_per_kwh lines")
        }
        other => other.to_string(),
    })?;
    // A first row that starts with a time is data, not a header.
    let headerless = parse_time(table.header.first().map(String::as_str).unwrap_or("")).is_ok();
    let first_line = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .position(|l| !(l.trim().is_empty() || l.starts_with('#')))
        .map_or(1, |i| i + 1);
    let mut rows: Vec<(usize, &[String])> = Vec::with_capacity(table.rows.len() + 1);
    if headerless {
        rows.push((first_line, table.header.as_slice()));
    }
    rows.extend(table.rows.iter().map(|(l, r)| (*l, r.as_slice())));
    let width = table.header.len();
    if width < 2 {
        return Err(format!(
            "{name}: line {first_line}: need two columns, timestamp,g_per_kwh"
        ));
    }
    let (tcol, vcol, k, marginal) = if headerless {
        (0, 1, 1.0, false)
    } else {
        columns(name, &table.header)?
    };
    let mut series = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let cell = |c: usize| row.get(c).map(|s| s.trim()).unwrap_or("");
        let (ts, v) = (cell(tcol), cell(vcol));
        let t = parse_time(ts).map_err(|_| {
            format!(
                "{name}: line {line}: '{}' is not a timestamp (RFC 3339 or Unix seconds)",
                crate::term::escape(&crate::term::fit(ts, 40))
            )
        })?;
        if v.is_empty() && !headerless && width > 2 {
            continue; // an export's row without this figure
        }
        let g: f64 = v.parse().map_err(|_| {
            format!(
                "{name}: line {line}: '{}' is not a number of gCO2e/kWh",
                crate::term::escape(&crate::term::fit(v, 40))
            )
        })?;
        if !g.is_finite() {
            return Err(format!(
                "{name}: line {line}: '{v}' is not a finite number of gCO2e/kWh"
            ));
        }
        let g = g / k;
        if !(0.0..=3000.0).contains(&g) {
            return Err(format!(
                "{name}: line {line}: intensity {g} gCO2e/kWh is outside 0–3000"
            ));
        }
        series.push((t, g));
    }
    if series.is_empty() {
        return Err(format!("{name}: no rows; write timestamp,g_per_kwh lines"));
    }
    series.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Forecast {
        series,
        basis: if marginal {
            Basis::Marginal
        } else {
            Basis::Average
        },
        format: "csv",
        zone: None,
        conversion: (k != 1.0).then(|| "lbs/MWh ÷ 2.20462".to_string()),
    })
}

/// The time and value columns of a CSV with a header, and the value's (divisor, marginal).
fn columns(name: &str, header: &[String]) -> Result<(usize, usize, f64, bool), String> {
    let lower: Vec<String> = header.iter().map(|h| h.to_lowercase()).collect();
    let tcol = lower
        .iter()
        .position(|h| h.contains("time") || h.contains("date"))
        .unwrap_or(0);
    if header.len() == 2 {
        let vcol = 1 - tcol.min(1);
        let (k, m) = csv_unit(&header[vcol]).map_err(|e| format!("{name}: {e}"))?;
        return Ok((tcol, vcol, k, m));
    }
    let candidates: Vec<usize> = (0..header.len())
        .filter(|&c| c != tcol)
        .filter(|&c| {
            let h = &lower[c];
            (h.contains("intensity") || h.contains("moer") || h.contains("co2"))
                && csv_unit(&header[c]).is_ok()
        })
        .collect();
    let pick = candidates
        .iter()
        .copied()
        .find(|&c| lower[c].contains("lca") || lower[c].contains("life"))
        .or_else(|| candidates.first().copied())
        .ok_or_else(|| {
            format!(
                "{name}: no carbon-intensity column among {}; give a timestamp,g_per_kwh file",
                crate::term::escape(&crate::term::fit(&header.join(","), 120))
            )
        })?;
    let (k, m) = csv_unit(&header[pick]).map_err(|e| format!("{name}: {e}"))?;
    Ok((tcol, pick, k, m))
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
            .expect("parses")
            .series;
        let t0 = parse_time("2026-11-29T00:00:00Z").expect("t");
        assert_eq!(value_at(&s, t0), Some(100.0));
        assert_eq!(value_at(&s, t0 + 3599.0), Some(100.0));
        assert_eq!(value_at(&s, t0 + 3600.0), Some(300.0));
        assert_eq!(value_at(&s, t0 + 3.0 * 3600.0 - 1.0), Some(200.0));
        assert_eq!(value_at(&s, t0 + 3.0 * 3600.0), None);
        assert_eq!(value_at(&s, t0 - 1.0), None);
        // A missing hour is a hole, not the previous value.
        let g = parse("f.csv", "0,100\n3600,200\n10800,300\n14400,300\n")
            .expect("parses")
            .series;
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

    #[test]
    fn header_units_and_wide_exports() {
        let lbs = parse(
            "w.csv",
            "point_time,moer_lbs_per_mwh\n2026-12-01T00:00:00Z,745.16\n",
        )
        .expect("lbs");
        assert!((lbs.series[0].1 - 338.0).abs() < 0.01);
        assert_eq!(lbs.basis, Basis::Marginal);
        assert!(lbs.conversion.is_some());
        let err = parse("p.csv", "time,price_eur_per_mwh\n2026-12-01T00:00:00Z,80\n")
            .expect_err("a price is not an intensity");
        assert!(err.contains("cannot convert"), "{err}");
        // Electricity Maps' CSV export: life-cycle column chosen, quoted cells, units with ₂.
        let em = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage\n\
                  2025-01-01 00:00:00,Germany,\"Germany, DE\",DE,250.5,300.25,55\n\
                  2025-01-01 01:00:00,Germany,\"Germany, DE\",DE,,,55\n\
                  2025-01-01 02:00:00,Germany,\"Germany, DE\",DE,240,290,56\n";
        let f = parse("em.csv", em).expect("export");
        assert_eq!(
            f.series.iter().map(|p| p.1).collect::<Vec<_>>(),
            vec![300.25, 290.0]
        );
        assert_eq!(f.basis, Basis::Average);
        assert!(parse("x.csv", "a,b,c\n1,2,3\n")
            .expect_err("no intensity")
            .contains("no carbon-intensity column"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse("f.csv", &s);
        }

        #[test]
        fn rows_never_panic(rows in proptest::collection::vec("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(Z|é)?,[0-9.eéNa-]{0,8}", 0..6)) {
            if let Ok(f) = parse("f.csv", &rows.join("\n")) {
                let s = f.series;
                let _ = value_at(&s, 1.8e9);
                let _ = step(&s);
            }
        }
    }
}

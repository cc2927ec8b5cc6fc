//! The scale of AI compute: notable models on a log FLOP axis by year, with the given work
//! placed among them — as terminal text and as a standalone SVG. Pure functions.

use super::svg::esc;
use crate::estimate::models::{compare, NotableModel};

const LO: f64 = 15.0;
const HI: f64 = 27.0;

/// A terminal chart: one row per model (and the work), a bar on a log axis 10^15…10^27.
pub fn terminal(models: &[NotableModel], work: Option<(&str, f64)>, width: usize) -> String {
    let mut rows: Vec<(String, String, f64, bool)> = models
        .iter()
        .map(|m| (m.name.clone(), m.year.to_string(), m.flop, false))
        .collect();
    if let Some((label, f)) = work {
        rows.push((label.to_string(), "this".into(), f, true));
    }
    rows.sort_by(|a, b| a.2.total_cmp(&b.2));
    let pos =
        |f: f64| (((f.log10() - LO) / (HI - LO)).clamp(0.0, 1.0) * width as f64).round() as usize;
    let mut o = format!(
        "{:<24} {:>5}  {:<w$}  FLOP\n",
        "model",
        "year",
        axis(width),
        w = width
    );
    for (name, year, f, mine) in &rows {
        let n = pos(*f).max(1);
        let bar: String = if *mine {
            "▓".repeat(n)
        } else {
            "█".repeat(n)
        };
        o.push_str(&format!(
            "{:<24} {:>5}  {:<w$}  {:.1e}{}\n",
            trunc(name, 24),
            year,
            bar,
            f,
            if *mine { "  ◀" } else { "" },
            w = width
        ));
    }
    if let Some((label, f)) = work {
        o.push_str(&format!("{label}: {f:.1e} FLOP: {}\n", compare(f, models)));
    }
    o
}

fn axis(width: usize) -> String {
    let mut s = vec![' '; width];
    for e in [15, 18, 21, 24, 27] {
        let p = (((e as f64 - LO) / (HI - LO)) * width as f64).round() as usize;
        let label = format!("1e{e}");
        for (i, c) in label.chars().enumerate() {
            if p + i < width {
                s[p.min(width - label.len()) + i] = c;
            }
        }
    }
    s.into_iter().collect()
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        s.chars().take(n - 1).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

/// The work placed on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub label: String,
    pub flop: f64,
    pub year: u32,
    /// Its energy, MWh, when known (a run's facility energy, an estimate's).
    pub energy_mwh: Option<f64>,
}

/// A label's box on the canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Box2 {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Box2 {
    fn overlaps(&self, o: &Box2) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// Approximate width of `s` at 12 px sans-serif (no font metrics without a browser).
fn text_w(s: &str) -> f64 {
    6.6 * s.chars().count() as f64
}

/// Where each label goes: beside its dot if free, else above or below it with a leader
/// line, else left out (and named in a note). Labels never overlap each other or a dot.
/// Points are (x, y, label, priority); higher priority is placed first.
fn place_labels(points: &[(f64, f64, String, u8)], bounds: Box2) -> Vec<Option<(f64, f64, bool)>> {
    let dots: Vec<Box2> = points
        .iter()
        .map(|(x, y, _, _)| Box2 {
            x0: x - 6.0,
            y0: y - 6.0,
            x1: x + 6.0,
            y1: y + 6.0,
        })
        .collect();
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|a, b| points[*b].3.cmp(&points[*a].3).then(a.cmp(b)));
    let mut placed: Vec<Box2> = Vec::new();
    let mut out = vec![None; points.len()];
    for i in order {
        let (x, y, label, _) = &points[i];
        // The work's label is bold: wider.
        let w = text_w(label) * if points[i].3 > 1 { 1.12 } else { 1.0 };
        let mut found = None;
        'search: for dy in [0.0, -16.0, 16.0, -32.0, 32.0, -48.0, 48.0] {
            for right in [true, false] {
                let lx = if right { x + 9.0 } else { x - 9.0 - w };
                let base = y + 4.0 + dy;
                let b = Box2 {
                    x0: lx,
                    y0: base - 11.0,
                    x1: lx + w,
                    y1: base + 3.0,
                };
                if b.x0 < bounds.x0 || b.x1 > bounds.x1 || b.y0 < bounds.y0 || b.y1 > bounds.y1 {
                    continue;
                }
                if placed.iter().any(|p| p.overlaps(&b)) || dots.iter().any(|d| d.overlaps(&b)) {
                    continue;
                }
                placed.push(b);
                found = Some((lx, base, dy != 0.0));
                break 'search;
            }
        }
        out[i] = found;
    }
    out
}

/// A standalone SVG: year on x, log10 FLOP on y, each model a dot with its label placed so
/// none overlap, the work highlighted; the axis widens to hold every value from 10^9 to
/// 10^31 FLOP, and a value beyond that is drawn at the edge with an arrow and said so.
/// Below, when any energy is known, a second panel: the published energy of the notable
/// runs (log scale) beside the work's.
pub fn svg(models: &[NotableModel], work: Option<&Work>) -> String {
    use super::svg::PALETTE;
    use std::fmt::Write as _;
    const FLOOR: f64 = 9.0;
    const CEIL: f64 = 31.0;
    let flops: Vec<f64> = models
        .iter()
        .map(|m| m.flop)
        .chain(work.map(|w| w.flop))
        .filter(|f| f.is_finite() && *f > 0.0)
        .collect();
    let lmin = flops.iter().map(|f| f.log10()).fold(LO, f64::min);
    let lmax = flops.iter().map(|f| f.log10()).fold(HI, f64::max);
    let lo = (lmin.floor()).clamp(FLOOR, LO);
    let hi = (lmax.ceil()).clamp(HI, CEIL);
    let energies: Vec<(&str, f64, &str)> = models
        .iter()
        .filter_map(|m| {
            m.energy_mwh
                .map(|e| (m.name.as_str(), e, m.boundary.as_str()))
        })
        .collect();
    let work_energy = work.and_then(|w| w.energy_mwh.map(|e| (w.label.as_str(), e)));
    let panel2 = !energies.is_empty();
    let (w, ml, mr, mt) = (900.0, 80.0, 30.0, 50.0);
    let h1 = 520.0;
    let bar_rows = energies.len() + usize::from(work_energy.is_some());
    let h2 = if panel2 {
        90.0 + 22.0 * bar_rows as f64
    } else {
        0.0
    };
    let h = h1 + h2 + 40.0;
    let mb = 60.0;
    let years: Vec<u32> = models
        .iter()
        .map(|m| m.year)
        .chain(work.map(|x| x.year))
        .collect();
    let (y0, y1) = (
        *years.iter().min().unwrap_or(&2012) as f64 - 1.0,
        *years.iter().max().unwrap_or(&2026) as f64 + 1.0,
    );
    let x = |yr: f64| ml + (yr - y0) / (y1 - y0) * (w - ml - mr);
    let y = |f: f64| {
        let l = f.log10().clamp(lo, hi);
        mt + (1.0 - (l - lo) / (hi - lo)) * (h1 - mt - mb)
    };
    let clamped = |f: f64| f.log10() < lo || f.log10() > hi || !f.is_finite();
    let desc = {
        let first = models.first();
        let last = models.iter().max_by(|a, b| a.flop.total_cmp(&b.flop));
        let mut d = format!(
            "{} notable AI models by year and training compute on a log scale{}",
            models.len(),
            match (first, last) {
                (Some(a), Some(b)) => format!(
                    ", from {} ({:.1e} FLOP, {}) to {} ({:.1e} FLOP, {})",
                    a.name, a.flop, a.year, b.name, b.flop, b.year
                ),
                _ => String::new(),
            }
        );
        if let Some(wk) = work {
            let _ = write!(
                d,
                "; {}: {:.1e} FLOP, {}",
                wk.label,
                wk.flop,
                compare(wk.flop, models)
            );
        }
        d.push('.');
        d
    };
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" aria-labelledby=\"scale-t scale-d\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title id=\"scale-t\">Training compute of notable AI models</title><desc id=\"scale-d\">{}</desc>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"8\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Training compute of notable AI models</text>\n",
        esc(&desc)
    );
    let (px0, px1, py0, py1) = (ml, w - mr, mt, h1 - mb);
    let mut e = lo as i32;
    let step = if hi - lo > 14.0 { 3 } else { 2 };
    while e as f64 <= hi {
        let yy = y(10f64.powi(e));
        let _ = writeln!(
            o,
            "<line x1=\"{px0}\" x2=\"{px1:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1e{e}</text>",
            px0 - 6.0,
            yy + 4.0
        );
        e += step;
    }
    let mut yr = y0.ceil() as u32;
    while (yr as f64) <= y1 {
        if yr.is_multiple_of(2) {
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{yr}</text>",
                x(yr as f64),
                py1 + 18.0
            );
        }
        yr += 1;
    }
    let _ = writeln!(
        o,
        "<line x1=\"{px0}\" x2=\"{px1:.1}\" y1=\"{py1:.1}\" y2=\"{py1:.1}\" stroke=\"#333\"/><line x1=\"{px0}\" x2=\"{px0}\" y1=\"{py0}\" y2=\"{py1:.1}\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">Year of publication</text>\
         <text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">Training compute (FLOP, log scale)</text>",
        (px0 + px1) / 2.0,
        py1 + 38.0,
        (py0 + py1) / 2.0
    );
    // Dots, then labels placed around them.
    let mut points: Vec<(f64, f64, String, u8)> = models
        .iter()
        .map(|m| (x(m.year as f64), y(m.flop), m.name.clone(), 1))
        .collect();
    if let Some(wk) = work {
        points.push((
            x(wk.year as f64),
            y(wk.flop),
            format!("{} ({:.1e})", wk.label, wk.flop),
            2,
        ));
    }
    let places = place_labels(
        &points,
        Box2 {
            x0: px0 + 2.0,
            y0: py0,
            x1: px1,
            y1: py1 - 2.0,
        },
    );
    let mut unlabelled = Vec::new();
    let mut notes = Vec::new();
    for (i, (px, py, label, prio)) in points.iter().enumerate() {
        let mine = *prio == 2;
        let (f, name, year) = if mine {
            let wk = work.map(|w| (w.flop, w.label.clone(), w.year));
            wk.unwrap_or((0.0, String::new(), 0))
        } else {
            (models[i].flop, models[i].name.clone(), models[i].year)
        };
        let colour = if mine { PALETTE[5] } else { "#555" };
        let r = if mine { 7.0 } else { 5.0 };
        let _ = writeln!(
            o,
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"{r}\" fill=\"{colour}\"><title>{} ({year}): {f:.2e} FLOP</title></circle>",
            esc(&name)
        );
        if clamped(f) {
            let up = f.log10() > hi;
            let (tip, tail) = if up {
                (py - 16.0, py - 8.0)
            } else {
                (py + 16.0, py + 8.0)
            };
            let _ = writeln!(
                o,
                "<path d=\"M{px:.1},{tail:.1} L{px:.1},{tip:.1} M{:.1},{:.1} L{px:.1},{tip:.1} L{:.1},{:.1}\" stroke=\"{colour}\" fill=\"none\" stroke-width=\"1.5\"/>",
                px - 4.0,
                tip + if up { 5.0 } else { -5.0 },
                px + 4.0,
                tip + if up { 5.0 } else { -5.0 },
            );
            notes.push(format!(
                "{name} ({f:.1e} FLOP) is beyond the axis and drawn at its {} edge.",
                if up { "upper" } else { "lower" }
            ));
        }
        match places[i] {
            Some((lx, ly, leader)) => {
                if leader {
                    let ex = if lx > *px {
                        lx - 2.0
                    } else {
                        lx + text_w(label) + 2.0
                    };
                    let _ = writeln!(
                        o,
                        "<line x1=\"{px:.1}\" y1=\"{py:.1}\" x2=\"{ex:.1}\" y2=\"{:.1}\" stroke=\"#999\" stroke-width=\"0.8\"/>",
                        ly - 4.0
                    );
                }
                let _ = writeln!(
                    o,
                    "<text x=\"{lx:.1}\" y=\"{ly:.1}\"{}>{}</text>",
                    if mine {
                        format!(" fill=\"{}\" font-weight=\"bold\"", PALETTE[5])
                    } else {
                        String::new()
                    },
                    esc(label)
                );
            }
            None => unlabelled.push(label.clone()),
        }
    }
    let mut ny = h1 - 8.0;
    if let Some(wk) = work {
        let _ = writeln!(
            o,
            "<text x=\"{ml}\" y=\"{ny:.1}\" fill=\"{}\">{}</text>",
            PALETTE[5],
            esc(&format!("{}: {}", wk.label, compare(wk.flop, models)))
        );
        ny += 14.0;
    }
    if !unlabelled.is_empty() {
        notes.push(format!(
            "Not labelled for lack of room (hover the dots): {}.",
            unlabelled.join(", ")
        ));
    }
    for n in &notes {
        let _ = writeln!(
            o,
            "<text x=\"{ml}\" y=\"{ny:.1}\" font-size=\"11\">{}</text>",
            esc(n)
        );
        ny += 14.0;
    }
    if panel2 {
        let top = h1 + 20.0 + 14.0 * notes.len() as f64;
        let _ = writeln!(
            o,
            "<text x=\"8\" y=\"{:.1}\" font-size=\"15\" font-weight=\"bold\">Published energy of the training runs (MWh, log scale)</text>",
            top + 16.0
        );
        let mut rows: Vec<(String, f64, String, bool)> = energies
            .iter()
            .map(|(n, e, b)| (n.to_string(), *e, b.to_string(), false))
            .collect();
        if let Some((l, e)) = work_energy {
            rows.push((
                l.to_string(),
                e,
                "facility energy, as decompute computed it".into(),
                true,
            ));
        }
        rows.sort_by(|a, b| a.1.total_cmp(&b.1));
        let emin = rows
            .iter()
            .map(|r| r.1)
            .fold(f64::INFINITY, f64::min)
            .max(1e-12);
        let emax = rows
            .iter()
            .map(|r| r.1)
            .fold(0.0, f64::max)
            .max(emin * 10.0);
        let (l0, l1) = (emin.log10().floor() - 1.0, emax.log10().ceil());
        let (bx0, bx1) = (220.0, w - mr - 120.0);
        let bxs = |e: f64| bx0 + (e.log10() - l0) / (l1 - l0) * (bx1 - bx0);
        let mut ry = top + 34.0;
        for (name, e, boundary, mine) in &rows {
            let colour = if *mine { PALETTE[5] } else { PALETTE[0] };
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{bx0}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{colour}\"><title>{}: {} MWh ({})</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{} MWh</text>",
                bx0 - 6.0,
                ry + 11.0,
                esc(&crate::term::fit(name, 30)),
                ry,
                (bxs(*e) - bx0).max(1.0),
                esc(name),
                crate::units::sig3(*e),
                esc(boundary),
                bxs(*e) + 4.0,
                ry + 11.0,
                crate::units::sig3(*e)
            );
            ry += 22.0;
        }
        let mut d = l0 as i32;
        while d as f64 <= l1 {
            let xx = bxs(10f64.powi(d));
            let _ = writeln!(
                o,
                "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{ry:.1}\" stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">1e{d}</text>",
                top + 30.0,
                ry + 12.0
            );
            d += 1;
        }
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">Energy (MWh, log scale; each bar's boundary differs: hover it)</text>",
            (bx0 + bx1) / 2.0,
            ry + 28.0
        );
    }
    let _ = writeln!(
        o,
        "<text x=\"8\" y=\"{:.1}\" font-size=\"10\" fill=\"#444\">Source: data/notable_models.csv (OpenAI 2018; Epoch AI, CC BY 4.0; the papers and model cards in data/SOURCES.md); chart by decompute</text>",
        h - 8.0
    );
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_places_the_work() {
        let m = crate::estimate::models::embedded();
        let t = terminal(&m, Some(("my run", 3.2e18)), 40);
        let lines: Vec<&str> = t.lines().collect();
        let mine = lines.iter().position(|l| l.contains("◀")).expect("marked");
        let alex = lines
            .iter()
            .position(|l| l.starts_with("AlexNet"))
            .expect("alexnet");
        assert_eq!(mine, alex + 1, "{t}");
        assert!(t.contains("6.8× AlexNet"), "{t}");
        let work = Work {
            label: "my run".into(),
            flop: 3.2e18,
            year: 2026,
            energy_mwh: None,
        };
        let s = svg(&m, Some(&work));
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<circle").count(), m.len() + 1);
    }

    #[test]
    fn svg_matches_its_snapshot_and_names_every_unlabelled_model() {
        let m = crate::estimate::models::embedded();
        let work = Work {
            label: "this work".into(),
            flop: 3.2e18,
            year: 2026,
            energy_mwh: Some(0.05),
        };
        let s = svg(&m, Some(&work));
        crate::render::snapshot::check("scale.svg", &s);
        for needle in [
            "Year of publication",
            "Training compute (FLOP, log scale)",
            "Source: data/notable_models.csv",
            "<desc id=\"scale-d\">",
            "Published energy of the training runs",
        ] {
            assert!(s.contains(needle), "{needle}");
        }
        // Every model is either labelled on the chart or named in the note.
        for x in &m {
            let label = format!(">{}</text>", esc(&x.name));
            assert!(
                s.contains(&label)
                    || s.contains(&format!(" {},", esc(&x.name)))
                    || s.contains(&format!(" {}.", esc(&x.name))),
                "{} is neither labelled nor listed",
                x.name
            );
        }
    }

    #[test]
    fn values_off_the_axis_are_clamped_with_an_arrow_and_said() {
        let m = crate::estimate::models::embedded();
        let far = Work {
            label: "far".into(),
            flop: 1e40,
            year: 2026,
            energy_mwh: None,
        };
        let s = svg(&m, Some(&far));
        assert!(
            s.contains("is beyond the axis and drawn at its upper edge"),
            "{s}"
        );
        // The axis widened to its ceiling, 10^31: nothing is drawn above the plot.
        assert!(s.contains(">1e30</text>"));
        let small = Work {
            label: "tiny".into(),
            flop: 1e12,
            year: 2026,
            energy_mwh: None,
        };
        let s = svg(&m, Some(&small));
        assert!(
            s.contains(">1e12</text>"),
            "the axis widens down to the value"
        );
        assert!(!s.contains("beyond the axis"));
    }

    proptest::proptest! {
        #[test]
        fn labels_never_overlap_each_other_or_a_dot(
            pts in proptest::collection::vec((0.0f64..800.0, 0.0f64..500.0, "[a-zA-Z ]{1,20}"), 1..40)
        ) {
            let points: Vec<(f64, f64, String, u8)> = pts
                .iter()
                .enumerate()
                .map(|(i, (x, y, l))| (*x, *y, l.clone(), (i % 2) as u8))
                .collect();
            let bounds = Box2 { x0: 0.0, y0: 0.0, x1: 800.0, y1: 500.0 };
            let placed = place_labels(&points, bounds);
            let mut boxes = Vec::new();
            for (i, p) in placed.iter().enumerate() {
                if let Some((lx, base, _)) = p {
                    let w = text_w(&points[i].2) * if points[i].3 > 1 { 1.12 } else { 1.0 };
                    let b = Box2 { x0: *lx, y0: base - 11.0, x1: lx + w, y1: base + 3.0 };
                    proptest::prop_assert!(b.x0 >= 0.0 && b.x1 <= 800.0 && b.y0 >= 0.0 && b.y1 <= 500.0);
                    for (x, y, _, _) in &points {
                        let d = Box2 { x0: x - 6.0, y0: y - 6.0, x1: x + 6.0, y1: y + 6.0 };
                        proptest::prop_assert!(!b.overlaps(&d));
                    }
                    boxes.push(b);
                }
            }
            for (i, a) in boxes.iter().enumerate() {
                for b in &boxes[i + 1..] {
                    proptest::prop_assert!(!a.overlaps(b));
                }
            }
        }
    }
}

//! The scale of AI compute: notable models on a log FLOP axis by year, with the given work
//! placed among them — as terminal text and as a standalone SVG. Pure functions.

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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A standalone SVG: year on x, log10 FLOP on y, each model a labelled dot, the work a
/// highlighted one.
pub fn svg(models: &[NotableModel], work: Option<(&str, f64, u32)>) -> String {
    let (w, h, ml, mr, mt, mb) = (900.0, 560.0, 70.0, 170.0, 50.0, 50.0);
    let years: Vec<u32> = models
        .iter()
        .map(|m| m.year)
        .chain(work.map(|x| x.2))
        .collect();
    let (y0, y1) = (
        *years.iter().min().unwrap_or(&2012) as f64 - 1.0,
        *years.iter().max().unwrap_or(&2026) as f64 + 1.0,
    );
    let x = |yr: f64| ml + (yr - y0) / (y1 - y0) * (w - ml - mr);
    let y = |f: f64| mt + (1.0 - (f.log10() - LO) / (HI - LO)) * (h - mt - mb);
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{ml}\" y=\"28\" font-size=\"16\">Training compute of notable AI models (FLOP, log scale)</text>\n"
    );
    for e in (LO as i32..=HI as i32).step_by(3) {
        let yy = y(10f64.powi(e));
        o.push_str(&format!(
            "<line x1=\"{ml}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1e{e}</text>\n",
            w - mr,
            ml - 6.0,
            yy + 4.0
        ));
    }
    let mut yr = y0.ceil() as u32;
    while (yr as f64) <= y1 {
        if yr.is_multiple_of(2) {
            o.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{yr}</text>\n",
                x(yr as f64),
                h - mb + 18.0
            ));
        }
        yr += 1;
    }
    for m in models {
        let (cx, cy) = (x(m.year as f64), y(m.flop));
        o.push_str(&format!(
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"5\" fill=\"#555\"><title>{} ({}): {:.2e} FLOP</title></circle><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            esc(&m.name),
            m.year,
            m.flop,
            cx + 8.0,
            cy + 4.0,
            esc(&m.name)
        ));
    }
    if let Some((label, f, year)) = work {
        let (cx, cy) = (x(year as f64), y(f));
        o.push_str(&format!(
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"8\" fill=\"#c0392b\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#c0392b\" font-weight=\"bold\">{} ({:.1e})</text>\n\
             <text x=\"{ml}\" y=\"{:.1}\" fill=\"#c0392b\">{}</text>\n",
            cx + 10.0,
            cy + 4.0,
            esc(label),
            f,
            h - 12.0,
            esc(&format!("{label}: {}", compare(f, models)))
        ));
    }
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
        let s = svg(&m, Some(("my run", 3.2e18, 2026)));
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<circle").count(), m.len() + 1);
    }
}

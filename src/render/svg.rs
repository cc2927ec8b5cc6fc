//! Chart primitives for the report and the scale chart: pure functions from figures to SVG
//! text. Every chart carries a title, axis titles with units, a source line and a text
//! alternative (`<title>` and `<desc>`, `role="img"`), and draws its series in the
//! Okabe–Ito palette, which stays distinguishable under the common colour-vision
//! deficiencies. Series are also told apart by pattern-free order and a legend, never by
//! colour alone: every legend entry names its series and the tables beside each chart give
//! the same figures as text.

use std::fmt::Write as _;

/// Okabe & Ito (2008), "Color Universal Design": blue, orange, bluish green, reddish purple,
/// sky blue, vermillion, yellow, black.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

/// Text for SVG and HTML: the five XML specials escaped, control characters dropped.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            '\n' | '\t' => o.push(c),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// What a chart's values measure, so the axis uses the unit the terminal would print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Joules.
    Energy,
    /// Grams CO2e.
    Carbon,
    /// Litres.
    Water,
    /// Watts.
    Power,
}

impl Quantity {
    /// The unit for figures up to `max` (in base units) and the divisor into it: the same
    /// steps as the terminal's formatting (`units::Joules` and friends).
    pub fn unit(self, max: f64) -> (&'static str, f64) {
        let m = max.abs();
        // (the unit, its size in base units), smallest first; the largest whose size is
        // at most m, else the first.
        let steps: &[(&'static str, f64)] = match self {
            Quantity::Energy => &[("J", 1.0), ("Wh", 3600.0), ("kWh", 3.6e6), ("MWh", 3.6e9)],
            Quantity::Carbon => &[("g CO2e", 1.0), ("kg CO2e", 1e3), ("t CO2e", 1e6)],
            Quantity::Water if m > 0.0 && m < 1.0 => &[("mL", 1e-3)],
            Quantity::Water => &[("L", 1.0), ("m3", 1e3)],
            Quantity::Power => &[("W", 1.0), ("kW", 1e3)],
        };
        steps
            .iter()
            .rev()
            .find(|(_, size)| m >= *size)
            .or(steps.first())
            .copied()
            .unwrap_or(("", 1.0))
    }
}

/// Horizontal grid lines at the value ticks `ts` (the last is the top of the plot), each
/// labelled on the left: the plot spans `x` = [left, right] and `y` = [top margin, height].
fn grid_lines(o: &mut String, ts: &[f64], step: f64, [ml, right]: [f64; 2], [mt, ph]: [f64; 2]) {
    let top = ts.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    for t in ts {
        let yy = mt + ph - t / top * ph;
        let _ = write!(
            o,
            "<line x1=\"{ml}\" x2=\"{right:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            ml - 6.0,
            yy + 4.0,
            tick_label(*t, step)
        );
    }
}

/// Round axis ticks from 0 to at least `max`: steps of 1, 2 or 5 × 10^k, 3 to 6 of them.
pub fn ticks(max: f64) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0, 1.0];
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| max / s <= 5.0)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil().max(1.0) as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// A tick label: no more digits than the step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// The opening of a chart: its size, its text alternative and its title.
fn open(o: &mut String, id: &str, w: f64, h: f64, title: &str, desc: &str) {
    let _ = write!(
        o,
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\
         <title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\
         <text x=\"8\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        esc(title),
        esc(desc),
        esc(title)
    );
}

/// The source line at the foot of a chart, shortened to the chart's width (the page says the
/// rest in words beside it).
fn source_line(o: &mut String, h: f64, source: &str) {
    let _ = write!(
        o,
        "<text x=\"8\" y=\"{:.1}\" font-size=\"10\" fill=\"#444\">Source: {}</text>",
        h - 6.0,
        esc(&crate::term::fit(source, 110))
    );
}

/// Draws the legend from `x0` on the row at `y`, wrapping to a second row before `x_max`;
/// returns where the next entry would go (x, y).
fn legend(o: &mut String, x0: f64, y: f64, x_max: f64, names: &[&str]) -> (f64, f64) {
    let (mut x, mut y) = (x0, y);
    for (i, n) in names.iter().enumerate() {
        let w = 24.0 + 6.5 * n.chars().count() as f64;
        if x + w > x_max && x > x0 {
            x = x0;
            y += 15.0;
        }
        let _ = write!(
            o,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            y - 9.0,
            PALETTE[i % PALETTE.len()],
            x + 14.0,
            esc(n)
        );
        x += w;
    }
    (x, y)
}

/// A stacked bar chart: one bar per category, one stacked segment per series.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub title: String,
    /// The text alternative: what the chart shows, in a sentence.
    pub desc: String,
    pub x_title: String,
    pub quantity: Quantity,
    /// What the y axis measures, without its unit ("Energy").
    pub y_title: String,
    pub categories: Vec<String>,
    /// (series name, one value per category, in base units).
    pub series: Vec<(String, Vec<f64>)>,
    pub source: String,
}

pub fn stacked_bars(b: &Bars, id: &str) -> String {
    let (w, h, ml, mr, mt, mb) = (640.0, 310.0, 70.0, 16.0, 66.0, 70.0);
    let n = b.categories.len().max(1);
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            b.series
                .iter()
                .map(|s| s.1.get(i).copied().unwrap_or(0.0).max(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    let (unit, div) = b.quantity.unit(max);
    let ts = ticks(max / div);
    let top = ts.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let step = ts.get(1).copied().unwrap_or(1.0);
    let ph = h - mt - mb;
    let pw = w - ml - mr;
    let y = |v: f64| mt + ph - v / div / top * ph;
    let mut o = String::new();
    open(&mut o, id, w, h, &b.title, &b.desc);
    let names: Vec<&str> = b.series.iter().map(|s| s.0.as_str()).collect();
    let _ = legend(&mut o, ml, 40.0, w - mr, &names);
    grid_lines(&mut o, &ts, step, [ml, w - mr], [mt, ph]);
    let _ = write!(
        o,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{} ({})</text>",
        mt + ph / 2.0,
        esc(&b.y_title),
        esc(unit)
    );
    let slot = pw / n as f64;
    let bw = (slot * 0.7).min(60.0);
    // Category labels: every one when they fit, else every k-th.
    let every = ((n as f64 * 70.0) / pw).ceil().max(1.0) as usize;
    for (i, cat) in b.categories.iter().enumerate() {
        let cx = ml + slot * (i as f64 + 0.5);
        let mut base = 0.0;
        for (si, (name, vals)) in b.series.iter().enumerate() {
            let v = vals.get(i).copied().unwrap_or(0.0).max(0.0);
            if v <= 0.0 {
                continue;
            }
            let (y1, y0) = (y(base + v), y(base));
            let _ = write!(
                o,
                "<rect x=\"{:.1}\" y=\"{y1:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>{}, {}: {}</title></rect>",
                cx - bw / 2.0,
                (y0 - y1).max(0.0),
                PALETTE[si % PALETTE.len()],
                esc(cat),
                esc(name),
                esc(&value_text(b.quantity, v))
            );
            base += v;
        }
        if i % every == 0 {
            let _ = write!(
                o,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                mt + ph + 16.0,
                esc(&crate::term::fit(cat, 12))
            );
        }
    }
    let _ = write!(
        o,
        "<line x1=\"{ml}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        w - mr,
        mt + ph,
        mt + ph,
        ml + pw / 2.0,
        mt + ph + 36.0,
        esc(&b.x_title)
    );
    source_line(&mut o, h, &b.source);
    o.push_str("</svg>");
    o
}

/// A figure as the terminal prints it.
pub fn value_text(q: Quantity, v: f64) -> String {
    use crate::units::{GramsCo2e, Joules, Litres, Watts};
    match q {
        Quantity::Energy => Joules(v).to_string(),
        Quantity::Carbon => GramsCo2e(v).to_string(),
        Quantity::Water => Litres(v).to_string(),
        Quantity::Power => Watts(v).to_string(),
    }
}

/// Lines over time, with shaded spans (pauses).
#[derive(Debug, Clone, PartialEq)]
pub struct Lines {
    pub title: String,
    pub desc: String,
    pub quantity: Quantity,
    pub y_title: String,
    /// (series name, (seconds from the start, value in base units)).
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// (from s, to s, label) shaded grey.
    pub shaded: Vec<(f64, f64, String)>,
    pub source: String,
}

pub fn lines(l: &Lines, id: &str) -> String {
    let (w, h, ml, mr, mt, mb) = (640.0, 310.0, 70.0, 16.0, 66.0, 62.0);
    let t_max = l
        .series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .chain(l.shaded.iter().map(|s| s.1))
        .fold(0.0, f64::max)
        .max(1.0);
    let v_max = l
        .series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (unit, div) = l.quantity.unit(v_max);
    let ts = ticks(v_max / div);
    let top = ts.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let step = ts.get(1).copied().unwrap_or(1.0);
    // Time in the unit that reads best.
    let (t_unit, t_div) = if t_max >= 7200.0 {
        ("h", 3600.0)
    } else if t_max >= 120.0 {
        ("min", 60.0)
    } else {
        ("s", 1.0)
    };
    let xt = ticks(t_max / t_div);
    let x_top = xt.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let x_step = xt.get(1).copied().unwrap_or(1.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let x = |t: f64| ml + t / t_div / x_top * pw;
    let y = |v: f64| mt + ph - v / div / top * ph;
    let mut o = String::new();
    open(&mut o, id, w, h, &l.title, &l.desc);
    let names: Vec<&str> = l.series.iter().map(|s| s.0.as_str()).collect();
    let (mut lx, mut ly) = legend(&mut o, ml, 40.0, w - mr, &names);
    if !l.shaded.is_empty() {
        if lx + 70.0 > w - mr {
            lx = ml;
            ly += 15.0;
        }
        let _ = write!(
            o,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"#bbb\" fill-opacity=\"0.5\"/><text x=\"{:.1}\" y=\"{ly:.1}\">paused</text>",
            ly - 9.0,
            lx + 14.0
        );
    }
    for (a, b, label) in &l.shaded {
        let _ = write!(
            o,
            "<rect x=\"{:.1}\" y=\"{mt}\" width=\"{:.1}\" height=\"{ph:.1}\" fill=\"#bbb\" fill-opacity=\"0.5\"><title>{}</title></rect>",
            x(*a),
            (x(*b) - x(*a)).max(1.0),
            esc(label)
        );
    }
    grid_lines(&mut o, &ts, step, [ml, w - mr], [mt, ph]);
    for t in &xt {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            ml + t / x_top * pw,
            mt + ph + 16.0,
            tick_label(*t, x_step)
        );
    }
    for (si, (name, pts)) in l.series.iter().enumerate() {
        if pts.is_empty() {
            continue;
        }
        let mut d = String::new();
        for (i, (t, v)) in pts.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x(*t),
                y(*v)
            );
        }
        let _ = write!(
            o,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"><title>{}</title></path>",
            PALETTE[si % PALETTE.len()],
            if si == 0 { 2.5 } else { 1.5 },
            esc(name)
        );
    }
    let _ = write!(
        o,
        "<line x1=\"{ml}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">Time since the start ({t_unit})</text>\
         <text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{} ({})</text>",
        w - mr,
        mt + ph,
        mt + ph,
        ml + pw / 2.0,
        mt + ph + 34.0,
        mt + ph / 2.0,
        esc(&l.y_title),
        esc(unit)
    );
    source_line(&mut o, h, &l.source);
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(7.3), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
        for m in [0.013, 1.0, 3.3, 47.0, 999.0, 1.2e7] {
            let t = ticks(m);
            assert!(*t.last().expect("last") >= m, "{m}: {t:?}");
            assert!((3..=7).contains(&t.len()), "{m}: {t:?}");
        }
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(40.0, 20.0), "40");
    }

    #[test]
    fn units_follow_the_terminal() {
        assert_eq!(Quantity::Energy.unit(5.0e6).0, "kWh");
        assert_eq!(Quantity::Energy.unit(5.0e3).0, "Wh");
        assert_eq!(Quantity::Carbon.unit(2.5e6).0, "t CO2e");
        assert_eq!(Quantity::Water.unit(0.2).0, "mL");
        assert_eq!(value_text(Quantity::Energy, 5.0e6), "1.39 kWh");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\"\u{7}\n"), "a&lt;b &amp; &quot;c&quot; \n");
    }
}

//! Typed physical quantities that cross module borders (energy, power, carbon, water) and
//! their conversion and human formatting. A bare `f64` never says whether it holds joules or
//! kilowatt-hours; these newtypes do, so a wrong conversion is a type error, not a silent 3.6e6×.

use serde::{Deserialize, Serialize};
use std::ops::{Add, AddAssign, Mul, Sub};

/// Joules per kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;

macro_rules! quantity {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub f64);

        impl Add for $name {
            type Output = $name;
            fn add(self, o: $name) -> $name {
                $name(self.0 + o.0)
            }
        }
        impl AddAssign for $name {
            fn add_assign(&mut self, o: $name) {
                self.0 += o.0;
            }
        }
        impl Sub for $name {
            type Output = $name;
            fn sub(self, o: $name) -> $name {
                $name(self.0 - o.0)
            }
        }
        impl Mul<f64> for $name {
            type Output = $name;
            fn mul(self, k: f64) -> $name {
                $name(self.0 * k)
            }
        }
        impl std::iter::Sum for $name {
            fn sum<I: Iterator<Item = $name>>(it: I) -> $name {
                // fold from +0.0: `f64::sum` of nothing is -0.0, which prints as "-0".
                $name(it.fold(0.0, |a, x| a + x.0))
            }
        }
    };
}

quantity!(Joules, "Energy in joules.");
quantity!(Watts, "Power in watts.");
quantity!(
    GramsCo2e,
    "Greenhouse-gas emissions in grams of CO2-equivalent."
);
quantity!(Litres, "A volume of water in litres.");
quantity!(
    Seconds,
    "A span of time in seconds (from a monotonic clock when measured)."
);

impl Joules {
    pub fn kwh(self) -> f64 {
        self.0 / J_PER_KWH
    }
    pub fn from_kwh(kwh: f64) -> Joules {
        Joules(kwh * J_PER_KWH)
    }
    /// Mean power over `dt`; zero for an empty interval rather than a division by zero.
    pub fn over(self, dt: Seconds) -> Watts {
        if dt.0 > 0.0 {
            Watts(self.0 / dt.0)
        } else {
            Watts(0.0)
        }
    }
}

impl Watts {
    pub fn for_(self, dt: Seconds) -> Joules {
        Joules(self.0 * dt.0)
    }
}

/// A carbon intensity of electricity, in grams CO2e per kWh.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GramsPerKwh(pub f64);

impl GramsPerKwh {
    pub fn of(self, e: Joules) -> GramsCo2e {
        GramsCo2e(self.0 * e.kwh())
    }
}

/// Water used per kWh of electricity (WUE on site, EWIF off site), in litres per kWh.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LitresPerKwh(pub f64);

impl LitresPerKwh {
    pub fn of(self, e: Joules) -> Litres {
        Litres(self.0 * e.kwh())
    }
}

/// A number for explanations: four significant figures, scientific when very small or large.
pub fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if !(1e-3..1e6).contains(&a) {
        format!("{x:.3e}")
    } else {
        let mag = a.log10().floor() as i32;
        let decimals = (3 - mag).max(0) as usize;
        format!("{x:.decimals$}")
    }
}

/// A number as Python's `repr` writes it (as CodeCarbon's CSV has them): the shortest
/// digits that read back to the same value, an exponent below 1e-4 or from 1e16
/// (`1.2159e-05`), and `.0` on whole numbers. Files holding both tools' rows look alike.
pub fn py_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = x.abs();
    if !(1e-4..1e16).contains(&a) {
        // Rust's `{:e}` gives the shortest mantissa: `1.2159e-5`.
        let e = format!("{x:e}");
        let (m, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
        let n: i32 = exp.parse().unwrap_or(0);
        let sign = if n < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", n.unsigned_abs());
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Three significant figures at most: our inputs are rarely known better than that.
pub fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    let decimals = (2 - mag).max(0) as usize;
    format!("{x:.decimals$}")
}

impl std::fmt::Display for Joules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let j = self.0;
        let wh = j / 3600.0;
        if j.abs() < 1e-9 && j != 0.0 {
            write!(f, "{} pJ", sig3(j * 1e12))
        } else if j.abs() < 1e-6 && j != 0.0 {
            write!(f, "{} nJ", sig3(j * 1e9))
        } else if j.abs() < 1e-3 && j != 0.0 {
            write!(f, "{} µJ", sig3(j * 1e6))
        } else if j.abs() < 1.0 && j != 0.0 {
            write!(f, "{} mJ", sig3(j * 1e3))
        } else if j.abs() < 3600.0 {
            write!(f, "{} J", sig3(j))
        } else if wh.abs() < 1000.0 {
            write!(f, "{} Wh", sig3(wh))
        } else if wh.abs() < 1e6 {
            write!(f, "{} kWh", sig3(wh / 1e3))
        } else if wh.abs() < 1e9 {
            write!(f, "{} MWh", sig3(wh / 1e6))
        } else if wh.abs() < 1e12 {
            write!(f, "{} GWh", sig3(wh / 1e9))
        } else {
            write!(f, "{} TWh", sig3(wh / 1e12))
        }
    }
}

impl std::fmt::Display for Watts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.abs() < 1e-6 && self.0 != 0.0 {
            write!(f, "{} nW", sig3(self.0 * 1e9))
        } else if self.0.abs() < 1e-3 && self.0 != 0.0 {
            write!(f, "{} µW", sig3(self.0 * 1e6))
        } else if self.0.abs() < 1.0 && self.0 != 0.0 {
            write!(f, "{} mW", sig3(self.0 * 1e3))
        } else if self.0.abs() < 1000.0 {
            write!(f, "{} W", sig3(self.0))
        } else if self.0.abs() < 1e6 {
            write!(f, "{} kW", sig3(self.0 / 1e3))
        } else {
            write!(f, "{} MW", sig3(self.0 / 1e6))
        }
    }
}

impl std::fmt::Display for GramsCo2e {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.0;
        if g.abs() < 1e-9 && g != 0.0 {
            write!(f, "{} pg CO2e", sig3(g * 1e12))
        } else if g.abs() < 1e-6 && g != 0.0 {
            write!(f, "{} ng CO2e", sig3(g * 1e9))
        } else if g.abs() < 1e-3 && g != 0.0 {
            write!(f, "{} µg CO2e", sig3(g * 1e6))
        } else if g.abs() < 1.0 && g != 0.0 {
            write!(f, "{} mg CO2e", sig3(g * 1e3))
        } else if g.abs() < 1000.0 {
            write!(f, "{} g CO2e", sig3(g))
        } else if g.abs() < 1e6 {
            write!(f, "{} kg CO2e", sig3(g / 1e3))
        } else if g.abs() < 1e9 {
            write!(f, "{} t CO2e", sig3(g / 1e6))
        } else if g.abs() < 1e12 {
            write!(f, "{} kt CO2e", sig3(g / 1e9))
        } else {
            write!(f, "{} Mt CO2e", sig3(g / 1e12))
        }
    }
}

impl std::fmt::Display for Litres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = self.0;
        if l.abs() < 1e-9 && l != 0.0 {
            write!(f, "{} pL", sig3(l * 1e12))
        } else if l.abs() < 1e-6 && l != 0.0 {
            write!(f, "{} nL", sig3(l * 1e9))
        } else if l.abs() < 1e-3 && l != 0.0 {
            write!(f, "{} µL", sig3(l * 1e6))
        } else if l.abs() < 1.0 && l != 0.0 {
            write!(f, "{} mL", sig3(l * 1e3))
        } else if l.abs() < 1000.0 {
            write!(f, "{} L", sig3(l))
        } else if l.abs() < 1e6 {
            write!(f, "{} m3", sig3(l / 1e3))
        } else if l.abs() < 1e9 {
            // Megalitres (1,000 m3), as water utilities count: never "67208 m3".
            write!(f, "{} ML", sig3(l / 1e6))
        } else {
            write!(f, "{} GL", sig3(l / 1e9))
        }
    }
}

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        if s < 1.0 {
            write!(f, "{} ms", sig3(s * 1e3))
        } else if s < 60.0 {
            write!(f, "{} s", sig3(s))
        } else {
            let total = s.round() as u64;
            let (h, m, sec) = (total / 3600, (total / 60) % 60, total % 60);
            if h > 0 {
                write!(f, "{h}h{m:02}m{sec:02}s")
            } else {
                write!(f, "{m}m{sec:02}s")
            }
        }
    }
}

/// Splits "1.5e3 kWh" into ("1.5e3", " kWh"): the longest leading decimal number, with an
/// optional exponent. The split point is always an ASCII boundary.
pub fn split_number(t: &str) -> (&str, &str) {
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i > 0 && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let k = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > k {
            i = j;
        }
    }
    t.split_at(i)
}

/// What a budget measures, and the units each is written and kept in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Energy,
    Carbon,
    Water,
    Time,
}

impl Metric {
    pub fn parse(s: &str) -> Result<Metric, String> {
        match s.trim() {
            "energy" => Ok(Metric::Energy),
            "carbon" => Ok(Metric::Carbon),
            "water" => Ok(Metric::Water),
            "time" => Ok(Metric::Time),
            other => Err(format!(
                "unknown budget '{other}'; use energy, carbon, water or time"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Energy => "energy",
            Metric::Carbon => "carbon",
            Metric::Water => "water",
            Metric::Time => "time",
        }
    }

    /// The unit budgets are kept in: J, g (CO2e), L or s.
    pub fn base_unit(self) -> &'static str {
        match self {
            Metric::Energy => "J",
            Metric::Carbon => "g",
            Metric::Water => "L",
            Metric::Time => "s",
        }
    }

    /// (unit, factor to the base unit: J, g, L, s), for each accepted unit.
    fn units(self) -> &'static [(&'static str, f64)] {
        match self {
            Metric::Energy => &[
                ("mJ", 1e-3),
                ("J", 1.0),
                ("kJ", 1e3),
                ("MJ", 1e6),
                ("Wh", 3600.0),
                ("kWh", 3.6e6),
                ("MWh", 3.6e9),
            ],
            Metric::Carbon => &[("mg", 1e-3), ("g", 1.0), ("kg", 1e3), ("t", 1e6)],
            Metric::Water => &[("mL", 1e-3), ("L", 1.0), ("l", 1.0), ("m3", 1e3)],
            Metric::Time => &[("s", 1.0), ("min", 60.0), ("h", 3600.0), ("d", 86400.0)],
        }
    }

    /// The largest budget accepted, in the base unit: beyond any real workload (a TWh, a
    /// megatonne, a million cubic metres, a century), so a typo never disables a limit.
    fn max(self) -> f64 {
        match self {
            Metric::Energy => 3.6e15,
            Metric::Carbon => 1e12,
            Metric::Water => 1e9,
            Metric::Time => 100.0 * 365.0 * 86400.0,
        }
    }

    /// Parses an amount with its unit ("500Wh", "5 kg", "1e3J") into the base unit.
    pub fn parse_amount(self, text: &str) -> Result<f64, String> {
        let t = text.trim();
        let (num, unit) = split_number(t);
        let unit = unit.trim();
        let accepted = || {
            self.units()
                .iter()
                .map(|(u, _)| *u)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let shown = crate::term::escape(&crate::term::fit(t, 40));
        let value: f64 = num.parse().map_err(|_| {
            format!(
                "{} budget '{shown}' needs a number and a unit ({})",
                self.name(),
                accepted()
            )
        })?;
        let factor = self
            .units()
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                format!(
                    "{} budget '{shown}': unit '{}' not accepted; use {}",
                    self.name(),
                    crate::term::escape(unit),
                    accepted()
                )
            })?;
        let base = value * factor;
        if !base.is_finite() || base > self.max() {
            return Err(format!(
                "{} budget '{shown}' is too large; at most {}",
                self.name(),
                self.show(self.max())
            ));
        }
        if base <= 0.0 {
            return Err(format!(
                "{} budget '{shown}' must be more than zero",
                self.name()
            ));
        }
        Ok(base)
    }

    /// An amount in the base unit, for people.
    pub fn show(self, v: f64) -> String {
        use crate::units::{GramsCo2e, Joules, Litres, Seconds};
        match self {
            Metric::Energy => Joules(v).to_string(),
            Metric::Carbon => GramsCo2e(v).to_string(),
            Metric::Water => Litres(v).to_string(),
            Metric::Time => Seconds(v).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_python_repr() {
        for (x, want) in [
            (1.2159017036069122e-05, "1.2159017036069122e-05"),
            (0.0, "0.0"),
            (20.0, "20.0"),
            (2.0107446170000003, "2.0107446170000003"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456.5, "123456.5"),
            (-3.5e-7, "-3.5e-07"),
            (1.5e300, "1.5e+300"),
        ] {
            assert_eq!(py_float(x), want);
            assert_eq!(py_float(x).parse::<f64>().ok(), Some(x));
        }
    }

    #[test]
    fn scales_units_for_people() {
        assert_eq!(Joules(12.345).to_string(), "12.3 J");
        assert_eq!(Joules(7200.0).to_string(), "2.00 Wh");
        assert_eq!(Joules::from_kwh(3.5).to_string(), "3.50 kWh");
        assert_eq!(GramsCo2e(0.0123).to_string(), "12.3 mg CO2e");
        assert_eq!(GramsCo2e(1500.0).to_string(), "1.50 kg CO2e");
        assert_eq!(Litres(0.25).to_string(), "250 mL");
        assert_eq!(Seconds(0.0101).to_string(), "10.1 ms");
        assert_eq!(Joules(0.0061).to_string(), "6.10 mJ");
        assert_eq!(Joules(0.0).to_string(), "0 J");
        assert_eq!(GramsCo2e(0.000000814).to_string(), "814 ng CO2e");
        assert_eq!(Litres(0.0000066).to_string(), "6.60 µL");
        // SI prefixes all the way: never "0.000686 µL" nor "1.402e5 t".
        assert_eq!(Litres(0.000000000686).to_string(), "686 pL");
        assert_eq!(Litres(0.000000686).to_string(), "686 nL");
        assert_eq!(Litres(67_208_000.0).to_string(), "67.2 ML");
        assert_eq!(Litres(672_000.0).to_string(), "672 m3");
        assert_eq!(Litres(4.45e11).to_string(), "445 GL");
        assert_eq!(Joules(3.2e-8).to_string(), "32.0 nJ");
        assert_eq!(Joules(3.6e12).to_string(), "1.00 GWh");
        assert_eq!(GramsCo2e(1.402e11).to_string(), "140 kt CO2e");
        assert_eq!(GramsCo2e(4.0e-10).to_string(), "400 pg CO2e");
        assert_eq!(Watts(2.5e6).to_string(), "2.50 MW");
        assert_eq!(num(0.0000012345), "1.234e-6");
        assert_eq!(num(12.3456), "12.35");
        assert_eq!(Seconds(3725.0).to_string(), "1h02m05s");
    }

    #[test]
    fn conversions_are_exact() {
        let e = Joules::from_kwh(2.0);
        assert_eq!(GramsPerKwh(400.0).of(e), GramsCo2e(800.0));
        assert_eq!(LitresPerKwh(1.5).of(e), Litres(3.0));
        assert_eq!(Watts(10.0).for_(Seconds(3.0)), Joules(30.0));
        assert_eq!(Joules(30.0).over(Seconds(0.0)), Watts(0.0));
    }
}

//! Calendar periods of policy budgets (day, ISO week, month, quarter, year), in UTC: a
//! team's "5 kg / month" renews at 00:00 UTC on the first of the month wherever its members
//! are, so every machine agrees on which runs count against it.

use crate::timefmt::civil_from_days;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Period {
    pub fn parse(s: &str) -> Result<Period, String> {
        match s.trim() {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            "quarter" => Ok(Period::Quarter),
            "year" => Ok(Period::Year),
            other => Err(format!(
                "unknown period '{other}'; use day, week, month, quarter or year"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }

    /// The period containing `t` (Unix seconds): its start and end (exclusive), Unix seconds.
    pub fn bounds(self, t: i64) -> (i64, i64) {
        let day = t.div_euclid(86400);
        let (y, m, _) = civil_from_days(day);
        let start_day = match self {
            Period::Day => day,
            // 1970-01-01 was a Thursday; ISO weeks start on Monday.
            Period::Week => day - (day + 3).rem_euclid(7),
            Period::Month => days_from_civil(y, m, 1),
            Period::Quarter => days_from_civil(y, (m - 1) / 3 * 3 + 1, 1),
            Period::Year => days_from_civil(y, 1, 1),
        };
        let end_day = match self {
            Period::Day => start_day + 1,
            Period::Week => start_day + 7,
            Period::Month => add_months(y, m, 1),
            Period::Quarter => add_months(y, (m - 1) / 3 * 3 + 1, 3),
            Period::Year => days_from_civil(y + 1, 1, 1),
        };
        (start_day * 86400, end_day * 86400)
    }
}

fn add_months(y: i64, m: u32, n: u32) -> i64 {
    let total = y * 12 + (m as i64 - 1) + n as i64;
    days_from_civil(total.div_euclid(12), (total.rem_euclid(12) + 1) as u32, 1)
}

pub use crate::timefmt::{days_from_civil, parse_time};

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        parse_time(s).expect("time") as i64
    }

    #[test]
    fn period_bounds_across_boundaries() {
        let cases = [
            (
                Period::Day,
                "2026-11-29T23:59:59Z",
                "2026-11-29T00:00:00Z",
                "2026-11-30T00:00:00Z",
            ),
            (
                Period::Week,
                "2026-11-29T12:00:00Z",
                "2026-11-23T00:00:00Z",
                "2026-11-30T00:00:00Z",
            ), // a Sunday
            (
                Period::Week,
                "2026-11-30T00:00:00Z",
                "2026-11-30T00:00:00Z",
                "2026-12-07T00:00:00Z",
            ), // a Monday
            (
                Period::Month,
                "2026-12-31T23:00:00Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                Period::Month,
                "2028-02-29T10:00:00Z",
                "2028-02-01T00:00:00Z",
                "2028-03-01T00:00:00Z",
            ), // leap year
            (
                Period::Month,
                "2026-01-31T10:00:00Z",
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
            ),
            (
                Period::Quarter,
                "2026-11-29T00:00:00Z",
                "2026-10-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                Period::Quarter,
                "2026-03-31T23:59:59Z",
                "2026-01-01T00:00:00Z",
                "2026-04-01T00:00:00Z",
            ),
            (
                Period::Year,
                "2026-07-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ];
        for (p, t, s, e) in cases {
            assert_eq!(p.bounds(at(t)), (at(s), at(e)), "{p:?} of {t}");
        }
    }

    #[test]
    fn time_zones_are_converted_to_utc() {
        // 00:30 on the 1st in Paris (+01:00) is still the previous month in UTC.
        let t = at("2026-12-01T00:30:00+01:00");
        assert_eq!(Period::Month.bounds(t).0, at("2026-11-01T00:00:00Z"));
    }
}

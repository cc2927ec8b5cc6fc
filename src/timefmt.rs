//! Times as decompute reads and writes them: RFC 3339 in UTC with milliseconds when it
//! writes (`2026-11-29T02:54:23.123Z`), and, when it reads user text (forecasts, `--since`,
//! `--now`), RFC 3339 with any offset, a bare date, or a Unix epoch in seconds or
//! milliseconds. Parsing checks the calendar (no 31 February) and never slices inside a
//! character. The day arithmetic is Howard Hinnant's public-domain algorithm.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The latest instant accepted from user text: the end of year 9999.
pub const MAX_UNIX_S: f64 = 253_402_300_800.0;

/// `2026-11-29T02:54:23.123Z` (milliseconds, UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339_ms(d.as_millis().min(i64::MAX as u128) as i64)
}

/// The canonical text of an instant given in Unix milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// `2026-11-29T02:54:23Z` for Unix seconds (clamped to 0..=year 9999; never panics).
pub fn rfc3339_s(t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, MAX_UNIX_S - 1.0)
    } else {
        0.0
    };
    let s = rfc3339_ms((t * 1000.0) as i64);
    format!("{}Z", s.get(..19).unwrap_or(&s))
}

/// Unix seconds now.
pub fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A `SystemTime` from Unix seconds (clamped, never panics).
pub fn system_time(t: f64) -> SystemTime {
    let t = if t.is_finite() {
        t.clamp(0.0, MAX_UNIX_S)
    } else {
        0.0
    };
    UNIX_EPOCH + Duration::from_millis((t * 1000.0) as u64)
}

/// (year, month, day) for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The ISO 8601 week (`2026-W48`) of a day counted from 1970-01-01: weeks start on Monday
/// and belong to the year of their Thursday.
pub fn iso_week(days: i64) -> String {
    let weekday = (days + 3).rem_euclid(7); // 0 = Monday; 1970-01-01 was a Thursday
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    format!("{year}-W{week:02}")
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A calendar date `YYYY-MM-DD` as days since 1970-01-01, checked against the calendar.
pub fn parse_date(s: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("'{s}' is not a date ({why}); write YYYY-MM-DD");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad("need year-month-day"));
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad("need 4-2-2 digits"));
    }
    let (Some(y), Some(m), Some(d)) = (digits(y), digits(m), digits(d)) else {
        return Err(bad("not digits"));
    };
    if !(1..=12).contains(&m) {
        return Err(bad("no month 13 or 0"));
    }
    let (m, d) = (m as u32, d as u32);
    if d == 0 || d > days_in_month(y, m) {
        return Err(format!(
            "'{s}' is not a date: month {m} of {y} has {} days",
            days_in_month(y, m)
        ));
    }
    Ok(days_from_civil(y, m, d))
}

/// Parses a point in time from user text into Unix seconds: RFC 3339
/// (`2026-11-29T10:00:00Z`, `…+01:00`, fractional seconds, a space for the `T`), or a Unix
/// epoch in seconds, or in milliseconds (a number of 10^11 or more: seconds that large
/// would be after year 5000). Anything outside 1970–9999 is refused.
pub fn parse_time(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "'{}' is not a time; use RFC 3339 (2026-11-29T10:00:00Z) or Unix seconds",
            crate::term::escape(&crate::term::fit(t, 40))
        )
    };
    if let Ok(v) = t.parse::<f64>() {
        let secs = if v.abs() >= 1e11 { v / 1000.0 } else { v };
        if !(secs.is_finite() && (0.0..MAX_UNIX_S).contains(&secs)) {
            return Err(format!(
                "'{t}' is not a Unix time between 1970 and 9999 (seconds, or milliseconds)"
            ));
        }
        return Ok(secs);
    }
    // RFC 3339 is ASCII: anything else is refused before any slicing.
    if !t.is_ascii() || t.len() < 19 {
        return Err(bad());
    }
    let (date, rest) = t.split_at(10);
    let days = parse_date(date).map_err(|e| if e.contains("days") { e } else { bad() })?;
    let mut chars = rest.chars();
    if !matches!(chars.next(), Some('T' | 't' | ' ')) {
        return Err(bad());
    }
    let rest = chars.as_str();
    let (hms, mut rest) = rest.split_at(8);
    let hp: Vec<&str> = hms.split(':').collect();
    let [h, mi, se] = hp.as_slice() else {
        return Err(bad());
    };
    let (Some(h), Some(mi), Some(se)) = (digits(h), digits(mi), digits(se)) else {
        return Err(bad());
    };
    if h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if end == 0 {
            return Err(bad());
        }
        let (f, after) = r.split_at(end);
        frac = format!("0.{f}").parse().map_err(|_| bad())?;
        rest = after;
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = (o.get(1..3), o.get(4..6));
            if o.get(3..4) != Some(":") {
                return Err(bad());
            }
            let (Some(oh), Some(om)) = (oh.and_then(digits), om.and_then(digits)) else {
                return Err(bad());
            };
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(bad()),
    };
    let v = (days * 86400 + h * 3600 + mi * 60 + se - offset) as f64 + frac;
    if !(0.0..MAX_UNIX_S).contains(&v) {
        return Err(format!("'{t}' is outside 1970–9999"));
    }
    Ok(v)
}

/// A `--since`/`--until` bound: a date (its midnight, UTC) or any time [`parse_time`] takes.
/// Returns Unix milliseconds, compared as instants.
pub fn parse_bound_ms(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t.len() == 10 && t.is_ascii() && t.as_bytes().get(4) == Some(&b'-') {
        return Ok(parse_date(t)? * 86_400_000);
    }
    let v = parse_time(t).map_err(|_| {
        format!(
            "'{}' is not a date; write YYYY-MM-DD or an RFC 3339 time like 2026-11-01T12:00:00Z",
            crate::term::escape(&crate::term::fit(t, 40))
        )
    })?;
    Ok((v * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::iso_week;

    #[test]
    fn iso_weeks_as_strftime_gives_them() {
        let d = |y, m, dd| super::days_from_civil(y, m, dd);
        assert_eq!(iso_week(d(2026, 11, 29)), "2026-W48");
        assert_eq!(iso_week(d(2026, 11, 30)), "2026-W49");
        assert_eq!(iso_week(d(2021, 1, 3)), "2020-W53");
        assert_eq!(iso_week(d(2024, 12, 30)), "2025-W01");
        assert_eq!(iso_week(d(1970, 1, 1)), "1970-W01");
    }

    use super::*;

    fn at(s: &str) -> f64 {
        parse_time(s).expect("time")
    }

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_500)),
            "2000-02-29T00:00:00.500Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_924_463)),
            "2026-11-29T03:54:23.000Z"
        );
        assert_eq!(rfc3339_s(f64::INFINITY), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_s(1e30), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn offsets_fractions_and_epochs() {
        assert_eq!(at("2026-12-01T00:30:00+01:00"), at("2026-11-30T23:30:00Z"));
        assert_eq!(at("1795996800"), 1795996800.0);
        assert_eq!(at("1795996800000"), 1795996800.0, "milliseconds");
        assert_eq!(
            at("2026-11-29T10:00:00.250Z"),
            at("2026-11-29T10:00:00Z") + 0.25
        );
        assert_eq!(at("2026-11-29 10:00:00"), at("2026-11-29T10:00:00Z"));
    }

    #[test]
    fn the_calendar_is_checked() {
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T10:00:00+0100",
            "2026-11-29T10:00:00+01:0é",
            "2026-11-29",
            "2026-11-29T10:00:00.Z",
            "2026-11-29T10:00:0é",
            "é026-11-29T10:00:00Z",
            "inf",
            "NaN",
            "-5",
            "1e300",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert!(parse_time("2028-02-29T00:00:00Z").is_ok(), "leap day");
        assert!(parse_date("2026-02-31")
            .expect_err("31 Feb")
            .contains("28 days"));
        assert!(parse_bound_ms("2026-13-45").is_err());
        assert_eq!(
            parse_bound_ms("2026-11-29T07:53:24Z"),
            Ok(at("2026-11-29T07:53:24Z") as i64 * 1000)
        );
        assert_eq!(
            parse_bound_ms("2026-11-01"),
            Ok(at("2026-11-01T00:00:00Z") as i64 * 1000)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_time(&s);
            let _ = parse_bound_ms(&s);
            let _ = parse_date(&s);
        }

        #[test]
        fn near_misses_never_panic(s in "[0-9]{4}-[0-9é]{2}-[0-9]{2}[T ][0-9]{2}:[0-9é]{2}:[0-9]{2}(\\.[0-9]{0,4})?(Z|[+-][0-9]{2}:?[0-9é]{2}|é)?") {
            let _ = parse_time(&s);
        }

        #[test]
        fn round_trips(ms in 0i64..253_402_300_799_000) {
            let text = rfc3339_ms(ms);
            proptest::prop_assert_eq!(parse_bound_ms(&text), Ok(ms));
        }
    }
}

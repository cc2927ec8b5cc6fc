//! Parses the duration forms every time flag of decompute accepts (`500ms`, `2s`, `1m`,
//! `1h`, `1.5h`, `1h30m`), so `--interval`, `--checkpoint` and later `--grace` read alike;
//! a number without its unit is refused, as a budget's is.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DurationError {
    #[error("empty duration; write e.g. 500ms, 2s, 1m or 1h")]
    Empty,
    #[error("'{0}' is not a duration; write a number and a unit: 500ms, 2s, 1m, 1h")]
    Malformed(String),
    #[error("'{0}' has no unit; write {0}s, {0}min or {0}h (a bare number would be a guess)")]
    NoUnit(String),
    #[error("'{0}' has unknown unit '{1}'; use ms, s, m (or min), h or d")]
    UnknownUnit(String, String),
    #[error(
        "'{0}' is longer than decompute can wait (more than 100 years); give a shorter duration"
    )]
    TooLong(String),
}

/// The longest duration any flag takes: a century. Longer ones are typing mistakes, and
/// keeping them bounded means adding one to an `Instant` can never overflow.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 86400);

/// Parses a duration. A number needs its unit, as a budget's amount does (`3` could be
/// seconds or hours: `when --duration 3` once meant 3 s without a word); only `0` stands
/// alone.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = 0.0f64;
    let mut rest = t;
    while !rest.is_empty() {
        // Both searches look for ASCII characters, so the split points are char boundaries.
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(DurationError::Malformed(t.to_string()));
        }
        let (num, after) = rest.split_at(num_end);
        let value: f64 = num
            .parse()
            .map_err(|_| DurationError::Malformed(t.to_string()))?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit = unit.trim();
        rest = after;
        let factor = match unit {
            "" if rest.is_empty() && total == 0.0 && value == 0.0 => 1.0,
            "" if rest.is_empty() && total == 0.0 => {
                return Err(DurationError::NoUnit(t.to_string()))
            }
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(DurationError::Malformed(t.to_string())),
            other => return Err(DurationError::UnknownUnit(t.to_string(), other.to_string())),
        };
        total += value * factor;
    }
    if !total.is_finite() {
        return Err(DurationError::TooLong(t.to_string()));
    }
    match Duration::try_from_secs_f64(total) {
        Ok(d) if d <= MAX => Ok(d),
        _ => Err(DurationError::TooLong(t.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let cases = [
            ("500ms", 0.5),
            ("2s", 2.0),
            ("1m", 60.0),
            ("1h", 3600.0),
            ("1.5h", 5400.0),
            ("1h30m", 5400.0),
            ("0", 0.0),
            ("1d", 86400.0),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs_f64(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("3"), Err(DurationError::NoUnit("3".into())));
        assert_eq!(
            parse_duration("3").map_err(|e| e.to_string()),
            Err("'3' has no unit; write 3s, 3min or 3h (a bare number would be a guess)".into())
        );
        assert!(matches!(
            parse_duration("fast"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("2 weeks"),
            Err(DurationError::UnknownUnit(_, _))
        ));
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("1..2s"),
            Err(DurationError::Malformed(_))
        ));
        for long in [
            "18446744073709551616s",
            "99999999999d",
            &("9".repeat(400) + "s"),
        ] {
            assert!(
                matches!(parse_duration(long), Err(DurationError::TooLong(_))),
                "{long}"
            );
        }
        assert!(parse_duration("1é").is_err() && parse_duration("é1s").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_stays_bounded(s in "\\PC*") {
            if let Ok(d) = parse_duration(&s) {
                proptest::prop_assert!(d <= MAX);
            }
        }

        #[test]
        fn digits_and_units_never_panic(s in "[0-9.]{0,30}(ms|s|m|h|d|é|µs|)[0-9.]{0,5}[a-zé]{0,3}") {
            let _ = parse_duration(&s);
        }
    }
}

//! The text of a `file:` or `cmd:` signal: a bare number (gCO2e/kWh), or a JSON object with
//! `intensity` (g/kWh) and/or `stress` (0–3).

use super::Reading;

pub fn parse(text: &str) -> Result<Reading, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(
            "empty signal; write a number in gCO2e/kWh or {\"intensity\": ..} / {\"stress\": 0..3}"
                .into(),
        );
    }
    if let Ok(v) = t.parse::<f64>() {
        return intensity(v).map(|i| Reading {
            intensity: Some(i),
            stress: None,
            marginal: false,
        });
    }
    let v: serde_json::Value = serde_json::from_str(t).map_err(|_| {
        format!(
            "'{}' is neither a number nor a JSON object",
            t.chars().take(40).collect::<String>()
        )
    })?;
    let obj = v.as_object().ok_or("the JSON signal must be an object")?;
    let i = match obj.get("intensity") {
        Some(x) => Some(intensity(
            x.as_f64().ok_or("\"intensity\" must be a number")?,
        )?),
        None => None,
    };
    let s = match obj.get("stress") {
        Some(x) => {
            let n = x
                .as_u64()
                .filter(|n| *n <= 3)
                .ok_or("\"stress\" must be 0, 1, 2 or 3")?;
            Some(n as u8)
        }
        None => None,
    };
    if i.is_none() && s.is_none() {
        return Err("the JSON signal has neither \"intensity\" nor \"stress\"".into());
    }
    Ok(Reading {
        intensity: i,
        stress: s,
        marginal: false,
    })
}

fn intensity(v: f64) -> Result<f64, String> {
    if v.is_finite() && (0.0..=3000.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("intensity {v} gCO2e/kWh is out of range (0–3000)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_objects() {
        assert_eq!(
            parse("  412.5\n"),
            Ok(Reading {
                intensity: Some(412.5),
                stress: None,
                marginal: false,
            })
        );
        assert_eq!(
            parse("{\"intensity\": 90}"),
            Ok(Reading {
                intensity: Some(90.0),
                stress: None,
                marginal: false,
            })
        );
        assert_eq!(
            parse("{\"stress\": 2}"),
            Ok(Reading {
                intensity: None,
                stress: Some(2),
                marginal: false,
            })
        );
        assert_eq!(
            parse("{\"stress\": 1, \"intensity\": 300}"),
            Ok(Reading {
                intensity: Some(300.0),
                stress: Some(1),
                marginal: false,
            })
        );
        for bad in [
            "",
            "lots",
            "-5",
            "{\"stress\": 7}",
            "{}",
            "[1]",
            "{\"intensity\": \"high\"}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }
    }
}

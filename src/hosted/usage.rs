//! A provider's usage export read as hosted-AI requests, so a team can put last month's API
//! use in its ledger: OpenAI's Usage API page of completions buckets (JSON, grouped by
//! model), the same fields as a CSV (the dashboard's export: `start_time`, `model`,
//! `num_model_requests`, `input_tokens`, `output_tokens`, …), or a plain
//! `date,model,requests,input_tokens,output_tokens` CSV (optional `provider` and `project`
//! columns) for any other provider. Each row becomes one [`Request`] standing for its
//! requests, with a stable id made from what the row is about (bucket, model, project, key),
//! so importing the same export again adds nothing. A bucket that has not ended yet is left
//! out: its counts would still change.

use super::Request;
use crate::csvdata;
use serde_json::Value;

/// What kind of usage file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI's Usage API (`/v1/organization/usage/completions`) page, JSON.
    OpenAiJson,
    /// OpenAI's completions usage fields as CSV columns.
    OpenAiCsv,
    /// `date,model,requests,input_tokens,output_tokens`.
    Plain,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenAiJson => "OpenAI usage (JSON)",
            Format::OpenAiCsv => "OpenAI usage (CSV)",
            Format::Plain => "usage CSV (date,model,requests,input_tokens,output_tokens)",
        }
    }
}

/// One row: the requests it stands for, its stable id, and the tags it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub id: String,
    pub request: Request,
    /// A project the row names (a plain CSV's `project` column).
    pub project: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// What was read, and what was left out.
#[derive(Debug, Default, PartialEq)]
pub struct Read {
    pub rows: Vec<Row>,
    /// Rows with no requests or no tokens.
    pub empty: usize,
    /// Buckets still open at `now`.
    pub open: usize,
}

/// The usage format `text` is in, if it is one (None: leave it to the ledger's own import).
pub fn sniff(text: &str) -> Option<Format> {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') {
        let v: Value = serde_json::from_str(t).ok()?;
        return (v.get("object").and_then(Value::as_str) == Some("page")
            && v.get("data").is_some_and(Value::is_array))
        .then_some(Format::OpenAiJson);
    }
    let first = t.lines().next()?;
    let header = csvdata::split_header(first);
    let has = |c: &str| header.iter().any(|h| h == c);
    if has("num_model_requests") && has("input_tokens") && has("output_tokens") {
        Some(Format::OpenAiCsv)
    } else if has("date") && has("model") && has("requests") && has("input_tokens") {
        Some(Format::Plain)
    } else {
        None
    }
}

/// Reads a usage file of format `f`; `now` (Unix seconds) tells which buckets are closed.
/// The first bad row refuses the file, naming its line.
pub fn read(name: &str, text: &str, f: Format, now: f64) -> Result<Read, String> {
    match f {
        Format::OpenAiJson => openai_json(name, text, now),
        Format::OpenAiCsv | Format::Plain => csv(name, text, f, now),
    }
}

/// FNV-1a, 64 bits: a stable id from a row's identifying cells (no crate needed for eight
/// lines; the id need not resist an adversary, only be the same for the same row).
fn stable_id(prefix: &str, parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0x1f)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{prefix}-{h:016x}")
}

/// Builds one row from its cells, or says why not (None: empty, left out).
#[allow(clippy::too_many_arguments)]
fn row(
    line: usize,
    kind: &str,
    provider: Option<&str>,
    model: &str,
    start: f64,
    end: f64,
    requests: f64,
    tokens_in: f64,
    tokens_out: f64,
    keys: &[(&str, String)],
) -> Result<Option<Row>, String> {
    let model = model.trim();
    if model.is_empty() {
        return Err("no model: export usage grouped by model (group_by=model), since the model sets the estimate".into());
    }
    let count = |x: f64, what: &str| {
        if x.is_finite() && (0.0..1e15).contains(&x) {
            Ok(x)
        } else {
            Err(format!("{what} {x:e} is not a count"))
        }
    };
    let requests = count(requests, "requests")?;
    let (tokens_in, tokens_out) = (
        count(tokens_in, "input tokens")?,
        count(tokens_out, "output tokens")?,
    );
    if requests < 1.0 || tokens_in + tokens_out == 0.0 {
        return Ok(None);
    }
    let mut parts: Vec<&str> = vec![kind, model];
    let start_s = format!("{start}");
    parts.push(&start_s);
    for (_, v) in keys {
        parts.push(v);
    }
    let id = stable_id("usage", &parts);
    let tags = keys
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Ok(Some(Row {
        line,
        id,
        request: Request {
            provider: provider.map(str::to_string),
            model: model.to_string(),
            tokens_in: tokens_in / requests,
            tokens_out: tokens_out / requests,
            started_unix: start,
            duration_s: 0.0,
            api: kind.to_string(),
            counted: format!(
                "a usage export: {requests} requests between {} and {}, tokens per request as the totals ÷ requests; their duration is unknown (0 s)",
                crate::timefmt::rfc3339_s(start),
                crate::timefmt::rfc3339_s(end)
            ),
            requests: Some(requests),
        },
        project: None,
        tags,
    }))
}

fn openai_json(name: &str, text: &str, now: f64) -> Result<Read, String> {
    let v: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("{name}: not JSON ({e})"))?;
    let mut out = Read::default();
    let buckets = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{name}: no \"data\" array of buckets"))?;
    let num = |x: &Value, k: &str| x.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let text_of = |x: &Value, k: &str| -> String {
        match x.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => String::new(),
        }
    };
    for (i, b) in buckets.iter().enumerate() {
        let at = format!("{name}: bucket {}", i + 1);
        let (start, end) = (num(b, "start_time"), num(b, "end_time"));
        if !(start > 0.0 && end >= start) {
            return Err(format!("{at}: start_time and end_time are not Unix times"));
        }
        let results = b
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{at}: no results"))?;
        for r in results {
            if end > now {
                out.open += 1;
                continue;
            }
            let keys = [
                ("openai_project", text_of(r, "project_id")),
                ("openai_user", text_of(r, "user_id")),
                ("openai_api_key", text_of(r, "api_key_id")),
                ("openai_batch", text_of(r, "batch")),
                ("openai_service_tier", text_of(r, "service_tier")),
            ];
            let cached = num(r, "input_cached_tokens");
            match row(
                i + 1,
                "openai usage export",
                Some("openai"),
                &text_of(r, "model"),
                start,
                end,
                num(r, "num_model_requests"),
                (num(r, "input_tokens") - cached).max(0.0),
                num(r, "output_tokens"),
                &keys,
            )
            .map_err(|e| format!("{at}: {e}"))?
            {
                Some(x) => out.rows.push(x),
                None => out.empty += 1,
            }
        }
    }
    Ok(out)
}

fn csv(name: &str, text: &str, f: Format, now: f64) -> Result<Read, String> {
    let t = csvdata::parse(name, text).map_err(|e| e.to_string())?;
    let opt = |c: &str| t.header.iter().position(|h| h == c);
    let need = |c: &str| t.column(c).map_err(|e| e.to_string());
    let mut out = Read::default();
    for (line, cells) in &t.rows {
        let cell = |i: Option<usize>| i.map(|i| cells[i].trim().to_string()).unwrap_or_default();
        let number = |c: &str| -> Result<f64, String> {
            match opt(c) {
                None => Ok(0.0),
                Some(i) => match cells[i].trim() {
                    "" => Ok(0.0),
                    s => s.parse::<f64>().map_err(|_| {
                        format!(
                            "{name}: line {line}: {c} '{}' is not a number",
                            crate::term::line(s)
                        )
                    }),
                },
            }
        };
        let built = if f == Format::OpenAiCsv {
            let start = match (opt("start_time"), opt("start_time_iso")) {
                (Some(i), _) if !cells[i].trim().is_empty() => {
                    crate::timefmt::parse_time(&cells[i])
                }
                (_, Some(i)) => crate::timefmt::parse_time(&cells[i]),
                _ => Err("no start_time or start_time_iso column".into()),
            }
            .map_err(|e| format!("{name}: line {line}: {e}"))?;
            let end = match (opt("end_time"), opt("end_time_iso")) {
                (Some(i), _) if !cells[i].trim().is_empty() => {
                    crate::timefmt::parse_time(&cells[i])
                }
                (_, Some(i)) => crate::timefmt::parse_time(&cells[i]),
                _ => Ok(start + 86_400.0),
            }
            .map_err(|e| format!("{name}: line {line}: {e}"))?;
            if end > now {
                out.open += 1;
                continue;
            }
            let keys = [
                ("openai_project", cell(opt("project_id"))),
                ("openai_user", cell(opt("user_id"))),
                ("openai_api_key", cell(opt("api_key_id"))),
                ("openai_batch", cell(opt("batch"))),
                ("openai_service_tier", cell(opt("service_tier"))),
            ];
            let cached = number("input_cached_tokens")?;
            row(
                *line,
                "openai usage export",
                Some("openai"),
                &cell(opt("model")),
                start,
                end,
                number("num_model_requests")?,
                (number("input_tokens")? - cached).max(0.0),
                number("output_tokens")?,
                &keys,
            )
        } else {
            let date = cells[need("date")?].trim().to_string();
            let day = crate::timefmt::parse_date(&date)
                .map_err(|e| format!("{name}: line {line}: {e}"))?;
            let start = day as f64 * 86_400.0;
            let end = start + 86_400.0;
            if end > now {
                out.open += 1;
                continue;
            }
            let provider = cell(opt("provider"));
            let project = cell(opt("project"));
            let keys = [
                ("usage_provider", provider.clone()),
                ("usage_project", project.clone()),
            ];
            row(
                *line,
                "usage export",
                Some(provider.as_str()).filter(|p| !p.is_empty()),
                &cells[need("model")?],
                start,
                end,
                number("requests")?,
                number("input_tokens")?,
                number("output_tokens")?,
                &keys,
            )
            .map(|r| {
                r.map(|mut r| {
                    r.project = Some(project).filter(|p| !p.is_empty());
                    r.tags
                        .retain(|(k, _)| k != "usage_project" && k != "usage_provider");
                    r
                })
            })
        };
        match built.map_err(|e| {
            if e.starts_with(name) {
                e
            } else {
                format!("{name}: line {line}: {e}")
            }
        })? {
            Some(x) => out.rows.push(x),
            None => out.empty += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    #[test]
    fn openai_usage_pages_become_requests_with_stable_ids() {
        let page = r#"{"object": "page", "data": [
          {"object": "bucket", "start_time": 1730419200, "end_time": 1730505600, "results": [
            {"object": "organization.usage.completions.result", "input_tokens": 1000,
             "output_tokens": 500, "input_cached_tokens": 800, "num_model_requests": 5,
             "project_id": "proj_a", "user_id": null, "api_key_id": null,
             "model": "gpt-4o-mini-2024-07-18", "batch": false},
            {"object": "organization.usage.completions.result", "input_tokens": 0,
             "output_tokens": 0, "num_model_requests": 0, "model": "gpt-4o"}]},
          {"object": "bucket", "start_time": 1799990000, "end_time": 1800050000, "results": [
            {"input_tokens": 1, "output_tokens": 1, "num_model_requests": 1, "model": "gpt-4o"}]}
        ], "has_more": false, "next_page": null}"#;
        assert_eq!(sniff(page), Some(Format::OpenAiJson));
        let got = read("u.json", page, Format::OpenAiJson, NOW).expect("reads");
        assert_eq!((got.rows.len(), got.empty, got.open), (1, 1, 1));
        let r = &got.rows[0];
        // Cached prompt tokens are not computed again: (1000 − 800) / 5 per request.
        assert_eq!(r.request.tokens_in, 40.0);
        assert_eq!(r.request.tokens_out, 100.0);
        assert_eq!(r.request.requests, Some(5.0));
        assert!(r.tags.contains(&("openai_project".into(), "proj_a".into())));
        assert!(r.tags.contains(&("openai_batch".into(), "false".into())));
        let again = read("u.json", page, Format::OpenAiJson, NOW).expect("reads");
        assert_eq!(again.rows[0].id, r.id);
        assert!(r.id.starts_with("usage-") && r.id.len() == 22);
        let ungrouped = page.replace("\"gpt-4o-mini-2024-07-18\"", "null");
        let e = read("u.json", &ungrouped, Format::OpenAiJson, NOW).expect_err("no model");
        assert!(
            e.contains("bucket 1") && e.contains("group_by=model"),
            "{e}"
        );
    }

    #[test]
    fn csv_exports_and_plain_files_read_and_refuse_plainly() {
        let oai = "start_time,end_time,start_time_iso,end_time_iso,project_id,num_model_requests,user_id,api_key_id,model,batch,service_tier,input_tokens,output_tokens,input_cached_tokens\n\
                   1730419200,1730505600,2024-11-01T00:00:00+00:00,2024-11-02T00:00:00+00:00,proj_a,10,,,gpt-4o,,default,5000,2000,0\n";
        assert_eq!(sniff(oai), Some(Format::OpenAiCsv));
        let got = read("u.csv", oai, Format::OpenAiCsv, NOW).expect("reads");
        assert_eq!(got.rows[0].request.tokens_out, 200.0);
        assert_eq!(got.rows[0].request.started_unix, 1_730_419_200.0);
        let plain = "date,model,requests,input_tokens,output_tokens,provider,project\n\
                     2026-11-02,claude-haiku-4-5,100,50000,30000,anthropic,support-bot\n\
                     2026-11-03,mistral-large-latest,0,0,0,,\n";
        assert_eq!(sniff(plain), Some(Format::Plain));
        let got = read("p.csv", plain, Format::Plain, NOW).expect("reads");
        assert_eq!((got.rows.len(), got.empty), (1, 1));
        let r = &got.rows[0];
        assert_eq!(r.project.as_deref(), Some("support-bot"));
        assert_eq!(r.request.provider.as_deref(), Some("anthropic"));
        assert_eq!(r.request.tokens_in, 500.0);
        for (bad, want) in [
            ("2026-13-01,m,1,1,1,,\n", "line 2"),
            (
                "2026-11-02,m,lots,1,1,,\n",
                "requests 'lots' is not a number",
            ),
            ("2026-11-02,m,-3,1,1,,\n", "is not a count"),
        ] {
            let text =
                format!("date,model,requests,input_tokens,output_tokens,provider,project\n{bad}");
            let e = read("p.csv", &text, Format::Plain, NOW).expect_err(bad);
            assert!(e.contains(want) && e.starts_with("p.csv: line 2"), "{e}");
        }
        assert_eq!(sniff("id,x\n1,2\n"), None);
        assert_eq!(sniff("{\"schema\": \"decompute.ledger-record/1\"}"), None);
    }

    proptest::proptest! {
        #[test]
        fn no_usage_text_panics(text in "\\PC{0,200}") {
            if let Some(f) = sniff(&text) {
                let _ = read("x", &text, f, NOW);
            }
            let _ = read("x", &text, Format::Plain, NOW);
            let _ = read("x", &text, Format::OpenAiCsv, NOW);
            let _ = read("x", &text, Format::OpenAiJson, NOW);
        }
    }
}

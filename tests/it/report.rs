//! `decompute report --html` end to end: a period and a run from a ledger filled with the
//! demo records (`tools/demo-ledger.py`), budgets from a policy file, filters, bad input;
//! then the page in a real browser (Chromium, headless): no console message, no request
//! leaving the page, A4 pages when printed, a screenshot that is not blank.

#![allow(clippy::disallowed_macros)] // tests print why they skip

use crate::support::decompute;
use std::path::{Path, PathBuf};
use std::process::Output;

const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/report/demo.jsonl"
);

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A directory with a policy file and a ledger holding the demo records.
fn demo_ledger(dir: &Path, ledger: &str) {
    std::fs::write(
        dir.join("decompute.toml"),
        "[budget.llm-finetune]\ncarbon = \"15 kg / month\"\n[budget.vision]\nenergy = \"200 kWh / quarter\"\n",
    )
    .expect("policy");
    ok(decompute()
        .current_dir(dir)
        .args(["ledger", "import", "--ledger", ledger, DEMO])
        .output()
        .expect("import"));
}

fn report(dir: &Path, ledger: &str, args: &[&str]) -> Output {
    decompute()
        .current_dir(dir)
        .args(["report", "--ledger", ledger])
        .args(args)
        .output()
        .expect("report")
}

fn pages_for_a_period_a_run_and_filters(ledger: &str) {
    let d = tempfile::tempdir().expect("tmp");
    demo_ledger(d.path(), ledger);
    let out = d.path().join("period.html");
    let o = ok(report(
        d.path(),
        ledger,
        &[
            "--html",
            out.to_str().expect("utf-8"),
            "--since",
            "2026-09-01",
        ],
    ));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrote"));
    let p = std::fs::read_to_string(&out).expect("page");
    for want in [
        "What computing cost",
        "Energy by ISO week and project",
        "llm-finetune",
        "15.0 kg CO2e",
        "200 kWh",
        "Yielding to the grid",
        "On the scale of AI compute",
        "these 20 runs",
        "from 2026-09-01",
    ] {
        assert!(p.contains(want), "{want}");
    }
    // Filters narrow the runs.
    let o = ok(report(
        d.path(),
        ledger,
        &["--html", "-", "--project", "vision"],
    ));
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(v.contains("project vision") && !v.contains("<td>llm-finetune</td><td class=\"n\">"));
    assert!(v.contains(">14</b>"), "14 vision runs");
    let o = ok(report(d.path(), ledger, &["--html", "-", "--user", "jo"]));
    let j = String::from_utf8_lossy(&o.stdout);
    assert!(j.contains("user jo"));
    let o = ok(report(
        d.path(),
        ledger,
        &["--html", "-", "--since", "2030-01-01"],
    ));
    assert!(String::from_utf8_lossy(&o.stdout).contains("No runs match these filters."));
    // One run, by an id prefix.
    let first = std::fs::read_to_string(DEMO).expect("demo");
    let id: serde_json::Value =
        serde_json::from_str(first.lines().next().expect("line")).expect("json");
    let id = id["id"].as_str().expect("id");
    let o = ok(report(
        d.path(),
        ledger,
        &["--html", "-", "--run", &id[..12]],
    ));
    let r = String::from_utf8_lossy(&o.stdout);
    assert!(r.contains(&format!("Run {id}")) && r.contains("Power by component"));
    // Bad input: one line naming the problem.
    let o = report(d.path(), ledger, &["--html", "-", "--run", "ZZZZZZZZ"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run matches"));
    let o = report(
        d.path(),
        ledger,
        &["--html", "-", "--run", id, "--project", "x"],
    );
    assert!(!o.status.success(), "--run with filters is refused");
}

both_backends!(pages_for_a_period_a_run_and_filters);

#[test]
fn the_report_never_writes_over_the_ledger() {
    let d = tempfile::tempdir().expect("tmp");
    let ledger = d.path().join("l.sqlite");
    let l = ledger.to_str().expect("utf-8");
    demo_ledger(d.path(), l);
    let before = std::fs::read(&ledger).expect("ledger");
    let o = report(d.path(), l, &["--html", l]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ledger"), "{err}");
    assert_eq!(std::fs::read(&ledger).expect("ledger"), before);
}

/// The browser of the test script, if any.
fn chromium() -> Option<PathBuf> {
    let p = std::env::var_os("DECOMPUTE_TEST_CHROMIUM").map(PathBuf::from);
    if p.is_none() {
        eprintln!("skipped: no Chromium (run the tests through tools/test.sh)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must provide DECOMPUTE_TEST_CHROMIUM"
        );
    }
    p
}

/// Runs headless Chromium on `page` with `what` (`--screenshot=…` or `--print-to-pdf=…`);
/// returns its console messages and the URLs the page asked for.
fn browse(chrome: &Path, dir: &Path, page: &Path, what: &str) -> (Vec<String>, Vec<String>) {
    let net = dir.join(format!("net-{}.json", what.len()));
    let profile = tempfile::tempdir().expect("profile");
    let o = std::process::Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--no-pdf-header-footer",
            "--hide-scrollbars",
            "--window-size=1000,1600",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--log-net-log={}", net.display()))
        .arg(what)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed: {err}");
    let console: Vec<String> = err
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    // Requests the page made carry its file:// network isolation key; the browser's own
    // (updates, time) do not.
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&net).expect("net log")).expect("net json");
    let mut asked = Vec::new();
    for e in log["events"].as_array().expect("events") {
        let p = &e["params"];
        if let (Some(url), Some(key)) = (p["url"].as_str(), p["network_isolation_key"].as_str()) {
            if key.contains("file://") && !url.starts_with("file:") && !url.starts_with("data:") {
                asked.push(url.to_string());
            }
        }
    }
    (console, asked)
}

#[test]
fn a_real_browser_shows_and_prints_the_report_offline() {
    let Some(chrome) = chromium() else {
        return;
    };
    let d = tempfile::tempdir().expect("tmp");
    let ledger = d.path().join("l.sqlite");
    let l = ledger.to_str().expect("utf-8");
    demo_ledger(d.path(), l);
    let period = d.path().join("period.html");
    ok(report(
        d.path(),
        l,
        &["--html", period.to_str().expect("utf-8")],
    ));
    let first = std::fs::read_to_string(DEMO).expect("demo");
    let id: serde_json::Value =
        serde_json::from_str(first.lines().next().expect("line")).expect("json");
    let run = d.path().join("run.html");
    ok(report(
        d.path(),
        l,
        &[
            "--html",
            run.to_str().expect("utf-8"),
            "--run",
            id["id"].as_str().expect("id"),
        ],
    ));
    for (page, min_pages, max_pages) in [(&period, 3, 6), (&run, 1, 3)] {
        let shot = d.path().join("shot.png");
        let (console, asked) = browse(
            &chrome,
            d.path(),
            page,
            &format!("--screenshot={}", shot.display()),
        );
        assert!(
            console.is_empty(),
            "{}: console: {console:?}",
            page.display()
        );
        assert!(asked.is_empty(), "{}: requests: {asked:?}", page.display());
        // Not blank: a good share of the pixels are ink, and the charts' blue is there.
        let dec = png::Decoder::new(std::fs::File::open(&shot).expect("png"));
        let mut reader = dec.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png frame");
        let bpp = info.color_type.samples();
        let px = &buf[..info.buffer_size()];
        let total = px.len() / bpp;
        let ink = px
            .chunks(bpp)
            .filter(|c| c[..3].iter().any(|v| *v < 200))
            .count();
        let blue = px
            .chunks(bpp)
            .filter(|c| c[0] < 20 && (100..130).contains(&c[1]) && (165..190).contains(&c[2]))
            .count();
        assert!(
            ink * 50 > total,
            "{}: only {ink} of {total} pixels inked",
            page.display()
        );
        assert!(
            blue > 200,
            "{}: no chart colour ({blue} pixels)",
            page.display()
        );
        // Printed: A4 pages (595 × 842 pt), as many as the content needs.
        let pdf = d.path().join("out.pdf");
        let (console, asked) = browse(
            &chrome,
            d.path(),
            page,
            &format!("--print-to-pdf={}", pdf.display()),
        );
        assert!(
            console.is_empty() && asked.is_empty(),
            "{console:?} {asked:?}"
        );
        let bytes = std::fs::read(&pdf).expect("pdf");
        let text = String::from_utf8_lossy(&bytes);
        let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
        assert!(
            (min_pages..=max_pages).contains(&pages),
            "{}: {pages} pages",
            page.display()
        );
        let a4 = text.matches("/MediaBox [0 0 594.95996 841.91998]").count();
        assert_eq!(a4, pages, "every page is A4");
    }
}

//! The formats people already have (#13): CodeCarbon's emissions.csv both ways, decompute's
//! own CSV round trip, the three services' grid forecasts in `when` and `--grid`, cloud
//! regions as zones, listings as JSON, completions and man pages, and no escape codes
//! where a terminal cannot show them. Numbers are pinned to the shared fixtures.

use crate::support::{decompute, export, with_ledger};
use std::path::{Path, PathBuf};
use std::process::Output;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

both_backends!(codecarbon_file_imports_with_its_own_figures_and_exports_back_unchanged);
both_backends!(decompute_csv_export_import_export_is_identical);

fn codecarbon_file_imports_with_its_own_figures_and_exports_back_unchanged(l: &str) {
    let cc = fixture("codecarbon-3.3.2/emissions.csv");
    let o = with_ledger(l, &["ledger", "import", s(&cc)]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("imported 2 run(s)"), "{}", err(&o));
    // Again: nothing new.
    let o = with_ledger(l, &["ledger", "import", s(&cc)]);
    assert!(
        err(&o).contains("imported 0 run(s), 2 already present"),
        "{}",
        err(&o)
    );

    let recs = export(l);
    assert_eq!(recs.len(), 2);
    let r = &recs[1];
    assert_eq!(r["id"], "6ee323a6-184f-44ea-96cc-cd5a5ba5b791");
    assert_eq!(r["project"], "demo");
    let p = &r["report"];
    // kWh → J: 2.41022275252466e-05 kWh = 86.768019... J; kg → g.
    let j = p["energy_j"]["workload"].as_f64().expect("j");
    assert!((j - 2.410_222_752_524_66e-5 * 3.6e6).abs() < 1e-9, "{j}");
    let g = p["carbon_g"]["value"].as_f64().expect("g");
    assert!((g - 1.350_664_728_287_294_3e-3).abs() < 1e-15, "{g}");
    assert_eq!(p["started_at"], "2026-11-29T08:12:25.989Z");
    assert_eq!(p["ended_at"], "2026-11-29T08:12:30.000Z");
    assert_eq!(p["factors"]["zone"], "FRA");
    assert_eq!(p["imported"]["tool"], "codecarbon");
    assert_eq!(p["imported"]["version"], "3.3.2");
    assert_eq!(p["imported"]["cells"]["cpu_model"], "AMD EPYC");
    assert_eq!(p["components"][0]["method"], "reported");
    assert_eq!(
        r["tags"]["experiment_id"],
        "5b0fa12a-3dd7-45bb-9766-cc326314d9f1"
    );

    // Totals over both runs: 130.54 J, 2.032 mg CO2e; none of it counted as measured.
    let o = with_ledger(l, &["ledger", "summary", "--json"]);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("json");
    let demo = &v["groups"][0];
    assert_eq!(
        (demo["key"].as_str(), demo["runs"].as_u64()),
        (Some("demo"), Some(2))
    );
    let e = demo["energy_j"].as_f64().expect("e");
    assert!((e - (1.215_901_703_606_912_2e-5 + 2.410_222_752_524_66e-5) * 3.6e6).abs() < 1e-9);
    assert_eq!(demo["modelled_j"].as_f64(), Some(e));
    // CodeCarbon's default mode measures the whole machine: marked so, and kept apart.
    assert_eq!(r["tags"]["scope"], "machine");
    assert_eq!(demo["scope"], "machine");

    // Back to CodeCarbon's own columns: the file it wrote, to the last digit.
    let o = with_ledger(l, &["ledger", "export", "--format", "codecarbon"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        std::fs::read_to_string(&cc).expect("fixture"),
        "CodeCarbon → import → export --format codecarbon gives the same rows"
    );

    // A decompute run of the same project: its workload figure and CodeCarbon's
    // whole-machine ones are never added together, in the summary or the report.
    let o = with_ledger(l, &["run", "--project", "demo", "--", "true"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = with_ledger(l, &["ledger", "summary", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("json");
    let groups: Vec<(String, String, u64)> = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap_or("").to_string(),
                g["scope"].as_str().unwrap_or("").to_string(),
                g["runs"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("demo".to_string(), "workload".to_string(), 1),
            ("demo".to_string(), "machine".to_string(), 2)
        ]
    );
    let o = with_ledger(l, &["ledger", "summary"]);
    let table = out(&o);
    let (work, machine) = table
        .split_once("whole machine, imported")
        .expect("a section of its own");
    assert_eq!(work.matches("demo").count(), 1, "{table}");
    assert!(
        !work.contains("total"),
        "one workload row, no total: {table}"
    );
    assert!(
        machine.contains("demo") && machine.contains("     2  "),
        "{table}"
    );
    let o = with_ledger(l, &["report", "--html", "-"]);
    assert!(o.status.success(), "{}", err(&o));
    let html = out(&o);
    assert!(html.contains("Whole machines, imported"), "{html}");
    assert!(html.contains("not in the totals above"));
    // A user cannot claim the mark for a run of their own.
    let o = with_ledger(l, &["run", "--tag", "scope=machine", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains("tag key 'scope' is decompute's own"),
        "{}",
        err(&o)
    );
}

fn decompute_csv_export_import_export_is_identical(a: &str) {
    // A measured run with tags that need quoting, in a cloud region, and an imported one.
    let o = with_ledger(
        a,
        &[
            "run",
            "--project",
            "=cmd|' /C calc'!A0",
            "--tag",
            "note=a, \"quoted\" value",
            "--zone",
            "aws:eu-west-3",
            "--",
            "sh",
            "-c",
            "seq 20000 | sort > /dev/null",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = with_ledger(
        a,
        &[
            "ledger",
            "import",
            s(&fixture("codecarbon-3.3.2/emissions.csv")),
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let first = out(&with_ledger(a, &["ledger", "export", "--format", "csv"]));
    // A formula stays defused on the way out.
    assert!(first.contains("'=cmd"), "{first}");
    let d = tempfile::tempdir().expect("tmp");
    let file = d.path().join("export.csv");
    std::fs::write(&file, &first).expect("write");
    let b = d.path().join("b.sqlite");
    let o = with_ledger(&b, &["ledger", "import", s(&file)]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("imported 3 run(s)"), "{}", err(&o));
    let second = out(&with_ledger(&b, &["ledger", "export", "--format", "csv"]));
    assert_eq!(first, second, "export → import → export is identical");
    // The record read back keeps its meaning: project, tags, zone, cloud columns.
    let recs = export(&b);
    let ours = recs
        .iter()
        .find(|r| r["project"] == "=cmd|' /C calc'!A0")
        .expect("our run");
    assert_eq!(ours["tags"]["note"], "a, \"quoted\" value");
    assert_eq!(ours["report"]["factors"]["zone"], "FRA");
    assert_eq!(ours["report"]["imported"]["tool"], "decompute-csv");
    let cc = out(&with_ledger(
        &b,
        &["ledger", "export", "--format", "codecarbon"],
    ));
    let row = cc.lines().find(|l| l.contains("calc")).expect("our row");
    assert!(
        row.contains(",aws,eu-west-3,") && row.ends_with(",Y,1.14,0.12"),
        "{row}"
    );
}

#[test]
fn codecarbon_energies_include_pue_and_water_is_on_site() {
    let d = tempfile::tempdir().expect("tmp");
    let l = d.path().join("l.sqlite");
    let o = with_ledger(
        &l,
        &[
            "run",
            "--zone",
            "DE",
            "--pue",
            "1.5",
            "--wue",
            "2",
            "--",
            "sh",
            "-c",
            "seq 30000 | sort > /dev/null",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let rec = &export(&l)[0]["report"];
    let it_kwh = rec["energy_j"]["workload"].as_f64().expect("j") / 3.6e6;
    let cc = out(&with_ledger(
        &l,
        &["ledger", "export", "--format", "codecarbon"],
    ));
    let t = decompute::csvdata::parse("cc", &cc).expect("csv");
    assert_eq!(t.header.len(), 38);
    let row = &t.rows[0].1;
    let col = |n: &str| {
        row[t.column(n).expect("col")]
            .parse::<f64>()
            .expect("number")
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-30);
    assert!(close(col("energy_consumed"), 1.5 * it_kwh));
    assert!(close(
        col("cpu_energy") + col("gpu_energy") + col("ram_energy"),
        1.5 * it_kwh
    ));
    assert!(close(col("water_consumed"), 2.0 * it_kwh), "on-site only");
    let total_water = rec["water_l"]["value"].as_f64().expect("water");
    assert!(
        total_water > col("water_consumed"),
        "off-site water is not in it"
    );
}

/// `when --json` for a 3 h job over the fixtures' horizon (the reference question).
fn reference_window(grid: &str) -> serde_json::Value {
    let o = decompute()
        .args([
            "when",
            "--grid",
            grid,
            "--duration",
            "3h",
            "--within",
            "45h",
            "--now",
            "2026-12-01T00:00:00Z",
            "--json",
        ])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{grid}: {}", err(&o));
    serde_json::from_str(&out(&o)).expect("json")
}

#[test]
fn each_forecast_format_gives_the_reference_window() {
    // The fixtures' reference: a 3 h job over the 48 h horizon starts best at
    // 2026-12-02T03:00Z, mean 232.0 (232.69 in the Carbon Aware SDK file).
    for (file, mean, basis) in [
        ("electricity-maps.json", 232.0, "average"),
        ("watttime-v3.json", 232.0, "marginal"),
        ("carbon-aware-sdk.json", 232.69, "average"),
    ] {
        let v = reference_window(&format!(
            "json:{}",
            s(&fixture(&format!("forecasts/{file}")))
        ));
        assert_eq!(v["best"]["start"], "2026-12-02T03:00:00Z", "{file}");
        let m = v["best"]["mean_g_per_kwh"].as_f64().expect("mean");
        assert!((m - mean).abs() < 0.006, "{file}: {m}");
        assert_eq!(v["basis"], basis, "{file}");
        assert_eq!(v["wait_s"].as_f64(), Some(27.0 * 3600.0));
        assert!(v["baseline"]["mean_g_per_kwh"].as_f64().expect("now") > m);
        assert!(v["saving_percent"].as_f64().expect("saving") > 20.0);
    }
    // A command may print the document: the same answer.
    let v = reference_window(&format!(
        "cmd:cat {}",
        s(&fixture("forecasts/electricity-maps.json"))
    ));
    assert_eq!(v["best"]["start"], "2026-12-02T03:00:00Z");
    // The text says which basis it is.
    let grid = format!("json:{}", s(&fixture("forecasts/watttime-v3.json")));
    let o = decompute()
        .args([
            "when",
            "--grid",
            &grid,
            "--duration",
            "1h",
            "--within",
            "40h",
            "--now",
            "2026-12-01T00:00:00Z",
        ])
        .output()
        .expect("runs");
    assert!(out(&o).contains("marginal"), "{}", out(&o));
}

#[test]
fn a_csv_forecast_names_its_unit_and_holes_are_skipped() {
    let d = tempfile::tempdir().expect("tmp");
    // lbs/MWh, hourly, with 02:00 and 03:00 missing: a 2 h window may not cross the gap.
    let f = d.path().join("f.csv");
    std::fs::write(
        &f,
        "time,co2_lbs_per_mwh\n2026-12-01T00:00:00Z,881.848\n2026-12-01T01:00:00Z,220.462\n2026-12-01T04:00:00Z,440.924\n2026-12-01T05:00:00Z,440.924\n2026-12-01T06:00:00Z,881.848\n",
    )
    .expect("write");
    let grid = format!("csv:{}", s(&f));
    let o = decompute()
        .args([
            "when",
            "--grid",
            &grid,
            "--duration",
            "2h",
            "--now",
            "2026-12-01T00:00:00Z",
            "--json",
        ])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("json");
    // 400 then 100 g/kWh before the gap (mean 250); 200, 200 after it (mean 200).
    assert_eq!(v["best"]["start"], "2026-12-01T04:00:00Z");
    assert_eq!(v["best"]["mean_g_per_kwh"].as_f64(), Some(200.0));
    assert_eq!(v["baseline"]["mean_g_per_kwh"].as_f64(), Some(250.0));
    assert!(v["skipped"].as_u64().expect("skipped") > 0);
    assert_eq!(v["holes"][0][0], "2026-12-01T02:00:00Z");
    // A unit that is not an intensity is refused, not read as g/kWh.
    std::fs::write(&f, "time,price_eur_per_mwh\n2026-12-01T00:00:00Z,80\n").expect("write");
    let o = decompute()
        .args(["when", "--grid", &grid, "--duration", "1h"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("cannot convert"), "{}", err(&o));
}

/// A WattTime v3 document around now, 5-minute points at `lbs` lbs/MWh.
fn watttime_now(lbs: f64) -> String {
    let now = decompute::timefmt::now_s();
    let start = (now / 300.0).floor() * 300.0 - 3600.0;
    let points: Vec<String> = (0..48)
        .map(|i| {
            format!(
                r#"{{"point_time":"{}","value":{lbs}}}"#,
                decompute::timefmt::rfc3339_s(start + 300.0 * i as f64)
            )
        })
        .collect();
    format!(
        r#"{{"data":[{}],"meta":{{"data_point_period_seconds":300,"region":"DE","signal_type":"co2_moer","units":"lbs_co2_per_mwh"}}}}"#,
        points.join(",")
    )
}

#[test]
fn a_marginal_signal_pauses_but_never_prices_carbon() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("wt.json");
    // 2204.62 lbs/MWh = 1000 g/kWh marginal: above the threshold, so the run pauses...
    std::fs::write(&f, watttime_now(2204.62)).expect("write");
    let grid = format!("json:{}", s(&f));
    let o = decompute()
        .args([
            "run",
            "--no-ledger",
            "--no-gpu",
            "--zone",
            "FR",
            "--grid",
            &grid,
            "--pause-above",
            "500",
            "--max-pause",
            "1s",
            "--interval",
            "200ms",
            "--json",
            "-",
            "--",
            "true",
        ])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("marginal rate (MOER)"), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("json");
    // ...but the carbon is France's average intensity, never the marginal 1000.
    assert_eq!(
        v["factors"]["grid_gco2_per_kwh"]["value"].as_f64(),
        Some(56.0)
    );
    // A command may print any forecast too: its value now is read.
    let cmd = format!("cmd:cat {}", s(&f));
    let o = decompute()
        .args([
            "run",
            "--no-ledger",
            "--no-gpu",
            "--zone",
            "FR",
            "--grid",
            &cmd,
            "--pause-above",
            "500",
            "--max-pause",
            "1s",
            "--interval",
            "200ms",
            "--",
            "true",
        ])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("marginal rate (MOER)"), "{}", err(&o));
}

#[test]
fn cloud_regions_are_zones_with_the_providers_pue_and_wue() {
    let facts = |zone: &str| -> serde_json::Value {
        let o = decompute()
            .args(["factors", "--json", zone])
            .output()
            .expect("runs");
        assert!(o.status.success(), "{zone}: {}", err(&o));
        serde_json::from_str::<serde_json::Value>(&out(&o)).expect("json")["conversion"].clone()
    };
    let c = facts("aws:eu-west-3");
    assert_eq!(c["zone"], "FRA");
    assert_eq!(c["grid"]["value"].as_f64(), Some(56.0));
    assert_eq!(c["pue"]["value"].as_f64(), Some(1.14));
    assert_eq!(c["pue"]["year"].as_u64(), Some(2025));
    assert_eq!(c["wue"]["value"].as_f64(), Some(0.12));
    assert_eq!(c["cloud"]["provider"], "aws");
    // A US region takes its state's grid (eGRID2023: Virginia 539.599 lb/MWh).
    let c = facts("gcp:us-east4");
    assert_eq!(c["zone"], "US-VA");
    assert_eq!(c["grid"]["value"].as_f64(), Some(244.8));
    assert_eq!(c["pue"]["value"].as_f64(), Some(1.09));
    assert!(c["wue"]["source"]
        .as_str()
        .expect("src")
        .contains("no fleet WUE"));
    // Bare names where unambiguous; UK for GB.
    assert_eq!(facts("westeurope")["zone"], "NLD");
    assert_eq!(facts("UK")["zone"], "GBR");
    let o = decompute()
        .args(["factors", "aws:eu-west-9"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("did you mean aws:eu-west-"), "{}", err(&o));
    let o = decompute()
        .args(["factors", "--zones"])
        .output()
        .expect("runs");
    assert!(out(&o).contains("azure:westeurope") && out(&o).contains("gcp:us-east4"));
    let o = decompute()
        .args(["factors", "--zones", "--json"])
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("json");
    assert!(v["cloud_regions"].as_array().expect("regions").len() > 100);
    assert!(v["zones"].as_array().expect("zones").len() > 250);
}

#[test]
fn every_listing_speaks_json() {
    let d = tempfile::tempdir().expect("tmp");
    let l = d.path().join("l.sqlite");
    let o = with_ledger(&l, &["run", "--project", "p", "--", "true"]);
    assert!(o.status.success(), "{}", err(&o));
    let json = |args: &[&str]| -> serde_json::Value {
        let o = with_ledger(&l, args);
        assert!(o.status.success(), "{args:?}: {}", err(&o));
        serde_json::from_str(&out(&o)).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out(&o)))
    };
    assert_eq!(json(&["ledger", "list", "--json"])[0]["project"], "p");
    assert_eq!(
        json(&["ledger", "summary", "--json"])["groups"][0]["runs"],
        1
    );
    assert_eq!(
        json(&["ledger", "summary", "--format", "json"])["by"],
        "project"
    );
    assert_eq!(json(&["detect", "--json"])["schema"], "decompute.detect/1");
    assert_eq!(
        json(&["factors", "--json"])["schema"],
        "decompute.factors/1"
    );
    let csv = out(&with_ledger(&l, &["ledger", "summary", "--format", "csv"]));
    assert!(
        csv.starts_with("project,runs,duration_s,energy_j,modelled_j,carbon_g,water_l,scope\np,1,")
            && csv.trim_end().ends_with(",workload"),
        "{csv}"
    );
    let policy = d.path().join("decompute.toml");
    std::fs::write(&policy, "[budget.p]\nenergy = \"1 kWh / month\"\n").expect("policy");
    let v = json(&["budget", "status", "--policy", s(&policy), "--json"]);
    let b = &v["projects"][0]["budgets"][0];
    assert_eq!(
        (b["metric"].as_str(), b["unit"].as_str()),
        (Some("energy"), Some("J"))
    );
    assert_eq!(b["amount"].as_f64(), Some(3.6e6));
    assert_eq!(b["state"], "ok");
}

#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = decompute()
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert!(o.status.success(), "{shell}: {}", err(&o));
        assert!(out(&o).contains("ledger"), "{shell}");
    }
    let o = decompute()
        .args(["completions", "tcsh"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    let d = tempfile::tempdir().expect("tmp");
    let o = decompute()
        .args(["man", "--dir", s(d.path())])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    for page in [
        "decompute.1",
        "decompute-run.1",
        "decompute-ledger-export.1",
        "decompute-when.1",
    ] {
        let text =
            std::fs::read_to_string(d.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is roff"
        );
        // The sections a man page reader looks for (#26), and the command as it is typed:
        // there is no `decompute-run` binary.
        for sh in [
            ".SH \"EXIT STATUS\"",
            ".SH \"ENVIRONMENT\"",
            ".SH \"FILES\"",
            ".SH \"EXAMPLES\"",
        ] {
            assert!(text.contains(sh), "{page} lacks {sh}");
        }
        let synopsis = text.split(".SH SYNOPSIS\n").nth(1).expect("a synopsis");
        let words = page.trim_end_matches(".1").replace('-', " ");
        assert!(
            synopsis.starts_with(&format!("\\fB{words}\\fR")),
            "{page}: {}",
            &synopsis[..60.min(synopsis.len())]
        );
    }
    let run = std::fs::read_to_string(d.path().join("decompute-run.1")).expect("run");
    assert!(run.contains("124") && run.contains("stopped by a budget"));
    let o = decompute().args(["man"]).output().expect("runs");
    assert!(out(&o).contains(".TH decompute"), "the main page on stdout");
}

#[test]
fn colour_only_on_a_terminal_that_takes_it() {
    let d = tempfile::tempdir().expect("tmp");
    let bin = env!("CARGO_BIN_EXE_decompute");
    // A pipe is no terminal: plain text whatever TERM says.
    let o = decompute()
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .args(["run", "--no-ledger", "--no-gpu", "--", "true"])
        .output()
        .expect("runs");
    assert!(!err(&o).contains('\u{1b}'), "{:?}", err(&o));
    // On a pseudo-terminal (util-linux `script`): colour, unless NO_COLOR or TERM=dumb.
    let run_on_pty = |env: &[(&str, &str)]| -> String {
        let mut c = std::process::Command::new("script");
        c.args([
            "-qec",
            &format!("{bin} run --no-ledger --no-gpu -- true"),
            "/dev/null",
        ])
        .current_dir(d.path())
        .env_remove("NO_COLOR");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().expect("script (util-linux) runs");
        assert!(o.status.success(), "{}", err(&o));
        out(&o)
    };
    let coloured = run_on_pty(&[("TERM", "xterm-256color")]);
    assert!(
        coloured.contains("\u{1b}[33mmodelled") || coloured.contains("\u{1b}[32mmeasured"),
        "{coloured:?}"
    );
    let plain = run_on_pty(&[("TERM", "xterm-256color"), ("NO_COLOR", "1")]);
    assert!(!plain.contains("\u{1b}[3"), "NO_COLOR: {plain:?}");
    assert!(plain.contains("modelled") || plain.contains("measured"));
    let dumb = run_on_pty(&[("TERM", "dumb")]);
    assert!(!dumb.contains('\u{1b}'), "TERM=dumb: {dumb:?}");
}

/// A CodeCarbon log of many runs is imported as a stream (#25 point 9): the import's peak
/// memory stays that of a batch, not of the file (4 MB took 180 MB read whole).
#[test]
fn a_large_codecarbon_log_imports_in_bounded_memory() {
    let d = tempfile::tempdir().expect("tmp");
    let src = std::fs::read_to_string(fixture("codecarbon-3.3.2/emissions.csv")).expect("fixture");
    let mut lines = src.lines();
    let header = lines.next().expect("header");
    let id_col = header
        .split(',')
        .position(|c| c == "run_id")
        .expect("run_id");
    let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    let mut text = format!("{header}\n");
    let mut n = 0u64;
    while text.len() < 4_000_000 {
        for r in &rows {
            // The fixture's rows have no quoted commas: a plain split is exact.
            let mut cells: Vec<String> = r.split(',').map(String::from).collect();
            cells[id_col] = format!("00000000-0000-4000-8000-{n:012}");
            n += 1;
            text.push_str(&cells.join(","));
            text.push('\n');
        }
    }
    let csv = d.path().join("emissions.csv");
    std::fs::write(&csv, &text).expect("w");
    let ledger = d.path().join("l.sqlite");
    // Its peak resident memory after exec (`VmHWM`, the high-water mark of its own address
    // space), read until it exits: wait4's ru_maxrss would also count the test process's
    // memory, which a vfork-style spawn shares until the exec (so it grew with the number of
    // tests running beside this one).
    let mut child = decompute()
        .args(["ledger", "import", "--ledger", s(&ledger), s(&csv)])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let mut readings = 0;
    let exit = loop {
        if let Ok(t) = std::fs::read_to_string(&status_file) {
            let exe_is_ours = std::fs::read_link(format!("/proc/{}/exe", child.id()))
                .is_ok_and(|e| e.to_string_lossy().contains("decompute"));
            if let Some(kb) = t
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                if exe_is_ours {
                    peak_kb = peak_kb.max(kb);
                    readings += 1;
                }
            }
        }
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(exit.success());
    assert!(
        readings > 0,
        "the import ended before its memory could be read"
    );
    let peak_mb = peak_kb as f64 / 1024.0;
    assert!(peak_mb < 80.0, "peak {peak_mb:.0} MB for a 4 MB import");
    assert_eq!(export(s(&ledger)).len() as u64, n);
}

/// The cloud-region sample in docs/interop.md is what `decompute factors aws:eu-west-3`
/// prints (up to its presets), so the docs cannot go stale against the data (#26).
#[test]
fn the_interop_docs_cloud_sample_is_what_factors_prints() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/interop.md"))
            .expect("docs");
    let sample = doc
        .split_once("<!-- factors aws:eu-west-3 -->\n```\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(b, _)| b)
        .expect("the sample block");
    let o = decompute()
        .args(["factors", "aws:eu-west-3"])
        .output()
        .expect("factors");
    assert!(o.status.success(), "{}", err(&o));
    let printed = out(&o);
    let head = printed
        .split_once("PUE presets")
        .map(|(h, _)| h)
        .expect("presets");
    assert_eq!(sample, head);
}

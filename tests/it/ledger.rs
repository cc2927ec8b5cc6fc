//! The ledger end to end, as one conformance suite run unchanged against both backends
//! (a SQLite file, and a fresh database on the PostgreSQL server the test script started):
//! runs recorded by the real binary, a monitor killed mid-run, concurrent writers,
//! export/import round trips, the CodeCarbon-compatible CSV, leases. Then what is SQLite's
//! alone (foreign or newer files, an unwritable path) and PostgreSQL's alone (TLS modes,
//! passwords never shown, a server that goes away mid-run, moving a history across).

#![allow(clippy::disallowed_macros)] // tests print why they skip

use crate::support::{decompute, eventually, export, samples_cover_the_run, with_ledger};
use serde_json::Value;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Instant;

both_backends!(runs_are_recorded_listed_shown_and_summed);
both_backends!(a_killed_monitor_leaves_an_interrupted_row_with_its_last_checkpoint);
both_backends!(concurrent_runs_all_land);
both_backends!(export_import_round_trips_exactly_and_is_idempotent);
both_backends!(csv_export_uses_codecarbon_columns_and_units);
both_backends!(a_running_row_of_another_host_is_interrupted_when_its_lease_runs_out);
both_backends!(a_usage_export_becomes_estimated_rows_kept_apart_and_budgeted);

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn runs_are_recorded_listed_shown_and_summed(l: &str) {
    for (project, tag, code) in [
        ("alpha", "model=a", "0"),
        ("alpha", "model=b", "3"),
        ("beta", "model=a", "0"),
    ] {
        let o = with_ledger(
            l,
            &[
                "run",
                "--project",
                project,
                "--tag",
                tag,
                "--zone",
                "FR",
                "--",
                "sh",
                "-c",
                &format!("exit {code}"),
            ],
        );
        assert_eq!(
            o.status.code(),
            Some(code.parse().expect("code")),
            "{}",
            err(&o)
        );
        assert!(err(&o).contains("recorded as run"), "{}", err(&o));
    }
    let recs = export(l);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[1]["status"], "failed");
    assert_eq!(recs[1]["report"]["exit_code"], 3);
    assert_eq!(recs[0]["status"], "finished");
    assert_eq!(recs[0]["tags"]["model"], "a");
    assert_eq!(recs[0]["report"]["factors"]["zone"], "FRA");
    assert!(
        !recs[0]["user"].as_str().expect("user").is_empty()
            && !recs[0]["host"].as_str().expect("host").is_empty()
    );

    let list = out(&with_ledger(l, &["ledger", "list", "--project", "alpha"]));
    assert_eq!(
        list.lines().filter(|x| x.contains("alpha")).count(),
        2,
        "{list}"
    );
    let newest = list.lines().nth(1).expect("row");
    assert!(newest.contains("failed (3)"), "newest first: {list}");
    let tagged = out(&with_ledger(l, &["ledger", "list", "--tag", "model=a"]));
    assert_eq!(
        tagged
            .lines()
            .filter(|x| x.contains("alpha") || x.contains("beta"))
            .count(),
        2,
        "{tagged}"
    );
    let none = out(&with_ledger(
        l,
        &["ledger", "list", "--since", "2999-01-01"],
    ));
    assert_eq!(none.lines().count(), 1, "header only: {none}");

    let summary = out(&with_ledger(l, &["ledger", "summary", "--by", "project"]));
    let alpha = summary
        .lines()
        .find(|x| x.starts_with("alpha"))
        .expect("alpha row");
    assert!(alpha.split_whitespace().nth(1) == Some("2"), "{summary}");
    assert!(
        summary.contains("total") && summary.contains("100%"),
        "{summary}"
    );
    let by_tag = out(&with_ledger(l, &["ledger", "summary", "--by", "tag:model"]));
    assert!(
        by_tag
            .lines()
            .any(|x| x.starts_with("a ") && x.split_whitespace().nth(1) == Some("2")),
        "{by_tag}"
    );
    for by in ["day", "week", "month", "user", "host"] {
        let o = with_ledger(l, &["ledger", "summary", "--by", by]);
        assert!(o.status.success(), "{by}: {}", err(&o));
        assert!(out(&o).lines().count() >= 2, "{by}: {}", out(&o));
    }
    let bad = with_ledger(l, &["ledger", "summary", "--by", "year"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(err(&bad).contains("tag:KEY"), "{}", err(&bad));

    let id = recs[2]["id"].as_str().expect("id");
    let show = out(&with_ledger(
        l,
        &["ledger", "show", &id[..20].to_lowercase()],
    ));
    assert!(
        show.contains(id) && show.contains("Our World in Data") && show.contains("power"),
        "{show}"
    );
    let amb = with_ledger(l, &["ledger", "show", "0"]);
    assert_eq!(amb.status.code(), Some(1));
    assert!(err(&amb).contains("matches 3 runs"), "{}", err(&amb));
    let missing = with_ledger(l, &["ledger", "show", "ZZZZ"]);
    assert!(
        err(&missing).contains("no run matches"),
        "{}",
        err(&missing)
    );
}

fn a_killed_monitor_leaves_an_interrupted_row_with_its_last_checkpoint(l: &str) {
    let d = tempfile::tempdir().expect("tmp");
    let empty = tempfile::tempdir().expect("tmp");
    let marker = d.path().join("child.pid");
    let script = format!("echo $$ > {}; exec sleep 30", marker.display());
    let mut child = decompute()
        .env("DECOMPUTE_LEDGER", l)
        .args([
            "run",
            "--quiet",
            "--no-gpu",
            "--interval",
            "200ms",
            "--checkpoint",
            "1s",
            "--sysfs-root",
        ])
        .arg(empty.path())
        .args(["--", "sh", "-c", &script])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Killed once a checkpoint has landed (waiting for it, not for a fixed time, which a
    // loaded machine may spend starting the monitor).
    let started = Instant::now();
    let checkpointed = eventually(|| {
        export(l)
            .first()
            .and_then(|r| r["report"]["duration_s"].as_f64())
            .is_some_and(|d| d >= 1.0)
    });
    child.kill().expect("SIGKILL");
    let lived = started.elapsed().as_secs_f64();
    assert!(checkpointed, "a checkpoint within 30 s");
    child.wait().expect("reaped");
    if let Ok(pid) = std::fs::read_to_string(&marker) {
        // SAFETY: kill(2) on the orphaned sleep this test started.
        unsafe { libc::kill(pid.trim().parse().unwrap_or(0), libc::SIGKILL) };
    }
    let recs = export(l);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r["status"], "interrupted", "{r}");
    assert!(r["report"]["exit_code"].is_null());
    let dur = r["report"]["duration_s"].as_f64().expect("duration");
    assert!(
        dur >= 1.0 && dur <= lived,
        "last checkpoint before the kill: {dur} s of the {lived} s the monitor lived"
    );
    assert!(r["report"]["energy_j"]["host"].as_f64().expect("energy") > 0.0);
    samples_cover_the_run(r);
}

/// Writers at once: 8 on a SQLite file, 32 from four "hosts" (UTS namespaces, where this
/// runs as root) on PostgreSQL. No row lost, no lock error surfacing.
fn concurrent_runs_all_land(l: &str) {
    let empty = tempfile::tempdir().expect("tmp");
    let n = if l.starts_with("postgres") { 32 } else { 8 };
    // SAFETY: geteuid has no preconditions.
    let hosts = l.starts_with("postgres") && unsafe { libc::geteuid() } == 0;
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut c = if hosts {
                // A host of its own: a new UTS namespace with its own host name.
                let mut c = std::process::Command::new("unshare");
                c.args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\""])
                    .arg(format!("host-{}", i % 4))
                    .arg(env!("CARGO_BIN_EXE_decompute"));
                c.env_remove("DECOMPUTE_LEDGER").stdin(Stdio::null());
                c
            } else {
                decompute()
            };
            c.env("DECOMPUTE_LEDGER", l)
                .args([
                    "run",
                    "--no-gpu",
                    "--interval",
                    "100ms",
                    "--checkpoint",
                    "1s",
                    "--tag",
                ])
                .arg(format!("n={i}"))
                .arg("--sysfs-root")
                .arg(empty.path())
                .args(["--", "sh", "-c", "seq 20000 | sort > /dev/null; sleep 1.2"])
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().expect("wait");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{e}");
        assert!(
            !e.contains("locked") && !e.contains("warning: cannot") && !e.contains("not recorded"),
            "{e}"
        );
    }
    let recs = export(l);
    assert_eq!(recs.len(), n);
    for r in &recs {
        assert_eq!(r["status"], "finished", "{r}");
        samples_cover_the_run(r);
    }
    let mut tags: Vec<String> = recs
        .iter()
        .map(|r| r["tags"]["n"].as_str().expect("tag").to_string())
        .collect();
    tags.sort();
    let mut want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(tags, want);
    if hosts {
        let mut seen: Vec<&str> = recs
            .iter()
            .map(|r| r["host"].as_str().expect("host"))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, vec!["host-0", "host-1", "host-2", "host-3"]);
    }
}

fn export_import_round_trips_exactly_and_is_idempotent(a: &str) {
    let d = tempfile::tempdir().expect("tmp");
    let b = d.path().join("b.sqlite");
    for i in 0..3 {
        let o = with_ledger(
            a,
            &[
                "run",
                "--interval",
                "100ms",
                "--tag",
                &format!("i={i}"),
                "--pue",
                "1.3",
                "--",
                "sleep",
                "0.25",
            ],
        );
        assert!(o.status.success(), "{}", err(&o));
    }
    let dump = d.path().join("dump.jsonl");
    let o = with_ledger(
        a,
        &["ledger", "export", "--output", dump.to_str().expect("utf8")],
    );
    assert!(o.status.success(), "{}", err(&o));
    for expect in [
        "imported 3 run(s), 0 already present",
        "imported 0 run(s), 3 already present",
    ] {
        let o = with_ledger(&b, &["ledger", "import", dump.to_str().expect("utf8")]);
        assert!(err(&o).contains(expect), "{}", err(&o));
    }
    let again = out(&with_ledger(&b, &["ledger", "export"]));
    assert_eq!(
        again,
        std::fs::read_to_string(&dump).expect("dump"),
        "byte for byte"
    );
    let bad = d.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"not\": \"a record\"}\n").expect("write");
    let o = with_ledger(&b, &["ledger", "import", bad.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("line 1") && err(&o).contains("ledger export"),
        "{}",
        err(&o)
    );
}

#[test]
fn foreign_and_newer_files_are_refused_untouched() {
    let d = tempfile::tempdir().expect("tmp");
    let text = d.path().join("notes.txt");
    std::fs::write(&text, "these are my notes, not a database\n").expect("write");
    let other = d.path().join("other.sqlite");
    {
        let c = rusqlite::Connection::open(&other).expect("db");
        c.execute_batch("CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('bread');")
            .expect("fill");
    }
    let newer = d.path().join("newer.sqlite");
    assert!(with_ledger(&newer, &["run", "--", "true"]).status.success());
    {
        let c = rusqlite::Connection::open(&newer).expect("db");
        c.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA user_version = 99;")
            .expect("bump");
    }
    for (path, needle) in [
        (&text, "not a decompute ledger"),
        (&other, "another application"),
        (&newer, "newer decompute"),
    ] {
        let before = std::fs::read(path).expect("read");
        let o = with_ledger(path, &["ledger", "list"]);
        assert_eq!(o.status.code(), Some(1), "{}", err(&o));
        assert!(
            err(&o).contains(needle) && err(&o).contains("untouched"),
            "{}",
            err(&o)
        );
        // A run still measures, warns once, and records nothing.
        let o = with_ledger(path, &["run", "--json", "-", "--", "true"]);
        assert!(o.status.success(), "{}", err(&o));
        assert!(err(&o).contains("measured but not recorded"), "{}", err(&o));
        assert_eq!(
            serde_json::from_slice::<Value>(&o.stdout).expect("json")["schema"],
            "decompute.run/1"
        );
        assert_eq!(
            std::fs::read(path).expect("read"),
            before,
            "{} must be untouched",
            path.display()
        );
    }
}

#[test]
fn an_unwritable_ledger_is_a_warning_and_the_footprint_survives() {
    // /proc refuses new files even to root.
    let o = with_ledger(
        Path::new("/proc/decompute-test/ledger.sqlite"),
        &["run", "--json", "-", "--", "sh", "-c", "exit 4"],
    );
    assert_eq!(o.status.code(), Some(4));
    let e = err(&o);
    assert!(e.contains("warning") && e.contains("not recorded"), "{e}");
    assert!(e.contains("total IT"), "the summary is still printed: {e}");
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).expect("json")["exit_code"],
        4
    );
}

fn csv_export_uses_codecarbon_columns_and_units(l: &str) {
    let o = with_ledger(
        l,
        &[
            "run",
            "--project",
            "p1",
            "--zone",
            "DE",
            "--pue",
            "1.5",
            "--",
            "sh",
            "-c",
            "seq 50000 | sort > /dev/null",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let csv = out(&with_ledger(l, &["ledger", "export", "--format", "csv"]));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let codecarbon = decompute::ledger::codecarbon::COLUMNS;
    assert_eq!(&header[..codecarbon.len()], &codecarbon);
    let row = decompute::csvdata::parse("export", &csv).expect("parses");
    let r = &row.rows[0].1;
    let col = |name: &str| r[row.column(name).expect("column")].clone();
    let rec = &export(l)[0]["report"];
    // As CodeCarbon 3.3.2: energy_consumed includes PUE (1.5 here); our IT energy follows.
    let kwh = rec["energy_j"]["workload"].as_f64().expect("j") / 3.6e6;
    let fac = rec["facility_energy_j"]["value"].as_f64().expect("j") / 3.6e6;
    assert!((fac - 1.5 * kwh).abs() <= 1e-15 + kwh * 1e-12);
    assert!(
        (col("energy_consumed").parse::<f64>().expect("kwh") - fac).abs() <= 1e-15 + fac * 1e-12
    );
    assert!(
        (col("it_energy_consumed").parse::<f64>().expect("kwh") - kwh).abs() <= 1e-15 + kwh * 1e-12
    );
    // Timestamps as CodeCarbon writes them: no zone, whole seconds.
    let ts = col("timestamp");
    assert_eq!(
        (ts.len(), ts.contains('T'), ts.ends_with('Z')),
        (19, true, false),
        "{ts}"
    );
    let kg = rec["carbon_g"]["value"].as_f64().expect("g") / 1000.0;
    assert!((col("emissions").parse::<f64>().expect("kg") - kg).abs() <= kg * 1e-12);
    assert_eq!(col("project_name"), "p1");
    assert_eq!(col("country_iso_code"), "DEU");
    assert_eq!(col("pue"), "1.5");
    assert_eq!(col("tracking_mode"), "process");
    assert_eq!(col("cpu_method"), "modelled");
}

fn a_running_row_of_another_host_is_interrupted_when_its_lease_runs_out(path: &str) {
    use decompute::ledger::{Location, Monitor, RunIdentity};
    // A real report to start from: one run recorded by the binary.
    let o = with_ledger(path, &["run", "--quiet", "--", "true"]);
    assert!(o.status.success(), "{}", err(&o));
    let rec = &export(path)[0];
    let report: decompute::report::RunReport =
        serde_json::from_value(rec["report"].clone()).expect("report");
    let mut l = Location::parse(path, decompute::factors::Origin::Default)
        .expect("a path")
        .open()
        .expect("open");
    for (id, lease_s) in [("01LEASESHORT", 0.05), ("01LEASELONG", 600.0)] {
        let ident = RunIdentity {
            id: id.into(),
            project: "p".into(),
            tags: Default::default(),
            user: "u".into(),
            // A monitor elsewhere: its pid means nothing here, only its lease does.
            host: "another-host".into(),
            cwd: "/".into(),
        };
        l.begin(
            &ident,
            Monitor {
                pid: 1,
                start_ticks: 1,
                lease_s,
            },
            &report,
        )
        .expect("begin");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let got = l.recover().expect("recover");
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["01LEASESHORT"], "only the expired lease");
    assert_eq!(
        l.get("01LEASELONG").expect("row").status,
        decompute::ledger::Status::Running
    );
    // On this host the monitor's pid decides: a live monitor whose lease lapsed (a database
    // outage longer than the lease) keeps its row running and its frozen workload frozen;
    // a dead one is interrupted at once, lease or not (#25 point 4).
    let me = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let my_start = decompute::procfs::pid::parse(&me).expect("parse").starttime;
    let host = decompute::host::hostname();
    for (id, pid, start_ticks) in [
        ("01HEREALIVE", std::process::id(), my_start),
        ("01HEREDEAD", std::process::id(), my_start + 1),
    ] {
        let ident = RunIdentity {
            id: id.into(),
            project: "p".into(),
            tags: Default::default(),
            user: "u".into(),
            host: host.clone(),
            cwd: "/".into(),
        };
        let monitor = Monitor {
            pid: pid as i32,
            start_ticks,
            lease_s: if id == "01HEREALIVE" { 0.05 } else { 600.0 },
        };
        l.begin(&ident, monitor, &report).expect("begin");
        let thaw = decompute::ledger::Thaw {
            host: host.clone(),
            cgroup: None,
            pids: vec![(1, 1)],
        };
        l.set_thaw(id, Some(&thaw)).expect("thaw");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let got = l.recover().expect("recover");
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["01HEREDEAD"], "the live monitor keeps its row");
    assert_eq!(
        l.get("01HEREALIVE").expect("row").status,
        decompute::ledger::Status::Running
    );
}

/// A team's hosted-AI use from a provider's usage export (#24): OpenAI's Usage API JSON and
/// a plain CSV become estimated rows, each with its model and tokens, once however often the
/// file is imported; listings mark them, summaries and reports keep them apart, budgets count
/// them; an unknown model refuses the file with the closest known ids.
fn a_usage_export_becomes_estimated_rows_kept_apart_and_budgeted(l: &str) {
    let d = tempfile::tempdir().expect("tmp");
    let page = d.path().join("usage.json");
    std::fs::write(
        &page,
        r#"{"object": "page", "has_more": false, "next_page": null, "data": [
  {"object": "bucket", "start_time": 1762041600, "end_time": 1762128000, "results": [
    {"object": "organization.usage.completions.result", "input_tokens": 900000,
     "output_tokens": 400000, "input_cached_tokens": 100000, "num_model_requests": 2000,
     "project_id": "proj_support", "model": "gpt-4o-mini-2024-07-18", "batch": false}]}]}"#,
    )
    .expect("write");
    let plain = d.path().join("usage.csv");
    std::fs::write(
        &plain,
        "date,model,requests,input_tokens,output_tokens,provider\n2026-11-02,claude-haiku-4-5,100,50000,30000,anthropic\n",
    )
    .expect("write");
    for (file, expect) in [
        (
            &page,
            "imported 1 estimated row(s) of hosted-AI use, 0 already present",
        ),
        (
            &page,
            "imported 0 estimated row(s) of hosted-AI use, 1 already present",
        ),
        (
            &plain,
            "imported 1 estimated row(s) of hosted-AI use, 0 already present",
        ),
    ] {
        let o = with_ledger(
            l,
            &[
                "ledger",
                "import",
                "--project",
                "support",
                file.to_str().expect("utf8"),
            ],
        );
        assert!(
            o.status.success() && err(&o).contains(expect),
            "{}",
            err(&o)
        );
    }
    let recs = export(l);
    let ours: Vec<&Value> = recs.iter().filter(|r| r["project"] == "support").collect();
    assert_eq!(ours.len(), 2);
    let oai = ours
        .iter()
        .find(|r| r["tags"]["provider"] == "openai")
        .expect("the OpenAI row");
    assert_eq!(oai["tags"]["scope"], "estimated");
    assert_eq!(oai["tags"]["requests"], "2000");
    // Cached prompt tokens are not computed again: 800,000 of 900,000 counted.
    assert_eq!(oai["tags"]["tokens_in"], "800000");
    assert_eq!(oai["tags"]["openai_project"], "proj_support");
    assert_eq!(oai["report"]["components"][0]["method"], "estimated");
    assert!(oai["report"]["carbon_g"]["low"].as_f64() < oai["report"]["carbon_g"]["high"].as_f64());
    let list = out(&with_ledger(l, &["ledger", "list", "--project", "support"]));
    assert!(list.contains("~ a hosted-AI request, estimated"), "{list}");
    let summary = out(&with_ledger(
        l,
        &["ledger", "summary", "--project", "support"],
    ));
    assert!(
        summary.contains("(no measured runs)") && summary.contains("hosted AI requests, estimated"),
        "{summary}"
    );
    let json = out(&with_ledger(
        l,
        &[
            "ledger",
            "summary",
            "--project",
            "support",
            "--format",
            "json",
        ],
    ));
    assert!(json.contains("\"scope\": \"estimated\""), "{json}");
    let html = out(&with_ledger(
        l,
        &["report", "--project", "support", "--html", "-"],
    ));
    assert!(
        html.contains("Hosted AI requests, estimated"),
        "{}",
        &html[..html.len().min(300)]
    );
    // Budgets count them: a policy's monthly carbon budget for support is used.
    let policy = d.path().join("decompute.toml");
    std::fs::write(&policy, "[project.support]\ncarbon = \"1 t / year\"\n").expect("policy");
    let st = with_ledger(
        l,
        &[
            "budget",
            "status",
            "--json",
            "--policy",
            policy.to_str().expect("utf8"),
        ],
    );
    let v: Value = serde_json::from_slice(&st.stdout).expect("json");
    assert!(
        v["projects"][0]["budgets"][0]["used"].as_f64() > Some(0.0),
        "{v}"
    );
    // An unknown model refuses the whole file, naming the line and what is close.
    let bad = d.path().join("bad.csv");
    std::fs::write(
        &bad,
        "date,model,requests,input_tokens,output_tokens\n2026-11-02,gpt-4o-mini,1,1,1\n2026-11-02,gpt-4o-m,1,1,1\n",
    )
    .expect("write");
    let o = with_ledger(l, &["ledger", "import", bad.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("line 3")
            && err(&o).contains("close: ")
            && err(&o).contains("nothing was imported"),
        "{}",
        err(&o)
    );
    assert_eq!(export(l).len(), recs.len());
}

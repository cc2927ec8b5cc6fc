//! Limits end to end: freezing and resuming a workload (cgroup v2 and signal methods),
//! budgets that stop a tree within one interval, SIGTERM while frozen, project budgets from
//! a policy file, `budget status`, `when`, and carbon that follows a grid signal.

use crate::support::{
    counter_workload, decompute, err, eventually, held_still, processes_with, read_counter,
    run_cmd, KillOnDrop,
};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn frozen_then_resumed(freezer: Option<&str>) {
    let d = tempfile::tempdir().expect("tmp");
    let sig = d.path().join("grid");
    std::fs::write(&sig, "100").expect("write");
    let counter = d.path().join("counter");
    let marker = format!("freeze-test-{}", freezer.unwrap_or("auto"));
    let grid = format!("file:{}", sig.display());
    let script = counter_workload(d.path(), &marker);
    let mut c = run_cmd(
        d.path(),
        &[
            "--quiet",
            "--interval",
            "100ms",
            "--grid",
            &grid,
            "--pause-above",
            "300",
            "--min-state",
            "0s",
            "--json",
            "r.json",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    if let Some(f) = freezer {
        c.env("DECOMPUTE_FREEZER", f);
    }
    let mut child = KillOnDrop(c.stderr(Stdio::null()).spawn().expect("spawn"));
    assert!(
        eventually(|| read_counter(&counter) > 0),
        "the workload runs"
    );
    std::fs::write(&sig, "500").expect("dirty grid");
    let a = held_still(&counter).expect("the workload pauses");
    std::thread::sleep(Duration::from_millis(800));
    let b = read_counter(&counter);
    assert_eq!(a, b, "the counter must not advance while frozen");
    std::fs::write(&sig, "50").expect("clean grid");
    assert!(
        eventually(|| read_counter(&counter) > b),
        "the workload resumes"
    );
    let o = child.0.wait().expect("wait");
    assert!(o.success());
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("r.json")).expect("report"))
            .expect("json");
    let g = &r["governance"];
    assert_eq!(g["pauses"].as_array().expect("pauses").len(), 1, "{g}");
    assert_eq!(g["pauses"][0]["cause"], "grid");
    assert!(g["paused_s"].as_f64().expect("paused") >= 1.0, "{g}");
    assert!(g["carbon_avoided_g"].as_f64().expect("avoided") >= 0.0);
    if freezer == Some("signals") {
        assert!(
            g["freeze_method"]
                .as_str()
                .expect("method")
                .contains("SIGSTOP"),
            "{g}"
        );
    }
    assert!(r["factors"]["grid_gco2_per_kwh"]["source"]
        .as_str()
        .expect("src")
        .contains("grid signal"));
}

#[test]
fn grid_freeze_and_resume_with_the_default_freezer() {
    frozen_then_resumed(None);
}

#[test]
fn grid_freeze_and_resume_with_signals() {
    frozen_then_resumed(Some("signals"));
}

#[test]
fn a_budget_stops_the_tree_within_one_interval_and_it_is_gone_after_the_grace() {
    let d = tempfile::tempdir().expect("tmp");
    let marker = "sleep 31.4159";
    let script = format!("trap '' TERM; {marker} & {marker} & wait");
    let start = Instant::now();
    let o = run_cmd(
        d.path(),
        &[
            "--interval",
            "200ms",
            "--budget",
            "time=1s",
            "--grace",
            "1s",
            "--json",
            "-",
            "--",
            "sh",
            "-c",
            &script,
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(o.status.code(), Some(124), "{}", err(&o));
    assert!(start.elapsed() < Duration::from_secs(5));
    let r: Value = serde_json::from_slice(&o.stdout).expect("json");
    let stop = &r["governance"]["stopped_by"];
    assert_eq!(stop["metric"], "time");
    let used = stop["used"].as_f64().expect("used");
    assert!(
        (1.0..1.2 + 0.3).contains(&used),
        "tripped within one 200 ms interval: {used}"
    );
    assert!(
        err(&o).contains("STOPPED by the time budget"),
        "{}",
        err(&o)
    );
    assert!(
        processes_with(marker).is_empty(),
        "the whole tree is gone: {:?}",
        processes_with(marker)
    );
    let list = decompute()
        .env("DECOMPUTE_LEDGER", d.path().join("ledger.sqlite"))
        .args(["ledger", "list"])
        .output()
        .expect("list");
    assert!(String::from_utf8_lossy(&list.stdout).contains("stopped-by-budget"));
}

#[test]
fn energy_budget_warns_at_80_percent_and_warn_mode_continues() {
    let d = tempfile::tempdir().expect("tmp");
    let burn = "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done";
    let o = run_cmd(
        d.path(),
        &[
            "--interval",
            "100ms",
            "--budget",
            "energy=50mJ",
            "--on-exceed",
            "warn",
            "--",
            "sh",
            "-c",
            burn,
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.contains("energy budget used up") && e.contains("continuing"),
        "{e}"
    );
}

#[test]
fn sigterm_while_frozen_leaves_no_stopped_process() {
    for freezer in ["signals", "auto"] {
        let d = tempfile::tempdir().expect("tmp");
        let sig = d.path().join("grid");
        std::fs::write(&sig, "900").expect("write");
        let marker = format!("sleep 27.18{}", freezer.len());
        let script = format!("{marker} & {marker}; wait");
        let grid = format!("file:{}", sig.display());
        let child = run_cmd(
            d.path(),
            &[
                "--quiet",
                "--interval",
                "100ms",
                "--grid",
                &grid,
                "--pause-above",
                "300",
                "--min-state",
                "0s",
                "--",
                "sh",
                "-c",
                &script,
            ],
        )
        .env("DECOMPUTE_FREEZER", freezer)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
        assert!(
            eventually(|| {
                let p = processes_with(&marker);
                !p.is_empty() && p.iter().all(|(_, s)| *s == 'T' || freezer == "auto")
            }),
            "{freezer}: frozen {:?}",
            processes_with(&marker)
        );
        // SAFETY: kill(2) on a child we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let o = child.wait_with_output().expect("wait");
        assert_eq!(o.status.code(), Some(143), "{freezer}");
        std::thread::sleep(Duration::from_millis(200));
        let left = processes_with(&marker);
        assert!(
            left.iter().all(|(_, s)| *s != 'T'),
            "{freezer}: no stopped process may be left: {left:?}"
        );
        for (pid, _) in left {
            // The background sleep outlives its shell (SIGTERM went to the command); clean up.
            // SAFETY: kill(2) on a leftover test process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn project_budgets_refuse_to_start_unless_forced() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(
        d.path().join("decompute.toml"),
        "[project.team]\nenergy = \"1 mJ / month\"\n",
    )
    .expect("policy");
    let sub = d.path().join("src/deep");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let ledger = d.path().join("ledger.sqlite");
    let go = |extra: &[&str]| {
        let mut c = decompute();
        c.current_dir(&sub)
            .env("DECOMPUTE_LEDGER", &ledger)
            .args(["run", "--no-gpu", "--project", "team"])
            .args(extra);
        c.args(["--", "sh", "-c", "seq 20000 | sort > /dev/null"])
            .output()
            .expect("runs")
    };
    // The first run fits the remaining budget until it trips it (policy found upward).
    let first = go(&["--interval", "100ms"]);
    assert!(err(&first).contains("energy budget"), "{}", err(&first));
    let refused = go(&[]);
    assert_eq!(refused.status.code(), Some(123), "{}", err(&refused));
    let e = err(&refused);
    assert!(
        e.contains("decompute.toml:2") && e.contains("--force") && e.contains("month"),
        "{e}"
    );
    let forced = go(&["--force", "--json", "-"]);
    assert_eq!(forced.status.code(), Some(0), "{}", err(&forced));
    let r: Value = serde_json::from_slice(&forced.stdout).expect("json");
    assert_eq!(r["governance"]["forced"], true);
    let status = decompute()
        .current_dir(&sub)
        .env("DECOMPUTE_LEDGER", &ledger)
        .args(["budget", "status"])
        .output()
        .expect("status");
    let s = String::from_utf8_lossy(&status.stdout);
    assert!(
        s.contains("project team") && s.contains("[####################]") && s.contains("USED UP"),
        "{s}"
    );
}

#[test]
fn malformed_limits_are_refused_before_the_command_runs() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(
        d.path().join("bad.toml"),
        "[project.x]\n\ncarbon = \"5 kg / fortnight\"\n",
    )
    .expect("write");
    let ran = d.path().join("ran");
    let touch = format!("touch {}", ran.display());
    let bad = d.path().join("bad.toml");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--budget", "energy=5W"], "'W' not accepted"),
        (vec!["--budget", "speed=5"], "unknown budget"),
        (vec!["--pause-above", "300"], "need a grid signal"),
        (
            vec!["--grid", "http://x", "--pause-above", "300"],
            "file:PATH",
        ),
        (
            vec![
                "--grid",
                "file:/x",
                "--pause-above",
                "300",
                "--resume-below",
                "400",
            ],
            "resume at or below",
        ),
        (
            vec!["--policy", bad.to_str().expect("utf8")],
            "bad.toml: line 3",
        ),
        (vec!["--grace", "soon"], "500ms"),
    ];
    for (args, needle) in cases {
        let o = run_cmd(
            d.path(),
            &[args.as_slice(), &["--", "sh", "-c", &touch]].concat(),
        )
        .output()
        .expect("runs");
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(needle), "{args:?}: {}", err(&o));
        assert!(!ran.exists(), "{args:?} must not run the command");
    }
}

#[test]
fn carbon_follows_the_grid_signal() {
    let d = tempfile::tempdir().expect("tmp");
    let sig = d.path().join("grid");
    std::fs::write(&sig, "{\"intensity\": 1000}").expect("write");
    let grid = format!("file:{}", sig.display());
    let o = run_cmd(
        d.path(),
        &[
            "--interval",
            "100ms",
            "--grid",
            &grid,
            "--zone",
            "FR",
            "--json",
            "-",
            "--",
            "sleep",
            "0.5",
        ],
    )
    .output()
    .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        (r["factors"]["grid_gco2_per_kwh"]["value"]
            .as_f64()
            .expect("g")
            - 1000.0)
            .abs()
            < 1e-9
    );
    let fac = r["facility_energy_j"]["value"].as_f64().expect("fac");
    let c = r["carbon_g"]["value"].as_f64().expect("c");
    assert!(
        (c - fac / 3.6e6 * 1000.0).abs() <= 1e-9 * c.max(1e-12),
        "{c} vs {fac}"
    );
}

#[test]
fn when_finds_the_cleanest_window() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("forecast.csv");
    std::fs::write(
        &f,
        "timestamp,g_per_kwh\n2026-11-29T00:00:00Z,300\n2026-11-29T01:00:00Z,200\n2026-11-29T02:00:00Z,100\n2026-11-29T03:00:00Z,100\n2026-11-29T04:00:00Z,400\n",
    )
    .expect("write");
    let grid = format!("csv:{}", f.display());
    let o = decompute()
        .args([
            "when",
            "--grid",
            &grid,
            "--duration",
            "2h",
            "--now",
            "2026-11-29T00:30:00Z",
        ])
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("best start: 2026-11-29T02:00:00Z  mean 100"),
        "{out}"
    );
    // Now (00:30): 0.5 h at 300, 1 h at 200, 0.5 h at 100 → 200.
    assert!(
        out.contains("starting now: mean 200") && out.contains("saves 50 %"),
        "{out}"
    );
    let o = decompute()
        .args([
            "when",
            "--grid",
            &grid,
            "--duration",
            "12h",
            "--now",
            "2026-11-29T00:00:00Z",
        ])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("covers no"), "{}", err(&o));
}

#[test]
fn a_policy_pause_resumes_when_the_budget_is_raised() {
    let d = tempfile::tempdir().expect("tmp");
    let policy = d.path().join("decompute.toml");
    std::fs::write(
        &policy,
        "[project.p]\ntime = \"1 s / day\"\non_exceed = \"pause\"\n",
    )
    .expect("policy");
    let counter = d.path().join("counter");
    let script = counter_workload(d.path(), "policy-pause");
    let child = run_cmd(
        d.path(),
        &[
            "--quiet",
            "--project",
            "p",
            "--interval",
            "100ms",
            "--checkpoint",
            "1s",
            "--json",
            "r.json",
            "--",
            "sh",
            "-c",
            &script,
        ],
    )
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    let mut child = KillOnDrop(child);
    let a = held_still(&counter).expect("paused once the day's 1 s is used");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        read_counter(&counter),
        a,
        "paused once the day's 1 s is used"
    );
    std::fs::write(
        &policy,
        "[project.p]\ntime = \"1 h / day\"\non_exceed = \"pause\"\n",
    )
    .expect("raise");
    assert!(
        eventually(|| read_counter(&counter) > a),
        "resumed after the budget was raised"
    );
    // SAFETY: kill(2) on a child we spawned; SIGTERM reaches the shell (a shell ignores a
    // SIGINT its foreground child did not die of).
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let _ = child.0.wait();
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("r.json")).expect("report"))
            .expect("json");
    let pauses = r["governance"]["pauses"].as_array().expect("pauses");
    assert!(pauses.iter().any(|p| p["cause"] == "budget"), "{pauses:?}");
}

//! The team's policy file: one found upward that is not the user's is ignored with a warning;
//! concurrent runs under one small project budget are bound by it together.

use crate::support::{err, run_cmd, run_in, shared_budget_bound, KillOnDrop};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

// 4. A policy file found upward must belong to the user (or root) and not be writable by
// others; a named one is always honoured.
#[test]
fn a_foreign_policy_file_is_ignored_with_a_warning() {
    let d = tempfile::tempdir().expect("tmp");
    let work = d.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let pol = d.path().join("decompute.toml");
    std::fs::write(
        &pol,
        "[project.victim]\nenergy = \"1 J / day\"\non_exceed = \"pause\"\n",
    )
    .expect("w");
    std::fs::set_permissions(&pol, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = run_in(&work, &["--project", "victim", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains("ignoring") && err(&o).contains("--policy"),
        "{}",
        err(&o)
    );
    // Broken and foreign: still ignored, the run is not blocked.
    std::fs::write(&pol, "this is [not toml").expect("w");
    let o = run_in(&work, &["--project", "victim", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // Owned by another user (as root only).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::write(&pol, "[project.victim]\nenergy = \"1 J / day\"\n").expect("w");
        std::fs::set_permissions(&pol, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::os::unix::fs::chown(&pol, Some(4242), Some(4242)).expect("chown");
        let o = run_in(&work, &["--project", "victim", "--", "true"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(err(&o).contains("uid 4242"), "{}", err(&o));
    }
    // Named, it governs: 1 mJ a day is used up after one run.
    std::fs::write(&pol, "[project.named]\nenergy = \"1 mJ / day\"\n").expect("w");
    let named = pol.to_str().expect("u");
    let o = run_in(
        &work,
        &[
            "--project",
            "named",
            "--policy",
            named,
            "--",
            "sleep",
            "0.3",
        ],
    );
    assert!(
        o.status.code() == Some(124) || o.status.code() == Some(0),
        "{}",
        err(&o)
    );
    let o = run_in(
        &work,
        &["--project", "named", "--policy", named, "--", "true"],
    );
    assert_eq!(o.status.code(), Some(123), "{}", err(&o));
}

// 10. Concurrent runs under one small project budget: each run publishes its use every 5 %
// of the budget, and near the end every interval, and re-reads the others' every interval;
// so the overshoot stays within N × 5 % of the budget plus what their combined power draws
// in two sampling intervals (one to checkpoint, one for the others' to be read back).
#[test]
fn concurrent_runs_bind_to_one_project_budget() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(
        d.path().join("decompute.toml"),
        "[project.shared]\nenergy = \"2 J / day\"\n",
    )
    .expect("w");
    std::fs::set_permissions(
        d.path().join("decompute.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let burn = "i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done";
    let children: Vec<KillOnDrop> = (0..4)
        .map(|_| {
            KillOnDrop(
                run_cmd(
                    d.path(),
                    &[
                        "--quiet",
                        "--sysfs-root",
                        "/nonexistent",
                        "--project",
                        "shared",
                        "--interval",
                        "100ms",
                        "--grace",
                        "0s",
                        "--json",
                        "-",
                        "--",
                        "sh",
                        "-c",
                        burn,
                    ],
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn"),
            )
        })
        .collect();
    let mut reports = Vec::new();
    for mut c in children {
        let mut out = String::new();
        std::io::Read::read_to_string(c.0.stdout.as_mut().expect("out"), &mut out).expect("r");
        c.0.wait().expect("wait");
        reports.push(serde_json::from_str::<Value>(&out).expect("json"));
    }
    let total: f64 = reports
        .iter()
        .map(|r| r["energy_j"]["workload"].as_f64().expect("e"))
        .sum();
    let bound = shared_budget_bound(2.0, &reports);
    assert!(
        total <= bound,
        "4 runs used {total:.3} J of a 2 J budget; bound {bound:.3} J"
    );
    assert!(total > 1.0, "the runs did work: {total}");
}

/// `budget status --prometheus` gives each project budget's use, amount and ratios as
/// Prometheus text, for node_exporter's textfile collector and the dashboard's budget panel.
#[test]
fn budget_use_is_exported_for_prometheus() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(
        d.path().join("decompute.toml"),
        "[budget.demo]\nenergy = \"1 kWh / month\"\ncarbon = \"2 kg / day\"\n",
    )
    .expect("w");
    std::fs::set_permissions(
        d.path().join("decompute.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let o = run_in(
        d.path(),
        &["--quiet", "--project", "demo", "--", "sleep", "0.2"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = crate::support::decompute()
        .current_dir(d.path())
        .env("DECOMPUTE_LEDGER", d.path().join("ledger.sqlite"))
        .args(["budget", "status", "--prometheus"])
        .output()
        .expect("status");
    assert!(o.status.success(), "{}", err(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.ends_with('\n'), "{text}");
    for name in [
        "decompute_budget_used",
        "decompute_budget_amount",
        "decompute_budget_used_ratio",
        "decompute_budget_projected_ratio",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} gauge")),
            "{name}: {text}"
        );
    }
    let amount = text
        .lines()
        .find(|l| {
            l.starts_with("decompute_budget_amount{")
                && l.contains("project=\"demo\"")
                && l.contains("metric=\"energy\"")
                && l.contains("period=\"month\"")
        })
        .expect("the energy budget's amount");
    assert!(amount.ends_with(" 3600000.0"), "{amount}");
    let ratio: f64 = text
        .lines()
        .find(|l| l.starts_with("decompute_budget_used_ratio{") && l.contains("metric=\"energy\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("a ratio");
    assert!(ratio > 0.0 && ratio < 1e-3, "{ratio}");
}

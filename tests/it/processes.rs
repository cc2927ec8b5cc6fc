//! The workload's processes: everything a command starts is followed wherever it re-parents,
//! signals reach it, a frozen workload is never left frozen (a child killed meanwhile, a
//! monitor killed), exit codes and limits' deadlines are exact.

use crate::support::{
    counter_workload, decompute, err, eventually, held_still, json_of, kill_all, processes_with,
    read_counter, run_cmd, run_in, KillOnDrop,
};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

// 2. The workload is the command and everything it starts, wherever it re-parents.
#[test]
fn escaped_processes_are_reported_or_followed_and_signals_reach_them() {
    let d = tempfile::tempdir().expect("tmp");
    // Without --wait-all: the command returns at once; what it left is reported.
    let mark = "sleep 41.271";
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--json",
            "-",
            "--",
            "sh",
            "-c",
            &format!("(setsid {mark} >/dev/null 2>&1 &)"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let r = json_of(&o);
    let left = r["leftover_processes"].as_array().expect("leftovers");
    assert_eq!(left.len(), 1, "{r}");
    let pid = left[0]["pid"].as_i64().expect("pid") as i32;
    assert!(processes_with(mark).iter().any(|(p, _)| *p == pid));
    assert!(
        r["notes"].to_string().contains("--wait-all"),
        "{}",
        r["notes"]
    );
    kill_all(mark);

    // With --wait-all the escapee is followed, measured and held to the budget.
    let mark = "decompute-escape-burner";
    let t = Instant::now();
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--wait-all",
            "--interval",
            "100ms",
            "--budget",
            "time=1s",
            "--grace",
            "1s",
            "--json",
            "-",
            "--",
            "sh",
            "-c",
            &format!("(setsid sh -c 'while :; do :; done # {mark}' >/dev/null 2>&1 &)"),
        ],
    );
    assert_eq!(o.status.code(), Some(124), "{}", err(&o));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let r = json_of(&o);
    // The shell that started it used a few milliseconds; the escapee burned for the second
    // of the budget, however little of a busy machine's CPU it got meanwhile.
    assert!(r["cpu_time_s"].as_f64().expect("cpu") > 0.05, "{r}");
    assert!(
        eventually(|| processes_with(mark).is_empty()),
        "the escapee was stopped"
    );

    // SIGTERM reaches a background child, and no decompute-* cgroup survives.
    let sig = d.path().join("grid");
    std::fs::write(&sig, "100").expect("w");
    let mark = "sleep 42.373";
    let mut c = KillOnDrop(
        run_cmd(
            d.path(),
            &[
                "--quiet",
                "--interval",
                "100ms",
                "--grid",
                &format!("file:{}", sig.display()),
                "--json",
                "r.json",
                "--",
                "sh",
                "-c",
                &format!("{mark} & wait"),
            ],
        )
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn"),
    );
    assert!(eventually(|| !processes_with(mark).is_empty()));
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(c.0.id() as i32, libc::SIGTERM) };
    let st = c.0.wait().expect("wait");
    assert_eq!(st.code(), Some(143));
    assert!(
        eventually(|| processes_with(mark).is_empty()),
        "the background sleep got the signal too: {:?}",
        processes_with(mark)
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("r.json")).expect("r"))
            .expect("json");
    let method = r["governance"]["freeze_method"].as_str().unwrap_or("");
    if let Some(dir) = method
        .strip_prefix("cgroup v2 freezer (")
        .and_then(|m| m.strip_suffix(')'))
    {
        assert!(!Path::new(dir).exists(), "{dir} must be removed");
    }
}

// 2 (cont.). A child killed while its workload is frozen: with --wait-all the rest of the
// workload stays governed (frozen while the grid is dirty) and is measured to its end.
#[test]
fn a_child_killed_while_frozen_leaves_its_descendants_governed() {
    let d = tempfile::tempdir().expect("tmp");
    let sig = d.path().join("grid");
    std::fs::write(&sig, "100").expect("w");
    let counter = d.path().join("counter");
    let inner = counter_workload(d.path(), "killed-while-frozen");
    let script = format!("sh -c '{}' & wait", inner.replace('\'', "'\\''"));
    let mut c = KillOnDrop(
        run_cmd(
            d.path(),
            &[
                "--quiet",
                "--wait-all",
                "--interval",
                "100ms",
                "--min-state",
                "0s",
                "--grid",
                &format!("file:{}", sig.display()),
                "--pause-above",
                "300",
                "--",
                "sh",
                "-c",
                &script,
            ],
        )
        .env("DECOMPUTE_FREEZER", "signals")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn"),
    );
    assert!(eventually(|| read_counter(&counter) > 0));
    std::fs::write(&sig, "900").expect("dirty");
    held_still(&counter).expect("frozen");
    // Kill the command itself (the outer shell) while everything is stopped.
    let outer: Vec<i32> = processes_with("& wait")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    for p in &outer {
        // SAFETY: kill(2) on a test process.
        unsafe { libc::kill(*p, libc::SIGKILL) };
    }
    let a = read_counter(&counter);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        a,
        read_counter(&counter),
        "still frozen after the child died"
    );
    std::fs::write(&sig, "50").expect("clean");
    assert!(eventually(|| read_counter(&counter) > a), "resumes");
    let st = c.0.wait().expect("wait");
    assert!(st.code().is_some());
    assert!(processes_with("killed-while-frozen").is_empty());
}

// 3. kill -9 of decompute while the workload is paused: the next decompute command thaws it.
#[test]
fn a_workload_frozen_by_a_killed_monitor_is_thawed_by_the_next_command() {
    for freezer in ["signals", "auto"] {
        let d = tempfile::tempdir().expect("tmp");
        let sig = d.path().join("grid");
        std::fs::write(&sig, "900").expect("w");
        let counter = d.path().join("counter");
        let mark = format!("frozen-forever-{freezer}");
        let script = counter_workload(d.path(), &mark);
        let mut c = KillOnDrop(
            run_cmd(
                d.path(),
                &[
                    "--quiet",
                    "--interval",
                    "100ms",
                    "--min-state",
                    "0s",
                    "--grid",
                    &format!("file:{}", sig.display()),
                    "--pause-above",
                    "300",
                    "--",
                    "sh",
                    "-c",
                    &script,
                ],
            )
            .env("DECOMPUTE_FREEZER", freezer)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
        );
        // Frozen from the first interval: the counter stops.
        let a = held_still(&counter).expect("frozen");
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(a, read_counter(&counter), "{freezer}: frozen");
        // SAFETY: kill(2) on our child.
        unsafe { libc::kill(c.0.id() as i32, libc::SIGKILL) };
        c.0.wait().expect("wait");
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(a, read_counter(&counter), "{freezer}: still frozen");
        let o = decompute()
            .args(["ledger", "list", "--ledger"])
            .arg(d.path().join("ledger.sqlite"))
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", err(&o));
        assert!(err(&o).contains("thawed"), "{freezer}: {}", err(&o));
        assert!(
            eventually(|| read_counter(&counter) > a),
            "{freezer}: the workload runs again"
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("interrupted"));
        // With a cgroup of its own, the run's cgroup is gone once thawed: its processes run
        // on in the parent cgroup (#25 point 16).
        if let Some(dir) = err(&o)
            .split("cgroup ")
            .nth(1)
            .and_then(|r| r.split(" thawed").next())
        {
            assert!(!Path::new(dir).exists(), "{dir} left behind: {}", err(&o));
        }
        kill_all(&mark);
    }
}

// 8. Options decompute does not know are usage errors; limits act on their own deadline.
#[test]
fn exit_codes_and_deadlines_are_exact() {
    let d = tempfile::tempdir().expect("tmp");
    let ran = d.path().join("ran");
    let o = run_in(
        d.path(),
        &["--bogus", "--", "touch", ran.to_str().expect("u")],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(!ran.exists());
    // The run's own clock (its report) says when it ended: what start-up costs on a loaded
    // machine does not enter.
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--interval",
            "5s",
            "--budget",
            "time=1s",
            "--json",
            "-",
            "--",
            "sleep",
            "10",
        ],
    );
    assert_eq!(o.status.code(), Some(124), "{}", err(&o));
    let dur = json_of(&o)["duration_s"].as_f64().expect("duration");
    // (Before the deadline counted from the last tick, each early wake-up pushed it on by a
    // second: 2–5 s on a loaded machine. A load that delays the monitor 1.5 s is allowed.)
    assert!(
        (0.95..2.5).contains(&dur),
        "time=1s with a 5 s interval stops near 1 s, not at a later second or the 5 s tick: {dur} s"
    );
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--interval",
            "5s",
            "--budget",
            "time=1s",
            "--grace",
            "1s",
            "--json",
            "-",
            "--",
            "sh",
            "-c",
            "trap '' TERM; sleep 10",
        ],
    );
    assert_eq!(o.status.code(), Some(124), "{}", err(&o));
    let r = json_of(&o);
    let dur = r["duration_s"].as_f64().expect("duration");
    // Tied to the deadline, not to the 5 s tick (which would give 6 s or more), allowing a
    // load that delays the monitor 1.5 s.
    assert!(
        (1.9..3.5).contains(&dur),
        "SIGKILL when the 1 s grace ends, 1 s after the stop: {dur} s"
    );
    // The interval the budget tripped in and the one that ended with the kill: waiting for
    // the kill and for the killed to end closes no interval of its own (it once closed one
    // per turn of a loop, a dozen intervals of a millisecond).
    let rows = r["samples"].as_array().expect("samples").len();
    assert!(rows <= 3, "{rows} rows: {}", r["samples"]);
}

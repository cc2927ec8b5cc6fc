//! Grid signals: a `cmd:` signal runs on its own thread and never stalls sampling or joins the
//! workload; one unreadable at the start is an error, one that fails later is said once.

use crate::support::{err, eventually, json_of, processes_with, run_in};
use std::time::{Duration, Instant};

// 6. A cmd: signal runs on its own thread: a slow one never stalls sampling or budgets, a
// chatty one never deadlocks, and neither it nor its children are workload or left behind.
#[test]
fn a_grid_command_never_stalls_or_joins_the_workload() {
    let d = tempfile::tempdir().expect("tmp");
    let flag = d.path().join("slow");
    let slow = format!(
        "cmd:if [ -f {f} ]; then sleep 5; fi; touch {f}; echo 100",
        f = flag.display()
    );
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--interval",
            "100ms",
            "--budget",
            "time=1s",
            "--grace",
            "1s",
            "--grid",
            &slow,
            "--json",
            "-",
            "--",
            "sleep",
            "10",
        ],
    );
    assert_eq!(o.status.code(), Some(124), "{}", err(&o));
    let dur = json_of(&o)["duration_s"].as_f64().expect("d");
    assert!(
        dur < 2.5,
        "the budget trips on time, not after the 5 s command: {dur} s"
    );
    // Sampling went on while the signal slept its 5 s: more than one row, and no gap near
    // the signal's sleep (how many rows a loaded machine manages in the second is its own).
    let r = json_of(&o);
    let samples = r["samples"].as_array().expect("s");
    let widest = samples
        .iter()
        .map(|s| s["dt_s"].as_f64().expect("dt"))
        .fold(0.0, f64::max);
    assert!(
        samples.len() >= 2 && widest < 2.5,
        "sampling went on every 100 ms: {} rows, the widest {widest} s",
        samples.len()
    );
    let chatty = "cmd:head -c 200000 /dev/zero | tr '\\0' ' '; echo 100";
    let t = Instant::now();
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--interval",
            "100ms",
            "--grid",
            chatty,
            "--",
            "sleep",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    // The signal command burns CPU and leaves a child: neither is the workload's.
    let mark = "sleep 43.474";
    let busy =
        format!("cmd:i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; ({mark} &); echo 100");
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--interval",
            "100ms",
            "--grid",
            &busy,
            "--json",
            "-",
            "--",
            "sleep",
            "1.5",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let r = json_of(&o);
    assert!(
        r["cpu_time_s"].as_f64().expect("cpu") < 0.05,
        "the signal's CPU is not the workload's: {}",
        r["cpu_time_s"]
    );
    assert!(r["leftover_processes"].is_null(), "{r}");
    assert!(
        eventually(|| processes_with(mark).is_empty()),
        "the signal command's children are killed with its group"
    );
}

// 9. A signal unreadable at the start is an error; one that fails later is said once.
#[test]
fn grid_signal_errors_are_said_once() {
    let d = tempfile::tempdir().expect("tmp");
    let missing = d.path().join("no-such-grid");
    let o = run_in(
        d.path(),
        &[
            "--grid",
            &format!("file:{}", missing.display()),
            "--",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("no-such-grid"), "{}", err(&o));
    let sig = d.path().join("grid");
    std::fs::write(&sig, "100").expect("w");
    let script = format!("sleep 0.3; rm {}; sleep 1", sig.display());
    let o = run_in(
        d.path(),
        &[
            "--interval",
            "100ms",
            "--grid",
            &format!("file:{}", sig.display()),
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let n = err(&o).matches("keeping the last good value").count();
    assert_eq!(n, 1, "{}", err(&o));
}

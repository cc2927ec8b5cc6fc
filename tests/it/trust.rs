//! Trust: every failure mode of issue #8, end to end on the real binary, one test per point:
//! no clobbered file, no escaped or frozen-forever workload, no foreign policy, no panic,
//! a grid command that never stalls sampling, figures credited to their real source, exact
//! exit codes and deadlines, honest signal errors, concurrent budgets that bind, validated
//! imports, defused CSV and terminal text, private ledger files, and the smaller ones.

#![allow(clippy::disallowed_macros)] // tests print why they skip

use crate::support::decompute;
use crate::support::{
    counter_workload, err, eventually, processes_with, read_counter, run_cmd, shared_budget_bound,
    KillOnDrop,
};
use serde_json::Value;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&o.stdout),
            err(o)
        )
    })
}

/// `decompute run` in `dir` (ledger there), modelled (no RAPL), no GPU.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    let empty = dir.join("empty-sysfs");
    let _ = std::fs::create_dir_all(&empty);
    run_cmd(
        dir,
        &[&["--sysfs-root", empty.to_str().expect("utf8")], args].concat(),
    )
    .output()
    .expect("runs")
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("c");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

fn kill_all(marker: &str) {
    for (pid, _) in processes_with(marker) {
        // SAFETY: kill(2) on a leftover test process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

// 1. --json never replaces what is not a regular file, never follows a planted name, and
// never writes over the ledger.
#[test]
fn json_output_behaves_like_a_shell_redirection() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(d.path(), &["--quiet", "--json", "/dev/null", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let m = std::fs::symlink_metadata("/dev/null").expect("m");
    assert!(m.file_type().is_char_device(), "/dev/null stays a device");

    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let reader = {
        let f = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(f).expect("read"))
    };
    let fs = fifo.to_str().expect("utf8");
    let o = run_in(d.path(), &["--quiet", "--json", fs, "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let got: Value = serde_json::from_str(&reader.join().expect("join")).expect("json");
    assert_eq!(got["schema"], "decompute.run/1");
    assert!(std::fs::symlink_metadata(&fifo)
        .expect("m")
        .file_type()
        .is_fifo());

    let real = d.path().join("real.json");
    std::fs::write(&real, "old").expect("w");
    let link = d.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).expect("ln");
    let o = run_in(
        d.path(),
        &["--quiet", "--json", link.to_str().expect("u"), "--", "true"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(std::fs::symlink_metadata(&link)
        .expect("m")
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .expect("r")
        .contains("decompute.run/1"));

    // The ledger, by its name or another name for the same file: refused before the
    // command runs, and the ledger survives.
    let ledger = d.path().join("ledger.sqlite");
    let o = run_in(d.path(), &["--quiet", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let alias = d.path().join("alias.json");
    std::fs::hard_link(&ledger, &alias).expect("hard link");
    let ran = d.path().join("ran");
    for target in [&ledger, &alias] {
        let o = run_in(
            d.path(),
            &[
                "--json",
                target.to_str().expect("u"),
                "--",
                "touch",
                ran.to_str().expect("u"),
            ],
        );
        assert_eq!(o.status.code(), Some(125), "{}", err(&o));
        assert!(err(&o).contains("ledger"), "{}", err(&o));
        assert!(!ran.exists(), "the command must not run");
    }
    let o = decompute()
        .args(["ledger", "list", "--ledger"])
        .arg(&ledger)
        .output()
        .expect("runs");
    assert!(o.status.success(), "the ledger is intact: {}", err(&o));
    let o = decompute()
        .args(["ledger", "export", "--ledger"])
        .arg(&ledger)
        .arg("--output")
        .arg(&ledger)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("ledger"), "{}", err(&o));
    let o = decompute()
        .args(["ledger", "list", "--ledger"])
        .arg(&ledger)
        .output()
        .expect("runs");
    assert!(
        o.status.success(),
        "export refused to clobber it: {}",
        err(&o)
    );
    let o = decompute()
        .args(["scale", "--flop", "1e24", "--svg", "/dev/null"])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    assert!(std::fs::symlink_metadata("/dev/null")
        .expect("m")
        .file_type()
        .is_char_device());
    // Nothing but the files named was created (no predictable temporary names).
    let names: Vec<String> = std::fs::read_dir(d.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

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
    let r = json(&o);
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
    let r = json(&o);
    assert!(r["cpu_time_s"].as_f64().expect("cpu") > 0.3, "{r}");
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
    std::thread::sleep(Duration::from_millis(500));
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
        std::thread::sleep(Duration::from_millis(800));
        let a = read_counter(&counter);
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

// 5. No panic on any input: one-line errors, and a closed or full stderr or stdout never
// costs the command its run or its exit code.
#[test]
fn no_panic_on_bad_input_or_closed_streams() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(
        d.path(),
        &["--grace", "99999999999999999999s", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("longer"), "{}", err(&o));
    let fc = d.path().join("f.csv");
    std::fs::write(&fc, "2026-11-29T00:00:00Z,100\n2026-11-29T01:00:00Z,200\n").expect("w");
    let o = decompute()
        .args(["when", "--grid"])
        .arg(format!("csv:{}", fc.display()))
        .args(["--duration", "1h", "--now", "inf"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    for since in [
        "é2026-01-01",
        "2026-13-45",
        "2026-02-31",
        "2026-11-29T07:5é:24Z",
    ] {
        let o = decompute()
            .args(["ledger", "list", "--ledger"])
            .arg(d.path().join("l.sqlite"))
            .args(["--since", since])
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(2), "{since}: {}", err(&o));
    }
    // A forecast with a non-ASCII timestamp: an error at the start, not a panic mid-run.
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "2026-11-29T0é:00:00Z,100\n").expect("w");
    let o = run_in(
        d.path(),
        &["--grid", &format!("csv:{}", bad.display()), "--", "true"],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("bad.csv"), "{}", err(&o));
    // stderr closed before decompute writes to it.
    let mut c = run_cmd(d.path(), &["--", "sh", "-c", "exit 3"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    drop(c.stderr.take());
    assert_eq!(c.wait().expect("wait").code(), Some(3));
    // stderr full.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = run_cmd(d.path(), &["--", "sh", "-c", "exit 3"])
        .stderr(full)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(3));
    // --json - into a closed stdout.
    let mut c = run_cmd(
        d.path(),
        &["--quiet", "--json", "-", "--", "sh", "-c", "exit 3"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    drop(c.stdout.take());
    assert_eq!(c.wait().expect("wait").code(), Some(3));
}

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
    let dur = json(&o)["duration_s"].as_f64().expect("d");
    assert!(
        dur < 2.5,
        "the budget trips on time, not after the 5 s command: {dur} s"
    );
    let samples = json(&o)["samples"].as_array().expect("s").len();
    assert!(
        samples >= 8,
        "sampling went on every 100 ms: {samples} rows"
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
    let r = json(&o);
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

// 7. Every factor is credited to where it really came from.
#[test]
fn every_factor_names_its_real_origin() {
    let d = tempfile::tempdir().expect("tmp");
    let sig = d.path().join("grid");
    std::fs::write(&sig, "123").expect("w");
    let o = run_in(
        d.path(),
        &[
            "--grid",
            &format!("file:{}", sig.display()),
            "--json",
            "-",
            "--",
            "sleep",
            "0.3",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("grid signal file:"), "{}", err(&o));
    assert!(!err(&o).contains("user value"), "{}", err(&o));
    let r = json(&o);
    assert_eq!(
        r["factors"]["grid_gco2_per_kwh"]["origin"]["kind"],
        "signal"
    );
    let g = r["factors"]["grid_gco2_per_kwh"]["value"]
        .as_f64()
        .expect("g");
    assert!((g - 123.0).abs() < 1e-9, "{g}");

    let cfg = d.path().join("config.toml");
    std::fs::write(&cfg, "wue = 0.4\n").expect("w");
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(
        data.join("grid_intensity.csv"),
        "zone,alpha2,name,g_co2e_per_kwh,year,basis\nFRA,FR,France,42,2025,country\n",
    )
    .expect("w");
    let o = run_cmd(
        d.path(),
        &[
            "--sysfs-root",
            "/nonexistent",
            "--config",
            cfg.to_str().expect("u"),
            "--pue",
            "hyperscale",
            "--data-dir",
            data.to_str().expect("u"),
            "--json",
            "-",
            "--",
            "true",
        ],
    )
    .env("DECOMPUTE_ZONE", "FR")
    .output()
    .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let f = &json(&o)["factors"];
    assert_eq!(f["wue_l_per_kwh"]["origin"]["kind"], "config");
    assert!(f["wue_l_per_kwh"]["source"]
        .as_str()
        .expect("s")
        .contains("config.toml: wue"));
    assert!(f["pue"]["source"]
        .as_str()
        .expect("s")
        .contains("chosen with --pue"));
    assert_eq!(f["grid_gco2_per_kwh"]["value"], 42.0);
    assert_eq!(f["grid_gco2_per_kwh"]["origin"]["kind"], "data-dir");
    assert!(!f["grid_gco2_per_kwh"]["source"]
        .as_str()
        .expect("s")
        .contains("Ember"));
    // A bad config value is blamed on the config file, not a flag.
    std::fs::write(&cfg, "wue = 50\n").expect("w");
    let o = run_in(
        d.path(),
        &["--config", cfg.to_str().expect("u"), "--", "true"],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("config.toml: wue"), "{}", err(&o));
    assert!(!err(&o).contains("--wue"), "{}", err(&o));
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
    let dur = json(&o)["duration_s"].as_f64().expect("duration");
    assert!(
        (0.95..4.5).contains(&dur),
        "time=1s with a 5 s interval stops near 1 s, not at the 5 s tick: {dur} s"
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
    let dur = json(&o)["duration_s"].as_f64().expect("duration");
    // Tied to the deadline, not to the 5 s tick (which would give 6 s or more); a machine
    // loaded by other work may delay the kill, so only the tick is ruled out.
    assert!(
        (1.9..5.5).contains(&dur),
        "SIGKILL when the 1 s grace ends, 1 s after the stop: {dur} s"
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

// 11. Imports are validated field by field; a refused file leaves no ledger behind.
#[test]
fn imports_are_validated_and_refusals_leave_nothing() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(d.path(), &["--quiet", "--", "true"]);
    assert_eq!(o.status.code(), Some(0));
    let o = decompute()
        .args(["ledger", "export", "--ledger"])
        .arg(d.path().join("ledger.sqlite"))
        .output()
        .expect("runs");
    let good: Value = serde_json::from_slice(&o.stdout).expect("json");
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "negative",
            Box::new(|v| v["report"]["energy_j"]["workload"] = (-5.0).into()),
        ),
        (
            "carbon",
            Box::new(|v| v["report"]["carbon_g"]["value"] = (-1.0).into()),
        ),
        (
            "started_at",
            Box::new(|v| v["report"]["started_at"] = "yesterday".into()),
        ),
        ("id", Box::new(|v| v["id"] = "".into())),
        ("running", Box::new(|v| v["status"] = "running".into())),
        (
            "duration_s",
            Box::new(|v| v["report"]["duration_s"] = 1e308.into()),
        ),
        // Round three (#25 point 14).
        (
            "report schema",
            Box::new(|v| v["report"]["schema"] = "decompute.run/999".into()),
        ),
        ("NUL project", Box::new(|v| v["project"] = "a\u{0}b".into())),
        (
            "ESC project",
            Box::new(|v| v["project"] = "a\u{1b}]0;x".into()),
        ),
        ("empty tag key", Box::new(|v| v["tags"][""] = "v".into())),
        (
            "cpu_w",
            Box::new(|v| v["report"]["samples"][0]["cpu_w"] = 1e300.into()),
        ),
        (
            "components",
            Box::new(|v| {
                v["report"]["components"][0]["workload_energy_j"] = 7.2e6.into();
                v["report"]["components"][0]["high_j"] = 7.2e6.into();
            }),
        ),
    ];
    for (n, (what, mutate)) in cases.into_iter().enumerate() {
        let mut v = good.clone();
        mutate(&mut v);
        let f = d.path().join("bad.jsonl");
        std::fs::write(&f, format!("{good}\n{v}\n")).expect("w");
        let fresh = d.path().join(format!("fresh-{n}.sqlite"));
        let o = decompute()
            .args(["ledger", "import", "--ledger"])
            .arg(&fresh)
            .arg(&f)
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(1), "{what}: {}", err(&o));
        assert!(err(&o).contains("line 2"), "{what}: {}", err(&o));
        assert!(!fresh.exists(), "{what}: no ledger file left behind");
    }
}

// 12. Untrusted text: CSV cells cannot be formulas, tags read back, terminals are safe.
#[test]
fn untrusted_text_is_defused() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--project",
            "=cmd|' /c calc'!A1",
            "--tag",
            "k=x,y;note=a;b=c",
            "--",
            "sh",
            "-c",
            "true",
            "\u{1b}[2J\nforged line",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let ledger = d.path().join("ledger.sqlite");
    let o = decompute()
        .args(["ledger", "export", "--format", "csv", "--ledger"])
        .arg(&ledger)
        .output()
        .expect("runs");
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
    let t = decompute::csvdata::parse("e.csv", &csv).expect("csv");
    let col = |n: &str| t.column(n).expect("col");
    let row = &t.rows[0].1;
    assert!(row[col("project_name")].starts_with("'="), "{csv}");
    let tags: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&row[col("tags")]).expect("tags are JSON");
    assert_eq!(tags.get("k").map(String::as_str), Some("x,y;note=a;b=c"));
    for cmd in [vec!["list"], vec!["show", "0"]] {
        let mut c = decompute();
        c.arg("ledger").args(&cmd).arg("--ledger").arg(&ledger);
        if cmd[0] == "show" {
            let id = row[col("run_id")].clone();
            c = decompute();
            c.args(["ledger", "show", &id, "--ledger"]).arg(&ledger);
        }
        let o = c.output().expect("runs");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !out.contains('\u{1b}'),
            "{cmd:?}: escapes pass through: {out}"
        );
        assert!(!out.contains("\nforged line"), "{cmd:?}: {out}");
    }
}

// 13. The ledger is private: directory 0700, file 0600, whatever the umask.
#[test]
fn a_new_ledger_is_private() {
    let d = tempfile::tempdir().expect("tmp");
    let ledger = d.path().join("new/dir/ledger.sqlite");
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" run --quiet --ledger \"$1\" -- true")
        .arg(env!("CARGO_BIN_EXE_decompute"))
        .arg(&ledger)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    let mode = |p: &Path| std::fs::metadata(p).expect("m").mode() & 0o777;
    assert_eq!(mode(&ledger), 0o600);
    assert_eq!(mode(ledger.parent().expect("dir")), 0o700);
}

// 14. The smaller ones.
#[test]
fn the_smaller_defects() {
    let d = tempfile::tempdir().expect("tmp");
    let ledger = d.path().join("l.sqlite");
    // Empty environment variables are unset, not "a value is required".
    let o = run_cmd(d.path(), &["--quiet", "--", "true"])
        .env("DECOMPUTE_LEDGER", "")
        .env("DECOMPUTE_ZONE", "")
        .env("DECOMPUTE_PROJECT", "")
        .env("XDG_DATA_HOME", d.path())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // A missing --data-dir, a data file that never ends.
    let o = run_in(d.path(), &["--data-dir", "/no/such/dir", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("/no/such/dir"), "{}", err(&o));
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::os::unix::fs::symlink("/dev/zero", data.join("pue.csv")).expect("ln");
    let t = Instant::now();
    let o = run_in(
        d.path(),
        &["--data-dir", data.to_str().expect("u"), "--", "true"],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(t.elapsed() < Duration::from_secs(10));
    // Budgets with exponents, and absurd ones.
    let o = run_in(
        d.path(),
        &["--quiet", "--budget", "energy=1e3J", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let huge = format!("energy={}J", "9".repeat(400));
    let o = run_in(d.path(), &["--budget", &huge, "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("too large"), "{}", err(&o));
    // A ledger path that is a directory, or a symlink loop: the fix is named.
    let o = run_cmd(d.path(), &["--quiet", "--", "true"])
        .env("DECOMPUTE_LEDGER", d.path())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "measured anyway: {}", err(&o));
    assert!(err(&o).contains("directory"), "{}", err(&o));
    let a = d.path().join("loop-a");
    std::os::unix::fs::symlink(d.path().join("loop-b"), &a).expect("ln");
    std::os::unix::fs::symlink(&a, d.path().join("loop-b")).expect("ln");
    let o = decompute()
        .args(["ledger", "list", "--ledger"])
        .arg(&a)
        .output()
        .expect("runs");
    assert!(err(&o).contains("--ledger"), "{}", err(&o));
    // user_version -1 and 0-with-tables are refused without dumping SQL.
    for v in ["-1", "0"] {
        let f = d.path().join(format!("v{v}.sqlite"));
        let c = rusqlite::Connection::open(&f).expect("db");
        c.execute_batch(&format!(
            "PRAGMA application_id = 1145261392; CREATE TABLE runs (id TEXT); PRAGMA user_version = {v};"
        ))
        .expect("sql");
        drop(c);
        let o = decompute()
            .args(["ledger", "list", "--ledger"])
            .arg(&f)
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(1), "{v}");
        assert!(!err(&o).contains("CREATE TABLE"), "{v}: {}", err(&o));
        assert_eq!(err(&o).lines().count(), 1, "{v}: {}", err(&o));
    }
    // export --limit beyond i64.
    let o = run_cmd(
        d.path(),
        &[
            "--quiet",
            "--ledger",
            ledger.to_str().expect("u"),
            "--",
            "true",
        ],
    )
    .output()
    .expect("runs");
    assert!(o.status.success());
    let o = decompute()
        .args([
            "ledger",
            "export",
            "--limit",
            "18446744073709551615",
            "--ledger",
        ])
        .arg(&ledger)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    // --since compares instants: a run at 07:53:24.219 is after 07:53:24.
    let rec: Value = serde_json::from_slice(&o.stdout).expect("json");
    let started = rec["report"]["started_at"].as_str().expect("t").to_string();
    let second = format!("{}Z", &started[..19]);
    let o = decompute()
        .args(["ledger", "list", "--since", &second, "--ledger"])
        .arg(&ledger)
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(rec["id"].as_str().expect("id")),
        "{second}"
    );
    // Non-UTF-8 arguments are passed through to the command.
    use std::os::unix::ffi::OsStrExt;
    let raw = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let o = run_cmd(d.path(), &["--quiet", "--", "sh", "-c", "exit 7"])
        .arg(raw)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(7), "{}", err(&o));
    // UK is GB; --project has help; estimates refuse overflow; scale stays readable.
    let o = decompute().args(["factors", "UK"]).output().expect("runs");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("GBR"),
        "{}",
        err(&o)
    );
    let o = decompute().args(["run", "--help"]).output().expect("runs");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Project the run"));
    let o = decompute()
        .args([
            "estimate", "train", "--params", "1e308", "--tokens", "1e308",
        ])
        .output()
        .expect("runs");
    assert_ne!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("inf"));
    let o = decompute()
        .args(["scale", "--flop", "1e39"])
        .output()
        .expect("runs");
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("18,446,744"));
    // A non-terminal stderr gets no escape codes.
    let o = run_in(d.path(), &["--", "sleep", "0.3"]);
    assert!(!err(&o).contains('\u{1b}'));
}

/// A tmpfs of 256 KiB mounted for one test, unmounted when dropped.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(dir: &Path) -> Option<TinyDisk> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| TinyDisk(dir.to_path_buf()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

// A full disk: the ledger and the report cannot be written, and nothing measured is lost:
// one warning for the ledger, the footprint on stderr, the report on stdout instead.
#[test]
fn a_full_disk_loses_nothing_measured() {
    let d = tempfile::tempdir().expect("tmp");
    let disk = d.path().join("disk");
    std::fs::create_dir_all(&disk).expect("mkdir");
    let Some(_mounted) = TinyDisk::mount(&disk) else {
        eprintln!("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root and must run this test"
        );
        return;
    };
    // Fill it.
    let fill = disk.join("fill");
    let chunk = vec![0u8; 4096];
    let mut f = std::fs::File::create(&fill).expect("create");
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let report = disk.join("r.json");
    let o = run_cmd(
        d.path(),
        &[
            "--sysfs-root",
            "/nonexistent",
            "--ledger",
            disk.join("ledger.sqlite").to_str().expect("u"),
            "--json",
            report.to_str().expect("u"),
            "--",
            "sh",
            "-c",
            "exit 0",
        ],
    )
    .output()
    .expect("runs");
    let e = err(&o);
    assert_eq!(
        o.status.code(),
        Some(125),
        "the report was not written: {e}"
    );
    assert!(e.contains("not recorded") || e.contains("ledger"), "{e}");
    assert!(e.contains("energy"), "the footprint is printed: {e}");
    let r: Value = serde_json::from_slice(&o.stdout).expect("the report is on stdout");
    assert_eq!(r["schema"], "decompute.run/1");
    assert!(!report.exists() || std::fs::metadata(&report).expect("m").len() == 0);
}

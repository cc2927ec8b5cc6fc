//! What the integration tests share, in one place: the real binary with a clean environment
//! (`decompute()`), the PostgreSQL test server and a fresh database on it, the ledger as the
//! binary exports it, spawned runs that never outlive a failed test, polling with a bound,
//! fake sysfs trees (`fixtures`), and the checks that follow a run's own measured timestamps
//! rather than how fast this machine happens to be. Test modules import from here, never from
//! each other.

#![allow(clippy::disallowed_macros)] // tests print why they skip

pub mod fixtures;

use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The real binary, with none of the developer's `DECOMPUTE_*` variables, no config file and
/// a data directory of the tests' own, so a test sees what a fresh machine would.
pub fn decompute() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_decompute"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DECOMPUTE_") {
            c.env_remove(k);
        }
    }
    c.env("XDG_CONFIG_HOME", "/nonexistent-decompute-test-config");
    c.env(
        "XDG_DATA_HOME",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/it-data"),
    );
    c.env(
        "XDG_STATE_HOME",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/it-state"),
    );
    c.stdin(Stdio::null());
    c
}

/// The PostgreSQL server of the test script, if any.
pub fn postgres_admin() -> Option<String> {
    let url = std::env::var("DECOMPUTE_TEST_POSTGRES").ok();
    if url.is_none() {
        eprintln!("skipped: no PostgreSQL (run the tests through tools/test.sh)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must provide DECOMPUTE_TEST_POSTGRES"
        );
    }
    url
}

/// A fresh, empty database on the test server; its URL.
pub fn postgres_ledger() -> Option<String> {
    let admin = postgres_admin()?;
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("admin connection");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}?sslmode=disable"))
}

/// A fresh, empty database reached through the test script's PgBouncer (transaction mode,
/// pool 20), as a fleet reaches its ledger; its URL.
pub fn pgbouncer_ledger() -> Option<String> {
    let direct = postgres_ledger()?;
    let Ok(bouncer) = std::env::var("DECOMPUTE_TEST_PGBOUNCER") else {
        eprintln!("skipped: no PgBouncer (run the tests through tools/test.sh)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must provide DECOMPUTE_TEST_PGBOUNCER"
        );
        return None;
    };
    let db = direct.rsplit_once('/').map(|(_, d)| d).unwrap_or_default();
    Some(format!("{bouncer}/{db}"))
}

pub fn with_ledger(ledger: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let empty = tempfile::tempdir().expect("tmp");
    let mut c = decompute();
    c.env("DECOMPUTE_LEDGER", ledger);
    if args.first() == Some(&"run") {
        c.arg("run")
            .arg("--no-gpu")
            .arg("--sysfs-root")
            .arg(empty.path())
            .args(&args[1..]);
    } else {
        c.args(args);
    }
    c.output().expect("runs")
}

pub fn export(ledger: impl AsRef<std::ffi::OsStr>) -> Vec<Value> {
    let o = with_ledger(ledger, &["ledger", "export", "--format", "json"]);
    assert!(o.status.success(), "{}", err(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Every sample of a record landed: they follow each other without a gap (each starts where
/// the one before ended, by their own measured times), the first at the start and the last at
/// the end of the run, and the run that slept 1.2 s after a checkpoint at 1 s was sampled more
/// than once. Counts follow the timestamps, so a busy machine that ticks late passes too.
pub fn samples_cover_the_run(r: &Value) {
    let samples = r["report"]["samples"].as_array().expect("samples");
    assert!(samples.len() >= 2, "one sample for a run of over 1 s: {r}");
    let mut end = 0.0;
    for s in samples {
        let (t, dt) = (
            s["t_s"].as_f64().expect("t"),
            s["dt_s"].as_f64().expect("dt"),
        );
        assert!(dt > 0.0, "{s}");
        assert!(
            (t - dt - end).abs() < 1e-6,
            "a gap before {s} (last ended at {end})"
        );
        end = t;
    }
    let duration = r["report"]["duration_s"].as_f64().expect("duration");
    let last_dt = samples
        .last()
        .and_then(|s| s["dt_s"].as_f64())
        .expect("last dt");
    assert!(
        end <= duration + 1e-6 && duration - end <= last_dt.max(0.25),
        "samples end at {end} s of a {duration} s run"
    );
}

pub fn run_cmd(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = decompute();
    c.current_dir(dir)
        .env("DECOMPUTE_LEDGER", dir.join("ledger.sqlite"))
        .arg("run")
        .arg("--no-gpu")
        .args(args);
    c
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn read_counter(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// The counter's value once it has held still for 400 ms (a counting workload steps every
/// 20 ms, so it was paused), waiting up to 30 s for that; `None` if it never did. Waiting for
/// the state, not for a fixed time, which a loaded machine may spend before the pause.
pub fn held_still(p: &Path) -> Option<u64> {
    let start = Instant::now();
    let mut last = read_counter(p);
    let mut since = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
        let now = read_counter(p);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(400) {
            return Some(now);
        }
    }
    None
}

/// Processes whose command line contains `marker`, with their state letter.
pub fn processes_with(marker: &str) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        // decompute's own command line names the marker too; only the workload counts.
        if cmd.contains(marker) && !cmd.contains("decompute") {
            let state = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| decompute::procfs::pid::parse(&s).ok())
                .map(|s| s.state)
                .unwrap_or('?');
            if state != 'Z' {
                out.push((pid, state));
            }
        }
    }
    out
}

/// Polls `cond` for up to 30 s and says whether it came true: it returns as soon as it does,
/// so the long bound costs nothing on an idle machine and holds on a busy one, where a tick
/// or a child process can come seconds late.
pub fn eventually(cond: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Ends a spawned decompute (and thaws its workload) if a test fails half-way.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Waits for the process and collects what it printed (as `wait_with_output`).
    pub fn output(&mut self) -> Output {
        use std::io::Read;
        let out = self.0.stdout.take().map(|mut o| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = o.read_to_end(&mut v);
                v
            })
        });
        let err = self.0.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = e.read_to_end(&mut v);
                v
            })
        });
        let status = self.0.wait().expect("wait");
        Output {
            status,
            stdout: out.and_then(|t| t.join().ok()).unwrap_or_default(),
            stderr: err.and_then(|t| t.join().ok()).unwrap_or_default(),
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) on a child this test spawned.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}

pub fn counter_workload(dir: &Path, marker: &str) -> String {
    format!("i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo $i > {}/counter; sleep 0.02; done # {marker}", dir.display())
}

/// The most that runs sharing a budget of `amount` joules may use together, from their own
/// JSON reports: the budget; what each may not yet have published to the others (5 % of the
/// budget, when it checkpoints early); and each run's power over two of its longest gaps
/// between samples (the limit is seen at one tick and acted on by the next). The gaps are the
/// run's measured ones, so a machine that ticks late widens the bound by exactly its lateness
/// and a budget that does not bind still fails it.
pub fn shared_budget_bound(amount: f64, reports: &[Value]) -> f64 {
    let slack: f64 = reports
        .iter()
        .map(|r| {
            let e = r["energy_j"]["workload"].as_f64().expect("workload energy");
            let d = r["duration_s"].as_f64().expect("duration").max(1e-3);
            let mut gaps: Vec<f64> = r["samples"]
                .as_array()
                .expect("samples")
                .iter()
                .filter_map(|s| s["dt_s"].as_f64())
                .collect();
            gaps.sort_by(|a, b| b.total_cmp(a));
            let worst = gaps.first().copied().unwrap_or(d).max(0.1);
            e / d * 2.0 * worst
        })
        .sum();
    amount + reports.len() as f64 * 0.05 * amount + slack
}

/// One HTTP GET: status, content type and body.
pub fn get(addr: &str, path: &str, accept: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (status, ctype, body.to_string())
}

/// Samples of one metric: labels → value.
pub fn samples(text: &str, name: &str) -> Vec<(HashMap<String, String>, f64)> {
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match l.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (n, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        let mut m = HashMap::new();
        for kv in labels.split("\",").filter(|s| !s.is_empty()) {
            if let Some((k, v)) = kv.split_once("=\"") {
                m.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
        }
        if let Ok(v) = value.parse() {
            out.push((m, v));
        }
    }
    out
}

/// Starts `decompute serve` as `c` describes; returns it and the address it serves on (from
/// its "serving http://…" line), its stderr drained so it never blocks.
pub fn start_agent(mut c: Command) -> (KillOnDrop, String) {
    use std::io::BufRead;
    let mut child = c.stderr(Stdio::piped()).spawn().expect("spawn the agent");
    let err = child.stderr.take().expect("stderr");
    let child = KillOnDrop(child);
    let mut lines = std::io::BufReader::new(err).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(rest) = l.split("serving http://").nth(1) {
                    break rest.split('/').next().unwrap_or("").to_string();
                }
            }
            _ => panic!("the agent did not start"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// The JSON a command printed on stdout.
pub fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&o.stdout),
            err(o)
        )
    })
}

/// `decompute run` in `dir` (ledger there), modelled (no RAPL), no GPU.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    let empty = dir.join("empty-sysfs");
    let _ = std::fs::create_dir_all(&empty);
    run_cmd(
        dir,
        &[&["--sysfs-root", empty.to_str().expect("utf8")], args].concat(),
    )
    .output()
    .expect("runs")
}

/// Makes a FIFO at `p`.
pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("c");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Kills every leftover test process whose command line holds `marker`.
pub fn kill_all(marker: &str) {
    for (pid, _) in processes_with(marker) {
        // SAFETY: kill(2) on a leftover test process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

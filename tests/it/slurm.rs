//! Slurm end to end, on the one-node cluster `tools/with-services.sh` starts (munged,
//! slurmctld, slurmd; proctrack/linuxproc; a debug and a flex partition): real jobs
//! submitted with `sbatch`, accounted by `decompute serve --slurm` into the ledger, governed
//! by `decompute slurm govern` (grid yielding, a killed controller, budget holds). One test,
//! as the cluster's two CPUs are shared by every job it submits.

#![allow(clippy::disallowed_macros)] // tests print why they skip

use crate::support::decompute;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn conf() -> Option<String> {
    let c = std::env::var("DECOMPUTE_TEST_SLURM_CONF").ok();
    if c.is_none() {
        eprintln!("skipped: no Slurm cluster (run the tests through tools/test.sh as root)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must provide DECOMPUTE_TEST_SLURM_CONF"
        );
    }
    c
}

fn slurm(conf: &str, args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .env("SLURM_CONF", conf)
        .output()
        .expect("slurm command")
}

fn sbatch(conf: &str, args: &[&str]) -> u64 {
    // Output to nowhere: a job writes slurm-N.out in its working directory, the checkout.
    let o = slurm(
        conf,
        &[&["sbatch", "--parsable", "--output=/dev/null"], args].concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .split(';')
        .next()
        .and_then(|x| x.parse().ok())
        .expect("job id")
}

/// The job as squeue gives it.
fn job_info(conf: &str, job: u64) -> Option<decompute::slurm::jobs::Job> {
    let o = slurm(
        conf,
        &[
            "squeue",
            "--json",
            "--states=all",
            "--jobs",
            &job.to_string(),
        ],
    );
    decompute::slurm::jobs::parse_json(&String::from_utf8_lossy(&o.stdout))
        .unwrap_or_default()
        .into_iter()
        .find(|j| j.id == job)
}

fn state(conf: &str, job: u64) -> String {
    job_info(conf, job)
        .map(|j| format!("{:?}", j.state))
        .unwrap_or_default()
}

fn comment(conf: &str, job: u64) -> String {
    job_info(conf, job).map(|j| j.comment).unwrap_or_default()
}

fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

fn govern(conf: &str, dir: &Path, args: &[&str]) -> Output {
    let o = decompute()
        .current_dir(dir)
        .env("SLURM_CONF", conf)
        .args(["slurm", "govern", "--once"])
        .args(args)
        .output()
        .expect("govern");
    assert!(
        o.status.success(),
        "slurm govern {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn records(ledger: &str) -> Vec<Value> {
    let o = decompute()
        .args(["ledger", "export", "--ledger", ledger])
        .output()
        .expect("export");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn record_of(ledger: &str, job: u64) -> Option<Value> {
    records(ledger)
        .into_iter()
        .find(|r| r["tags"]["slurm_job_id"].as_str() == Some(job.to_string().as_str()))
}

/// The node agent, and the address it serves on.
fn agent(conf: &str, ledger: &str) -> (Child, String) {
    let mut c = decompute()
        .env("SLURM_CONF", conf)
        .args([
            "serve",
            "--slurm",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "200ms",
            "--ledger",
            ledger,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let err = c.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut own_cluster = false;
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            // This cluster's step daemons only (its SlurmdSpoolDir, asked of scontrol).
            own_cluster |= l.contains("counting the step daemons of this cluster only");
            if let Some(rest) = l.split("serving http://").nth(1) {
                let addr = rest.split('/').next().unwrap_or("").to_string();
                let _ = tx.send((addr, own_cluster));
            }
            eprintln!("agent: {l}");
        }
    });
    let (addr, own_cluster) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the agent serves");
    assert!(own_cluster, "the agent found this cluster's SlurmdSpoolDir");
    (c, addr)
}

fn metrics(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn a_real_slurm_cluster_is_accounted_and_governed() {
    let Some(conf) = conf() else {
        return;
    };
    let d = tempfile::tempdir().expect("tmp");
    let ledger = d.path().join("jobs.sqlite");
    let ledger = ledger.to_str().expect("utf-8").to_string();
    let (mut serve, addr) = agent(&conf, &ledger);

    // 1. Jobs are accounted on the node: one record each, with the job's tags and end.
    let busy = sbatch(
        &conf,
        &[
            "-A",
            "acme",
            "-J",
            "busy",
            "-p",
            "debug",
            "--wrap",
            "i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done",
        ],
    );
    eventually("the busy job's series in /metrics", 60, || {
        metrics(&addr).contains(&format!("slurm_job_id=\"{busy}\""))
    });
    let fail = sbatch(
        &conf,
        &["-A", "acme", "-J", "fails", "--wrap", "sleep 0.5; exit 3"],
    );
    for job in [busy, fail] {
        eventually(&format!("job {job}'s ledger record"), 120, || {
            record_of(&ledger, job).is_some()
        });
    }
    let r = record_of(&ledger, busy).expect("busy");
    assert_eq!(r["project"], "acme");
    assert_eq!(r["status"], "finished");
    assert_eq!(r["tags"]["slurm_job_name"], "busy");
    assert_eq!(r["tags"]["slurm_partition"], "debug");
    assert_eq!(r["tags"]["slurm_account"], "acme");
    let work = r["report"]["energy_j"]["workload"]
        .as_f64()
        .expect("workload");
    let host = r["report"]["energy_j"]["host"].as_f64().expect("host");
    assert!(work > 0.0 && work < host, "{work} of {host}");
    assert!(
        r["report"]["cpu_time_s"].as_f64().expect("cpu") > 0.2,
        "{r}"
    );
    let f = record_of(&ledger, fail).expect("fails");
    assert_eq!(f["status"], "failed");
    assert_eq!(f["report"]["exit_code"], 3);
    let o = decompute()
        .args([
            "ledger",
            "summary",
            "--by",
            "tag:slurm_job_id",
            "--json",
            "--ledger",
            &ledger,
        ])
        .output()
        .expect("summary");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains(&format!("\"{busy}\"")) && s.contains(&format!("\"{fail}\"")),
        "{s}"
    );

    // 2. A flexible job yields to a dirty grid; a rigid one keeps running.
    let grid = d.path().join("grid");
    let state_file = d.path().join("govern.json");
    let g = |v: &str| std::fs::write(&grid, v).expect("grid");
    g("500");
    let flex = sbatch(
        &conf,
        &["-J", "flexible", "-p", "flex", "--wrap", "sleep 120"],
    );
    let rigid = sbatch(
        &conf,
        &[
            "-J",
            "rigid",
            "--comment",
            "nothing special",
            "--wrap",
            "sleep 120",
        ],
    );
    for j in [flex, rigid] {
        eventually(&format!("job {j} running"), 60, || {
            state(&conf, j) == "Running"
        });
    }
    let grid_spec = format!("file:{}", grid.display());
    let yielding = [
        "--grid",
        &grid_spec,
        "--pause-above",
        "400",
        "--resume-below",
        "300",
        // Switches seconds apart, as a test makes them (the default waits a minute).
        "--min-state",
        "0s",
        "--flexible-partition",
        "flex",
        "--state",
        state_file.to_str().expect("utf-8"),
    ];
    // --dry-run says what it would do and does nothing.
    let dry = govern(&conf, d.path(), &[&yielding[..], &["--dry-run"]].concat());
    let said = String::from_utf8_lossy(&dry.stderr);
    assert!(
        said.contains(&format!("would suspend job {flex}")),
        "{said}"
    );
    assert!(!said.contains(&format!("job {rigid}")), "{said}");
    assert_eq!(state(&conf, flex), "Running");
    govern(&conf, d.path(), &yielding);
    eventually("the flexible job suspended", 20, || {
        state(&conf, flex) == "Suspended"
    });
    assert_eq!(state(&conf, rigid), "Running");
    g("200");
    govern(&conf, d.path(), &yielding);
    eventually("the flexible job resumed", 20, || {
        state(&conf, flex) == "Running"
    });
    assert!(comment(&conf, flex).contains("[decompute:paused "));

    // 3. A controller killed while a job is suspended leaves nothing suspended after its
    // restart: from its state file, or, without one, from the job's mark.
    g("500");
    let mut looping = decompute()
        .current_dir(d.path())
        .env("SLURM_CONF", &conf)
        .args(["slurm", "govern", "--every", "200ms"])
        .args(yielding)
        .stderr(Stdio::null())
        .spawn()
        .expect("govern loop");
    eventually("suspended by the looping controller", 30, || {
        state(&conf, flex) == "Suspended"
    });
    looping.kill().expect("kill -9");
    let _ = looping.wait();
    g("200");
    govern(&conf, d.path(), &yielding);
    eventually("resumed after the restart", 20, || {
        state(&conf, flex) == "Running"
    });
    // Every pause is in the controller's status: two so far, both ended.
    let st = decompute()
        .args([
            "slurm",
            "status",
            "--json",
            "--state",
            state_file.to_str().expect("utf-8"),
        ])
        .output()
        .expect("status");
    let m: Value = serde_json::from_slice(&st.stdout).expect("status json");
    let pauses: Vec<&Value> = m["pauses"]
        .as_array()
        .expect("pauses")
        .iter()
        .filter(|p| p["job"] == flex)
        .collect();
    assert_eq!(pauses.len(), 2, "{m}");
    assert!(pauses
        .iter()
        .all(|p| p["end"].is_number() && p["cause"] == "grid"));
    g("500");
    govern(&conf, d.path(), &yielding);
    eventually("suspended again", 20, || state(&conf, flex) == "Suspended");
    std::fs::remove_file(&state_file).expect("lose the state");
    g("200");
    govern(&conf, d.path(), &yielding);
    eventually("resumed by its mark", 20, || {
        state(&conf, flex) == "Running"
    });

    // 4. An account whose budget is used up: its pending job is held, then released when the
    // budget is raised.
    // The spend runs before the budget exists, so how fast this machine runs it cannot
    // matter: the policy written after it finds the account over its 1 mJ.
    let pol = d.path().join("decompute.toml");
    let spent = decompute()
        .current_dir(d.path())
        .args([
            "run",
            "--project",
            "poor",
            "--ledger",
            &ledger,
            "--",
            "sh",
            "-c",
            "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done",
        ])
        .output()
        .expect("spend");
    assert!(
        spent.status.success(),
        "{}",
        String::from_utf8_lossy(&spent.stderr)
    );
    std::fs::write(&pol, "[budget.poor]\nenergy = \"1 mJ / month\"\n").expect("policy");
    let later = sbatch(
        &conf,
        &[
            "-A",
            "poor",
            "-J",
            "later",
            "--begin=now+3600",
            "--wrap",
            "true",
        ],
    );
    let budget = [
        "--ledger",
        ledger.as_str(),
        "--state",
        state_file.to_str().expect("utf-8"),
    ];
    govern(&conf, d.path(), &budget);
    let held = comment(&conf, later);
    assert!(
        held.contains("decompute: energy budget of project poor used up"),
        "{held}"
    );
    std::fs::write(&pol, "[budget.poor]\nenergy = \"1 MWh / month\"\n").expect("policy");
    govern(&conf, d.path(), &budget);
    eventually("the held job released", 20, || {
        comment(&conf, later).is_empty()
    });

    // 5. The agent stops while jobs run: what it saw is written, and says so.
    let _ = slurm(&conf, &["scancel", &later.to_string()]);
    // SAFETY: signalling a child we started.
    unsafe {
        libc::kill(serve.id() as i32, libc::SIGTERM);
    }
    let st = serve.wait().expect("agent exits");
    assert!(st.success(), "{st:?}");
    let r = record_of(&ledger, rigid).expect("the running job's partial record");
    assert_eq!(r["status"], "interrupted");
    assert!(r["report"]["notes"]
        .to_string()
        .contains("the agent stopped while this job ran"));
    let _ = slurm(&conf, &["scancel", &flex.to_string(), &rigid.to_string()]);
}

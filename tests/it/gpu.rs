//! A shared GPU is counted once (#22), through the scripted NVML (`DECOMPUTE_NVML_SCRIPT`):
//! two `run`s on one card sum to at most the card's energy, an idle context holder beside a
//! burner gets at most its share of the idle floor, two burners split by their utilisation;
//! `serve` splits the card among cgroups the same way, with what no cgroup holds left idle;
//! and every label says `nvml-script:FILE`, never a measurement. The scripts take the H200's
//! figures measured in shared/reference/gpu-h200-2026-12 (idle 78 W, a burner at 690 W and
//! 99 % SM; two burners at 44 % and 56 %).

use crate::support::{decompute, err, get, samples, start_agent, KillOnDrop};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A script starting now: `idle_s` at 78 W with no process, then 690 W with `procs`
/// (match, sm %, mem %) for ever.
fn script(dir: &Path, idle_s: f64, procs: &[(&str, u32, u32)]) -> PathBuf {
    script_of(dir, idle_s, None, procs)
}

/// As [`script`], the burn lasting `burn_s` only, then 78 W with no process for ever.
fn script_of(dir: &Path, idle_s: f64, burn_s: Option<f64>, procs: &[(&str, u32, u32)]) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let ps: Vec<Value> = procs
        .iter()
        .map(|(m, sm, mem)| serde_json::json!({"match": m, "sm": sm, "mem": mem}))
        .collect();
    let doc = serde_json::json!({
        "epoch": now,
        "devices": [{"name": "NVIDIA H200", "uuid": "GPU-test", "bus_id": "00000000:00:06.0", "idle_w": 78.0}],
        "segments": match burn_s {
            None => serde_json::json!([
                {"seconds": idle_s, "power_w": [78.0], "processes": [[]]},
                {"seconds": 1.0, "power_w": [690.0], "processes": [ps]},
            ]),
            Some(b) => serde_json::json!([
                {"seconds": idle_s, "power_w": [78.0], "processes": [[]]},
                {"seconds": b, "power_w": [690.0], "processes": [ps]},
                {"seconds": 1.0, "power_w": [78.0], "processes": [[]]},
            ]),
        },
    });
    let p = dir.join("gpu.json");
    std::fs::write(&p, doc.to_string()).expect("script");
    p
}

/// A `decompute run` of a process whose command line carries `marker`, for `secs`.
fn run_holding(script: &Path, dir: &Path, marker: &str, secs: f64) -> Child {
    decompute()
        .env("DECOMPUTE_NVML_SCRIPT", script)
        .args([
            "run",
            "--no-ledger",
            "--quiet",
            "--sysfs-root",
            "/nonexistent",
            "--interval",
            "200ms",
            "--json",
        ])
        .arg(dir.join(format!("{marker}.json")))
        .args(["--", "sh", "-c", &format!("sleep {secs}; : {marker}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// The GPU component of a run report: (host J, workload J, method, source), and the run's
/// measured duration.
fn gpu_of(dir: &Path, marker: &str) -> ((f64, f64, String, String), f64) {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{marker}.json"))).expect("report"),
    )
    .expect("json");
    let c = r["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["component"] == "gpu")
        .unwrap_or_else(|| panic!("no GPU component: {r}"))
        .clone();
    (
        (
            c["host_energy_j"].as_f64().expect("host"),
            c["workload_energy_j"].as_f64().expect("workload"),
            c["method"].as_str().expect("method").to_string(),
            c["source"].as_str().expect("source").to_string(),
        ),
        r["duration_s"].as_f64().expect("duration"),
    )
}

type Gpu = ((f64, f64, String, String), f64);

/// Two runs on one card, `a` started first, each holding for `secs`.
fn both_for(script: &Path, dir: &Path, a: &str, b: &str, secs: f64) -> [Gpu; 2] {
    let ka = run_holding(script, dir, a, secs);
    let kb = run_holding(script, dir, b, secs);
    for k in [ka, kb] {
        let o = k.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    [gpu_of(dir, a), gpu_of(dir, b)]
}

#[test]
fn a_burner_beside_an_idle_holder_is_charged_the_card_once() {
    let d = tempfile::tempdir().expect("tmp");
    // The card burns from 3 s to 5 s, while both runs (holding 7 s) are alive whatever their
    // start-up lag: the idle holder is never alone on a burning card (where the whole active
    // part would be its, there being no one else's utilisation to weigh it by).
    let burn = 2.0;
    let s = script_of(
        d.path(),
        3.0,
        Some(burn),
        &[("gpuburnerA", 99, 24), ("gpuidleB", 0, 0)],
    );
    let [((host_a, burner, method, source), _), ((host_b, idle, _, _), _)] =
        both_for(&s, d.path(), "gpuburnerA", "gpuidleB", 7.0);
    assert_eq!(method, "scripted");
    assert!(source.starts_with("nvml-script:"), "{source}");
    let card = host_a.max(host_b);
    assert!(
        burner + idle <= 1.02 * card,
        "{burner:.1} J + {idle:.1} J charged of a card's {card:.1} J"
    );
    // The idle holder: at most half the idle floor while it holds a context (78 W / 2 ×
    // the burn), nothing of the active part.
    assert!(
        idle <= 0.5 * 78.0 * burn * 1.1,
        "idle holder charged {idle:.1} J over a {burn} s burn"
    );
    // The burner: the active part (612 W × the burn) and its half of the floor.
    assert!(
        burner > 0.9 * (612.0 + 39.0) * burn,
        "burner {burner:.1} of {card:.1} J"
    );
}

#[test]
fn two_burners_split_the_card_by_their_utilisation() {
    let d = tempfile::tempdir().expect("tmp");
    // The card burns from 3 s to 5 s after the script starts, while both runs (started at
    // once, holding 7 s) are alive whatever their start-up lag on a busy machine: neither is
    // ever alone on a burning card, so the split is the utilisation's, not the lags'.
    // (Burning for ever, the one that ended last was alone on the card for the lag between
    // their starts and got the card's whole active part meanwhile: 707 J against 702 J.)
    let s = script_of(
        d.path(),
        3.0,
        Some(2.0),
        &[("gpuburn44", 44, 0), ("gpuburn56", 56, 0)],
    );
    let [((host_b, b, _, _), _), ((host_a, a, _, _), _)] =
        both_for(&s, d.path(), "gpuburn56", "gpuburn44", 7.0);
    let card = host_a.max(host_b);
    assert!(a + b <= 1.02 * card, "{a:.1} + {b:.1} of {card:.1} J");
    // The exact 44:56 split is checked on one agent
    // (serve_splits_two_burners_by_their_utilisation); here, the busier gets clearly more.
    // 56 % against 44 % of the 1,224 J active part, the 156 J idle floor halved: about
    // 763 J against 617 J (571 J against 705 J measured beside two busy loops).
    assert!(b > 1.1 * a, "{a:.1} vs {b:.1}");
}

#[test]
fn detect_and_reports_name_the_script() {
    let d = tempfile::tempdir().expect("tmp");
    let s = script(d.path(), 0.2, &[("gpunamecheck", 50, 10)]);
    let o = decompute()
        .env("DECOMPUTE_NVML_SCRIPT", &s)
        .args(["detect", "--sysfs-root", "/nonexistent"])
        .output()
        .expect("detect");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("gpu:  scripted (nvml-script:") && !text.contains("gpu:  measured"),
        "{text}"
    );
    let o = decompute()
        .env("DECOMPUTE_NVML_SCRIPT", &s)
        .args([
            "run",
            "--no-ledger",
            "--explain",
            "--sysfs-root",
            "/nonexistent",
        ])
        .args(["--", "sh", "-c", "sleep 0.5; : gpunamecheck"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("nvml-script:") && err(&o).contains("not measured"),
        "{}",
        err(&o)
    );
    // A broken script is refused in words, and the run goes on without a GPU.
    std::fs::write(&s, "{").expect("w");
    let o = decompute()
        .env("DECOMPUTE_NVML_SCRIPT", &s)
        .args(["detect", "--sysfs-root", "/nonexistent"])
        .output()
        .expect("detect");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("DECOMPUTE_NVML_SCRIPT"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A process whose command line carries `marker`, for the agent's cgroups to list.
fn holder(marker: &str) -> Child {
    Command::new("sh")
        .args(["-c", &format!("sleep 30; : {marker}")])
        .spawn()
        .expect("spawn")
}

/// An agent over a fake cgroup tree: each `(cgroup, marker)` holds a live process whose
/// command line carries the marker; `loose` markers hold the card from no cgroup. Returns
/// the card's GPU energy and each cgroup's (by a part of its name), after 3.5 s.
fn serve_gpu(
    procs: &[(&str, u32, u32)],
    cgroups: &[(&str, &str)],
    loose: &[&str],
) -> (f64, std::collections::HashMap<String, f64>) {
    let d = tempfile::tempdir().expect("tmp");
    let s = script(d.path(), 1.0, procs);
    let cg = d.path().join("cg");
    std::fs::create_dir_all(&cg).expect("mkdir");
    std::fs::write(cg.join("cgroup.controllers"), "cpu memory\n").expect("w");
    let mut kids = Vec::new();
    for (name, marker) in cgroups {
        let k = holder(marker);
        let dir = cg.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("cgroup.procs"), format!("{}\n", k.id())).expect("w");
        std::fs::write(dir.join("cpu.stat"), "usage_usec 0\n").expect("w");
        kids.push(KillOnDrop(k));
    }
    for marker in loose {
        kids.push(KillOnDrop(holder(marker)));
    }
    let empty = tempfile::tempdir().expect("tmp");
    let mut c = decompute();
    c.env("DECOMPUTE_NVML_SCRIPT", &s)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "200ms",
            "--sysfs-root",
        ])
        .arg(empty.path())
        .arg("--cgroup-root")
        .arg(&cg);
    let (mut agent, addr) = start_agent(c);
    std::thread::sleep(Duration::from_millis(3500));
    let (status, _, body) = get(&addr, "/metrics", "*/*");
    assert_eq!(status, 200);
    let gpu = |name: &str| -> Vec<(std::collections::HashMap<String, String>, f64)> {
        samples(&body, name)
            .into_iter()
            .filter(|(l, _)| l.get("component").map(String::as_str) == Some("gpu"))
            .collect()
    };
    let host: f64 = gpu("decompute_host_energy_joules_total")
        .iter()
        .map(|x| x.1)
        .sum();
    assert!(host > 1000.0, "the card's energy: {host} J\n{body}");
    assert!(gpu("decompute_host_energy_joules_total")
        .iter()
        .all(|(l, _)| l.get("method").map(String::as_str) == Some("scripted")));
    let mut by = std::collections::HashMap::new();
    for name in cgroups.iter().map(|c| c.0).chain(["_idle"]) {
        let e: f64 = gpu("decompute_cgroup_energy_joules_total")
            .iter()
            .filter(|(l, _)| l.values().any(|v| v.contains(name)))
            .map(|x| x.1)
            .sum();
        by.insert(name.to_string(), e);
    }
    // Conserved: every joule of the card in exactly one cgroup value.
    let sum: f64 = by.values().sum();
    assert!(
        (sum - host).abs() <= 1e-3 * host,
        "{by:?} of {host}\n{body}"
    );
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    let _ = agent.0.wait();
    (host, by)
}

#[test]
fn serve_splits_a_card_among_cgroups_and_leaves_the_rest_idle() {
    let (host, by) = serve_gpu(
        &[
            ("gpusrvburn", 99, 24),
            ("gpusrvidle", 0, 0),
            ("gpusrvloose", 0, 0),
        ],
        &[
            ("train.scope", "gpusrvburn"),
            ("notebook.scope", "gpusrvidle"),
        ],
        &["gpusrvloose"],
    );
    let (train, notebook, idle) = (by["train.scope"], by["notebook.scope"], by["_idle"]);
    // The notebook holds a context but computes nothing: a third of the idle floor.
    assert!(
        notebook <= 78.0 * 5.0 / 3.0,
        "notebook {notebook} J of {host}"
    );
    assert!(
        train > 0.8 * (host - 78.0 * 5.0),
        "train {train} J of {host}"
    );
    assert!(idle > 0.0, "the loose holder's floor share is idle");
}

#[test]
fn serve_splits_two_burners_by_their_utilisation() {
    // Both measured in the same intervals by one agent: the split is exact per interval.
    let (host, by) = serve_gpu(
        &[("gpusrv44", 44, 0), ("gpusrv56", 56, 0)],
        &[("a.scope", "gpusrv44"), ("b.scope", "gpusrv56")],
        &[],
    );
    let (a, b) = (by["a.scope"], by["b.scope"]);
    assert!(a + b <= host * (1.0 + 1e-9), "{a} + {b} of {host}");
    // Each busy interval: the 78 W floor halved, the 612 W above it 44:56, so
    // b / a = (39 + 0.56 × 612) / (39 + 0.44 × 612) whatever the intervals' lengths.
    let want = (39.0 + 0.56 * 612.0) / (39.0 + 0.44 * 612.0);
    assert!(
        (b / a / want - 1.0).abs() < 0.03,
        "{b:.1} / {a:.1} = {:.3}, want {want:.3}",
        b / a
    );
}

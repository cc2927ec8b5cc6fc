//! `decompute serve` end to end: a simulated powercap tree drawing a known power, the real
//! agent serving /metrics over HTTP, its figures against the simulated power, conservation
//! (every joule of the host in exactly one cgroup value) with real busy processes in real
//! cgroups, robustness against many and malformed requests, a prompt exit on SIGTERM, and a
//! real Prometheus scraping it (its address from the test script's environment).

#![allow(clippy::disallowed_macros)] // tests print why they skip

use crate::support::fixtures::Sysfs;
use crate::support::KillOnDrop;
use crate::support::{decompute, get, samples, start_agent};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A package whose counter grows at `watts`, written every 5 ms from a monotonic clock.
pub struct Burning {
    pub sysfs: Sysfs,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Burning {
    pub fn new(watts: f64) -> Burning {
        let sysfs = Sysfs::new(&[("intel-rapl:0", "package-0", 0)]);
        let path = sysfs.energy_path("intel-rapl:0");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            while !s.load(Ordering::SeqCst) {
                let uj = (t0.elapsed().as_secs_f64() * watts * 1e6) as u64;
                // Write then rename: a reader never sees a half-written number.
                let tmp = path.with_extension("tmp");
                let _ = std::fs::write(&tmp, format!("{uj}\n"));
                let _ = std::fs::rename(&tmp, &path);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Burning {
            sysfs,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Burning {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the agent; returns it and the address it serves on.
pub fn agent(
    sysfs: &Path,
    cgroup_root: &Path,
    listen: &str,
    extra: &[&str],
) -> (KillOnDrop, String) {
    let mut c = decompute();
    c.arg("serve")
        .args([
            "--listen",
            listen,
            "--interval",
            "1s",
            "--no-gpu",
            "--sysfs-root",
        ])
        .arg(sysfs)
        .arg("--cgroup-root")
        .arg(cgroup_root)
        .args(extra);
    start_agent(c)
}

fn fake_cgroups() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(d.path().join("cgroup.controllers"), "cpu memory\n").expect("w");
    d
}

#[test]
fn the_agent_reports_the_simulated_power_and_conserves_it() {
    let burn = Burning::new(50.0);
    let cg = fake_cgroups();
    let (_agent, addr) = agent(burn.sysfs.root(), cg.path(), "127.0.0.1:0", &[]);
    std::thread::sleep(Duration::from_millis(3500));
    let (st, ctype, body) = get(&addr, "/metrics", "*/*");
    assert_eq!(st, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let power = samples(&body, "decompute_host_power_watts");
    let cpu = power
        .iter()
        .find(|(l, _)| l["component"] == "cpu")
        .map(|x| x.1)
        .expect("cpu power");
    assert!((cpu - 50.0).abs() <= 1.0, "50 W simulated, {cpu} W read");
    let host = samples(&body, "decompute_host_energy_joules_total");
    assert!(host
        .iter()
        .any(|(l, _)| l["component"] == "cpu" && l["method"] == "measured"));
    for comp in ["cpu", "dram"] {
        let h: f64 = host
            .iter()
            .filter(|(l, _)| l["component"] == comp)
            .map(|x| x.1)
            .sum();
        let c: f64 = samples(&body, "decompute_cgroup_energy_joules_total")
            .iter()
            .filter(|(l, _)| l["component"] == comp)
            .map(|x| x.1)
            .sum();
        assert!(
            (h - c).abs() <= 1e-3 * h.max(1e-9),
            "{comp}: host {h} J, cgroups {c} J"
        );
    }
    // OpenMetrics when asked; /healthz; 404 elsewhere; 405 for other methods.
    let (_, ctype, om) = get(
        &addr,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    );
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(om.trim_end().ends_with("# EOF"));
    assert_eq!(get(&addr, "/healthz", "*/*").0, 200);
    assert_eq!(get(&addr, "/", "*/*").0, 404);
    let mut s = TcpStream::connect(&addr).expect("connect");
    write!(s, "POST /metrics HTTP/1.1\r\n\r\n").expect("w");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
}

#[test]
fn many_scrapes_and_garbage_never_stall_sampling_and_sigterm_ends_it() {
    let burn = Burning::new(20.0);
    let cg = fake_cgroups();
    let (mut agent, addr) = agent(burn.sysfs.root(), cg.path(), "127.0.0.1:0", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    // Ten slow clients that never finish their request, garbage, and ten real scrapes.
    let mut idle = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        let _ = s.write_all(b"GET /metr");
        idle.push(s);
    }
    for junk in [
        &b"\x00\xff\xfe garbage\r\n\r\n"[..],
        b"GET / HTTP/9\r\n\r\n",
        &[b'A'; 20000],
    ] {
        let mut s = TcpStream::connect(&addr).expect("connect");
        let _ = s.write_all(junk);
    }
    let before = samples(
        &get(&addr, "/metrics", "*/*").2,
        "decompute_host_energy_joules_total",
    );
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let a = addr.clone();
            std::thread::spawn(move || get(&a, "/metrics", "*/*").0)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("join"), 200);
    }
    std::thread::sleep(Duration::from_millis(2200));
    let after = samples(
        &get(&addr, "/metrics", "*/*").2,
        "decompute_host_energy_joules_total",
    );
    let e = |v: &[(HashMap<String, String>, f64)]| v.iter().map(|x| x.1).sum::<f64>();
    assert!(
        e(&after) > e(&before) + 20.0,
        "sampling went on: {} → {}",
        e(&before),
        e(&after)
    );
    drop(idle);
    let t = Instant::now();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    let st = agent.0.wait().expect("wait");
    assert_eq!(st.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// Two real cgroups v2 with busy processes in them, for the conservation test.
struct RealCgroups {
    root: PathBuf,
    dirs: Vec<PathBuf>,
    kids: Vec<std::process::Child>,
}

impl RealCgroups {
    fn make() -> Option<RealCgroups> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let root = mi.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
                .flatten()
        })?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))?;
        let parent = root.join(own.trim_start_matches('/'));
        let mut rc = RealCgroups {
            root: parent.clone(),
            dirs: Vec::new(),
            kids: Vec::new(),
        };
        for name in ["a", "b"] {
            let dir = parent.join(format!("decompute-it-{}-{name}", std::process::id()));
            std::fs::create_dir(&dir).ok()?;
            rc.dirs.push(dir.clone());
            // a: one busy loop; b: a loop that sleeps half the time.
            let script = if name == "a" {
                "while :; do :; done"
            } else {
                "while :; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 0.02; done"
            };
            let kid = std::process::Command::new("sh")
                .args(["-c", script])
                .spawn()
                .ok()?;
            std::fs::write(dir.join("cgroup.procs"), kid.id().to_string()).ok()?;
            rc.kids.push(kid);
        }
        Some(rc)
    }

    fn usage_s(&self, i: usize) -> f64 {
        std::fs::read_to_string(self.dirs[i].join("cpu.stat"))
            .ok()
            .and_then(|t| decompute::consumer::cgroups::parse_cpu_stat(&t))
            .unwrap_or(0.0)
    }
}

impl Drop for RealCgroups {
    fn drop(&mut self) {
        for k in &mut self.kids {
            let _ = k.kill();
            let _ = k.wait();
        }
        for d in &self.dirs {
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn busy_cgroups_get_their_cpu_share_and_every_joule_lands_once() {
    let Some(cgs) = RealCgroups::make() else {
        eprintln!("skipped: cannot create cgroups v2 here (needs root and a writable cgroup2)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        return;
    };
    let burn = Burning::new(80.0);
    let (_agent, addr) = agent(burn.sysfs.root(), &cgs.root, "127.0.0.1:0", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let body0 = get(&addr, "/metrics", "*/*").2;
    let u0 = (cgs.usage_s(0), cgs.usage_s(1));
    std::thread::sleep(Duration::from_millis(4000));
    let body1 = get(&addr, "/metrics", "*/*").2;
    let u1 = (cgs.usage_s(0), cgs.usage_s(1));
    let energy = |body: &str, dir: &Path| {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        samples(body, "decompute_cgroup_energy_joules_total")
            .iter()
            .filter(|(l, _)| l["component"] == "cpu" && l["cgroup"].ends_with(&name))
            .map(|x| x.1)
            .sum::<f64>()
    };
    let ea = energy(&body1, &cgs.dirs[0]) - energy(&body0, &cgs.dirs[0]);
    let eb = energy(&body1, &cgs.dirs[1]) - energy(&body0, &cgs.dirs[1]);
    let (ua, ub) = (u1.0 - u0.0, u1.1 - u0.1);
    assert!(ea > 0.0 && eb > 0.0, "{ea} {eb}");
    // Shares follow CPU time: the energy ratio is the CPU-time ratio (sampling windows
    // differ by up to an interval, so within 25 %).
    let (re, ru) = (ea / eb, ua / ub);
    assert!(
        (re / ru - 1.0).abs() < 0.25,
        "energy ratio {re:.2}, CPU ratio {ru:.2}"
    );
    for comp in ["cpu", "dram"] {
        let h: f64 = samples(&body1, "decompute_host_energy_joules_total")
            .iter()
            .filter(|(l, _)| l["component"] == comp)
            .map(|x| x.1)
            .sum();
        let c: f64 = samples(&body1, "decompute_cgroup_energy_joules_total")
            .iter()
            .filter(|(l, _)| l["component"] == comp)
            .map(|x| x.1)
            .sum();
        assert!((h - c).abs() <= 1e-3 * h, "{comp}: host {h}, Σ cgroups {c}");
    }
}

/// The Prometheus the test script started, scraping the two fixed targets it names.
fn prometheus() -> Option<(String, Vec<String>)> {
    let url = std::env::var("DECOMPUTE_TEST_PROMETHEUS").ok()?;
    let targets = std::env::var("DECOMPUTE_TEST_PROM_TARGETS").ok()?;
    Some((url, targets.split(',').map(str::to_string).collect()))
}

fn prom_query(url: &str, q: &str) -> Option<f64> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (st, _, body) = get(addr, &format!("/api/v1/query?query={enc}"), "*/*");
    if st != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_the_agent_and_its_rate_is_the_power() {
    let Some((url, targets)) = prometheus() else {
        eprintln!("skipped: no Prometheus (run the tests through tools/test.sh)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must provide DECOMPUTE_TEST_PROMETHEUS"
        );
        return;
    };
    let burn = Burning::new(50.0);
    let cg = fake_cgroups();
    let (_agent, addr) = agent(burn.sysfs.root(), cg.path(), &targets[0], &[]);
    assert_eq!(addr, targets[0]);
    let q = format!(
        "rate(decompute_host_energy_joules_total{{component=\"cpu\",instance=\"{addr}\"}}[10s])"
    );
    let ok = eventually_long(Duration::from_secs(40), || {
        prom_query(&url, &q).is_some_and(|r| (r - 50.0).abs() <= 1.0)
    });
    let last = prom_query(&url, &q);
    assert!(ok, "rate over 10 s should be 50 W ± 2 %: {last:?}");
    // Conservation through Prometheus: Σ cgroups = host, per component, in one evaluation
    // (both sides from the same scrape).
    let ratio = prom_query(
        &url,
        &format!(
            "sum(decompute_cgroup_energy_joules_total{{component=\"cpu\",instance=\"{addr}\"}}) / sum(decompute_host_energy_joules_total{{component=\"cpu\",instance=\"{addr}\"}})"
        ),
    )
    .expect("ratio");
    assert!((ratio - 1.0).abs() <= 1e-3, "Σ cgroups / host = {ratio}");
}

fn eventually_long(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// Four slowloris clients (a header byte every 0.5 s, for longer than any deadline) and 500
/// idle connections attached: every scrape is still answered within a second, and SIGTERM
/// ends the agent within a second with them still attached (#25 point 5).
#[test]
fn slow_and_idle_clients_never_starve_a_scrape() {
    let burn = Burning::new(20.0);
    let cg = fake_cgroups();
    let (mut agent, addr) = agent(burn.sysfs.root(), cg.path(), "127.0.0.1:0", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let loris: Vec<_> = (0..4)
        .map(|_| {
            let (a, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(&a) else {
                    return;
                };
                let head = b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
                for b in head.iter().cycle() {
                    if stop.load(Ordering::SeqCst) || s.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        })
        .collect();
    let idle: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() >= 400, "{} idle connections", idle.len());
    // For longer than the head deadline, so the slow clients have been cut off and come back.
    let end = Instant::now() + Duration::from_secs(5);
    let mut worst = Duration::ZERO;
    let mut scrapes = 0;
    while Instant::now() < end {
        let t = Instant::now();
        let (status, _, body) = get(&addr, "/metrics", "*/*");
        worst = worst.max(t.elapsed());
        assert_eq!(status, 200);
        assert!(body.contains("decompute_host_energy_joules_total"));
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(worst < Duration::from_secs(1), "slowest scrape {worst:?}");
    assert!(scrapes >= 5);
    let t = Instant::now();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    let st = agent.0.wait().expect("exits");
    assert!(st.success(), "{st:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    stop.store(true, Ordering::SeqCst);
    drop(idle);
    for l in loris {
        let _ = l.join();
    }
}

/// On a host whose processes all sit in the root cgroup (a VM, a box without slices), their
/// busy CPU is the root's own consumer `/`, not `_idle` (#26), and every joule still lands
/// once.
#[test]
fn the_root_cgroups_own_processes_are_not_idle() {
    let burn = Burning::new(50.0);
    let cg = fake_cgroups();
    let stat = cg.path().join("cpu.stat");
    std::fs::write(&stat, "usage_usec 0\n").expect("w");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let writer = std::thread::spawn(move || {
        // Half a CPU busy in the root's own processes, as its cpu.stat would count it.
        let t0 = Instant::now();
        while !s.load(Ordering::SeqCst) {
            let us = (t0.elapsed().as_secs_f64() * 0.5e6) as u64;
            let tmp = stat.with_extension("tmp");
            let _ = std::fs::write(&tmp, format!("usage_usec {us}\n"));
            let _ = std::fs::rename(&tmp, &stat);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let (_agent, addr) = agent(burn.sysfs.root(), cg.path(), "127.0.0.1:0", &[]);
    let mut body = String::new();
    let ok = eventually_long(Duration::from_secs(20), || {
        body = get(&addr, "/metrics", "*/*").2;
        samples(&body, "decompute_cgroup_energy_joules_total")
            .iter()
            .any(|(l, v)| l["cgroup"] == "/" && l["component"] == "cpu" && *v > 0.0)
    });
    stop.store(true, Ordering::SeqCst);
    let _ = writer.join();
    assert!(ok, "no energy for the root's own processes:\n{body}");
    let host: f64 = samples(&body, "decompute_host_energy_joules_total")
        .iter()
        .filter(|(l, _)| l["component"] == "cpu")
        .map(|x| x.1)
        .sum();
    let charged: f64 = samples(&body, "decompute_cgroup_energy_joules_total")
        .iter()
        .filter(|(l, _)| l["component"] == "cpu")
        .map(|x| x.1)
        .sum();
    assert!(
        (host - charged).abs() <= 1e-3 * host.max(1e-9),
        "{host} vs {charged}"
    );
}

/// The recording rules shipped in deploy/ are valid Prometheus rules (promtool, from the
/// same Debian package the test script installs for the Prometheus test).
#[test]
fn the_shipped_recording_rules_are_valid() {
    let Ok(o) = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/decompute-rules.yaml"))
        .output()
    else {
        eprintln!("skipped: no promtool (run the tests through tools/test.sh)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool missing under CI"
        );
        return;
    };
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(said.contains("SUCCESS: 11 rules found"), "{said}");
}

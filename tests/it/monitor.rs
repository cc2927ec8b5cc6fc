//! The sampler against a fake /proc and a fake powercap tree: per-interval attribution of
//! measured host energy to a run's process tree, checked to the joule; and every cgroup of a
//! fake hierarchy charged so that host = Σ cgroups + idle.

use crate::support::fixtures::Sysfs;
use decompute::child::Reaped;
use decompute::consumer::tree::ProcessTree;
use decompute::detect::{Detection, Probe};
use decompute::factors::FactorData;
use decompute::procfs::{clock_ticks_per_second, page_size, ProcRoot};
use decompute::sample::{Component, Consumer, Totals};
use decompute::sampler::Sampler;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn pid_stat(pid: i32, ppid: i32, utime: u64, rss_pages: u64) -> String {
    format!("{pid} (work (er)) R {ppid} {pid} {pid} 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 500 1000000 {rss_pages} 0\n")
}

fn sys_stat(busy: u64, idle: u64) -> String {
    format!(
        "cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\n"
    )
}

#[test]
fn measured_energy_is_split_by_cpu_time_and_resident_memory() {
    let hz = clock_ticks_per_second() as u64;
    let proc = tempfile::tempdir().expect("tmp");
    let p = proc.path();
    write(
        p,
        "cpuinfo",
        "processor : 0\nmodel name : Test CPU 1234\nprocessor : 1\nmodel name : Test CPU 1234\n",
    );
    write(p, "meminfo", "MemTotal: 4194304 kB\n");
    write(p, "stat", &sys_stat(10 * hz, 40 * hz));
    write(p, "100/stat", &pid_stat(100, 1, 0, 0)); // the monitor
    write(p, "101/stat", &pid_stat(101, 100, 0, 0)); // the command
    write(p, "300/stat", &pid_stat(300, 1, 0, 0)); // someone else
    let sys = Sysfs::new(&[
        ("intel-rapl:0", "package-0", 0),
        ("intel-rapl:0:0", "dram", 0),
    ]);
    let data = FactorData::embedded().expect("data");
    let probe = Probe {
        sysfs_root: sys.root().to_path_buf(),
        procfs_root: p.to_path_buf(),
        cpu_tdp: None,
        gpu: false,
    };
    let mut d = Detection::run(&probe, &data);
    assert!(d.cpu_measured());
    let slots = d.slots();
    let tree = ProcessTree::new(ProcRoot::new(p), 100);
    let mut m = Sampler::new(ProcRoot::new(p), slots, tree, d.mem_total_bytes, 2);
    let mut totals = Totals::default();

    // Interval 1: the system was busy 2 s (of 4 s CPU); the command used 0.5 s and holds
    // 1 GiB of the 4 GiB installed; the package used 100 J and DRAM 10 J.
    let gib_pages = (1u64 << 30) / page_size();
    write(p, "stat", &sys_stat(12 * hz, 42 * hz));
    write(p, "101/stat", &pid_stat(101, 100, hz / 2, gib_pages));
    write(p, "300/stat", &pid_stat(300, 1, 9 * hz, 0));
    sys.set("intel-rapl:0", 100_000_000);
    sys.set("intel-rapl:0:0", 10_000_000);
    let s = m.tick().samples();
    for x in &s {
        totals.add(x);
    }
    let get = |c: Component, who: Consumer| {
        s.iter()
            .find(|x| x.resource.component == c && x.consumer == who)
            .map(|x| x.energy.0)
            .expect("sample")
    };
    assert_eq!(get(Component::Cpu, Consumer::Host), 100.0);
    assert!((get(Component::Cpu, Consumer::Workload) - 25.0).abs() < 1e-9);
    assert_eq!(get(Component::Dram, Consumer::Host), 10.0);
    assert!((get(Component::Dram, Consumer::Workload) - 2.5).abs() < 1e-9);

    // Interval 2: the command exits and is reaped by the monitor with 0.25 s more CPU
    // (rusage); the system was busy 0.5 s; the package used 40 J.
    std::fs::remove_file(p.join("101/stat")).expect("rm");
    write(p, "stat", &sys_stat(12 * hz + hz / 2, 43 * hz));
    sys.set("intel-rapl:0", 140_000_000);
    m.consumers.add_reaped(&Reaped {
        cpu_s: 0.75,
        max_rss_bytes: 1 << 29,
        pids: vec![101],
    });
    let s = m.tick().samples();
    for x in &s {
        totals.add(x);
    }
    let cpu_w = s
        .iter()
        .find(|x| x.resource.component == Component::Cpu && x.consumer == Consumer::Workload)
        .expect("cpu")
        .energy
        .0;
    assert!(
        (cpu_w - 20.0).abs() < 1e-9,
        "0.25 s of 0.5 s busy → half of 40 J, got {cpu_w}"
    );
    // The reaped command's peak memory (512 MiB of 4 GiB) stands for its share of DRAM.
    assert!((totals.workload().0 - (25.0 + 2.5 + 20.0 + 0.0)).abs() < 1e-9);
    assert_eq!(totals.host().0, 150.0);
    assert!((m.consumers.cpu_s() - 0.75).abs() < 1e-9);
    // Every sample of an interval adds up: host = workload + idle, per resource.
    for c in [Component::Cpu, Component::Dram] {
        let host: f64 = s
            .iter()
            .filter(|x| x.resource.component == c && x.consumer == Consumer::Host)
            .map(|x| x.energy.0)
            .sum();
        let parts: f64 = s
            .iter()
            .filter(|x| x.resource.component == c && x.consumer != Consumer::Host)
            .map(|x| x.energy.0)
            .sum();
        assert!((host - parts).abs() < 1e-9, "{c}: {host} vs {parts}");
    }
}

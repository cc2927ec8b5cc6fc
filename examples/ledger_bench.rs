//! Ledger benchmark helper: fills a ledger (a SQLite path or a postgres:// URL) with N
//! synthetic (but complete) run records, then times checkpoints of a running run, and the
//! throughput of W writers checkpointing at once. Used by bench/ledger.sh.
//!
//!     cargo run --release --example ledger_bench -- LEDGER N [WRITERS [CHECKPOINTS [release]]]
//!
//! With `release`, each writer lets go of its connection after every checkpoint, as `run`
//! does between checkpoints (the fleet benchmark's setting, through PgBouncer).

#![allow(clippy::disallowed_macros)] // a benchmark tool: printing is its job

use decompute::factors::{resolve, ConversionRequest, FactorData};
use decompute::ledger::{Location, Monitor, RunIdentity, RunRecord, Status, RECORD_SCHEMA};
use decompute::report::{build, HostInfo, RunMeta};
use decompute::sample::{Component, Consumer, Method, PowerRow, Resource, Sample, Totals};
use decompute::units::{Joules, Seconds};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let target = args
        .get(1)
        .ok_or("usage: ledger_bench LEDGER N [WRITERS]")?
        .clone();
    let n: usize = args
        .get(2)
        .ok_or("usage: ledger_bench LEDGER N [WRITERS]")?
        .parse()?;
    let writers: usize = args.get(3).map(|w| w.parse()).transpose()?.unwrap_or(32);
    let per_writer: usize = args.get(4).map(|w| w.parse()).transpose()?.unwrap_or(50);
    let release = args.get(5).is_some_and(|a| a == "release");
    let loc = Location::parse(&target, decompute::factors::Origin::Default)?;
    let data = FactorData::embedded()?;
    let conv = resolve(
        &data,
        &ConversionRequest {
            zone: Some(decompute::factors::Given::flag("FR".into(), "--zone")),
            ..Default::default()
        },
    )?;
    let mut ledger = loc.open()?;
    let already = ledger
        .summary(&decompute::ledger::GroupBy::Project, &Default::default())?
        .iter()
        .map(|r| r.runs as usize)
        .sum::<usize>();
    let projects = [
        "llm-finetune",
        "vision",
        "etl",
        "notebooks",
        "eval",
        "ci",
        "rag",
        "speech",
    ];
    let t0 = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let mut totals = Totals::default();
        for (c, j, method) in [
            (Component::Cpu, 1000.0 + i as f64 % 977.0, Method::Modelled),
            (Component::Dram, 80.0, Method::Modelled),
            (Component::Gpu, 5000.0, Method::Measured),
        ] {
            for (who, e) in [(Consumer::Host, j * 1.2), (Consumer::Workload, j)] {
                totals.add(&Sample {
                    t_end: Seconds(60.0),
                    dt: Seconds(60.0),
                    resource: Resource {
                        component: c,
                        source: format!("{c}-src"),
                    },
                    consumer: who,
                    method,
                    energy: Joules(e),
                    low: Joules(e * 0.8),
                    high: Joules(e * 1.2),
                });
            }
        }
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + (i as u64 * 37) % 60_000_000);
        let meta = RunMeta {
            command: vec!["python".into(), "train.py".into(), format!("--seed={i}")],
            exit_code: Some(0),
            killed_by_signal: None,
            interrupted_by: None,
            started_at: decompute::timefmt::rfc3339(start),
            ended_at: decompute::timefmt::rfc3339(start + Duration::from_secs(60)),
            duration_s: 60.0,
            interval_s: 1.0,
            host: HostInfo {
                hostname: "node-1".into(),
                cpu_model: "AMD EPYC 7763".into(),
                logical_cpus: 128,
                memory_gb: 512.0,
                virtual_machine: false,
                gpus: Vec::new(),
            },
            processes_followed: 3,
            cpu_time_s: 55.0,
            notes: Vec::new(),
            leftover_processes: Vec::new(),
        };
        let id = decompute::ulid::encode(1_700_000_000_000 + i as u64, &[(i % 251) as u8; 10]);
        batch.push(RunRecord {
            schema: RECORD_SCHEMA.into(),
            identity: RunIdentity {
                id,
                project: projects[i % projects.len()].into(),
                tags: [("model".to_string(), format!("m{}", i % 5))]
                    .into_iter()
                    .collect(),
                user: format!("user{}", i % 20),
                host: "node-1".into(),
                cwd: "/home/x".into(),
            },
            status: Status::Finished,
            report: build(meta, &totals, Vec::new(), &conv),
        });
        if batch.len() == 10_000 || i + 1 == n {
            ledger.import(&batch)?;
            batch.clear();
        }
    }
    eprintln!(
        "filled {n} runs in {:.1} s ({already} were there)",
        t0.elapsed().as_secs_f64()
    );

    // Checkpoint cost: a running run, 10 new power rows per checkpoint.
    let ident = RunIdentity {
        id: decompute::ulid::new(SystemTime::now()),
        project: "bench".into(),
        tags: Default::default(),
        user: "u".into(),
        host: "h".into(),
        cwd: "/".into(),
    };
    let report = build(
        RunMeta {
            command: vec!["x".into()],
            exit_code: None,
            killed_by_signal: None,
            interrupted_by: None,
            started_at: decompute::timefmt::rfc3339(SystemTime::now()),
            ended_at: decompute::timefmt::rfc3339(SystemTime::now()),
            duration_s: 0.0,
            interval_s: 1.0,
            host: HostInfo {
                hostname: "h".into(),
                cpu_model: "c".into(),
                logical_cpus: 2,
                memory_gb: 1.0,
                virtual_machine: true,
                gpus: Vec::new(),
            },
            processes_followed: 1,
            cpu_time_s: 0.0,
            notes: Vec::new(),
            leftover_processes: Vec::new(),
        },
        &Totals::default(),
        Vec::new(),
        &conv,
    );
    ledger.begin(
        &ident,
        Monitor {
            pid: 1,
            start_ticks: 1,
            lease_s: 30.0,
        },
        &report,
    )?;
    let mut times = Vec::new();
    for k in 0..300 {
        let rows: Vec<PowerRow> = (0..10)
            .map(|j| PowerRow {
                t_s: (k * 10 + j) as f64,
                dt_s: 1.0,
                cpu_w: 10.0,
                dram_w: 2.0,
                gpu_w: 0.0,
                workload_w: 9.0,
            })
            .collect();
        let t = Instant::now();
        ledger.checkpoint(&ident.id, &report, &rows)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    drop(ledger);
    let mut opens = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let mut l = loc.open()?;
        l.recover()?;
        drop(l);
        opens.push(t.elapsed().as_secs_f64() * 1e3);
    }
    opens.sort_by(f64::total_cmp);
    println!(
        "open + recover + close of the ledger: median {:.3} ms",
        opens[opens.len() / 2]
    );
    println!(
        "checkpoint (10 new rows): median {:.3} ms, p90 {:.3} ms, max {:.3} ms over {} checkpoints",
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1],
        times.len()
    );

    // Throughput: W writers, each its own run (and connection), K checkpoints each.
    let t = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let loc = loc.clone();
            let report = report.clone();
            std::thread::spawn(move || -> Result<Vec<f64>, String> {
                let mut l = loc.open().map_err(|e| e.to_string())?;
                let ident = RunIdentity {
                    id: format!("{}{w:04}", &decompute::ulid::new(SystemTime::now())[..22]),
                    project: "bench".into(),
                    tags: Default::default(),
                    user: "u".into(),
                    host: format!("h{w}"),
                    cwd: "/".into(),
                };
                l.begin(
                    &ident,
                    Monitor {
                        pid: 1,
                        start_ticks: 1,
                        lease_s: 30.0,
                    },
                    &report,
                )
                .map_err(|e| e.to_string())?;
                let mut lat = Vec::with_capacity(per_writer);
                for k in 0..per_writer {
                    let rows: Vec<PowerRow> = (0..10)
                        .map(|j| PowerRow {
                            t_s: (k * 10 + j) as f64,
                            dt_s: 1.0,
                            cpu_w: 10.0,
                            dram_w: 2.0,
                            gpu_w: 0.0,
                            workload_w: 9.0,
                        })
                        .collect();
                    if release {
                        l.release();
                    }
                    let c = Instant::now();
                    l.checkpoint(&ident.id, &report, &rows)
                        .map_err(|e| e.to_string())?;
                    lat.push(c.elapsed().as_secs_f64() * 1e3);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for h in handles {
        match h.join().map_err(|_| "writer panicked")? {
            Ok(l) => all.extend(l),
            Err(e) => {
                failed += 1;
                eprintln!("writer failed: {e}");
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let q = |f: f64| {
        all.get(((all.len() as f64 * f) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{writers} concurrent writers{}: {} checkpoints in {secs:.2} s, {:.0} checkpoints/s, {failed} writer(s) failed; checkpoint latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        if release { " (connection released after each)" } else { "" },
        all.len(),
        all.len() as f64 / secs,
        q(0.5),
        q(0.99),
        q(1.0)
    );
    Ok(())
}

//! The ledger at fleet scale, through PgBouncer in transaction mode (the test script's, pool
//! 20): many budgeted runs and listings at once are all recorded and answered, and the
//! server logs no error (no prepared statement of one client meets another's).

use crate::support::{decompute, err, export, pgbouncer_ledger};
use std::process::Stdio;

/// PostgreSQL's log lines since `from` (a byte offset), if the test script said where it is.
fn server_log_since(from: u64) -> Option<String> {
    let p = std::env::var("DECOMPUTE_TEST_PGLOG").ok()?;
    let text = std::fs::read(p).ok()?;
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    Some(String::from_utf8_lossy(&text[from..]).into_owned())
}

fn server_log_len() -> u64 {
    std::env::var("DECOMPUTE_TEST_PGLOG")
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn budgeted_runs_and_listings_at_once_through_pgbouncer_all_land() {
    let Some(l) = pgbouncer_ledger() else { return };
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(
        d.path().join("decompute.toml"),
        "project = \"fleet\"\n[budget.fleet]\nenergy = \"1 MWh / month\"\n",
    )
    .expect("policy");
    let empty = d.path().join("empty-sysfs");
    std::fs::create_dir(&empty).expect("mkdir");
    let log_from = server_log_len();
    const N: usize = 40;
    let mut children = Vec::new();
    for i in 0..N {
        let run = decompute()
            .current_dir(d.path())
            .args([
                "run",
                "--quiet",
                "--no-gpu",
                "--interval",
                "100ms",
                "--ledger",
                &l,
            ])
            .args([
                "--sysfs-root",
                empty.to_str().expect("utf-8"),
                "--cpu-tdp",
                "65",
            ])
            .args(["--", "sleep", "0.3"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn run");
        let list = decompute()
            .current_dir(d.path())
            .args(["ledger", "list", "--ledger", &l])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn list");
        children.push((format!("run {i}"), run));
        children.push((format!("list {i}"), list));
    }
    for (what, c) in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{what}: {}", err(&o));
        assert!(!err(&o).contains("warning"), "{what}: {}", err(&o));
    }
    let records = export(&l);
    assert_eq!(records.len(), N, "every run recorded");
    for r in &records {
        assert_eq!(r["status"], "finished", "{r}");
        assert_eq!(r["project"], "fleet", "{r}");
    }
    if let Some(log) = server_log_since(log_from) {
        let errors: Vec<&str> = log.lines().filter(|x| x.contains("ERROR")).collect();
        assert!(errors.is_empty(), "the server logged errors: {errors:?}");
    }
}

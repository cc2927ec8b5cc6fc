//! The ledger at fleet scale, through PgBouncer in transaction mode (the test script's, pool
//! 20): many budgeted runs and listings at once are all recorded and answered, and the
//! server logs no statement of one client meeting another's; a run the
//! server refuses is spooled on its host and recorded by the next command that opens the
//! ledger.

use crate::support::{
    decompute, err, eventually, export, pgbouncer_ledger, postgres_admin, postgres_ledger,
    KillOnDrop,
};
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
        // Other tests share the server (and log their own refusals): only a statement of
        // one client meeting another's session is this test's concern.
        let errors: Vec<&str> = log
            .lines()
            .filter(|x| x.contains("prepared statement") || x.contains("bind message"))
            .collect();
        assert!(errors.is_empty(), "the server logged errors: {errors:?}");
    }
}

#[test]
fn a_run_the_server_refuses_is_spooled_and_recorded_by_the_next_command() {
    let Some(admin) = postgres_admin() else {
        return;
    };
    let d = tempfile::tempdir().expect("tmp");
    let state = d.path().join("state");
    let name = format!("spool{}", std::process::id());
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let url = format!("{base}/{name}?sslmode=disable");
    let empty = d.path().join("empty-sysfs");
    std::fs::create_dir(&empty).expect("mkdir");
    // The database does not exist yet: the server refuses the run's connection.
    let o = decompute()
        .current_dir(d.path())
        .env("XDG_STATE_HOME", &state)
        .args(["run", "--no-gpu", "--cpu-tdp", "65", "--ledger", &url])
        .args(["--sysfs-root", empty.to_str().expect("utf-8")])
        .args(["--", "sleep", "0.2"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("does not exist"), "the real cause: {e}");
    assert!(e.contains("kept in") && e.contains("spooled"), "{e}");
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("admin");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create");
    // Any command that opens that ledger on this host delivers it.
    let o = decompute()
        .env("XDG_STATE_HOME", &state)
        .args(["ledger", "list", "--json", "--ledger", &url])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("recorded now"), "{}", err(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["status"], "finished");
    let left = std::fs::read_dir(state.join("decompute/spool"))
        .expect("spool")
        .flat_map(|d| std::fs::read_dir(d.expect("entry").path()).expect("dir"))
        .count();
    assert_eq!(left, 0, "the spool is emptied once delivered");
}

#[test]
fn a_run_holds_no_connection_between_its_checkpoints() {
    let Some(l) = postgres_ledger() else { return };
    let admin = postgres_admin().expect("admin");
    let db = l
        .rsplit('/')
        .next()
        .and_then(|x| x.split('?').next())
        .unwrap_or_default()
        .to_string();
    let d = tempfile::tempdir().expect("tmp");
    let empty = d.path().join("empty-sysfs");
    std::fs::create_dir(&empty).expect("mkdir");
    let mut run = KillOnDrop(
        decompute()
            .args([
                "run",
                "--quiet",
                "--no-gpu",
                "--cpu-tdp",
                "65",
                "--ledger",
                &l,
            ])
            .args(["--sysfs-root", empty.to_str().expect("utf-8")])
            .args(["--checkpoint", "1s", "--", "sleep", "6"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("admin");
    let count = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            &[&db],
        )
        .expect("count")
        .get(0)
    };
    // The run has begun (its row exists) and checkpoints every second; between them it
    // holds nothing. Twenty looks: some see no connection at all, none more than the
    // checkpoint in flight (and, for an instant, the one before it closing).
    assert!(eventually(|| {
        let mut c = postgres::Client::connect(&l, postgres::NoTls).expect("reader");
        c.query_one("SELECT count(*) FROM runs", &[])
            .map(|r| r.get::<_, i64>(0) == 1)
            .unwrap_or(false)
    }));
    let looks: Vec<i64> = (0..20)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            count(&mut c)
        })
        .collect();
    assert!(looks.iter().all(|n| *n <= 2), "{looks:?}");
    assert!(
        looks.contains(&0),
        "released between checkpoints: {looks:?}"
    );
    let o = run.output();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(export(&l).len(), 1);
}

//! A team's ledger on the PostgreSQL server the test script started: TLS modes against a
//! role that may only connect over TLS (a self-signed certificate), passwords from the URL,
//! PGPASSWORD and a pgpass file and never shown, a server that goes away mid-run, moving a
//! history from SQLite into the team's ledger and back losslessly, one identity and one
//! ledger named by the policy file, and four concurrent runs bound by one project budget.

use crate::support::decompute;
use crate::support::{err, shared_budget_bound, KillOnDrop};
use crate::support::{export, postgres_admin, postgres_ledger, with_ledger};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The test server's URL with another user and database, and query.
fn url_as(admin: &str, userinfo: &str, db: &str, query: &str) -> String {
    let rest = admin.strip_prefix("postgres://").unwrap_or(admin);
    let hostport = rest
        .split_once('@')
        .map(|(_, h)| h)
        .unwrap_or(rest)
        .split('/')
        .next()
        .unwrap_or("");
    format!("postgres://{userinfo}@{hostport}/{db}{query}")
}

fn db_name(url: &str) -> String {
    url.rsplit('/')
        .next()
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_string()
}

fn list(ledger: &str) -> std::process::Output {
    decompute()
        .args(["ledger", "list", "--ledger", ledger])
        .output()
        .expect("runs")
}

#[test]
fn tls_modes_against_a_tls_only_role() {
    let Some(l) = postgres_ledger() else { return };
    let admin = postgres_admin().expect("admin");
    let db = db_name(&l);
    let ca = std::env::var("DECOMPUTE_TEST_POSTGRES_CA").expect("CA of the test server");
    let cases = [
        ("?sslmode=disable", false),
        ("?sslmode=require", true),
        ("?sslmode=prefer", true),
        (
            &format!("?sslmode=verify-full&sslrootcert={ca}") as &str,
            true,
        ),
        (&format!("?sslmode=verify-ca&sslrootcert={ca}"), true),
        // A self-signed certificate is not in the system's roots.
        ("?sslmode=verify-full", false),
    ];
    for (q, ok) in cases {
        let u = url_as(&admin, "tlsonly", &db, q);
        let o = list(&u);
        assert_eq!(o.status.success(), ok, "{q}: {}", err(&o));
    }
    // A run through TLS is recorded.
    let u = url_as(&admin, "tlsonly", &db, "?sslmode=require");
    let o = with_ledger(&u, &["run", "--quiet", "--", "true"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("warning: cannot write"), "{}", err(&o));
    assert_eq!(export(&u).len(), 1);
}

#[test]
fn passwords_come_from_the_url_the_environment_or_pgpass_and_are_never_shown() {
    let Some(l) = postgres_ledger() else { return };
    let admin = postgres_admin().expect("admin");
    let db = db_name(&l);
    let good = url_as(&admin, "pwuser:pw-secret", &db, "?sslmode=disable");
    let o = with_ledger(&good, &["run", "--explain", "--json", "-", "--", "true"]);
    assert!(o.status.success(), "{}", err(&o));
    let all = format!("{}{}", err(&o), String::from_utf8_lossy(&o.stdout));
    assert!(!all.contains("pw-secret"), "the password was shown: {all}");
    let wrong = url_as(&admin, "pwuser:not-the-secret", &db, "?sslmode=disable");
    let o = list(&wrong);
    assert_eq!(o.status.code(), Some(1));
    assert!(!err(&o).contains("not-the-secret"), "{}", err(&o));
    assert!(err(&o).contains("***"), "{}", err(&o));
    let bare = url_as(&admin, "pwuser", &db, "?sslmode=disable");
    assert!(!list(&bare).status.success(), "no password: refused");
    let o = decompute()
        .args(["ledger", "list", "--ledger", &bare])
        .env("PGPASSWORD", "pw-secret")
        .output()
        .expect("runs");
    assert!(o.status.success(), "PGPASSWORD: {}", err(&o));
    let d = tempfile::tempdir().expect("tmp");
    let pass = d.path().join("pgpass");
    std::fs::write(&pass, "# the team's\n*:*:*:pwuser:pw-secret\n").expect("w");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let o = decompute()
        .args(["ledger", "list", "--ledger", &bare])
        .env("PGPASSFILE", &pass)
        .env_remove("PGPASSWORD")
        .output()
        .expect("runs");
    assert!(o.status.success(), "pgpass: {}", err(&o));
}

#[test]
fn a_server_that_goes_away_mid_run_costs_nothing_measured() {
    let Some(l) = postgres_ledger() else { return };
    let admin = postgres_admin().expect("admin");
    let db = db_name(&l);
    let d = tempfile::tempdir().expect("tmp");
    let report = d.path().join("r.json");
    let mut child = KillOnDrop(
        decompute()
            .env("DECOMPUTE_LEDGER", &l)
            .args([
                "run",
                "--no-gpu",
                "--sysfs-root",
                "/nonexistent",
                "--interval",
                "200ms",
                "--checkpoint",
                "1s",
                "--json",
            ])
            .arg(&report)
            .args(["--", "sh", "-c", "sleep 4; exit 3"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    // The server goes away for this database: no new connection, and the run's is cut.
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("admin");
    c.batch_execute(&format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS false; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .expect("cut");
    let o = child.output();
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "the command's own exit code: {e}");
    assert_eq!(
        e.matches("cannot write to the ledger").count(),
        1,
        "said once: {e}"
    );
    assert!(e.contains("kept in"), "spooled: {e}");
    assert!(e.contains("total IT"), "the footprint is printed: {e}");
    assert!(!e.contains("panicked"), "{e}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(r["exit_code"], 3);
    // Back again: the ledger has the run unfinished; the next command that opens it
    // delivers the spooled run, and importing the report afterwards adds nothing.
    c.batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .expect("reopen");
    let o = decompute()
        .args(["ledger", "list", "--ledger", &l])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("recorded now"), "{}", err(&o));
    let o = decompute()
        .args(["ledger", "import", "--ledger", &l])
        .arg(&report)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("1 already present"), "{}", err(&o));
    let recs = export(&l);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], "failed");
    assert_eq!(recs[0]["report"]["exit_code"], 3);
    assert_eq!(recs[0]["id"], r["run"]["id"]);
}

#[test]
fn a_history_moves_from_sqlite_to_the_team_and_back_losslessly() {
    let Some(pg) = postgres_ledger() else { return };
    let d = tempfile::tempdir().expect("tmp");
    let mine = d.path().join("mine.sqlite");
    for i in 0..3 {
        let o = with_ledger(
            &mine,
            &[
                "run",
                "--quiet",
                "--tag",
                &format!("i={i}"),
                "--zone",
                "FR",
                "--",
                "sleep",
                "0.2",
            ],
        );
        assert!(o.status.success(), "{}", err(&o));
    }
    let dump = d.path().join("mine.jsonl");
    let o = with_ledger(
        &mine,
        &["ledger", "export", "--output", dump.to_str().expect("u")],
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = with_ledger(&pg, &["ledger", "import", dump.to_str().expect("u")]);
    assert!(err(&o).contains("imported 3"), "{}", err(&o));
    let from_pg =
        String::from_utf8_lossy(&with_ledger(&pg, &["ledger", "export"]).stdout).into_owned();
    assert_eq!(
        from_pg,
        std::fs::read_to_string(&dump).expect("dump"),
        "same records"
    );
    let back = d.path().join("back.sqlite");
    let dump2 = d.path().join("pg.jsonl");
    std::fs::write(&dump2, &from_pg).expect("w");
    with_ledger(&back, &["ledger", "import", dump2.to_str().expect("u")]);
    let again =
        String::from_utf8_lossy(&with_ledger(&back, &["ledger", "export"]).stdout).into_owned();
    assert_eq!(again, from_pg, "and back, byte for byte");
    let sum = |l: &str| {
        String::from_utf8_lossy(&with_ledger(l, &["ledger", "summary"]).stdout).into_owned()
    };
    assert_eq!(sum(&pg), sum(mine.to_str().expect("u")), "same sums");
}

#[test]
fn the_policy_names_the_project_and_the_teams_ledger_and_budgets_bind_concurrent_runs() {
    let Some(pg) = postgres_ledger() else { return };
    let d = tempfile::tempdir().expect("tmp");
    let clone = d.path().join("repo");
    std::fs::create_dir_all(clone.join(".git")).expect("mkdir");
    let policy = clone.join("decompute.toml");
    std::fs::write(
        &policy,
        format!(
            "project = \"teamml\"\nledger = \"{pg}\"\n\n[budget.teamml]\nenergy = \"2 J / day\"\n"
        ),
    )
    .expect("w");
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // Four runs at once, from a clone called "repo": recorded as teamml, in the team's
    // ledger, bound by the budget together.
    let burn = "i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done";
    let kids: Vec<KillOnDrop> = (0..4)
        .map(|_| {
            KillOnDrop(
                decompute()
                    .current_dir(&clone)
                    .args([
                        "run",
                        "--no-gpu",
                        "--sysfs-root",
                        "/nonexistent",
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
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn"),
            )
        })
        .collect();
    let t = Instant::now();
    let mut reports = Vec::new();
    let mut last_err = String::new();
    for mut k in kids {
        let o = k.output();
        last_err = String::from_utf8_lossy(&o.stderr).into_owned();
        let r: Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(r["run"]["project"], "teamml");
        reports.push(r);
    }
    assert!(t.elapsed() < Duration::from_secs(60));
    assert!(
        last_err.contains("named by the policy"),
        "the run says which ledger: {last_err}"
    );
    let total: f64 = reports
        .iter()
        .map(|r| r["energy_j"]["workload"].as_f64().expect("e"))
        .sum();
    let bound = shared_budget_bound(2.0, &reports);
    assert!(total <= bound, "{total:.3} J of 2 J; bound {bound:.3} J");
    let recs = export(&pg);
    assert_eq!(recs.len(), 4);
    assert!(recs.iter().all(|r| r["project"] == "teamml"));
    // The next run is refused; budget status reads the team's ledger and says so.
    let o = decompute()
        .current_dir(&clone)
        .args(["run", "--no-gpu", "--", "true"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(123), "{}", err(&o));
    let o = decompute()
        .current_dir(&clone)
        .args(["budget", "status"])
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("ledger postgres://") && out.contains("teamml"),
        "{out}"
    );
    let o = decompute()
        .current_dir(&clone)
        .args(["budget", "status", "--project", "nosuch"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("teamml"),
        "names the projects that exist: {}",
        err(&o)
    );
    let o = decompute()
        .current_dir(&clone)
        .args(["ledger", "summary"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ledger postgres://"));
}

#[test]
fn a_writer_with_the_documented_least_privileges_records_runs() {
    let Some(l) = postgres_ledger() else { return };
    let admin = postgres_admin().expect("admin");
    let db = db_name(&l);
    // The owner creates the schema by opening the ledger once.
    assert!(list(&l).status.success());
    let owner_db = url_as(&admin, "decompute", &db, "");
    let mut c = postgres::Client::connect(&owner_db, postgres::NoTls).expect("owner");
    let role = format!("w_{db}");
    c.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN;
         REVOKE ALL ON DATABASE {db} FROM PUBLIC;
         GRANT CONNECT ON DATABASE {db} TO {role};
         GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role};
         GRANT DELETE ON components, factors TO {role};"
    ))
    .expect("grants (docs/ledger.md)");
    let w = url_as(&admin, &role, &db, "?sslmode=disable");
    let o = with_ledger(
        &w,
        &["run", "--quiet", "--checkpoint", "1s", "--", "sleep", "1.3"],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("cannot write"), "{}", err(&o));
    let recs = export(&w);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], "finished");
    // It cannot change the schema.
    let mut wc = postgres::Client::connect(&w, postgres::NoTls).expect("writer");
    assert!(wc.batch_execute("DROP TABLE samples").is_err());
}

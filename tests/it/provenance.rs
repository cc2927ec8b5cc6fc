//! Provenance and the smaller defects: every factor is credited to where it really came from
//! (flag, environment, config, policy, data directory, shipped table), and the small
//! refusals and conveniences found in review.

use crate::support::{decompute, err, json_of, run_cmd, run_in};
use serde_json::Value;

use std::time::{Duration, Instant};

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
    let r = json_of(&o);
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
    let f = &json_of(&o)["factors"];
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

/// Every integration test the docs cite as `it::MODULE::NAME` exists under that name, so a
/// claim in the docs always points at the test that holds it (#26: docs that disagree with
/// the binary).
#[test]
fn the_tests_the_docs_cite_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut defined = std::collections::HashSet::new();
    for e in std::fs::read_dir(root.join("tests/it")).expect("tests/it") {
        let p = e.expect("entry").path();
        let (Some(stem), Some("rs")) = (
            p.file_stem().and_then(|s| s.to_str()),
            p.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let text = std::fs::read_to_string(&p).expect("read");
        for part in text.split("fn ").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            defined.insert(format!("it::{stem}::{name}"));
        }
    }
    let mut docs = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).expect("docs") {
        docs.push(e.expect("entry").path());
    }
    let mut cited = 0;
    for d in docs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(d).expect("read");
        for (i, _) in text.match_indices("it::") {
            let r: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if r.matches("::").count() == 2 {
                cited += 1;
                // `it::MODULE::*` cites a whole module.
                let found = if r.ends_with("::") {
                    defined.iter().any(|t| t.starts_with(&r))
                } else {
                    defined.contains(&r)
                };
                assert!(found, "{} cites {r}, which is no test", d.display());
            }
        }
    }
    assert!(cited > 10, "the docs cite {cited} tests");
}

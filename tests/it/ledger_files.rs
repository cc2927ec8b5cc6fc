//! The ledger file's safety: imports are validated field by field and a refused file leaves
//! no ledger behind; a new ledger is private (directory 0700, file 0600) whatever the umask.

use crate::support::{decompute, err, run_in};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

// 11. Imports are validated field by field; a refused file leaves no ledger behind.
#[test]
fn imports_are_validated_and_refusals_leave_nothing() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(d.path(), &["--quiet", "--", "true"]);
    assert_eq!(o.status.code(), Some(0));
    let o = decompute()
        .args(["ledger", "export", "--ledger"])
        .arg(d.path().join("ledger.sqlite"))
        .output()
        .expect("runs");
    let good: Value = serde_json::from_slice(&o.stdout).expect("json");
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "negative",
            Box::new(|v| v["report"]["energy_j"]["workload"] = (-5.0).into()),
        ),
        (
            "carbon",
            Box::new(|v| v["report"]["carbon_g"]["value"] = (-1.0).into()),
        ),
        (
            "started_at",
            Box::new(|v| v["report"]["started_at"] = "yesterday".into()),
        ),
        ("id", Box::new(|v| v["id"] = "".into())),
        ("running", Box::new(|v| v["status"] = "running".into())),
        (
            "duration_s",
            Box::new(|v| v["report"]["duration_s"] = 1e308.into()),
        ),
        // Round three (#25 point 14).
        (
            "report schema",
            Box::new(|v| v["report"]["schema"] = "decompute.run/999".into()),
        ),
        ("NUL project", Box::new(|v| v["project"] = "a\u{0}b".into())),
        (
            "ESC project",
            Box::new(|v| v["project"] = "a\u{1b}]0;x".into()),
        ),
        ("empty tag key", Box::new(|v| v["tags"][""] = "v".into())),
        (
            "cpu_w",
            Box::new(|v| v["report"]["samples"][0]["cpu_w"] = 1e300.into()),
        ),
        (
            "components",
            Box::new(|v| {
                v["report"]["components"][0]["workload_energy_j"] = 7.2e6.into();
                v["report"]["components"][0]["high_j"] = 7.2e6.into();
            }),
        ),
    ];
    for (n, (what, mutate)) in cases.into_iter().enumerate() {
        let mut v = good.clone();
        mutate(&mut v);
        let f = d.path().join("bad.jsonl");
        std::fs::write(&f, format!("{good}\n{v}\n")).expect("w");
        let fresh = d.path().join(format!("fresh-{n}.sqlite"));
        let o = decompute()
            .args(["ledger", "import", "--ledger"])
            .arg(&fresh)
            .arg(&f)
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(1), "{what}: {}", err(&o));
        assert!(err(&o).contains("line 2"), "{what}: {}", err(&o));
        assert!(!fresh.exists(), "{what}: no ledger file left behind");
    }
}

// 13. The ledger is private: directory 0700, file 0600, whatever the umask.
#[test]
fn a_new_ledger_is_private() {
    let d = tempfile::tempdir().expect("tmp");
    let ledger = d.path().join("new/dir/ledger.sqlite");
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" run --quiet --ledger \"$1\" -- true")
        .arg(env!("CARGO_BIN_EXE_decompute"))
        .arg(&ledger)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    let mode = |p: &Path| std::fs::metadata(p).expect("m").mode() & 0o777;
    assert_eq!(mode(&ledger), 0o600);
    assert_eq!(mode(ledger.parent().expect("dir")), 0o700);
}

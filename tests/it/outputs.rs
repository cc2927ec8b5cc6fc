//! Outputs a user can trust: `--json` behaves as a shell redirection and never replaces what
//! is not a regular file, no panic and one-line errors on any input or closed stream,
//! defused CSV and terminal text, and a full disk that loses nothing measured.

#![allow(clippy::disallowed_macros)] // tests print why they skip

use crate::support::{decompute, err, mkfifo, run_cmd, run_in};
use serde_json::Value;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Stdio;

// 1. --json never replaces what is not a regular file, never follows a planted name, and
// never writes over the ledger.
#[test]
fn json_output_behaves_like_a_shell_redirection() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(d.path(), &["--quiet", "--json", "/dev/null", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let m = std::fs::symlink_metadata("/dev/null").expect("m");
    assert!(m.file_type().is_char_device(), "/dev/null stays a device");

    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let reader = {
        let f = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(f).expect("read"))
    };
    let fs = fifo.to_str().expect("utf8");
    let o = run_in(d.path(), &["--quiet", "--json", fs, "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let got: Value = serde_json::from_str(&reader.join().expect("join")).expect("json");
    assert_eq!(got["schema"], "decompute.run/1");
    assert!(std::fs::symlink_metadata(&fifo)
        .expect("m")
        .file_type()
        .is_fifo());

    let real = d.path().join("real.json");
    std::fs::write(&real, "old").expect("w");
    let link = d.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).expect("ln");
    let o = run_in(
        d.path(),
        &["--quiet", "--json", link.to_str().expect("u"), "--", "true"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(std::fs::symlink_metadata(&link)
        .expect("m")
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .expect("r")
        .contains("decompute.run/1"));

    // The ledger, by its name or another name for the same file: refused before the
    // command runs, and the ledger survives.
    let ledger = d.path().join("ledger.sqlite");
    let o = run_in(d.path(), &["--quiet", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let alias = d.path().join("alias.json");
    std::fs::hard_link(&ledger, &alias).expect("hard link");
    let ran = d.path().join("ran");
    for target in [&ledger, &alias] {
        let o = run_in(
            d.path(),
            &[
                "--json",
                target.to_str().expect("u"),
                "--",
                "touch",
                ran.to_str().expect("u"),
            ],
        );
        assert_eq!(o.status.code(), Some(125), "{}", err(&o));
        assert!(err(&o).contains("ledger"), "{}", err(&o));
        assert!(!ran.exists(), "the command must not run");
    }
    let o = decompute()
        .args(["ledger", "list", "--ledger"])
        .arg(&ledger)
        .output()
        .expect("runs");
    assert!(o.status.success(), "the ledger is intact: {}", err(&o));
    let o = decompute()
        .args(["ledger", "export", "--ledger"])
        .arg(&ledger)
        .arg("--output")
        .arg(&ledger)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("ledger"), "{}", err(&o));
    let o = decompute()
        .args(["ledger", "list", "--ledger"])
        .arg(&ledger)
        .output()
        .expect("runs");
    assert!(
        o.status.success(),
        "export refused to clobber it: {}",
        err(&o)
    );
    let o = decompute()
        .args(["scale", "--flop", "1e24", "--svg", "/dev/null"])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", err(&o));
    assert!(std::fs::symlink_metadata("/dev/null")
        .expect("m")
        .file_type()
        .is_char_device());
    // Nothing but the files named was created (no predictable temporary names).
    let names: Vec<String> = std::fs::read_dir(d.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

// 5. No panic on any input: one-line errors, and a closed or full stderr or stdout never
// costs the command its run or its exit code.
#[test]
fn no_panic_on_bad_input_or_closed_streams() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(
        d.path(),
        &["--grace", "99999999999999999999s", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("longer"), "{}", err(&o));
    let fc = d.path().join("f.csv");
    std::fs::write(&fc, "2026-11-29T00:00:00Z,100\n2026-11-29T01:00:00Z,200\n").expect("w");
    let o = decompute()
        .args(["when", "--grid"])
        .arg(format!("csv:{}", fc.display()))
        .args(["--duration", "1h", "--now", "inf"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    for since in [
        "é2026-01-01",
        "2026-13-45",
        "2026-02-31",
        "2026-11-29T07:5é:24Z",
    ] {
        let o = decompute()
            .args(["ledger", "list", "--ledger"])
            .arg(d.path().join("l.sqlite"))
            .args(["--since", since])
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(2), "{since}: {}", err(&o));
    }
    // A forecast with a non-ASCII timestamp: an error at the start, not a panic mid-run.
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "2026-11-29T0é:00:00Z,100\n").expect("w");
    let o = run_in(
        d.path(),
        &["--grid", &format!("csv:{}", bad.display()), "--", "true"],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("bad.csv"), "{}", err(&o));
    // stderr closed before decompute writes to it.
    let mut c = run_cmd(d.path(), &["--", "sh", "-c", "exit 3"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    drop(c.stderr.take());
    assert_eq!(c.wait().expect("wait").code(), Some(3));
    // stderr full.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = run_cmd(d.path(), &["--", "sh", "-c", "exit 3"])
        .stderr(full)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(3));
    // --json - into a closed stdout.
    let mut c = run_cmd(
        d.path(),
        &["--quiet", "--json", "-", "--", "sh", "-c", "exit 3"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    drop(c.stdout.take());
    assert_eq!(c.wait().expect("wait").code(), Some(3));
}

// 12. Untrusted text: CSV cells cannot be formulas, tags read back, terminals are safe.
#[test]
fn untrusted_text_is_defused() {
    let d = tempfile::tempdir().expect("tmp");
    let o = run_in(
        d.path(),
        &[
            "--quiet",
            "--project",
            "=cmd|' /c calc'!A1",
            "--tag",
            "k=x,y;note=a;b=c",
            "--",
            "sh",
            "-c",
            "true",
            "\u{1b}[2J\nforged line",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let ledger = d.path().join("ledger.sqlite");
    let o = decompute()
        .args(["ledger", "export", "--format", "csv", "--ledger"])
        .arg(&ledger)
        .output()
        .expect("runs");
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
    let t = decompute::csvdata::parse("e.csv", &csv).expect("csv");
    let col = |n: &str| t.column(n).expect("col");
    let row = &t.rows[0].1;
    assert!(row[col("project_name")].starts_with("'="), "{csv}");
    let tags: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&row[col("tags")]).expect("tags are JSON");
    assert_eq!(tags.get("k").map(String::as_str), Some("x,y;note=a;b=c"));
    for cmd in [vec!["list"], vec!["show", "0"]] {
        let mut c = decompute();
        c.arg("ledger").args(&cmd).arg("--ledger").arg(&ledger);
        if cmd[0] == "show" {
            let id = row[col("run_id")].clone();
            c = decompute();
            c.args(["ledger", "show", &id, "--ledger"]).arg(&ledger);
        }
        let o = c.output().expect("runs");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !out.contains('\u{1b}'),
            "{cmd:?}: escapes pass through: {out}"
        );
        assert!(!out.contains("\nforged line"), "{cmd:?}: {out}");
    }
}

// A full disk: the ledger and the report cannot be written, and nothing measured is lost:
// one warning for the ledger, the footprint on stderr, the report on stdout instead.
#[test]
fn a_full_disk_loses_nothing_measured() {
    let d = tempfile::tempdir().expect("tmp");
    let disk = d.path().join("disk");
    std::fs::create_dir_all(&disk).expect("mkdir");
    let Some(_mounted) = TinyDisk::mount(&disk) else {
        eprintln!("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root and must run this test"
        );
        return;
    };
    // Fill it.
    let fill = disk.join("fill");
    let chunk = vec![0u8; 4096];
    let mut f = std::fs::File::create(&fill).expect("create");
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let report = disk.join("r.json");
    let o = run_cmd(
        d.path(),
        &[
            "--sysfs-root",
            "/nonexistent",
            "--ledger",
            disk.join("ledger.sqlite").to_str().expect("u"),
            "--json",
            report.to_str().expect("u"),
            "--",
            "sh",
            "-c",
            "exit 0",
        ],
    )
    .output()
    .expect("runs");
    let e = err(&o);
    assert_eq!(
        o.status.code(),
        Some(125),
        "the report was not written: {e}"
    );
    assert!(e.contains("not recorded") || e.contains("ledger"), "{e}");
    assert!(e.contains("total IT"), "the footprint is printed: {e}");
    let r: Value = serde_json::from_slice(&o.stdout).expect("the report is on stdout");
    assert_eq!(r["schema"], "decompute.run/1");
    assert!(!report.exists() || std::fs::metadata(&report).expect("m").len() == 0);
}

/// A tmpfs of 256 KiB mounted for one test, unmounted when dropped.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(dir: &Path) -> Option<TinyDisk> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| TinyDisk(dir.to_path_buf()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

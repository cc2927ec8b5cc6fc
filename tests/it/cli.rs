//! The real `decompute` binary, end to end on this machine: exit codes, signal forwarding,
//! the JSON report, attribution across a process tree, and one-line errors for bad input.

use crate::support::{decompute, fixtures};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `decompute run` with no RAPL (an empty sysfs root), so the model path is deterministic.
fn run_modelled(args: &[&str]) -> (Output, tempfile::TempDir) {
    let empty = tempfile::tempdir().expect("tmp");
    let out = decompute()
        .arg("run")
        .arg("--sysfs-root")
        .arg(empty.path())
        .arg("--no-gpu")
        .args(args)
        .output()
        .expect("runs");
    (out, empty)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn exit_codes_follow_the_command() {
    let dir = tempfile::tempdir().expect("tmp");
    let plain = dir.path().join("not-executable");
    std::fs::write(&plain, "echo hi\n").expect("write");
    let plain = plain.to_str().expect("utf8").to_string();
    let cases: [(&[&str], i32); 5] = [
        (&["--", "true"], 0),
        (&["--", "sh", "-c", "exit 3"], 3),
        (&["--", "sh", "-c", "kill -9 $$"], 137),
        (&["--", "decompute-no-such-command-xyz"], 127),
        (&["--", &plain], 126),
    ];
    for (args, code) in cases {
        let (o, _t) = run_modelled(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    }
    let (o, _t) = run_modelled(&["--", "decompute-no-such-command-xyz"]);
    let err = stderr(&o);
    assert!(
        err.contains("command not found: 'decompute-no-such-command-xyz'") && err.contains("PATH"),
        "{err}"
    );
    let (o, _t) = run_modelled(&["--", &plain]);
    assert!(stderr(&o).contains("chmod +x"), "{}", stderr(&o));
}

#[test]
fn short_command_still_gets_a_footprint_and_a_versioned_report() {
    let (o, _t) = run_modelled(&["--zone", "FR", "--json", "-", "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json_of(&o);
    assert_eq!(r["schema"], "decompute.run/1");
    assert_eq!(r["command"], serde_json::json!(["true"]));
    assert_eq!(r["exit_code"], 0);
    assert!(r["started_at"].as_str().expect("started").ends_with('Z'));
    assert!(r["duration_s"].as_f64().expect("duration") < 1.0);
    let comps = r["components"].as_array().expect("components");
    assert_eq!(
        comps.len(),
        2,
        "cpu and dram on a machine without GPU: {comps:?}"
    );
    for c in comps {
        assert_eq!(c["method"], "modelled");
        assert!(c["low_j"].as_f64() <= c["workload_energy_j"].as_f64());
        assert!(c["high_j"].as_f64() >= c["workload_energy_j"].as_f64());
    }
    let e = &r["energy_j"];
    let (host, work, rest) = (
        e["host"].as_f64().expect("h"),
        e["workload"].as_f64().expect("w"),
        e["rest"].as_f64().expect("r"),
    );
    assert!(work > 0.0, "never a zero footprint");
    assert!(close(host, work + rest), "host {host} != {work} + {rest}");
    let f = &r["factors"];
    assert_eq!(f["zone"], "FRA");
    assert_eq!(f["grid_gco2_per_kwh"]["value"], 56.0);
    assert_eq!(f["grid_gco2_per_kwh"]["year"], 2023);
    assert!(f["grid_gco2_per_kwh"]["source"]
        .as_str()
        .expect("src")
        .contains("Our World in Data"));
    assert!(f["ewif_l_per_kwh"]["source"]
        .as_str()
        .expect("src")
        .contains("WRI"));
    let facility = r["facility_energy_j"]["value"].as_f64().expect("fac");
    assert!(close(facility, work), "PUE 1.0 by default");
    assert!(close(
        r["carbon_g"]["value"].as_f64().expect("c"),
        facility / 3.6e6 * 56.0
    ));
    let water = r["water_l"]["value"].as_f64().expect("w");
    assert!(close(
        water,
        facility / 3.6e6 * f["ewif_l_per_kwh"]["value"].as_f64().expect("ewif")
    ));
    let samples = r["samples"].as_array().expect("samples");
    assert_eq!(
        samples.len(),
        1,
        "the final partial interval is the only one"
    );
    assert!(samples[0]["cpu_w"].as_f64().expect("cpu_w") > 0.0);
}

#[test]
fn cpu_heavy_tree_is_credited_and_children_are_followed() {
    // Two grandchildren do a fixed amount of work while the shell waits, and each writes
    // what it used itself (the shell's `times`): what the tree must hold at least.
    let d = tempfile::tempdir().expect("tmp");
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let burn = |out: &std::path::Path| {
        format!(
            "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; times > {}",
            out.display()
        )
    };
    let script = format!("sh -c '{}' & sh -c '{}' & wait", burn(&a), burn(&b));
    let (o, _t) = run_modelled(&[
        "--interval",
        "200ms",
        "--pue",
        "1.5",
        "--json",
        "-",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json_of(&o);
    assert!(
        r["processes_followed"].as_u64().expect("n") >= 3,
        "{}",
        r["processes_followed"]
    );
    let cpu = &r["components"][0];
    assert_eq!(cpu["component"], "cpu");
    let (host, work) = (
        cpu["host_energy_j"].as_f64().expect("h"),
        cpu["workload_energy_j"].as_f64().expect("w"),
    );
    assert!(work > 0.0 && work <= host, "{work} of {host}");
    let cpu_s = r["cpu_time_s"].as_f64().expect("cpu time");
    let burners_s = [&a, &b]
        .map(|f| shell_times_s(&std::fs::read_to_string(f).expect("times")))
        .iter()
        .sum::<f64>();
    assert!(burners_s > 0.1, "the burners burned: {burners_s} s");
    assert!(
        cpu_s >= burners_s - 0.02,
        "two burners said they used {burners_s} s of CPU, the tree holds {cpu_s} s"
    );
    // Rows follow each other over the whole run, never more than one per 200 ms interval
    // plus the closing partial one (how many a loaded machine manages is its own).
    let duration = r["duration_s"].as_f64().expect("d");
    let rows = r["samples"].as_array().expect("s").len();
    assert!(
        rows >= 1 && rows <= (duration / 0.2).floor() as usize + 1,
        "sampled every 200 ms: {rows} rows in {duration} s"
    );
    let end = r["samples"]
        .as_array()
        .expect("s")
        .iter()
        .try_fold(0.0, |end, s| {
            let (t, dt) = (s["t_s"].as_f64()?, s["dt_s"].as_f64()?);
            ((t - dt - end).abs() < 1e-6).then_some(t)
        });
    assert!(
        end.is_some_and(|e| (e - duration).abs() < 0.25),
        "rows one after another up to the end of the {duration} s run: {}",
        r["samples"]
    );
    assert!(close(
        r["facility_energy_j"]["value"].as_f64().expect("f"),
        1.5 * r["energy_j"]["workload"].as_f64().expect("w")
    ));
}

#[test]
fn daemonised_descendant_is_still_followed() {
    // The inner shell double-forks a burner (some tenths of a second of CPU) into its own
    // session and exits at once; the command waits for the burner's flag file. The burner
    // writes what it used itself (the shell's `times`) before the flag: the same process's
    // CPU time, so the check does not depend on how fast this machine is or how busy (the
    // same loop run apart took 0.37 s and 0.54 s on a loaded two-core machine).
    let d = tempfile::tempdir().expect("tmp");
    let flag = d.path().join("done");
    let times = d.path().join("times");
    let burn = format!(
        "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; times > {}; touch {}",
        times.display(),
        flag.display()
    );
    let script = format!(
        "(setsid sh -c '{burn}' &); while [ ! -f {} ]; do sleep 0.05; done; sleep 0.1",
        flag.display()
    );
    let (o, _t) = run_modelled(&[
        "--interval",
        "100ms",
        "--json",
        "-",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let r = json_of(&o);
    let own = std::fs::read_to_string(&times).expect("the burner's times");
    let burner_s = shell_times_s(&own);
    assert!(burner_s > 0.05, "the burner burned: {own}");
    // Without following the daemon the tree would have used a few milliseconds; followed,
    // it holds all the burner used (to the shell's 10 ms resolution) and a little more.
    let cpu_s = r["cpu_time_s"].as_f64().expect("cpu time");
    assert!(
        cpu_s >= burner_s - 0.02,
        "the daemon's CPU time must count: {cpu_s} s, the burner said it used {burner_s} s"
    );
    assert!(r["processes_followed"].as_u64().expect("n") >= 3);
}

/// The shell's own user and system time from the first line of `times` (`0m0.270000s
/// 0m0.004000s` in dash, `0m0.270s 0m0.004s` in bash), in seconds.
fn shell_times_s(text: &str) -> f64 {
    let line = text.lines().next().expect("a line");
    line.split_whitespace()
        .map(|t| {
            let (m, s) = t
                .trim_end_matches('s')
                .split_once('m')
                .expect("minutes and seconds");
            m.parse::<f64>().expect("m") * 60.0 + s.parse::<f64>().expect("s")
        })
        .sum()
}

#[test]
fn sigterm_is_forwarded_and_the_footprint_still_recorded() {
    let dir = tempfile::tempdir().expect("tmp");
    let report = dir.path().join("r.json");
    let empty = tempfile::tempdir().expect("tmp");
    let child = decompute()
        .args(["run", "--no-gpu", "--interval", "100ms", "--json"])
        .arg(&report)
        .arg("--sysfs-root")
        .arg(empty.path())
        .args([
            "--",
            "sh",
            "-c",
            "trap 'exit 7' TERM; while :; do sleep 0.05; done",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: kill(2) on a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let o = child.wait_with_output().expect("wait");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
        .expect("json");
    assert_eq!(r["interrupted_by"], "SIGTERM");
    assert_eq!(r["exit_code"], 7);
    assert!(r["energy_j"]["workload"].as_f64().expect("w") > 0.0);
    assert!(
        stderr(&o).contains("exit 7 after SIGTERM"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sigint_to_a_command_that_does_not_trap_it() {
    let empty = tempfile::tempdir().expect("tmp");
    let child = decompute()
        .args(["run", "--no-gpu", "--quiet", "--json", "-", "--sysfs-root"])
        .arg(empty.path())
        .args(["--", "sleep", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(130));
    let r = json_of(&o);
    assert_eq!(r["killed_by_signal"], 2);
    assert_eq!(r["interrupted_by"], "SIGINT");
}

#[test]
fn measured_path_with_a_fake_powercap_tree_gives_exact_joules() {
    let s = fixtures::intel_two_sockets();
    let p0 = s.energy_path("intel-rapl:0");
    let p1 = s.energy_path("intel-rapl:1");
    let d0 = s.energy_path("intel-rapl:0:2");
    let psys = s.energy_path("intel-rapl:2");
    // The command itself advances the counters: +12 J and +8 J on the packages, +2 J DRAM.
    let script = format!(
        "echo 13000000 > {}; echo 11000000 > {}; echo 4000000 > {}; echo 99000000 > {}",
        p0.display(),
        p1.display(),
        d0.display(),
        psys.display()
    );
    let o = decompute()
        .args(["run", "--no-gpu", "--json", "-", "--sysfs-root"])
        .arg(s.root())
        .args(["--", "sh", "-c", &script])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json_of(&o);
    let cpu = &r["components"][0];
    assert_eq!(cpu["method"], "measured");
    assert_eq!(cpu["source"], "rapl:package-0+package-1");
    assert!(
        close(cpu["host_energy_j"].as_f64().expect("cpu"), 20.0),
        "{cpu}"
    );
    assert_eq!(cpu["low_j"], cpu["workload_energy_j"]);
    let dram = &r["components"][1];
    assert_eq!(dram["method"], "measured");
    assert!(
        close(dram["host_energy_j"].as_f64().expect("dram"), 2.0),
        "{dram}"
    );
    assert_eq!(r["modelled_share"], 0.0);
}

#[test]
fn unreadable_energy_uj_falls_back_to_the_model_with_the_fixes() {
    let s = fixtures::amd_package_only();
    let path = s.energy_path("intel-rapl:0");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let mut cmd;
    // Kept alive until the command has run (the copy of the binary lives in it).
    let bin_dir = tempfile::tempdir().expect("tmp");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // The build may sit under a directory nobody cannot enter (CI clones anywhere):
        // run a copy from a world-readable place.
        let bin = bin_dir.path().join("decompute");
        std::fs::copy(env!("CARGO_BIN_EXE_decompute"), &bin).expect("copy binary");
        std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod dir");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod bin");
        // Root reads anything: run as nobody, as a real user would be.
        for p in [
            s.root().to_path_buf(),
            s.root().join("devices/virtual/powercap"),
        ] {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
        }
        cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        cmd.arg(&bin);
    } else {
        cmd = decompute();
    }
    let o = cmd
        .args(["detect", "--no-gpu", "--sysfs-root"])
        .arg(s.root())
        .current_dir("/")
        .env_remove("DECOMPUTE_SYSFS_ROOT")
        .env("XDG_CONFIG_HOME", "/nonexistent-decompute-test-config")
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{}", out, stderr(&o));
    assert!(
        out.contains("permission denied") && out.contains("--cpu-tdp") && out.contains("udev"),
        "{out}"
    );
    assert!(out.contains("cpu:  modelled"), "{out}");
}

#[test]
fn detect_reports_measured_zones_and_what_was_skipped() {
    let s = fixtures::intel_two_sockets();
    let o = decompute()
        .args(["detect", "--no-gpu", "--sysfs-root"])
        .arg(s.root())
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("cpu:  measured (rapl:package-0+package-1)"),
        "{out}"
    );
    assert!(out.contains("dram: measured (rapl:dram+dram)"), "{out}");
    assert!(
        out.contains("core/uncore") && out.contains("psys") && out.contains("intel-rapl-mmio:0"),
        "{out}"
    );
}

#[test]
fn bad_input_gets_one_line_errors_before_anything_runs() {
    let marker = tempfile::tempdir().expect("tmp");
    let ran = marker.path().join("ran");
    let touch = format!("touch {}", ran.display());
    let bad_data = tempfile::tempdir().expect("tmp");
    std::fs::write(
        bad_data.path().join("grid_intensity.csv"),
        "zone,alpha2,name,g_co2e_per_kwh,year,basis\nFRA,FR,France,x,2023,country\n",
    )
    .expect("write");
    let bad_dir = bad_data.path().to_str().expect("utf8").to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--zone", "FRN"], "FRA (France)"),
        (vec!["--zone", "Atlantis"], "ISO 3166"),
        (vec!["--pue", "0.5"], "1.0 to 4.0"),
        (vec!["--pue", "cloudy"], "hyperscale"),
        (vec!["--interval", "10ms"], "100ms–60s"),
        (vec!["--interval", "soon"], "500ms"),
        (vec!["--cpu-tdp", "-5"], "--cpu-tdp"),
        (vec!["--grid-intensity", "-1"], "--grid-intensity"),
        (vec!["--data-dir", &bad_dir], "grid_intensity.csv: line 2"),
        (vec!["--json", "/nonexistent-dir/x.json"], "does not exist"),
    ];
    for (args, needle) in cases {
        let (o, _t) = run_modelled(&[args.as_slice(), &["--", "sh", "-c", &touch]].concat());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            err.lines().filter(|l| l.contains("error")).count() == 1,
            "{args:?}: one error line: {err}"
        );
        assert!(!ran.exists(), "{args:?}: the command must not run");
    }
    let (o, _t) = run_modelled(&[]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn quiet_prints_no_summary_and_summary_labels_methods() {
    let (o, _t) = run_modelled(&["--quiet", "--", "true"]);
    assert!(!stderr(&o).contains("total IT"), "{}", stderr(&o));
    let (o, _t) = run_modelled(&["--zone", "DE", "--explain", "--", "true"]);
    let err = stderr(&o);
    assert!(
        err.contains("modelled") && err.contains("carbon") && err.contains("water"),
        "{err}"
    );
    assert!(
        err.contains("Carbon = facility kWh × grid intensity") && err.contains("380.9"),
        "{err}"
    );
    assert!(err.contains("Green Algorithms"), "{err}");
}

#[test]
fn factors_lists_sources_and_zones() {
    let o = decompute().args(["factors", "NO"]).output().expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("zone NOR (Norway)")
            && out.contains("Our World in Data")
            && out.contains("WRI"),
        "{out}"
    );
    let o = decompute()
        .args(["factors", "--zones"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&o.stdout).lines().count() > 200);
    let o = decompute().args(["factors", "XX"]).output().expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown zone 'XX'"));
}

#[test]
fn json_report_lands_in_a_file_atomically() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("out.json");
    let (o, _t) = run_modelled(&["--quiet", "--json", p.to_str().expect("utf8"), "--", "true"]);
    assert!(o.status.success());
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
    assert_eq!(r["schema"], "decompute.run/1");
    assert!(
        std::fs::read_dir(dir.path()).expect("ls").count() == 1,
        "no temp file left"
    );
    assert!(Path::new(&p).is_file());
}

#[test]
fn config_file_sets_defaults_and_flags_win() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("decompute/config.toml");
    std::fs::create_dir_all(cfg.parent().expect("parent")).expect("mkdir");
    std::fs::write(&cfg, "zone = \"NO\"\npue = \"hyperscale\"\n").expect("write");
    let o = decompute()
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["factors"])
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("zone NOR") && out.contains("1.1"), "{out}");
    let o = decompute()
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["factors", "--zone", "FR"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&o.stdout).contains("zone FRA"));
    let o = decompute()
        .env("XDG_CONFIG_HOME", dir.path())
        .env("DECOMPUTE_ZONE", "DE")
        .args(["factors"])
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("zone DEU"),
        "the environment beats the file"
    );
    std::fs::write(&cfg, "zone = \"NO\"\npeu = 1.2\n").expect("write");
    let o = decompute()
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["factors"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("config.toml") && err.contains("line 2") && err.contains("peu"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Flag errors show a user's value escaped and cut (#25 point 15); giving no subcommand
/// prints clap's help in its own layout (#26), not crushed into one line.
#[test]
fn flag_errors_escape_and_cut_values_and_bare_commands_show_help() {
    let o = decompute()
        .args(["run", "--project", "\u{1b}]0;PWNED\u{7}", "--", "true"])
        .output()
        .expect("runs");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!e.contains('\u{1b}') && !e.contains('\u{7}'), "{e:?}");
    assert!(e.contains("\\x1b]0;PWNED\\x07"), "{e}");
    let long = "9".repeat(20_000);
    let o = decompute()
        .args(["run", "--budget", &format!("energy={long}J"), "--", "true"])
        .output()
        .expect("runs");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.len() < 1_000 && e.contains("more characters]"), "{e}");
    for args in [vec![], vec!["ledger"], vec!["estimate"]] {
        let o = decompute().args(&args).output().expect("runs");
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            e.lines().count() > 3 && e.contains("\nUsage: "),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn one_licence_everywhere_with_its_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let licence_of = |file: &str| {
        let text = std::fs::read_to_string(root.join(file)).expect("manifest");
        text.lines()
            .find(|l| l.starts_with("license"))
            .and_then(|l| l.split('"').nth(1))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{file} names no licence"))
    };
    for file in ["python/Cargo.toml", "python/pyproject.toml"] {
        assert_eq!(licence_of(file), licence_of("Cargo.toml"), "{file}");
    }
    assert_eq!(licence_of("Cargo.toml"), "MIT OR Apache-2.0");
    for f in ["LICENSE-MIT", "LICENSE-APACHE"] {
        assert!(root.join(f).is_file(), "{f}");
    }
}

#[test]
fn the_virtual_machine_warning_is_said_once_per_machine_and_kept_in_every_report() {
    let guest = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.contains(" hypervisor"))
        .unwrap_or(false);
    let d = tempfile::tempdir().expect("tmp");
    let run = || {
        decompute()
            .env("XDG_STATE_HOME", d.path().join("state"))
            .args([
                "run",
                "--no-gpu",
                "--no-ledger",
                "--json",
                "-",
                "--",
                "true",
            ])
            .output()
            .expect("runs")
    };
    let said = |o: &Output| stderr(o).contains("warning: virtual machine");
    let noted = |o: &Output| {
        json_of(o)["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n.as_str().unwrap_or("").starts_with("virtual machine"))
    };
    let (first, second) = (run(), run());
    assert!(first.status.success() && second.status.success());
    // On a guest (as CI's machine is): said the first time only, noted in both reports.
    assert_eq!(said(&first), guest, "{}", stderr(&first));
    assert!(!said(&second), "{}", stderr(&second));
    assert_eq!(noted(&first), guest);
    assert_eq!(noted(&second), guest, "the report keeps it every time");
}

#[test]
fn help_groups_hold_only_their_own_options() {
    let groups = [
        (
            "Conversion factors:",
            &[
                "--zone",
                "--pue",
                "--grid-intensity",
                "--wue",
                "--ewif",
                "--data-dir",
                "--config",
            ][..],
        ),
        (
            "Machine:",
            &["--sysfs-root", "--procfs-root", "--cpu-tdp", "--no-gpu"][..],
        ),
    ];
    for cmd in [
        &["run"][..],
        &["detect"],
        &["serve"],
        &["factors"],
        &["estimate", "train"],
        &["estimate", "infer"],
        &["estimate", "site"],
    ] {
        let o = decompute().args(cmd).arg("--help").output().expect("help");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut heading = String::new();
        for line in text.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                heading = line.to_string();
                continue;
            }
            let Some(flag) = line.split_whitespace().find(|w| w.starts_with("--")) else {
                continue;
            };
            if !line.trim_start().starts_with('-') {
                continue;
            }
            let flag = flag.trim_end_matches(',');
            for (h, own) in groups {
                if heading == h {
                    assert!(own.contains(&flag), "{cmd:?}: {flag} is listed under {h}");
                }
            }
        }
    }
}

#[test]
fn every_option_and_argument_says_what_it_is() {
    let cmds: [&[&str]; 9] = [
        &["run"],
        &["ledger", "list"],
        &["ledger", "summary"],
        &["ledger", "export"],
        &["ledger", "import"],
        &["report"],
        &["budget", "status"],
        &["serve"],
        &["slurm", "govern"],
    ];
    for cmd in cmds {
        let o = decompute().args(cmd).arg("--help").output().expect("help");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim();
            let is_item = t.starts_with('-') || (t.starts_with('<') && l.starts_with("  "));
            // An option alone on its line must have its description on the next (clap puts
            // long help there), indented deeper.
            let bare = t.split_whitespace().all(|w| {
                w.starts_with('-') || w.starts_with('<') || w.ends_with(',') || w.ends_with('>')
            });
            if is_item && bare {
                let next = lines.get(i + 1).copied().unwrap_or("");
                let deeper = next.len() - next.trim_start().len() > l.len() - t.len();
                assert!(
                    deeper && !next.trim().is_empty(),
                    "{cmd:?}: '{t}' has no help"
                );
            }
        }
    }
}

/// Options that mean one thing in every command (#26): a duration needs its unit (as a
/// budget's amount does), and `slurm govern` takes the grid thresholds `run` takes, with
/// `run`'s default minimum time in a state.
#[test]
fn options_mean_the_same_in_every_command() {
    let d = tempfile::tempdir().expect("tmp");
    let fc = d.path().join("f.csv");
    std::fs::write(&fc, "time,intensity\n2026-12-05T00:00:00Z,100\n").expect("w");
    let fc = format!("csv:{}", fc.display());
    for args in [
        vec!["when", "--grid", &fc, "--duration", "3"],
        vec!["run", "--interval", "1", "--", "true"],
        vec!["slurm", "govern", "--once", "--every", "30"],
    ] {
        let o = decompute()
            .current_dir(d.path())
            .args(&args)
            .output()
            .expect("run");
        assert!(!o.status.success(), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("has no unit; write") && e.lines().count() == 1,
            "{args:?}: {e}"
        );
    }
    let o = decompute()
        .current_dir(d.path())
        .args(["slurm", "govern", "--once", "--grid", "file:/nonexistent"])
        .output()
        .expect("govern");
    assert!(
        stderr(&o).contains("--grid needs a threshold: add --pause-above G (gCO2e/kWh) or --pause-at-stress N (0–3)"),
        "{}",
        stderr(&o)
    );
    for cmd in [&["run"][..], &["slurm", "govern"][..]] {
        let o = decompute().args(cmd).arg("--help").output().expect("help");
        let h = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(h.contains("--pause-at-stress <N>"), "{cmd:?}");
        let min_state = h
            .lines()
            .find(|l| l.contains("--min-state"))
            .expect("--min-state");
        assert!(min_state.contains("[default: 1m]"), "{cmd:?}: {min_state}");
    }
}

/// `--json` is a switch to stdout in every command (#26); `--json-file FILE` writes a file;
/// `run`'s and `estimate`'s old `--json FILE` still writes FILE and says what to write.
#[test]
fn json_is_a_switch_everywhere_and_a_file_has_its_own_flag() {
    let d = tempfile::tempdir().expect("tmp");
    let go = |args: &[&str]| {
        decompute()
            .current_dir(d.path())
            .args([
                "run",
                "--no-ledger",
                "--no-gpu",
                "--quiet",
                "--sysfs-root",
                "/nonexistent",
            ])
            .args(args)
            .output()
            .expect("run")
    };
    let o = go(&["--json", "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["schema"], "decompute.run/1");
    let o = go(&["--json-file", "r.json", "--", "true"]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("deprecated"));
    let r: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("r.json")).expect("r")).expect("json");
    assert_eq!(r["schema"], "decompute.run/1");
    let o = go(&["--json", "old.json", "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.path().join("old.json").exists());
    assert!(
        stderr(&o).contains("--json FILE is deprecated; write --json-file old.json"),
        "{}",
        stderr(&o)
    );
    let o = go(&["--json", "a.json", "--json-file", "b.json", "--", "true"]);
    // A usage error of `run` is decompute's own (125), never the command's.
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with '--json-file <FILE>'"));
    let est = |args: &[&str]| {
        decompute()
            .current_dir(d.path())
            .args(["estimate", "train", "--flop", "1e21", "--hardware", "h100"])
            .args(args)
            .output()
            .expect("estimate")
    };
    let o = est(&["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["schema"], "decompute.estimate/1");
    let o = est(&["--json-file", "e.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(d.path().join("e.json"))
        .expect("e")
        .contains("decompute.estimate/1"));
}

/// The README's tour runs as written, line by line, with `decompute` on `PATH` as the
/// README's install line puts it, in an empty directory with a fresh data home (#26).
#[test]
fn the_readme_tour_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let tour = readme
        .split_once("<!-- tour -->\n```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the README's tour block");
    let bin = Path::new(env!("CARGO_BIN_EXE_decompute"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let d = tempfile::tempdir().expect("tmp");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for line in tour.lines().filter(|l| !l.trim().is_empty()) {
        let o = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(d.path())
            .env("PATH", &path)
            .env("XDG_DATA_HOME", d.path().join("data"))
            .env("XDG_STATE_HOME", d.path().join("state"))
            .env("XDG_CONFIG_HOME", d.path().join("config"))
            .env_remove("DECOMPUTE_LEDGER")
            .stdin(Stdio::null())
            .output()
            .expect("sh");
        assert!(o.status.success(), "`{line}`: {}", stderr(&o));
        ran += 1;
    }
    assert!(ran >= 8, "{ran} lines");
    assert!(d.path().join("report.html").exists());
}

//! A `cmd:` signal: runs `sh -c COMMAND` in a process group of its own, drains what it
//! prints as it comes (any amount, so a chatty command never blocks on a full pipe), and
//! reads the result (a number, decompute's JSON object, or a forecast document) when it
//! exits. On timeout, and after every run, the whole process group is killed, so nothing it
//! started is left behind. Its process group is registered with [`Helpers`] so it is never
//! mistaken for the workload, and a run loop that reaps it first hands its status over.

use super::Reading;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Most output kept from a signal command (the rest is read and dropped).
pub const OUTPUT_LIMIT: usize = 1 << 20;

pub use crate::child::Helpers;

/// Runs the command and parses what it printed at time `now`.
pub fn run(
    command: &str,
    now: f64,
    timeout: Duration,
    helpers: &Helpers,
    stop: &dyn Fn() -> bool,
) -> Result<Reading, String> {
    let (status, out) = execute(command, timeout, helpers, stop)?;
    if status != 0 {
        return Err(format!("grid command '{command}' failed (exit {status})"));
    }
    super::parse_any(&out, now).map_err(|e| format!("grid command '{command}': {e}"))
}

fn wait_status(raw: i32) -> i32 {
    if libc::WIFEXITED(raw) {
        libc::WEXITSTATUS(raw)
    } else {
        128 + libc::WTERMSIG(raw)
    }
}

/// Runs `sh -c command`; returns its exit status and (up to [`OUTPUT_LIMIT`] of) its output.
pub fn execute(
    command: &str,
    timeout: Duration,
    helpers: &Helpers,
    stop: &dyn Fn() -> bool,
) -> Result<(i32, String), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run grid command '{command}': {e}"))?;
    let pid = child.id() as i32;
    if let Ok(mut g) = helpers.pgids.lock() {
        g.push(pid);
    }
    let drain = child.stdout.take().map(|mut o| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match o.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    });
    let start = Instant::now();
    let kill_group = || {
        // SAFETY: kill(2) on a process group this function created.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    };
    let result: Result<i32, String> = loop {
        let mut raw = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
        if r == pid {
            break Ok(wait_status(raw));
        }
        if r < 0 {
            // Reaped by a run loop (the monitor reaps every child): it left the status.
            let got = helpers
                .statuses
                .lock()
                .ok()
                .and_then(|mut m| m.remove(&pid));
            if let Some(raw) = got {
                break Ok(wait_status(raw));
            }
        }
        if start.elapsed() >= timeout || stop() {
            kill_group();
            let err = Err(format!(
                "grid command '{command}' took longer than {} s; killed with its process group",
                timeout.as_secs_f64()
            ));
            // Reap it (or let the run loop do so).
            for _ in 0..100 {
                // SAFETY: as above.
                let r = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
                if r == pid
                    || (r < 0
                        && helpers
                            .statuses
                            .lock()
                            .ok()
                            .and_then(|mut m| m.remove(&pid))
                            .is_some())
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            break err;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Whatever it left running in its group goes too.
    kill_group();
    drop(child);
    let out = drain.and_then(|d| d.join().ok()).unwrap_or_default();
    if let Ok(mut g) = helpers.pgids.lock() {
        g.retain(|x| *x != pid);
    }
    result.map(|st| (st, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run1(c: &str, t: Duration) -> Result<Reading, String> {
        run(c, 0.0, t, &Helpers::default(), &|| false)
    }

    #[test]
    fn reads_output_and_times_out() {
        assert_eq!(
            run1("echo 123", Duration::from_secs(5))
                .expect("ok")
                .intensity,
            Some(123.0)
        );
        assert_eq!(
            run1("echo '{\"stress\": 3}'", Duration::from_secs(5))
                .expect("ok")
                .stress,
            Some(3)
        );
        assert!(run1("exit 1", Duration::from_secs(5))
            .expect_err("fails")
            .contains("failed"));
        let t = Instant::now();
        assert!(run1("sleep 5", Duration::from_millis(200))
            .expect_err("slow")
            .contains("longer"));
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn large_output_does_not_block_and_children_are_killed() {
        // 200 KB of output before the value: a pipe holds 64 KB, so an undrained one blocks.
        let t = Instant::now();
        let (st, out) = execute(
            "head -c 200000 /dev/zero | tr '\\0' ' '; echo 42",
            Duration::from_secs(10),
            &Helpers::default(),
            &|| false,
        )
        .expect("runs");
        assert_eq!(st, 0);
        assert!(out.trim_end().ends_with("42"));
        assert!(t.elapsed() < Duration::from_secs(5));
        // A background child of the command dies with its group.
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join("alive");
        let cmd = format!("(sleep 0.3; touch {}) & echo 1", f.display());
        execute(&cmd, Duration::from_secs(5), &Helpers::default(), &|| false).expect("runs");
        std::thread::sleep(Duration::from_millis(600));
        assert!(!f.exists(), "the command's child was killed with its group");
    }
}

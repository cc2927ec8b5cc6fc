//! A `cmd:` signal: runs `sh -c COMMAND` with a timeout and reads what it prints (a number
//! or the JSON object of a `file:` signal). Run to completion inside one tick of the monitor,
//! so it is never mistaken for part of the workload's process tree.

use super::Reading;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn run(command: &str, timeout: Duration) -> Result<Reading, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run grid command '{command}': {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut o) = child.stdout.take() {
                    use std::io::Read;
                    let _ = o.read_to_string(&mut out);
                }
                if !status.success() {
                    return Err(format!("grid command '{command}' failed ({status})"));
                }
                return super::file::parse(&out)
                    .map_err(|e| format!("grid command '{command}': {e}"));
            }
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "grid command '{command}' took longer than {} s; killed",
                    timeout.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("grid command '{command}': {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_output_and_times_out() {
        assert_eq!(
            run("echo 123", Duration::from_secs(5))
                .expect("ok")
                .intensity,
            Some(123.0)
        );
        assert_eq!(
            run("echo '{\"stress\": 3}'", Duration::from_secs(5))
                .expect("ok")
                .stress,
            Some(3)
        );
        assert!(run("exit 1", Duration::from_secs(5))
            .expect_err("fails")
            .contains("failed"));
        let t = Instant::now();
        assert!(run("sleep 5", Duration::from_millis(200))
            .expect_err("slow")
            .contains("longer"));
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}

//! Slurm's jobs as its own commands print them: `squeue --json` (the OpenAPI document of
//! Slurm 21.08 and later; both the 22.05 shapes, plain numbers and strings, and the 23.02+
//! shapes, `{"set", "number"}` and state lists) or, for older clusters, `squeue --format`
//! with the fields in [`FORMAT`]. Parsers take the text and never panic.

use crate::ledger::Status;
use serde_json::Value;

/// A job's state, as far as decompute acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Pending,
    Running,
    Suspended,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    Other(String),
}

impl State {
    pub fn parse(s: &str) -> State {
        match s.trim().to_ascii_uppercase().as_str() {
            "PENDING" | "PD" => State::Pending,
            "RUNNING" | "R" | "COMPLETING" | "CG" => State::Running,
            "SUSPENDED" | "S" => State::Suspended,
            "COMPLETED" | "CD" => State::Completed,
            "FAILED" | "F" | "NODE_FAIL" | "NF" | "OUT_OF_MEMORY" | "OOM" | "BOOT_FAIL" | "BF" => {
                State::Failed
            }
            "CANCELLED" | "CA" | "PREEMPTED" | "PR" | "DEADLINE" | "DL" => State::Cancelled,
            "TIMEOUT" | "TO" => State::Timeout,
            other => State::Other(other.to_string()),
        }
    }

    /// Whether the job has ended.
    pub fn ended(&self) -> bool {
        matches!(
            self,
            State::Completed | State::Failed | State::Cancelled | State::Timeout
        )
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: u64,
    pub name: String,
    pub user: String,
    pub account: String,
    pub partition: String,
    pub state: State,
    /// The exit code of the batch script (not the wait status), once ended.
    pub exit_code: Option<i32>,
    pub comment: String,
    pub reason: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub cwd: String,
    pub nodes: String,
}

impl Job {
    /// The ledger status its end stands for (`None` while it runs).
    pub fn status(&self) -> Option<Status> {
        match self.state {
            State::Completed => Some(if self.exit_code.unwrap_or(0) == 0 {
                Status::Finished
            } else {
                Status::Failed
            }),
            State::Failed => Some(Status::Failed),
            State::Cancelled => Some(Status::Cancelled),
            State::Timeout => Some(Status::TimedOut),
            _ => None,
        }
    }

    /// Flexible: its comment says `decompute:flexible`, or its partition is one of these.
    pub fn flexible(&self, partitions: &[String]) -> bool {
        self.comment.contains("decompute:flexible") || partitions.contains(&self.partition)
    }
}

/// A number as 22.05 prints it (`17`) or as 23.02+ does (`{"set": true, "number": 17}`).
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::Object(o) => {
            if o.get("set").and_then(Value::as_bool) == Some(false)
                || o.get("infinite").and_then(Value::as_bool) == Some(true)
            {
                return None;
            }
            o.get("number").and_then(number)
        }
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.chars().filter(|c| !c.is_control()).collect(),
        Value::Array(a) => a.first().map(text).unwrap_or_default(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The exit code: 22.05 gives the wait status (`768` is exit 3), 23.02+ an object with
/// `return_code`.
fn exit_code(v: &Value) -> Option<i32> {
    match v {
        Value::Object(o) => o.get("return_code").and_then(number).map(|c| c as i32),
        other => number(other).map(|w| if w > 255 { (w >> 8) as i32 } else { w as i32 }),
    }
}

/// `squeue --json` text.
pub fn parse_json(t: &str) -> Result<Vec<Job>, String> {
    let v: Value = serde_json::from_str(t)
        .map_err(|e| format!("squeue --json printed something that is not JSON ({e})"))?;
    if let Some(errs) = v.get("errors").and_then(Value::as_array) {
        if let Some(e) = errs.first() {
            let msg = e
                .get("description")
                .or_else(|| e.get("error"))
                .map(text)
                .unwrap_or_else(|| e.to_string());
            return Err(format!("squeue --json reported an error: {msg}"));
        }
    }
    let jobs = v
        .get("jobs")
        .and_then(Value::as_array)
        .ok_or("squeue --json printed no \"jobs\" list")?;
    let mut out = Vec::with_capacity(jobs.len());
    for j in jobs {
        let Some(id) = j
            .get("job_id")
            .and_then(number)
            .and_then(|n| u64::try_from(n).ok())
        else {
            continue;
        };
        let g = |k: &str| j.get(k).map(text).unwrap_or_default();
        out.push(Job {
            id,
            name: g("name"),
            user: g("user_name"),
            account: g("account"),
            partition: g("partition"),
            state: State::parse(&g("job_state")),
            exit_code: j.get("exit_code").and_then(exit_code),
            comment: g("comment"),
            reason: g("state_reason"),
            start_time: j.get("start_time").and_then(number).filter(|t| *t > 0),
            end_time: j.get("end_time").and_then(number).filter(|t| *t > 0),
            cwd: g("current_working_directory"),
            nodes: g("nodes"),
        });
    }
    Ok(out)
}

/// The `squeue --format` for clusters without `--json`: the comment last, as it may hold
/// the separator.
pub const FORMAT: &str = "%i|%j|%u|%a|%P|%T|%r|%Z|%N|%k";

/// What the cluster controller reads of each job: id, account, partition, state, reason and,
/// last, the comment. The comment is the only text a user writes freely, so a `|` in it
/// cannot shift the fields before it (a job's name, also the user's, is not asked for).
pub const QUEUE_FORMAT: &str = "%i|%a|%P|%T|%r|%k";

/// `squeue --noheader --format QUEUE_FORMAT` text.
pub fn parse_queue(t: &str) -> Result<Vec<Job>, String> {
    each_line(
        t,
        QUEUE_FORMAT,
        |[id, account, partition, state, reason, comment], n| {
            listed(job_id(id, n)?, [account, partition, state, reason, comment])
        },
    )
}

/// A job from the fields both formats have: account, partition, state, reason, comment.
fn listed(id: u64, [account, partition, state, reason, comment]: [&str; 5]) -> Result<Job, String> {
    Ok(Job {
        id,
        name: String::new(),
        user: String::new(),
        account: clean(account),
        partition: clean(partition),
        state: State::parse(state),
        exit_code: None,
        comment: clean(comment),
        reason: clean(reason),
        start_time: None,
        end_time: None,
        cwd: String::new(),
        nodes: String::new(),
    })
}

/// The jobs of `squeue --noheader --format FORMAT` text whose fields are `N`, split on `|`
/// (the last keeps any `|` of its own), each made by `job` from its fields and line number.
fn each_line<const N: usize>(
    t: &str,
    format: &str,
    job: impl Fn([&str; N], usize) -> Result<Job, String>,
) -> Result<Vec<Job>, String> {
    let mut out = Vec::new();
    for (n, line) in t.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.splitn(N, '|').collect();
        let fields: [&str; N] = f.as_slice().try_into().map_err(|_| {
            format!(
                "squeue line {}: {} fields where {format} gives {N}",
                n + 1,
                f.len()
            )
        })?;
        out.push(job(fields, n)?);
    }
    Ok(out)
}

/// A job id as squeue prints it (`17`, or `17_3` for an array task: its job).
fn job_id(field: &str, line: usize) -> Result<u64, String> {
    field
        .trim()
        .split('_')
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|_| {
            format!(
                "squeue line {}: '{}' is not a job id",
                line + 1,
                crate::term::escape(field)
            )
        })
}

/// A field as squeue prints it, without control characters; "(null)" is unset.
fn clean(s: &str) -> String {
    let c: String = s.chars().filter(|c| !c.is_control()).collect();
    if c == "(null)" {
        String::new()
    } else {
        c
    }
}

/// `squeue --noheader --format FORMAT` text.
pub fn parse_format(t: &str) -> Result<Vec<Job>, String> {
    each_line(
        t,
        FORMAT,
        |[id, name, user, account, partition, state, reason, cwd, nodes, comment], n| {
            Ok(Job {
                name: clean(name),
                user: clean(user),
                cwd: clean(cwd),
                nodes: clean(nodes),
                ..listed(job_id(id, n)?, [account, partition, state, reason, comment])?
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controllers_queue_reads_a_comment_with_pipes_whole() {
        let t = "17|acme|flex|RUNNING|None|decompute:flexible | a|b\n18_3|(null)|debug|PENDING|Priority|\n";
        let jobs = parse_queue(t).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].comment, "decompute:flexible | a|b");
        assert_eq!(
            (jobs[0].account.as_str(), jobs[0].state.clone()),
            ("acme", State::Running)
        );
        assert_eq!((jobs[1].id, jobs[1].account.as_str()), (18, ""));
        assert!(parse_queue("x|a|p|RUNNING|r|c\n")
            .unwrap_err()
            .contains("not a job id"));
        assert!(parse_queue("1|a|p\n").unwrap_err().contains("3 fields"));
    }

    /// As Slurm 22.05.8's `squeue --json` printed it (fields trimmed to those read).
    const V38: &str = r#"{"meta":{"plugin":{"type":"openapi\/v0.0.38"}},"errors":[],"jobs":[
      {"job_id":1,"name":"busy","user_name":"root","account":"acme","partition":"flex","job_state":"COMPLETED","exit_code":0,"comment":"decompute:flexible","state_reason":"None","start_time":1795953471,"end_time":1795953475,"current_working_directory":"\/tmp\/sl","nodes":"vm"},
      {"job_id":3,"name":"fail","user_name":"ana","account":"","partition":"debug","job_state":"FAILED","exit_code":768,"comment":"","state_reason":"NonZeroExitCode","start_time":1795953480,"end_time":1795953481,"current_working_directory":"\/home\/ana","nodes":"vm"},
      {"job_id":4,"name":"slow","user_name":"ana","account":"acme","partition":"debug","job_state":"CANCELLED","exit_code":0,"comment":"","state_reason":"None","start_time":0,"end_time":0,"current_working_directory":"\/home\/ana","nodes":""}]}"#;

    /// The 23.02+ shapes.
    const V40: &str = r#"{"jobs":[{"job_id":7,"name":"x","user_name":"u","account":"a","partition":"p","job_state":["TIMEOUT"],"exit_code":{"status":["SIGNALED"],"return_code":{"set":true,"infinite":false,"number":0}},"comment":"","state_reason":"TimeLimit","start_time":{"set":true,"number":10},"end_time":{"set":false,"number":0},"current_working_directory":"/","nodes":"n1"}]}"#;

    #[test]
    fn both_json_shapes_give_the_same_jobs() {
        let j = parse_json(V38).expect("22.05");
        assert_eq!(j.len(), 3);
        assert_eq!(j[0].status(), Some(Status::Finished));
        assert!(j[0].flexible(&[]));
        assert_eq!(j[1].exit_code, Some(3));
        assert_eq!(j[1].status(), Some(Status::Failed));
        assert_eq!(j[2].status(), Some(Status::Cancelled));
        assert_eq!(j[2].start_time, None);
        let k = parse_json(V40).expect("23.02");
        assert_eq!(k[0].state, State::Timeout);
        assert_eq!(k[0].status(), Some(Status::TimedOut));
        assert_eq!((k[0].start_time, k[0].end_time), (Some(10), None));
        assert!(k[0].flexible(&["p".to_string()]));
        assert!(
            parse_json("{\"errors\":[{\"error\":\"nope\"}],\"jobs\":[]}")
                .expect_err("error")
                .contains("nope")
        );
    }

    #[test]
    fn the_format_fallback_keeps_a_comment_with_the_separator() {
        let j = parse_format(
            "12|train|ana|acme|gpu|RUNNING|None|/home/ana|n1|decompute:flexible|x|y\n",
        )
        .expect("parse");
        assert_eq!(j[0].id, 12);
        assert_eq!(j[0].comment, "decompute:flexible|x|y");
        assert_eq!(j[0].state, State::Running);
        assert!(parse_format("12|short\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn squeue_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse_json(&s);
            let _ = parse_format(&s);
        }
    }
}

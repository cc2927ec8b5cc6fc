//! The agent's HTTP side, small and synchronous. One thread accepts connections and reads
//! every request head at once with `poll(2)`, each under a deadline on the *whole* head (a
//! client sending a byte a second gets no more time than one sending nothing), up to a
//! bounded number of connections (the oldest is dropped first); only complete requests go
//! to a few workers, who answer and close. So neither slow clients (slowloris) nor hundreds
//! of idle connections can occupy the workers and starve a scrape. It answers
//! `GET /metrics` (Prometheus text 0.0.4, or OpenMetrics when the scraper's `Accept` asks
//! for it) and `GET /healthz`, and nothing else (404; 405 for other methods; 400 for what is
//! not HTTP). Nothing here waits for the sampling thread, and on stop it returns within a
//! second whatever clients are attached.
//!
//! Hand-written rather than an async server crate: it is ~250 lines over `poll(2)`, the
//! agent answers two paths, and a runtime would more than double the agent's build and size
//! for behaviour this loop already bounds (tested with slowloris and idle floods).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request head accepted.
pub const MAX_HEAD: usize = 8 << 10;
/// Workers answering requests at once.
pub const WORKERS: usize = 4;
/// Time a client has to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// Time an answer may take to send, in all.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);
/// Connections waiting for their head at once; beyond it the oldest is dropped.
pub const MAX_PENDING: usize = 1024;

/// A parsed request: what the agent needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub accept: String,
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Arc<String>,
}

impl Response {
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: Arc::new(body.to_string()),
        }
    }
}

/// Parses a request head (up to the blank line). Never panics on any bytes.
pub fn parse(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    let mut parts = first.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    let mut accept = String::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("accept") {
                accept = v.trim().to_string();
            }
        }
    }
    Some(Request {
        method: method.to_string(),
        path,
        accept,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Whether a head is complete (ends with a blank line).
fn complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n")
}

/// Sends `bytes` within `WRITE_DEADLINE` in all, however slowly the client reads.
fn send(s: &mut TcpStream, bytes: &[u8]) {
    let end = Instant::now() + WRITE_DEADLINE;
    let _ = s.set_nodelay(true);
    let mut rest = bytes;
    while !rest.is_empty() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_write_timeout(Some(left)).is_err() {
            return;
        }
        match s.write(rest) {
            Ok(0) | Err(_) => return,
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
        }
    }
}

fn plain(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

/// Answers a complete request head.
fn answer(mut s: TcpStream, head: &[u8], handler: &(dyn Fn(&Request) -> Response + Send + Sync)) {
    let _ = s.set_nonblocking(false);
    let resp = match parse(head) {
        Some(r) if r.method == "GET" || r.method == "HEAD" => {
            let mut resp = handler(&r);
            if r.method == "HEAD" {
                resp.body = Arc::new(String::new());
            }
            resp
        }
        Some(_) => Response::text(405, "only GET\n"),
        None => Response::text(400, "not an HTTP request\n"),
    };
    let header = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    // One write of the whole answer, without Nagle's delay.
    let mut out = Vec::with_capacity(header.len() + resp.body.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(resp.body.as_bytes());
    send(&mut s, &out);
}

/// A connection whose request head is still coming.
struct Pending {
    stream: TcpStream,
    head: Vec<u8>,
    deadline: Instant,
}

/// What reading a pending connection came to.
enum Progress {
    More,
    Done,
    Closed,
    TooLarge,
}

fn read_some(p: &mut Pending) -> Progress {
    let mut buf = [0u8; 2048];
    loop {
        match p.stream.read(&mut buf) {
            Ok(0) => return Progress::Closed,
            Ok(n) => {
                p.head.extend_from_slice(buf.get(..n).unwrap_or_default());
                if complete(&p.head) {
                    return Progress::Done;
                }
                if p.head.len() > MAX_HEAD {
                    return Progress::TooLarge;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Progress::More,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Progress::Closed,
        }
    }
}

/// Serves until `stop` is set; returns within a second of it.
pub fn serve(
    listener: TcpListener,
    handler: Arc<dyn Fn(&Request) -> Response + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    type Job = (TcpStream, Vec<u8>);
    let (tx, rx): (SyncSender<Job>, Receiver<Job>) = sync_channel(64);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..WORKERS {
        let rx = rx.clone();
        let h = handler.clone();
        // Not joined at stop: an answer in flight ends by its own deadline, and nothing a
        // worker holds needs saving.
        std::thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || loop {
                let next = rx.lock().ok().and_then(|r| r.recv().ok());
                match next {
                    Some((s, head)) => answer(s, &head, h.as_ref()),
                    None => break,
                }
            })?;
    }
    let lfd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let mut pending: std::collections::VecDeque<Pending> = std::collections::VecDeque::new();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        // Sleep until a connection or a head's bytes come, the first deadline passes, or a
        // quarter second (to see `stop`): no busy polling while idle.
        let wait = pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(250))
            .min(Duration::from_millis(250));
        let mut fds: Vec<libc::pollfd> = std::iter::once(lfd)
            .chain(
                pending
                    .iter()
                    .map(|p| std::os::fd::AsRawFd::as_raw_fd(&p.stream)),
            )
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = crate::ticker::poll_timeout_ms(wait);
        let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a valid array of `nfds` pollfds for the call's duration.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), nfds, ms) };
        if ready < 0 {
            continue;
        }
        // Heads that came (in the order the connections did), then the new connections.
        let mut keep = std::collections::VecDeque::with_capacity(pending.len());
        for (mut p, fd) in pending.drain(..).zip(fds.iter().skip(1)) {
            let state = if fd.revents != 0 {
                read_some(&mut p)
            } else {
                Progress::More
            };
            match state {
                Progress::Done => {
                    if let Err(std::sync::mpsc::TrySendError::Full((mut s, _))) =
                        tx.try_send((p.stream, p.head))
                    {
                        // All workers busy and the queue full: say so rather than pile up.
                        let _ = s.write(&plain(503, "busy\n"));
                    }
                }
                Progress::TooLarge => {
                    let _ = p.stream.write(&plain(400, "request head too large\n"));
                }
                Progress::Closed => {}
                Progress::More if Instant::now() >= p.deadline => {
                    let _ = p.stream.write(&plain(408, "request head too slow\n"));
                }
                Progress::More => keep.push_back(p),
            }
        }
        pending = keep;
        if fds.first().is_some_and(|f| f.revents != 0) {
            for _ in 0..256 {
                match listener.accept() {
                    Ok((s, _)) => {
                        if s.set_nonblocking(true).is_err() {
                            continue;
                        }
                        if pending.len() >= MAX_PENDING {
                            // Make room: the connection that has waited longest goes.
                            pending.pop_front();
                        }
                        pending.push_back(Pending {
                            stream: s,
                            head: Vec::with_capacity(512),
                            deadline: Instant::now() + HEAD_DEADLINE,
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // Out of descriptors or a transient error: let go for a moment.
                        std::thread::sleep(Duration::from_millis(20));
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_and_refuses_the_rest() {
        let r = parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n")
            .expect("request");
        assert_eq!(r.path, "/metrics");
        assert!(r.accept.contains("openmetrics"));
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"GET\r\n\r\n",
            b"GET / SPDY/3\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse(&b);
        }
    }
}

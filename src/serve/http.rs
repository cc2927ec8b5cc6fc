//! The agent's HTTP side, small and synchronous: an accepting thread and a few workers.
//! It answers `GET /metrics` (Prometheus text 0.0.4, or OpenMetrics when the scraper's
//! `Accept` asks for it) and `GET /healthz`, and nothing else (404; 405 for other methods;
//! 400 for what is not HTTP). Requests are bounded (8 KiB of head, 2 s to send it), a slow
//! or malformed client occupies one worker at most, and a full queue turns new connections
//! away: nothing here can delay the sampling thread, which it never waits for.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request head accepted.
pub const MAX_HEAD: usize = 8 << 10;
/// Workers answering requests at once.
pub const WORKERS: usize = 4;

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
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn answer(mut s: TcpStream, handler: &(dyn Fn(&Request) -> Response + Send + Sync)) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break false,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    break true;
                }
                if head.len() > MAX_HEAD {
                    break false;
                }
            }
        }
    };
    let resp = match (complete, complete.then(|| parse(&head)).flatten()) {
        (true, Some(r)) if r.method == "GET" || r.method == "HEAD" => {
            let mut resp = handler(&r);
            if r.method == "HEAD" {
                resp.body = Arc::new(String::new());
            }
            resp
        }
        (true, Some(_)) => Response::text(405, "only GET\n"),
        _ => Response::text(400, "not an HTTP request\n"),
    };
    let header = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    // One write of the whole answer, without Nagle's delay.
    let _ = s.set_nodelay(true);
    let mut out = Vec::with_capacity(header.len() + resp.body.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(resp.body.as_bytes());
    let _ = s.write_all(&out);
    let _ = s.flush();
}

/// Serves until `stop` is set; returns once in-flight answers are sent.
pub fn serve(
    listener: TcpListener,
    handler: Arc<dyn Fn(&Request) -> Response + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let (tx, rx): (SyncSender<TcpStream>, Receiver<TcpStream>) = sync_channel(64);
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let rx = rx.clone();
        let h = handler.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || loop {
                    let next = rx.lock().ok().and_then(|r| r.recv().ok());
                    match next {
                        Some(s) => answer(s, h.as_ref()),
                        None => break,
                    }
                })?,
        );
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    while !stop.load(Ordering::SeqCst) {
        // Sleep until a connection comes (or a quarter second, to see `stop`): no busy
        // polling while idle.
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the listener's descriptor.
        if unsafe { libc::poll(&mut pfd, 1, 250) } <= 0 {
            continue;
        }
        match listener.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                // A full queue: turn the connection away rather than pile up.
                if let Err(std::sync::mpsc::TrySendError::Full(s)) = tx.try_send(s) {
                    let mut s = s;
                    let r = Response::text(503, "busy\n");
                    let _ = s.write_all(
                        format!(
                            "HTTP/1.1 503 {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                            reason(503),
                            r.body.len(),
                            r.body
                        )
                        .as_bytes(),
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.join();
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

//! Reads a grid signal on a thread of its own, every interval, and keeps the latest result:
//! a sampling tick only ever takes that value, so a slow command or file never delays a
//! sample or a budget check. The first reading is taken before the run starts, so a signal
//! that cannot be read at all is an error then, not a silent default.

use super::command::Helpers;
use super::{Reading, Signal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One reading, numbered so a tick can tell a new one from the one it already used.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub seq: u64,
    /// When it was read, Unix seconds.
    pub at: f64,
    pub result: Result<Reading, String>,
}

pub struct Reader {
    latest: Arc<Mutex<Option<Latest>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    taken: u64,
}

impl Reader {
    /// Starts reading `signal` every `every`, beginning with `first` (already read).
    pub fn start(
        signal: Signal,
        first: Latest,
        every: Duration,
        timeout: Duration,
        helpers: Helpers,
    ) -> Reader {
        let latest = Arc::new(Mutex::new(Some(first)));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (latest.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("grid-signal".into())
            .spawn(move || {
                let mut seq = 1;
                let mut next = Instant::now() + every;
                while !st.load(Ordering::SeqCst) {
                    // Sleep in small steps so a stop is seen quickly.
                    while Instant::now() < next && !st.load(Ordering::SeqCst) {
                        std::thread::sleep((next - Instant::now()).min(Duration::from_millis(20)));
                    }
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    next = Instant::now() + every;
                    let now = crate::timefmt::now_s();
                    let stopping = || st.load(Ordering::SeqCst);
                    let result = signal.read(now, timeout, &helpers, &stopping);
                    seq += 1;
                    if let Ok(mut g) = l.lock() {
                        *g = Some(Latest {
                            seq,
                            at: now,
                            result,
                        });
                    }
                }
            })
            .ok();
        Reader {
            latest,
            stop,
            handle,
            taken: 0,
        }
    }

    /// The latest reading if it is new since the last call.
    pub fn take_new(&mut self) -> Option<Latest> {
        let l = self.latest.lock().ok()?.clone()?;
        if l.seq > self.taken {
            self.taken = l.seq;
            Some(l)
        } else {
            None
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_command_never_blocks_the_reader_of_the_value() {
        let first = Latest {
            seq: 1,
            at: 0.0,
            result: Ok(Reading {
                intensity: Some(100.0),
                stress: None,
                marginal: false,
            }),
        };
        let mut r = Reader::start(
            Signal::Cmd("sleep 30; echo 5".into()),
            first,
            Duration::from_millis(10),
            Duration::from_secs(60),
            Helpers::default(),
        );
        let t = Instant::now();
        assert_eq!(
            r.take_new()
                .and_then(|l| l.result.ok())
                .and_then(|x| x.intensity),
            Some(100.0)
        );
        assert!(r.take_new().is_none(), "nothing new while the command runs");
        assert!(t.elapsed() < Duration::from_millis(500));
        // Dropping the reader stops the command and its group promptly.
        let t = Instant::now();
        drop(r);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
}

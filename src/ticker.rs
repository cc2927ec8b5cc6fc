//! When the next sample is due, for every driver that samples on an interval (`run`,
//! `serve`, the Python tracker, the Slurm controller). One rule after a stall: a tick that
//! comes late closes an interval of its measured length, and the ticks missed meanwhile are
//! skipped, never replayed in a burst (a burst would close intervals of almost no length and
//! act on them). Pure: the caller passes the time, so tests drive it with a clock they own.

use std::time::{Duration, Instant};

/// The one rule for a sampling interval, for every driver: 100 ms to 60 s (shorter reads
/// the meters faster than they update and costs a core; longer misses what a budget or the
/// grid needs acted on).
pub fn check_interval(d: Duration) -> Result<Duration, String> {
    if d < Duration::from_millis(100) || d > Duration::from_secs(60) {
        return Err(format!(
            "interval {} is outside 100ms–60s; pick e.g. 500ms or 1s",
            crate::units::Seconds(d.as_secs_f64())
        ));
    }
    Ok(d)
}

/// A wait as poll(2)'s timeout: whole milliseconds rounded up (at least 1), so a poll never
/// returns before what it waits for is due. (Rounded down, it woke up to a millisecond
/// early; a loop that then found nothing due waited again, and a deadline measured from
/// that moment slipped: a 1 s time budget ran 2–5 s on a loaded machine.)
pub fn poll_timeout_ms(wait: Duration) -> i32 {
    i32::try_from(wait.as_micros().div_ceil(1000))
        .unwrap_or(i32::MAX)
        .max(1)
}

/// The schedule of one sampling loop.
#[derive(Debug, Clone)]
pub struct Ticker {
    next: Instant,
    interval: Duration,
}

impl Ticker {
    /// A schedule whose first tick is one interval after `start`.
    pub fn new(start: Instant, interval: Duration) -> Ticker {
        Ticker {
            next: start.checked_add(interval).unwrap_or(start),
            interval,
        }
    }

    /// A schedule whose first tick is due at `first` (a loop that acts at once).
    pub fn due_at(first: Instant, interval: Duration) -> Ticker {
        Ticker {
            next: first,
            interval,
        }
    }

    /// How long to wait at `now` before the next tick; `None` when it is due.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        (now < self.next).then(|| self.next - now)
    }

    /// When the next tick is due.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// Whether a tick is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// A tick was taken at `now`: the next is due one interval after the one that was due,
    /// or, when whole intervals were missed, one interval after `now`.
    pub fn fired(&mut self, now: Instant) {
        self.next = self.next.checked_add(self.interval).unwrap_or(now);
        if self.next <= now {
            self.next = now.checked_add(self.interval).unwrap_or(now);
        }
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_poll_timeout_is_never_shorter_than_the_wait() {
        assert_eq!(poll_timeout_ms(Duration::ZERO), 1);
        assert_eq!(poll_timeout_ms(Duration::from_micros(999_999)), 1000);
        assert_eq!(poll_timeout_ms(Duration::from_micros(1_000_001)), 1001);
        assert_eq!(poll_timeout_ms(Duration::from_millis(250)), 250);
        assert_eq!(poll_timeout_ms(Duration::MAX), i32::MAX);
    }

    #[test]
    fn on_time_ticks_keep_their_phase() {
        let t0 = Instant::now();
        let mut t = Ticker::new(t0, 100 * MS);
        assert_eq!(t.wait(t0), Some(100 * MS));
        assert_eq!(t.wait(t0 + 100 * MS), None);
        // Taken 3 ms late: the next is still due at 200 ms, not 203.
        t.fired(t0 + 103 * MS);
        assert_eq!(t.due(), t0 + 200 * MS);
        assert_eq!(t.wait(t0 + 150 * MS), Some(50 * MS));
    }

    #[test]
    fn a_loop_that_acts_at_once_keeps_its_period() {
        let t0 = Instant::now();
        let mut t = Ticker::due_at(t0, 200 * MS);
        assert!(t.is_due(t0));
        // A pass of 50 ms, then the next starts 200 ms after the first.
        t.fired(t0 + 50 * MS);
        assert_eq!(t.due(), t0 + 200 * MS);
        // A pass of 900 ms: the next starts 200 ms after it ended.
        t.fired(t0 + 1_100 * MS);
        assert_eq!(t.due(), t0 + 1_300 * MS);
    }

    #[test]
    fn a_stall_skips_the_missed_ticks_instead_of_bursting() {
        let t0 = Instant::now();
        let mut t = Ticker::new(t0, 100 * MS);
        // The machine stalled for 1 s: one tick now, the next a whole interval later.
        let late = t0 + 1_050 * MS;
        assert!(t.is_due(late));
        t.fired(late);
        assert_eq!(t.due(), late + 100 * MS);
        assert!(!t.is_due(late + 99 * MS));
        // However long the stall, a single late tick is never followed by catch-up ones.
        let mut taken = 0;
        let mut now = late;
        while now < late + 1_000 * MS {
            if t.is_due(now) {
                t.fired(now);
                taken += 1;
            }
            now += MS;
        }
        assert_eq!(taken, 9, "one tick per interval after the stall");
    }
}

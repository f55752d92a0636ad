//! When a failed delivery is tried again: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, then daily for
//! three days, each with ±20% jitter so a receiver that comes back is not hit by every
//! endpoint's backlog in the same second; then it is given up. A scale (tests: 0.001)
//! shortens the whole schedule; a receiver's `Retry-After` can only lengthen a wait.

use std::time::Duration;

const MIN: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// The wait after the n-th failed attempt (index n - 1). After the last, the delivery is given up.
pub const SCHEDULE: [u64; 9] = [
    5,
    5 * MIN,
    30 * MIN,
    2 * HOUR,
    5 * HOUR,
    10 * HOUR,
    DAY,
    DAY,
    DAY,
];

/// A receiver's `Retry-After` is honoured up to this: beyond it the daily retries take over.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(DAY);

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    After(Duration),
    GiveUp,
}

impl Retry {
    /// After `attempts` failed attempts (1 = the first), with `scale` applied, `jitter` in
    /// [0, 1) spread over ±20%, and the receiver's `Retry-After` as a floor.
    pub fn after_failure(
        attempts: u32,
        scale: f64,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Self {
        let Some(&secs) = SCHEDULE.get(attempts.saturating_sub(1) as usize) else {
            return Retry::GiveUp;
        };
        let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        let wait = Duration::from_secs_f64(secs as f64 * scale * factor);
        let floor = retry_after.map_or(Duration::ZERO, |r| r.min(RETRY_AFTER_CAP));
        Retry::After(wait.max(floor))
    }
}

/// A `Retry-After` header's value: delay-seconds, or an HTTP date measured from `now`.
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_then_give_up() {
        let at = |n, jitter| Retry::after_failure(n, 1.0, jitter, None);
        assert_eq!(at(1, 0.5), Retry::After(Duration::from_secs(5)));
        assert_eq!(at(2, 0.5), Retry::After(Duration::from_secs(300)));
        assert_eq!(at(9, 0.5), Retry::After(Duration::from_secs(DAY)));
        assert_eq!(at(10, 0.5), Retry::GiveUp);
        assert_eq!(at(1, 0.0), Retry::After(Duration::from_secs(4)));
        assert_eq!(at(1, 1.0), Retry::After(Duration::from_secs(6)));
        let scaled = Retry::after_failure(2, 0.001, 0.5, None);
        assert_eq!(scaled, Retry::After(Duration::from_millis(300)));
    }

    #[test]
    fn retry_after_is_a_floor_with_a_cap() {
        let r = Retry::after_failure(1, 0.001, 0.5, Some(Duration::from_secs(30)));
        assert_eq!(r, Retry::After(Duration::from_secs(30)));
        let r = Retry::after_failure(2, 1.0, 0.5, Some(Duration::from_secs(1)));
        assert_eq!(r, Retry::After(Duration::from_secs(300)));
        let r = Retry::after_failure(1, 1.0, 0.5, Some(Duration::from_secs(365 * DAY)));
        assert_eq!(r, Retry::After(Duration::from_secs(DAY)));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Mon, 07 Dec 2026 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_after("Mon, 07 Dec 2026 09:00:00 GMT", now), None);
        assert_eq!(retry_after("soon", now), None);
    }
}

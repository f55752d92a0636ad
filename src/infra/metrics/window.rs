//! A rolling latency window for `checkout_p99_ms`: six ten-second slots of log-spaced
//! buckets. Recording is a short uncontended lock and one add; a slot is cleared when the
//! clock comes round to it again, so old checkouts fall out without any timer.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

const SLOTS: usize = 6;
const SLOT_SECS: u64 = 10;
/// Eight buckets per doubling (each about 9% wider than the last) from 0.05 ms: 160 of them
/// reach past 30 s, and anything slower counts in the last.
const PER_DOUBLING: f64 = 8.0;
const FIRST_MS: f64 = 0.05;
const BUCKETS: usize = 160;

pub static CHECKOUT: LazyLock<Window> = LazyLock::new(Window::default);

pub struct Window {
    start: Instant,
    slots: Mutex<[Slot; SLOTS]>,
}

#[derive(Clone, Copy)]
struct Slot {
    /// Which ten seconds since `start` these counts are for.
    epoch: u64,
    counts: [u32; BUCKETS],
}

impl Default for Window {
    fn default() -> Self {
        let empty = Slot {
            epoch: u64::MAX,
            counts: [0; BUCKETS],
        };
        Self {
            start: Instant::now(),
            slots: Mutex::new([empty; SLOTS]),
        }
    }
}

/// The bucket whose upper bound is the first at or above `ms`.
fn bucket(ms: f64) -> usize {
    let i = (PER_DOUBLING * (ms / FIRST_MS).log2()).ceil();
    if i.is_nan() || i < 0.0 {
        0
    } else {
        (i as usize).min(BUCKETS - 1)
    }
}

fn upper_ms(bucket: usize) -> f64 {
    FIRST_MS * (bucket as f64 / PER_DOUBLING).exp2()
}

impl Window {
    fn epoch(&self) -> u64 {
        self.start.elapsed().as_secs() / SLOT_SECS
    }

    pub fn record(&self, took: Duration) {
        self.record_in(self.epoch(), took);
    }

    fn record_in(&self, epoch: u64, took: Duration) {
        let b = bucket(took.as_secs_f64() * 1000.0);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Slot {
                epoch,
                counts: [0; BUCKETS],
            };
        }
        slot.counts[b] = slot.counts[b].saturating_add(1);
    }

    /// The `q` quantile (0..=1) of the current slot and the five before it, as the upper
    /// bound of the bucket it falls in.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile_in(self.epoch(), q)
    }

    fn quantile_in(&self, epoch: u64, q: f64) -> Option<f64> {
        let mut sum = [0u64; BUCKETS];
        {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let recent = slots
                .iter()
                .filter(|s| s.epoch <= epoch && epoch - s.epoch < SLOTS as u64);
            for slot in recent {
                for (total, &n) in sum.iter_mut().zip(&slot.counts) {
                    *total += u64::from(n);
                }
            }
        }
        let total: u64 = sum.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        let at = sum.iter().position(|&n| {
            seen += n;
            seen >= rank
        })?;
        Some(upper_ms(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values_within_ten_percent() {
        for ms in [0.05, 0.3, 1.0, 12.5, 250.0, 4000.0] {
            let up = upper_ms(bucket(ms));
            assert!(up >= ms * 0.999 && up <= ms * 1.1, "{ms} -> {up}");
        }
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(1e9), BUCKETS - 1);
    }

    #[test]
    fn p99_of_a_hundred_checkouts_is_the_slowest_but_one() {
        let w = Window::default();
        assert_eq!(w.quantile_ms(0.99), None);
        for ms in 1..=100 {
            w.record(Duration::from_millis(ms));
        }
        let p99 = w.quantile_ms(0.99).unwrap();
        assert!((99.0..=99.0 * 1.1).contains(&p99), "{p99}");
        let p50 = w.quantile_ms(0.5).unwrap();
        assert!((50.0..=55.0).contains(&p50), "{p50}");
    }

    #[test]
    fn checkouts_older_than_a_minute_no_longer_count() {
        let w = Window::default();
        w.record_in(1, Duration::from_secs(5));
        w.record_in(2, Duration::from_millis(1));
        // Seventy seconds in (epoch 7): epoch 1 is a minute old, epoch 2 is not.
        assert_eq!(w.quantile_in(7, 0.99), Some(upper_ms(bucket(1.0))));
        // Epoch 7 takes over epoch 1's slot, clearing it.
        w.record_in(7, Duration::from_millis(2));
        assert_eq!(w.quantile_in(7, 0.99), Some(upper_ms(bucket(2.0))));
        assert_eq!(w.quantile_in(1, 0.99), None, "the 5 s checkout was cleared");
    }
}

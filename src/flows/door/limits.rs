//! Per-client request rates: a flood from one address is refused before it costs Redis.
//!
//! Two keyed GCRA limiters (governor), one per class of route, keyed by `ClientKey`. They are
//! per process by nature: behind N instances a client gets N times the rate; the places cap
//! in Redis is the cross-instance limit. Keys of clients that went quiet are swept by
//! `tasks::limits`, so memory follows recent clients, not every client ever seen.

use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::core::client::ClientKey;
pub use crate::core::config::Class;
use crate::core::config::RateLimits;

/// How often idle keys are dropped (`tasks::limits`). Memory holds the clients seen in about
/// this long.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

type Keyed = DefaultKeyedRateLimiter<ClientKey>;

pub struct Limiters {
    /// None: the class is off (its rate was configured as 0).
    writes: Option<Keyed>,
    reads: Option<Keyed>,
}

fn limiter(per_sec: f64, burst: u32) -> Option<Keyed> {
    if per_sec <= 0.0 {
        return None;
    }
    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / per_sec))?
        .allow_burst(std::num::NonZeroU32::new(burst.max(1))?);
    Some(RateLimiter::keyed(quota))
}

impl Limiters {
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            writes: limiter(limits.write_per_sec, limits.write_burst),
            reads: limiter(limits.read_per_sec, limits.read_burst),
        }
    }

    fn of(&self, class: Class) -> Option<&Keyed> {
        match class {
            Class::Write => self.writes.as_ref(),
            Class::Read => self.reads.as_ref(),
        }
    }

    /// Spends one request of `client`'s budget in `class`; Err is how long until the next one
    /// would be allowed.
    pub fn check(&self, class: Class, client: &ClientKey) -> Result<(), Duration> {
        let Some(limiter) = self.of(class) else {
            return Ok(());
        };
        limiter
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// Clients held in memory, both classes together.
    pub fn len(&self) -> usize {
        [Class::Write, Class::Read]
            .into_iter()
            .filter_map(|c| self.of(c))
            .map(|l| l.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every client whose budget is full again (it would be treated as new anyway) and
    /// gives the freed table space back.
    pub fn forget_idle(&self) {
        for l in [&self.writes, &self.reads].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_refusal_with_a_whole_second_wait() {
        let l = Limiters::new(&RateLimits {
            write_per_sec: 1.0 / 3600.0,
            write_burst: 3,
            read_per_sec: 0.0,
            read_burst: 1,
        });
        let a = ClientKey::of([10, 0, 0, 1].into());
        let b = ClientKey::of([10, 0, 0, 2].into());
        for _ in 0..3 {
            assert!(l.check(Class::Write, &a).is_ok());
        }
        let wait = l.check(Class::Write, &a).unwrap_err();
        assert!(wait > Duration::from_secs(3000), "{wait:?}");
        assert!(l.check(Class::Write, &b).is_ok(), "another client");
        assert!(l.check(Class::Read, &a).is_ok(), "reads are off");
        assert_eq!(l.len(), 2);
        // Both clients spent budget an hour's refill will not give back yet: both stay.
        l.forget_idle();
        assert_eq!(l.len(), 2);
    }
}

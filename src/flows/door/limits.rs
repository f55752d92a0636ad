//! Per-client request rates: a flood from one address is refused before it costs Redis.
//!
//! Keyed GCRA limiters (governor), per class of route, keyed by `ClientKey`, and for IPv6 a
//! second one keyed by the client's wider network (`WideLimits`). They are
//! per process by nature: behind N instances a client gets N times the rate; the places cap
//! in Redis is the cross-instance limit. Keys of clients that went quiet are swept by
//! `tasks::limits`, so memory follows recent clients, not every client ever seen.

use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::core::client::ClientKey;
pub use crate::core::config::Class;
use crate::core::config::{RateLimits, WideLimits};

/// How often idle keys are dropped (`tasks::limits`). Memory holds the clients seen in about
/// this long.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

type Keyed = DefaultKeyedRateLimiter<ClientKey>;

pub struct Limiters {
    writes: ClassLimits,
    reads: ClassLimits,
    wide_prefix: u8,
}

/// One class's limiters. None: the class is off (its rate was configured as 0).
struct ClassLimits {
    /// Per client.
    each: Option<Keyed>,
    /// Per wider IPv6 network (`WideLimits`): `share` times the client's quota.
    wide: Option<Keyed>,
}

fn limiter(per_sec: f64, burst: u32) -> Option<Keyed> {
    if per_sec <= 0.0 {
        return None;
    }
    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / per_sec))?
        .allow_burst(std::num::NonZeroU32::new(burst.max(1))?);
    Some(RateLimiter::keyed(quota))
}

impl ClassLimits {
    fn new(per_sec: f64, burst: u32, wide: &WideLimits) -> Self {
        let share = wide.share.max(1);
        Self {
            each: limiter(per_sec, burst),
            wide: (wide.prefix > 0)
                .then(|| limiter(per_sec * f64::from(share), burst.saturating_mul(share)))
                .flatten(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &Keyed> {
        [&self.each, &self.wide].into_iter().flatten()
    }
}

fn spend(limiter: Option<&Keyed>, key: &ClientKey) -> Result<(), Duration> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
}

impl Limiters {
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            writes: ClassLimits::new(limits.write_per_sec, limits.write_burst, &limits.wide),
            reads: ClassLimits::new(limits.read_per_sec, limits.read_burst, &limits.wide),
            wide_prefix: limits.wide.prefix,
        }
    }

    fn of(&self, class: Class) -> &ClassLimits {
        match class {
            Class::Write => &self.writes,
            Class::Read => &self.reads,
        }
    }

    /// Spends one request of `client`'s budget in `class`, and of its wider IPv6 network's;
    /// Err is how long until the next one would be allowed.
    pub fn check(&self, class: Class, client: &ClientKey) -> Result<(), Duration> {
        let limits = self.of(class);
        spend(limits.each.as_ref(), client)?;
        match client.widen(self.wide_prefix) {
            Some(wide) => spend(limits.wide.as_ref(), &wide),
            None => Ok(()),
        }
    }

    /// Clients held in memory, both classes together.
    pub fn len(&self) -> usize {
        self.limiters().map(|l| l.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn limiters(&self) -> impl Iterator<Item = &Keyed> {
        self.writes.all().chain(self.reads.all())
    }

    /// Drops every client whose budget is full again (it would be treated as new anyway) and
    /// gives the freed table space back.
    pub fn forget_idle(&self) {
        for l in self.limiters() {
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
            wide: WideLimits::default(),
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

    #[test]
    fn rotating_v6_64s_share_their_48s_budget() {
        let limits = RateLimits {
            write_per_sec: 1.0 / 3600.0,
            write_burst: 3,
            read_per_sec: 0.0,
            read_burst: 1,
            wide: WideLimits {
                prefix: 48,
                share: 4,
            },
        };
        let l = Limiters::new(&limits);
        let client =
            |i: u16| ClientKey::of(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, i, 0, 0, 0, 1).into());
        // Four /64s' worth of burst (12 requests) from 300 rotating /64s, then no more.
        let allowed = (0..300)
            .filter(|&i| l.check(Class::Write, &client(i)).is_ok())
            .count();
        assert_eq!(allowed, 12);
        let elsewhere =
            ClientKey::of(std::net::Ipv6Addr::new(0x2001, 0xdb8, 8, 0, 0, 0, 0, 1).into());
        assert!(l.check(Class::Write, &elsewhere).is_ok(), "another /48");

        let off = Limiters::new(&RateLimits {
            wide: WideLimits {
                prefix: 0,
                share: 4,
            },
            ..limits
        });
        let allowed = (0..300)
            .filter(|&i| off.check(Class::Write, &client(i)).is_ok())
            .count();
        assert_eq!(allowed, 300, "each /64 on its own");
    }
}

//! The door's request budgets per client (`WAITROOM_IP_*`).

/// Which budget a route spends: writes create state (a place, an order, a challenge), reads
/// only look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Write,
    Read,
}

/// Requests per second and burst per client, in two classes: writes (join, checkout,
/// challenge) and reads (status, events, sale info). A rate of 0 turns its class off.
///
/// The defaults are sized for one household behind one address: ten devices joining at the
/// opening and retrying once fit in the write burst; thirty tabs polling every 3 s when SSE
/// fails make half the read rate. A script gets a place every half second per instance;
/// the places cap and proof-of-work are what make that expensive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub write_per_sec: f64,
    pub write_burst: u32,
    pub read_per_sec: f64,
    pub read_burst: u32,
    pub wide: WideLimits,
}

/// The aggregate limits of IPv6 networks wider than one client's /64
/// (`WAITROOM_IPV6_AGGREGATE_PREFIX`, `WAITROOM_IPV6_AGGREGATE_SHARE`): all the /64s of one
/// /48 (by default) together get `share` clients' worth of each rate and of a sale's places
/// cap, so a host given a /48 cannot count as 65,536 clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WideLimits {
    /// 1 to 63; 0 turns the aggregate limits off.
    pub prefix: u8,
    pub share: u32,
}

impl Default for WideLimits {
    fn default() -> Self {
        Self {
            prefix: 48,
            share: 16,
        }
    }
}

impl RateLimits {
    /// Reads come in bunches (a page load, a reconnect after a network change): five seconds'
    /// worth may arrive at once.
    pub fn read_burst_for(per_sec: f64) -> u32 {
        (per_sec * 5.0).ceil().clamp(1.0, 5_000_000.0) as u32
    }

    /// No limits at all (tests that send many requests from one address).
    pub fn off() -> Self {
        Self {
            write_per_sec: 0.0,
            read_per_sec: 0.0,
            ..Self::default()
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            write_per_sec: 2.0,
            write_burst: 40,
            read_per_sec: 20.0,
            read_burst: Self::read_burst_for(20.0),
            wide: WideLimits::default(),
        }
    }
}

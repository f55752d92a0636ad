//! Limiter memory: the per-client rate limiters with 1,000,000 distinct clients, measured in
//! this process (the limiters are the server's own type), then after the idle-key sweep the
//! server runs every 10 s. A flood from a million addresses must cost memory while it lasts
//! and no longer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use waitroom::core::config::RateLimits;
use waitroom::flows::door::limits::{Class, Limiters};
use waitroom::flows::door::ClientKey;

use super::say;
use crate::report::Report;

pub const CLIENTS: u32 = 1_000_000;

/// Resident set size of this process, from /proc/self/statm, in MiB.
fn rss_mib() -> Result<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .context("no resident field in /proc/self/statm")?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    Ok(pages * page / (1024.0 * 1024.0))
}

/// The n-th distinct client: half IPv4 addresses, half IPv6 /64s each in a /48 of its own
/// (so the /48 aggregate limit, `WideLimits`, holds a key per client too), as a mixed flood
/// from many networks would be.
fn client(n: u32) -> ClientKey {
    let ip = if n.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    } else {
        let [a, b, c, d] = n.to_be_bytes();
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            u16::from_be_bytes([a, b]),
            u16::from_be_bytes([c, d]),
            0,
            0,
            0,
            0,
            1,
        ))
    };
    ClientKey::of(ip)
}

pub async fn run(r: &mut Report) -> Result<()> {
    let limits = RateLimits::default();
    say(format!(
        "limits: {CLIENTS} distinct clients, one write and one read each (defaults {limits:?})"
    ));
    let before = rss_mib()?;
    let limiters = Limiters::new(&limits);
    for n in 0..CLIENTS {
        let c = client(n);
        // A first request always fits the burst: a refusal here would be a bug.
        if limiters.check(Class::Write, &c).is_err() || limiters.check(Class::Read, &c).is_err() {
            bail!("a fresh client was refused");
        }
    }
    let held = limiters.len();
    let full = rss_mib()? - before;
    // Each client's budget refills within two of its class's periods (1 s at the defaults);
    // then the sweep forgets it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sweep = Duration::ZERO;
    while !limiters.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t = Instant::now();
        limiters.forget_idle();
        sweep = sweep.max(t.elapsed());
    }
    let after = rss_mib()? - before;
    say(format!(
        "limits: {held} keys in {full:.1} MiB ({:.0} B per client); after the sweep {} keys, {after:.1} MiB; slowest sweep {:.1} ms",
        full * 1024.0 * 1024.0 / f64::from(CLIENTS),
        limiters.len(),
        sweep.as_secs_f64() * 1000.0
    ));
    r.set("limiter_clients", f64::from(CLIENTS));
    r.set("limiter_mib", full);
    r.set(
        "limiter_bytes_per_client",
        full * 1024.0 * 1024.0 / f64::from(CLIENTS),
    );
    r.set("limiter_mib_after_sweep", after);
    r.set("limiter_keys_after_sweep", limiters.len() as f64);
    r.set("limiter_sweep_ms", sweep.as_secs_f64() * 1000.0);
    Ok(())
}

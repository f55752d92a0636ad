//! Driving load: closed-loop saturation for a fixed time (the maximum throughput), an open
//! loop at a fixed arrival rate (latency without coordinated omission, open.rs), and a
//! parallel map for the bulk steps (joins, ticket collection, checkouts) that scenarios run
//! before and after measuring.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::api;
use crate::client::{Conn, Req};
use crate::cpu;

mod open;
pub use open::{open_loop, Pool};

/// Latencies in microseconds; sorted by `finish`.
#[derive(Default, Clone)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }

    pub fn finish(mut self) -> Self {
        self.0.sort_unstable();
        self
    }

    /// The p-th percentile (0..=100) in milliseconds; NaN when empty.
    pub fn pct_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1] as f64 / 1000.0
    }
}

/// How hard and how long to push.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub conns: usize,
    /// Excluded from the figures: connections open and caches warm during it.
    pub warmup: Duration,
    pub duration: Duration,
}

#[derive(Default)]
pub struct Outcome {
    /// Answers with the expected status to requests of the measured window (closed loop:
    /// started and finished inside it; open loop: intended inside it).
    pub ok: u64,
    /// Other answers and failures, counted by the same rule as `ok`.
    pub unexpected: u64,
    pub errors: u64,
    pub secs: f64,
    pub lat: Latencies,
    pub sample: Option<String>,
    /// Answers of any status that arrived inside the window: what the server's CPU over the
    /// window is divided by.
    pub answered: u64,
    /// Server CPU per answered request (µs), when its pid was given.
    pub cpu_us: Option<f64>,
    /// Open loop: sends that started more than `LATE_AFTER` after their intended time.
    pub late: u64,
    /// Open loop: connections it needed.
    pub conns: usize,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    /// Answers per second that arrived inside the window, whatever their status.
    pub fn answered_rps(&self) -> f64 {
        self.answered as f64 / self.secs
    }

    pub fn failed(&self) -> u64 {
        self.unexpected + self.errors
    }

    fn count_failure(&mut self, unexpected: bool, what: impl FnOnce() -> String) {
        if unexpected {
            self.unexpected += 1;
        } else {
            self.errors += 1;
        }
        self.sample.get_or_insert_with(what);
    }

    fn merge(&mut self, part: Outcome) {
        self.ok += part.ok;
        self.unexpected += part.unexpected;
        self.errors += part.errors;
        self.answered += part.answered;
        self.lat.extend(part.lat);
        if self.sample.is_none() {
            self.sample = part.sample;
        }
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} ok",
            self.rps(),
            self.lat.pct_ms(50.0),
            self.lat.pct_ms(99.0),
            self.ok
        );
        if let Some(us) = self.cpu_us {
            s += &format!(", server {us:.1} µs CPU each");
        }
        if self.late > 0 {
            s += &format!(", {} sent late", self.late);
        }
        if self.failed() > 0 {
            s += &format!(", {} unexpected, {} errors", self.unexpected, self.errors);
        }
        if let Some(x) = &self.sample {
            s += &format!("; e.g. {x}");
        }
        s + ")"
    }
}

/// Replays `reqs` (round robin) on `load.conns` keep-alive connections as fast as answers come
/// back. Only requests that start after the warm-up and finish before the end count as ok, so
/// the rate is exact for the measured window; failures count if they start inside it. With
/// `pid`, the server's CPU over the window per answer goes to `cpu_us`.
pub async fn saturate_on(
    addr: SocketAddr,
    pid: Option<u32>,
    load: Load,
    reqs: Vec<Req>,
    expect: u16,
) -> Outcome {
    let from = Instant::now() + load.warmup;
    let end = from + load.duration;
    let cpu = cpu::window(pid, from, end);
    let reqs = Arc::new(reqs);
    let workers: Vec<_> = (0..load.conns)
        .map(|w| {
            let reqs = reqs.clone();
            tokio::spawn(async move {
                let mut conn = Conn::new(addr);
                let mut out = Outcome::default();
                // Worker w sends w, w + conns, ...: every request of the list gets its turn.
                let mut k = w;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let r = conn.send(&reqs[k % reqs.len()]).await;
                    k += load.conns;
                    let t1 = Instant::now();
                    let started_in = t0 >= from;
                    // Whenever it started: the CPU of the window went into what it answered.
                    if r.is_ok() && t1 >= from && t1 <= end {
                        out.answered += 1;
                    }
                    match r {
                        Ok(reply) if reply.status == expect => {
                            if started_in && t1 <= end {
                                out.ok += 1;
                                out.lat.push(t1 - t0);
                            }
                        }
                        Ok(reply) if started_in => out.count_failure(true, || reply.describe()),
                        Ok(_) => {}
                        Err(e) => {
                            if started_in {
                                out.count_failure(false, || format!("{e:#}"));
                            }
                            // Do not spin on a refused connection.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Outcome {
        secs: load.duration.as_secs_f64(),
        ..Outcome::default()
    };
    for w in workers {
        let Ok(part) = w.await else { continue };
        total.merge(part);
    }
    total.lat = total.lat.finish();
    total.cpu_us = cpu::us_per_request(cpu.await.ok().flatten(), total.answered);
    total
}

/// `n` shoppers join, spread round robin over `addrs`; in index order (not join order).
pub async fn join_many(
    addrs: &[SocketAddr],
    sale: &str,
    n: usize,
    workers: usize,
) -> Result<Vec<api::Place>> {
    let sale = sale.to_string();
    par_map(addrs, n, workers, move |mut c, _| {
        let sale = sale.clone();
        async move {
            let r = api::join(&mut c, &sale).await;
            (c, r)
        }
    })
    .await
    .into_iter()
    .collect()
}

/// Calls `f(conn, i)` for every i in 0..n on `workers` concurrent tasks. Each task keeps one
/// connection per address and item i goes to `addrs[i % addrs.len()]` (round robin across
/// instances). `f` takes the connection by value and hands it back, so its future owns
/// everything and can run on any thread. Results come back in index order.
pub async fn par_map<T, F, Fut>(
    addrs: &[SocketAddr],
    n: usize,
    workers: usize,
    f: F,
) -> Vec<Result<T>>
where
    T: Send + 'static,
    F: Fn(Conn, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (Conn, Result<T>)> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let tasks: Vec<_> = (0..workers.clamp(1, n.max(1)))
        .map(|_| {
            let (next, f) = (next.clone(), f.clone());
            let mut conns: Vec<Option<Conn>> = addrs.iter().map(|a| Some(Conn::new(*a))).collect();
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let k = i % conns.len();
                    let conn = conns[k].take().expect("connection is put back");
                    let (conn, r) = f(conn, i).await;
                    conns[k] = Some(conn);
                    done.push((i, r));
                }
                done
            })
        })
        .collect();
    let mut slots: Vec<Option<Result<T>>> = (0..n).map(|_| None).collect();
    for t in tasks {
        match t.await {
            Ok(done) => {
                for (i, r) in done {
                    slots[i] = Some(r);
                }
            }
            // A panicking worker is a harness bug; its items report an error below.
            Err(e) => eprintln!("[bench] worker task failed: {e}"),
        }
    }
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err(anyhow::anyhow!("worker task failed"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100u64 {
            l.push(Duration::from_millis(ms));
        }
        let l = l.finish();
        assert_eq!(l.pct_ms(50.0), 50.0);
        assert_eq!(l.pct_ms(99.0), 99.0);
        assert_eq!(l.pct_ms(100.0), 100.0);
        assert!(Latencies::default().pct_ms(99.0).is_nan());
    }
}

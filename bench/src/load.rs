//! Driving load: closed-loop saturation for a fixed time, and a parallel map for the bulk
//! steps (joins, ticket collection, checkouts) that scenarios run before and after measuring.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::client::{Conn, Req};

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
    /// Answers with the expected status, completed inside the measured window.
    pub ok: u64,
    pub unexpected: u64,
    pub errors: u64,
    pub secs: f64,
    pub lat: Latencies,
    pub sample: Option<String>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} ok",
            self.rps(),
            self.lat.pct_ms(50.0),
            self.lat.pct_ms(99.0),
            self.ok
        );
        if self.unexpected + self.errors > 0 {
            s += &format!(", {} unexpected, {} errors", self.unexpected, self.errors);
        }
        if let Some(x) = &self.sample {
            s += &format!("; e.g. {x}");
        }
        s + ")"
    }
}

/// Replays `req` on `load.conns` keep-alive connections as fast as answers come back.
/// Only requests that start after the warm-up and finish before the end count, so the rate
/// is exact for the measured window.
pub async fn saturate(addr: SocketAddr, load: Load, req: Req, expect: u16) -> Outcome {
    let from = Instant::now() + load.warmup;
    let end = from + load.duration;
    let workers: Vec<_> = (0..load.conns)
        .map(|_| {
            let req = req.clone();
            tokio::spawn(async move {
                let mut conn = Conn::new(addr);
                let mut out = Outcome::default();
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let r = conn.send(&req).await;
                    let t1 = Instant::now();
                    let counted = t0 >= from && t1 <= end;
                    match r {
                        Ok(reply) if reply.status == expect => {
                            if counted {
                                out.ok += 1;
                                out.lat.push(t1 - t0);
                            }
                        }
                        Ok(reply) => {
                            out.unexpected += 1;
                            out.sample.get_or_insert_with(|| reply.describe());
                        }
                        Err(e) => {
                            out.errors += 1;
                            out.sample.get_or_insert_with(|| format!("{e:#}"));
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
        total.ok += part.ok;
        total.unexpected += part.unexpected;
        total.errors += part.errors;
        total.lat.extend(part.lat);
        if total.sample.is_none() {
            total.sample = part.sample;
        }
    }
    total.lat = total.lat.finish();
    total
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

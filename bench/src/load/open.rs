//! The open loop: sends at a fixed arrival schedule, send i intended at start + i / rate,
//! whatever the answers do. A closed loop waits for an answer before its next send, so a
//! stalled server also stalls the sends that would have seen the stall (coordinated
//! omission); here every latency runs from the intended send time, so waiting for the
//! generator counts as waiting for the server.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Load, Outcome};
use crate::client::{Conn, Req};
use crate::cpu;

/// Connections the loop may open when none is free (the pool starts at `load.conns`).
const MAX_CONNS: usize = 1_024;
/// A send that starts later than this after its intended time counts as late (the
/// dispatcher's own sleep is good to ~0.1 ms).
pub const LATE_AFTER: Duration = Duration::from_millis(1);
/// The dispatcher sleeps at least this long, so a high rate sends in small bursts instead of
/// waking the thread for every request.
const MIN_NAP: Duration = Duration::from_micros(200);
/// How long after the window answers may still come back; later ones count as errors.
const DRAIN: Duration = Duration::from_secs(10);

/// When send `i` is due: computed from `i`, never accumulated, so it does not drift.
pub fn intended_at(start: Instant, rate_per_sec: f64, i: usize) -> Instant {
    start + Duration::from_secs_f64(i as f64 / rate_per_sec)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Expected,
    Unexpected,
    Failed,
}

/// One send: when it was due, when it actually started and when its answer came.
#[derive(Clone, Copy, Debug)]
struct Sent {
    intended: Instant,
    started: Instant,
    done: Instant,
    kind: Kind,
}

/// The figures of the window [from, end): sends intended inside it count (ok, failures,
/// latency from the intended time, lateness); answers that arrived inside it are what the
/// server's CPU is divided by.
fn tally(sent: &[Sent], from: Instant, end: Instant) -> Outcome {
    let mut out = Outcome {
        secs: (end - from).as_secs_f64(),
        ..Outcome::default()
    };
    for s in sent {
        if s.kind != Kind::Failed && s.done >= from && s.done <= end {
            out.answered += 1;
        }
        if s.intended < from || s.intended >= end {
            continue;
        }
        if s.started - s.intended > LATE_AFTER {
            out.late += 1;
        }
        match s.kind {
            Kind::Expected => {
                out.ok += 1;
                out.lat.push(s.done - s.intended);
            }
            Kind::Unexpected => out.unexpected += 1,
            Kind::Failed => out.errors += 1,
        }
    }
    out.lat = std::mem::take(&mut out.lat).finish();
    out
}

type Back = (Conn, Option<Sent>);

/// A connection back from the pool (with the send it just made), waiting for one or not.
fn take(
    back: &mut mpsc::UnboundedReceiver<Back>,
    wait: bool,
    sent: &mut Vec<Sent>,
    pending: &mut usize,
) -> Option<Conn> {
    let (conn, s) = if wait {
        back.blocking_recv()?
    } else {
        back.try_recv().ok()?
    };
    *pending -= 1;
    sent.extend(s);
    Some(conn)
}

/// Where the loop sends and how many connections it may open.
#[derive(Clone, Copy)]
pub struct Pool {
    addr: SocketAddr,
    max_conns: usize,
}

impl Pool {
    /// Up to `MAX_CONNS` connections to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            max_conns: MAX_CONNS,
        }
    }
}

/// Sends `reqs[i % reqs.len()]` at `rate_per_sec` for `load.warmup + load.duration`, over a
/// pool of keep-alive connections (starting with `load.conns`; another is opened when none is
/// free, up to the pool's cap, then the send waits and counts as late). With `pid`, the server's
/// CPU over the window per answer goes to `cpu_us`.
pub async fn open_loop(
    pool: Pool,
    pid: Option<u32>,
    rate_per_sec: f64,
    load: Load,
    reqs: Vec<Req>,
    expect: u16,
) -> Outcome {
    let Pool { addr, max_conns } = pool;
    let start = Instant::now();
    let from = start + load.warmup;
    let end = from + load.duration;
    let cpu = cpu::window(pid, from, end);
    let (back_tx, mut back) = mpsc::unbounded_channel::<Back>();
    let initial = load.conns.clamp(1, max_conns);
    for _ in 0..initial {
        let _ = back_tx.send((Conn::new(addr), None));
    }
    let sample = Arc::new(OnceLock::new());
    let rt = tokio::runtime::Handle::current();
    // Its own thread: a tokio timer rounds every wake-up to the next millisecond.
    let sample2 = sample.clone();
    let dispatch = tokio::task::spawn_blocking(move || {
        let reqs = Arc::new(reqs);
        let (mut sent, mut opened, mut pending) = (Vec::new(), initial, initial);
        for i in 0.. {
            let due = intended_at(start, rate_per_sec, i);
            if due >= end {
                break;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep((due - now).max(MIN_NAP));
            }
            let conn = match take(&mut back, false, &mut sent, &mut pending) {
                Some(c) => c,
                None if opened < max_conns => {
                    opened += 1;
                    Conn::new(addr)
                }
                None => match take(&mut back, true, &mut sent, &mut pending) {
                    Some(c) => c,
                    None => break,
                },
            };
            pending += 1;
            let (tx, reqs, sample) = (back_tx.clone(), reqs.clone(), sample2.clone());
            rt.spawn(async move {
                let mut conn = conn;
                let started = Instant::now();
                let kind = match conn.send(&reqs[i % reqs.len()]).await {
                    Ok(r) if r.status == expect => Kind::Expected,
                    Ok(r) => {
                        let _ = sample.set(r.describe());
                        Kind::Unexpected
                    }
                    Err(e) => {
                        let _ = sample.set(format!("{e:#}"));
                        Kind::Failed
                    }
                };
                let done = Instant::now();
                let s = Sent {
                    intended: due,
                    started,
                    done,
                    kind,
                };
                let _ = tx.send((conn, Some(s)));
            });
        }
        (sent, opened, pending, back)
    });
    let Ok((mut sent, opened, mut pending, mut back)) = dispatch.await else {
        return Outcome::default();
    };
    let deadline = tokio::time::Instant::from_std(end + DRAIN);
    while pending > 0 {
        match tokio::time::timeout_at(deadline, back.recv()).await {
            Ok(Some((_, s))) => {
                pending -= 1;
                sent.extend(s);
            }
            _ => break,
        }
    }
    let mut out = tally(&sent, from, end);
    if pending > 0 {
        // Connections still out hold one send each that never got an answer.
        out.errors += pending as u64;
        let _ = sample.set(format!(
            "{pending} sends unanswered {DRAIN:?} after the window"
        ));
    }
    out.conns = opened;
    out.sample = sample.get().cloned();
    out.cpu_us = cpu::us_per_request(cpu.await.ok().flatten(), out.answered);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_do_not_drift() {
        let t = Instant::now();
        assert_eq!(
            intended_at(t, 3.0, 3_000_000),
            t + Duration::from_secs(1_000_000)
        );
        assert_eq!(intended_at(t, 1_000.0, 1), t + Duration::from_millis(1));
    }

    /// A stall of 100 ms at 1 send per ms: the sends due during it wait 100 ms down to 1 ms,
    /// so the p99 is the stall, not one slow sample among a thousand.
    #[test]
    fn latency_runs_from_the_intended_time() {
        let t0 = Instant::now();
        let from = t0 + Duration::from_millis(100);
        let ms = |n: u64| Duration::from_millis(n);
        let sent: Vec<Sent> = (0..1_100u64)
            .map(|i| {
                let intended = t0 + ms(i);
                // The server answers nothing between 500 and 600 ms, then everything at once;
                // the generator could only send once a connection came back.
                let stalled = (500..600).contains(&i);
                let started = if stalled { t0 + ms(600) } else { intended };
                let done = started + Duration::from_micros(100);
                let kind = if i == 700 {
                    Kind::Unexpected
                } else {
                    Kind::Expected
                };
                Sent {
                    intended,
                    started,
                    done,
                    kind,
                }
            })
            .collect();
        let out = tally(&sent, from, from + ms(1_000));
        // Sends 100..1100 are the window's; send 700 got a wrong answer.
        assert_eq!(out.ok, 999);
        assert_eq!(out.unexpected, 1);
        assert_eq!(
            out.late, 99,
            "the stalled sends due more than 1 ms before 600 ms"
        );
        assert!(out.lat.pct_ms(99.0) >= 90.0, "{}", out.lat.pct_ms(99.0));
        assert!(out.lat.pct_ms(50.0) < 1.0);
        // Measured from the actual send, every latency would be 0.1 ms.
        assert!(out.lat.pct_ms(90.0) > 0.1);
    }

    /// A keep-alive HTTP/1.1 server that answers `200 ok` at once, except that whatever
    /// arrives during [stall_from, stall_to) waits until stall_to.
    async fn stalling_server(stall_from: Instant, stall_to: Instant) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = sock.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let now = Instant::now();
                            if now >= stall_from && now < stall_to {
                                tokio::time::sleep_until(stall_to.into()).await;
                            }
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if sock.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// 500 sends/s for 1 s, starting with `conns` connections and opening up to `max_conns`,
    /// against a server that answers nothing from 300 to 500 ms: ~100 sends fall into the
    /// stall, waiting 200 ms down to 0, so the p99 from the intended time is ~190 ms.
    async fn through_a_stall(conns: usize, max_conns: usize) -> Outcome {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let addr = stalling_server(t + ms(300), t + ms(500)).await;
        let load = Load {
            conns,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
        };
        let pool = Pool { addr, max_conns };
        let out = open_loop(pool, None, 500.0, load, vec![Req::get("/")], 200).await;
        let what = out.summary();
        assert_eq!((out.ok, out.unexpected, out.errors), (500, 0, 0), "{what}");
        assert!(out.lat.pct_ms(99.0) >= 100.0, "{what}");
        out
    }

    /// The pool grows instead of delaying the next sends (a closed loop would show one slow
    /// answer per connection).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stall_shows_in_the_tail_and_grows_the_pool() {
        let out = through_a_stall(2, MAX_CONNS).await;
        assert!(out.conns > 2, "the pool did not grow: {}", out.conns);
    }

    /// With the pool capped at 4 the sends due during the stall cannot start: they are late,
    /// and their latency still runs from when they were due (from the actual send it would
    /// be the server's 0 ms).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_that_wait_for_a_connection_are_late_and_slow() {
        let out = through_a_stall(4, 4).await;
        assert_eq!(out.conns, 4);
        assert!(out.late >= 90, "{}", out.summary());
    }
}

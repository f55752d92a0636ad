//! Many open streams on one instance: its RSS with them open, then how long after the last
//! unit sells each stream hears `sold_out`.
//!
//! A stream is a raw TCP socket, a hand-written HTTP/1.1 request and a line scanner: a full
//! HTTP client per stream would cost the harness more than the server. Sockets are spread
//! over several loopback source addresses so the ephemeral ports of one address never run out.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::report::Report;

/// Sockets per loopback source address (the ephemeral range is about 28,000 ports).
const PER_SOURCE_IP: usize = 10_000;
/// File descriptors kept free for everything else the harness and the server hold.
const FD_MARGIN: usize = 1_000;
/// Streams being opened at once: enough to keep the server busy, few enough for its backlog.
const OPENING: usize = 256;

#[derive(Default)]
struct Shared {
    opened: AtomicUsize,
    failed: AtomicUsize,
    /// Streams the server ended before they heard `sold_out`.
    ended: AtomicUsize,
    heard: Mutex<Vec<Instant>>,
    first_error: Mutex<Option<String>>,
}

pub async fn run(ctx: &Ctx, r: &mut Report, requested: Option<usize>) -> Result<()> {
    let want = requested.unwrap_or(ctx.sizes.sse_streams);
    // The server inherits our limit, so one number caps both ends.
    let limit = open_files_limit();
    let n = want.min(limit.saturating_sub(FD_MARGIN));
    r.set("sse_streams_requested", want as f64);
    if n < want {
        r.note(format!(
            "sse: the open-files limit is {limit} (ulimit -n; the hard limit cannot be raised \
             here), so one server process can hold only {n} of the {want} streams asked for"
        ));
    }

    let inst = ctx.start("sse").await?;
    let addrs = [inst.addr];
    let sale = ctx.sale_id("sse");
    let mut c = Conn::new(inst.addr);
    // One unit: the first shopper is admitted and holds it, everyone after waits.
    let spec = SaleSpec {
        units: 1,
        rate_per_sec: 1_000,
        ticket_ttl_secs: 600,
        max_per_order: 1,
    };
    api::create_sale(&mut c, &sale, &spec).await?;
    api::admin(&mut c, &sale, "open").await?;
    let buyer = api::join(&mut c, &sale).await?;
    let ticket = api::wait_ticket(&mut c, &sale, &buyer.token, Duration::from_secs(10)).await?;

    say(format!("sse: {n} shoppers join"));
    let joined = api::join_many(&addrs, &sale, n, ctx.sizes.load.conns).await?;
    let rss_idle = inst.rss_mib()?;

    say(format!("sse: opening {n} streams"));
    let shared = Arc::new(Shared::default());
    let (stop, stop_rx) = watch::channel(false);
    let opening = Arc::new(Semaphore::new(OPENING));
    let started = Instant::now();
    for (i, j) in joined.iter().enumerate() {
        let permit = opening.clone().acquire_owned().await?;
        let src = Ipv4Addr::new(127, 0, 0, 1 + (i / PER_SOURCE_IP).min(250) as u8);
        let path = format!("/api/sales/{sale}/events");
        tokio::spawn(stream(
            inst.addr,
            src,
            (path, j.token.clone()),
            permit,
            shared.clone(),
            stop_rx.clone(),
        ));
    }
    drop(joined);
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.opened.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened = shared.opened.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    say(format!(
        "sse: {opened} streams open in {:.1} s, {failed} failed{}",
        started.elapsed().as_secs_f64(),
        first_error(&shared)
    ));
    // Let the first refresh tick pass over every stream before reading RSS.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = inst.rss_mib()?;
    r.set("sse_streams", opened as f64);
    r.set("sse_open_failed", failed as f64);
    r.set("sse_rss_mib", rss);
    r.set("sse_rss_idle_mib", rss_idle);
    if opened > 0 {
        let per_stream_kib = (rss - rss_idle).max(0.0) * 1024.0 / opened as f64;
        r.set("sse_kib_per_stream", per_stream_kib);
        r.set(
            "sse_rss_projected_50k_mib",
            rss_idle + per_stream_kib * 50_000.0 / 1024.0,
        );
    }

    // Sell the last unit; the clock starts before the request leaves.
    let t0 = Instant::now();
    let bought = c.send(&api::checkout_req(&sale, &ticket.ticket)).await?;
    let Some(order) = api::order_id(&bought) else {
        bail!("buying the last unit: {}", bought.describe());
    };
    let deadline = t0 + Duration::from_secs(10);
    while shared.heard.lock().expect("lock").len() + shared.ended.load(Ordering::Relaxed) < opened
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(true);
    let mut ms: Vec<f64> = shared
        .heard
        .lock()
        .expect("lock")
        .iter()
        .map(|t| t.duration_since(t0).as_secs_f64() * 1000.0)
        .collect();
    let heard = ms.len();
    // A stream that never heard it counts as infinitely late.
    ms.resize(opened, f64::INFINITY);
    ms.sort_by(f64::total_cmp);
    let p99 = ms
        .get(((opened as f64 * 0.99).ceil() as usize).max(1) - 1)
        .copied()
        .unwrap_or(f64::NAN);
    let within = ms.iter().filter(|&&x| x <= 1000.0).count() as f64 / opened.max(1) as f64 * 100.0;
    say(format!(
        "sse: RSS {rss_idle:.0} MiB idle, {rss:.0} MiB with {opened} streams; sold_out heard by \
         {heard}/{opened}, p50 {:.0} ms, p99 {p99:.0} ms, {within:.2} % within 1 s",
        ms.get(opened / 2).copied().unwrap_or(f64::NAN)
    ));
    r.set("soldout_p99_ms", p99);
    r.set("soldout_within_1s_pct", within);
    r.set("soldout_missed", (opened - heard) as f64);
    ctx.check_ledger(r, &sale, &[order]).await?;
    Ok(())
}

async fn stream(
    addr: SocketAddr,
    src: Ipv4Addr,
    (path, token): (String, String),
    permit: OwnedSemaphorePermit,
    sh: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let opened = open(addr, src, &path, &token).await;
    drop(permit);
    let mut rd = match opened {
        Ok(rd) => {
            sh.opened.fetch_add(1, Ordering::Relaxed);
            rd
        }
        Err(e) => {
            sh.failed.fetch_add(1, Ordering::Relaxed);
            sh.first_error
                .lock()
                .expect("lock")
                .get_or_insert(format!("{e:#}"));
            return;
        }
    };
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        tokio::select! {
            n = rd.read_until(b'\n', &mut line) => match n {
                Ok(0) | Err(_) => {
                    sh.ended.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(_) if is_event(&line, b"sold_out") => {
                    sh.heard.lock().expect("lock").push(Instant::now());
                    break;
                }
                Ok(_) => {}
            },
            _ = stop.changed() => return,
        }
    }
    // Hold the socket until the end: a closing stream would be churn the others wait behind.
    let _ = stop.changed().await;
}

/// Connects and reads up to the first event, so "open" means the server is streaming.
/// The token rides the `wr_queue` cookie, as from the page (never the URL).
async fn open(
    addr: SocketAddr,
    src: Ipv4Addr,
    path: &str,
    token: &str,
) -> Result<BufReader<TcpStream>> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src.into(), 0))?;
    let mut tcp = sock.connect(addr).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Cookie: wr_queue={token}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut rd = BufReader::with_capacity(1024, tcp);
    let mut line = Vec::with_capacity(256);
    rd.read_until(b'\n', &mut line).await?;
    if !line.starts_with(b"HTTP/1.1 200") {
        bail!(
            "stream answered {}",
            String::from_utf8_lossy(&line).trim_end()
        );
    }
    loop {
        line.clear();
        if rd.read_until(b'\n', &mut line).await? == 0 {
            bail!("stream closed before its first event");
        }
        if line.starts_with(b"event:") {
            return Ok(rd);
        }
    }
}

/// `event: <name>` (chunk-size lines of the chunked encoding are never mistaken for one).
fn is_event(line: &[u8], name: &[u8]) -> bool {
    line.strip_prefix(b"event:")
        .map(|rest| rest.trim_ascii() == name)
        .unwrap_or(false)
}

fn first_error(sh: &Shared) -> String {
    match sh.first_error.lock().expect("lock").as_ref() {
        Some(e) => format!(" (first error: {e})"),
        None => String::new(),
    }
}

/// The soft `Max open files` of this process.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Max open files"))?;
            let soft = line.split_whitespace().nth(3)?;
            Some(soft.parse().unwrap_or(usize::MAX))
        })
        .unwrap_or(1024)
}

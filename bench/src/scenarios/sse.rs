//! 50,000 streams over three instances (DESIGN.md: a process may open 20,000 files here):
//! each instance's RSS per stream, and how long after the last unit sells each stream hears
//! it (`waitlisted`: the unit is held for payment), beside the same streams hearing a bare `closed` broadcast (the admin API
//! publishes it: the same pub/sub → hub → stream path without the checkout in front).
//!
//! The streams are held by several worker processes (`sse_worker`), each under the
//! open-files limit, and spread round robin over the instances.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::report::Report;
use crate::server::{self, Instance};
use crate::sse_worker::{mono_ns, Args, Worker};

const INSTANCES: usize = 3;
/// Streams per worker process at most (the brief: ~15,000, under the 20,000 files).
const PER_WORKER: usize = 15_000;
/// File descriptors kept free in every process for everything but the streams.
const FD_MARGIN: usize = 1_000;
/// How long the idle streams are watched for their CPU cost.
const IDLE_WINDOW: Duration = Duration::from_secs(4);
/// How long a broadcast may take to reach every stream before the rest count as missed.
const HEAR_WITHIN: Duration = Duration::from_secs(10);

pub async fn run(ctx: &Ctx, r: &mut Report, requested: Option<usize>) -> Result<()> {
    let want = requested.unwrap_or(ctx.sizes.sse_streams);
    // Instances and workers inherit our limit, so one number caps every process.
    let limit = open_files_limit();
    let per_process = limit.saturating_sub(FD_MARGIN);
    let n = want.min(per_process * INSTANCES);
    r.set("sse_streams_requested", want as f64);
    if let Some(l) = load_average() {
        r.set("sse_loadavg_1m", l);
    }
    if n < want {
        r.note(format!(
            "sse: the open-files limit is {limit} (ulimit -n), so {INSTANCES} instances hold \
             only {n} of the {want} streams asked for"
        ));
    }
    let per_worker = PER_WORKER.min(per_process).max(1);
    let worker_count = n.div_ceil(per_worker).max(n.min(2));

    let mut insts = Vec::new();
    for i in 0..INSTANCES {
        insts.push(ctx.start(&format!("sse-{i}")).await?);
    }
    let addrs: Vec<_> = insts.iter().map(|i| i.addr).collect();
    let sale = ctx.sale_id("sse");
    let mut c = Conn::new(addrs[0]);
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

    say(format!(
        "sse: {n} shoppers join through {worker_count} worker processes"
    ));
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    let mut first = 0;
    for w in 0..worker_count {
        let streams = n / worker_count + usize::from(w < n % worker_count);
        let args = Args {
            addrs: addrs.clone(),
            sale: sale.clone(),
            streams,
            first,
        };
        workers.push(Worker::spawn(&exe, &args)?);
        first += streams;
    }
    for w in &mut workers {
        w.expect("joined", Duration::from_secs(300)).await?;
    }
    let idle: Vec<f64> = insts.iter().map(Instance::rss_mib).collect::<Result<_>>()?;

    say(format!("sse: opening {n} streams on {INSTANCES} instances"));
    let started = Instant::now();
    let overflows = listen_overflows();
    for w in &mut workers {
        w.send("open")?;
    }
    let (mut opened, mut failed, mut held) = (0, 0, vec![0usize; INSTANCES]);
    let mut errors = Vec::new();
    for w in &mut workers {
        let words = w.expect("open", Duration::from_secs(300)).await?;
        let [o, f, h, err @ ..] = words.as_slice() else {
            bail!("short `open` reply from an SSE worker: {words:?}");
        };
        opened += o.parse::<usize>()?;
        failed += f.parse::<usize>()?;
        for (k, x) in h.split(',').enumerate() {
            held[k] += x.parse::<usize>()?;
        }
        if !err.concat().is_empty() {
            errors.push(err.join(" "));
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    // Connections the kernel dropped for a full accept backlog (somaxconn); the clients
    // retried them (SYN retransmits), which shows as a slow opening, not as failures.
    if let (Some(a), Some(b)) = (overflows, listen_overflows()) {
        r.set("sse_listen_overflows", b.saturating_sub(a) as f64);
    }
    say(format!(
        "sse: {opened} streams open in {open_secs:.1} s ({held:?} per instance), {failed} failed, \
         {} accept-queue overflows{}",
        r.get("sse_listen_overflows").unwrap_or(f64::NAN),
        errors
            .first()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    ));
    r.set("sse_streams", opened as f64);
    r.set("sse_open_failed", failed as f64);
    r.set("sse_open_secs", open_secs);
    r.set("sse_instances", INSTANCES as f64);
    r.set("sse_workers", worker_count as f64);
    if opened == 0 {
        bail!("no stream opened");
    }

    // Let the first refresh tick (2 s) pass over every stream before reading RSS.
    tokio::time::sleep(Duration::from_secs(3)).await;
    memory(r, &insts, &idle, &held)?;
    idle_cost(r, &insts, &mut workers).await?;

    // The same-run baseline: a bare broadcast, then the sale reopened for the sale itself.
    let mut f = FanOut {
        insts: &insts,
        workers: &mut workers,
        opened,
    };
    let closed = f.run("closed", api::admin(&mut c, &sale, "close")).await?;
    f.run("opened", api::admin(&mut c, &sale, "open")).await?;
    let mut order = None;
    let sold = f
        .run("waitlisted", async {
            let bought = c.send(&api::checkout_req(&sale, &ticket.ticket)).await?;
            order = api::order_id(&bought);
            order.with_context(|| format!("buying the last unit: {}", bought.describe()))
        })
        .await?;
    say(format!(
        "sse: sold_out heard by {}/{opened}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, {:.2} % \
         within 1 s, {:.0} ms of server CPU (a bare `closed`: p50 {:.0} ms, p99 {:.0} ms, max \
         {:.0} ms, {:.0} ms of server CPU)",
        sold.heard,
        sold.p50,
        sold.p99,
        sold.max,
        sold.within_1s,
        sold.server_cpu_ms,
        closed.p50,
        closed.p99,
        closed.max,
        closed.server_cpu_ms
    ));
    sold.record(r, "sse_soldout");
    closed.record(r, "sse_closed");
    // The older single-instance keys, kept for whoever reads them.
    r.set("soldout_p99_ms", sold.p99);
    r.set("soldout_within_1s_pct", sold.within_1s);
    r.set("soldout_missed", (opened - sold.heard.min(opened)) as f64);
    drop(workers);
    ctx.check_ledger(r, &sale, &order.into_iter().collect::<Vec<_>>())
        .await?;
    Ok(())
}

/// RSS with the streams open minus RSS before, per stream each instance holds.
fn memory(r: &mut Report, insts: &[Instance], idle: &[f64], held: &[usize]) -> Result<()> {
    let mut worst: Option<(f64, f64, f64)> = None;
    let mut per = Vec::new();
    for (i, inst) in insts.iter().enumerate() {
        let rss = inst.rss_mib()?;
        let kib = (rss - idle[i]).max(0.0) * 1024.0 / held[i].max(1) as f64;
        r.set(&format!("sse_instance{}_streams", i + 1), held[i] as f64);
        r.set(&format!("sse_instance{}_kib_per_stream", i + 1), kib);
        per.push(format!(
            "{:.0} → {rss:.0} MiB ({kib:.1} KiB/stream)",
            idle[i]
        ));
        if worst.is_none_or(|(k, _, _)| kib > k) {
            worst = Some((kib, rss, idle[i]));
        }
    }
    say(format!("sse: RSS per instance {}", per.join(", ")));
    let (kib, rss, idle) = worst.context("no instance")?;
    r.set("sse_kib_per_stream", kib);
    r.set("sse_rss_mib", rss);
    r.set("sse_rss_idle_mib", idle);
    r.set("sse_rss_projected_50k_mib", idle + kib * 50_000.0 / 1024.0);
    Ok(())
}

/// When the streams heard one broadcast, in ms after the trigger began.
struct Spread {
    heard: usize,
    p50: f64,
    p99: f64,
    /// The slowest stream that heard it.
    max: f64,
    within_1s: f64,
    /// CPU the instances used from the trigger until the last stream heard it.
    server_cpu_ms: f64,
    /// The first stream to hear it, and when the trigger's own request was answered.
    min: f64,
    trigger_ms: f64,
}

impl Spread {
    /// Streams that never heard it count as infinitely late.
    fn of(mut ms: Vec<f64>, opened: usize) -> Self {
        let heard = ms.len();
        ms.sort_by(f64::total_cmp);
        let max = ms.last().copied().unwrap_or(f64::NAN);
        ms.resize(opened.max(heard), f64::INFINITY);
        let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
        let within = ms.iter().filter(|&&x| x <= 1000.0).count();
        Self {
            heard,
            p50: pct(0.5),
            p99: pct(0.99),
            max,
            within_1s: within as f64 * 100.0 / ms.len() as f64,
            server_cpu_ms: f64::NAN,
            min: ms.first().copied().unwrap_or(f64::NAN),
            trigger_ms: f64::NAN,
        }
    }

    fn record(&self, r: &mut Report, prefix: &str) {
        r.set(&format!("{prefix}_p50_ms"), self.p50);
        r.set(&format!("{prefix}_p99_ms"), self.p99);
        r.set(&format!("{prefix}_max_ms"), self.max);
        r.set(&format!("{prefix}_within_1s"), self.within_1s);
        r.set(&format!("{prefix}_heard"), self.heard as f64);
        r.set(&format!("{prefix}_server_cpu_ms"), self.server_cpu_ms);
        r.set(&format!("{prefix}_min_ms"), self.min);
        r.set(&format!("{prefix}_trigger_ms"), self.trigger_ms);
    }
}

/// The instances and the workers holding their streams, for one broadcast after another.
struct FanOut<'a> {
    insts: &'a [Instance],
    workers: &'a mut [Worker],
    opened: usize,
}

impl FanOut<'_> {
    /// Runs `trigger` and collects from every worker when its streams heard `event`.
    async fn run<T>(
        &mut self,
        event: &str,
        trigger: impl std::future::Future<Output = Result<T>>,
    ) -> Result<Spread> {
        let cpu = server_cpu(self.insts)?;
        let t0 = mono_ns();
        trigger.await?;
        let trigger_ms = mono_ns().saturating_sub(t0) as f64 / 1e6;
        for w in self.workers.iter_mut() {
            w.send(&format!("wait {event} {}", HEAR_WITHIN.as_millis()))?;
        }
        let mut ms = Vec::with_capacity(self.opened);
        let mut ended = 0;
        for w in self.workers.iter_mut() {
            let words = w.expect("heard", HEAR_WITHIN * 2).await?;
            let [name, e, times @ ..] = words.as_slice() else {
                bail!("short `heard` reply from an SSE worker");
            };
            if name != event {
                bail!("an SSE worker answered for {name}, asked for {event}");
            }
            ended += e.parse::<usize>()?;
            for t in times.iter().filter(|t| !t.is_empty()) {
                ms.push(t.parse::<u64>()?.saturating_sub(t0) as f64 / 1e6);
            }
        }
        let cpu = server_cpu(self.insts)? - cpu;
        if ended > 0 {
            say(format!("sse: {ended} streams were ended by the server"));
        }
        let s = Spread {
            server_cpu_ms: cpu * 1000.0,
            trigger_ms,
            ..Spread::of(ms, self.opened)
        };
        say(format!(
            "sse: `{event}` heard by {}/{}: first after {:.0} ms, p50 {:.0} ms, p99 {:.0} ms, \
             max {:.0} ms; the request that caused it took {trigger_ms:.0} ms",
            s.heard, self.opened, s.min, s.p50, s.p99, s.max
        ));
        Ok(s)
    }
}

/// CPU seconds the instances used so far, together.
fn server_cpu(insts: &[Instance]) -> Result<f64> {
    insts.iter().map(|i| server::cpu_secs(i.pid())).sum()
}

/// What holding the streams costs while nothing happens (the periodic `progress` refresh and
/// the heartbeats): events delivered per second, and CPU per event on each side.
async fn idle_cost(r: &mut Report, insts: &[Instance], workers: &mut [Worker]) -> Result<()> {
    async fn sample(insts: &[Instance], workers: &mut [Worker]) -> Result<(f64, f64, f64)> {
        let mut events = 0.0;
        let mut harness = 0.0;
        for w in workers.iter_mut() {
            w.send("count")?;
            let n = w.expect("count", Duration::from_secs(10)).await?;
            events += n.first().context("empty `count` reply")?.parse::<f64>()?;
            harness += server::cpu_secs(w.pid())?;
        }
        Ok((server_cpu(insts)?, harness, events))
    }
    let started = Instant::now();
    let a = sample(insts, workers).await?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let b = sample(insts, workers).await?;
    let secs = started.elapsed().as_secs_f64();
    let (server, harness, events) = (b.0 - a.0, b.1 - a.1, (b.2 - a.2).max(1.0));
    say(format!(
        "sse: idle streams: {:.0} events/s; server {:.0} % of a core ({:.1} µs per event), \
         harness {:.0} % ({:.1} µs per event)",
        events / secs,
        server * 100.0 / secs,
        server * 1e6 / events,
        harness * 100.0 / secs,
        harness * 1e6 / events
    ));
    r.set("sse_idle_events_per_sec", events / secs);
    r.set("sse_idle_server_cpu_pct", server * 100.0 / secs);
    r.set("sse_idle_harness_cpu_pct", harness * 100.0 / secs);
    r.set("sse_server_us_per_event", server * 1e6 / events);
    Ok(())
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

/// The machine's count of connections dropped because an accept queue was full.
fn listen_overflows() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut tcp_ext = s.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next()?, tcp_ext.next()?);
    let i = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// The 1-minute load average: the machine is shared, and the figures depend on it.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

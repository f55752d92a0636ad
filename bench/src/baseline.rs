//! Same-run baselines, so a figure can be read against what this box does at all right now:
//! bare actix-web routes in a process of their own (this binary re-executed with
//! `--bare-worker`, so its CPU is its own and not the load generator's), and a bare decrement
//! script run straight against Redis. Baseline and target runs alternate in pairs
//! (`alternate`): on a shared machine a single baseline says little.

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{bail, Context, Result};
use redis::Script;

use crate::client::Req;
use crate::load::{saturate_on, Latencies, Load, Outcome};
use crate::report::Report;
use crate::scenarios::{median, say};
use crate::stores::Stores;

/// The flag that turns this binary into the bare-route server (not in the usage).
pub const WORKER_FLAG: &str = "--bare-worker";

/// The worker side: serves the bare routes (its own actix system, 2 workers like the server on
/// this box), prints its address on stdout and runs until its stdin closes.
pub async fn serve() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            // POST: what a join answers at least; GET: what a status read answers at least.
            let app = || {
                App::new()
                    .route(
                        "/",
                        web::post().to(|| async {
                            HttpResponse::Created().json(serde_json::json!({ "status": "ok" }))
                        }),
                    )
                    .route(
                        "/status",
                        web::get().to(|| async {
                            HttpResponse::Ok()
                                .json(serde_json::json!({ "state": "queued", "position": 1234 }))
                        }),
                    )
            };
            match HttpServer::new(app)
                .workers(2)
                .disable_signals()
                .listen(listener)
            {
                Ok(server) => {
                    let _ = server.run().await;
                }
                Err(e) => eprintln!("[bench] bare route failed to start: {e}"),
            }
        })
    });
    println!("{addr}");
    // The parent closes our stdin (or dies, and PR_SET_PDEATHSIG ends us).
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    Ok(())
}

/// The parent's handle on the bare-route process; killed on drop.
pub struct BareRoute {
    pub addr: SocketAddr,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl BareRoute {
    pub fn start() -> Result<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(&exe);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .arg(WORKER_FLAG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {} {WORKER_FLAG}", exe.display()))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("bare worker stdout")?).read_line(&mut line)?;
        let Ok(addr) = line.trim().parse() else {
            let _ = child.kill();
            bail!("the bare-route worker said {line:?}, not its address");
        };
        Ok(Self { addr, child, stdin })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The POST route under `load`, with its CPU per request.
    pub async fn post(&self, load: Load) -> Outcome {
        saturate_on(self.addr, Some(self.pid()), load, vec![Req::post("/")], 201).await
    }

    /// The GET route (a small JSON answer) under `load`.
    pub async fn get(&self, load: Load) -> Outcome {
        let req = Req::get("/status");
        saturate_on(self.addr, Some(self.pid()), load, vec![req], 200).await
    }
}

impl Drop for BareRoute {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Baseline,
    Target,
}

/// The outcomes of alternating baseline and target runs.
#[derive(Default)]
pub struct Pairs {
    pub base: Vec<Outcome>,
    pub target: Vec<Outcome>,
}

/// Runs `pairs` pairs of (baseline, target) with `f`; which side goes first alternates, so a
/// drift in the machine's load favours neither.
pub async fn alternate<F, Fut>(pairs: usize, mut f: F) -> Result<Pairs>
where
    F: FnMut(Side, usize) -> Fut,
    Fut: Future<Output = Result<Outcome>>,
{
    let mut out = Pairs::default();
    for pair in 0..pairs {
        let order = if pair % 2 == 0 {
            [Side::Baseline, Side::Target]
        } else {
            [Side::Target, Side::Baseline]
        };
        for side in order {
            let o = f(side, pair).await?;
            match side {
                Side::Baseline => out.base.push(o),
                Side::Target => out.target.push(o),
            }
        }
    }
    Ok(out)
}

/// Median, minimum, maximum.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&mut v.to_vec()), min, max)
}

impl Pairs {
    /// `f` of every baseline / target run, in run order.
    pub fn of(side: &[Outcome], f: impl Fn(&Outcome) -> f64) -> Vec<f64> {
        side.iter().map(f).collect()
    }

    /// Each pair's target / baseline throughput: neighbours in time agree better than medians.
    pub fn ratios(&self) -> Vec<f64> {
        self.target
            .iter()
            .zip(&self.base)
            .map(|(t, b)| t.rps() / b.rps())
            .collect()
    }

    /// Each pair's target / baseline p99 latency, and their median as `key` (with `_samples`):
    /// as for throughput, neighbours in time agree better than the ratio of two medians.
    pub fn record_p99_ratio(&self, r: &mut Report, key: &str) {
        let ratios: Vec<f64> = self
            .target
            .iter()
            .zip(&self.base)
            .map(|(t, b)| t.lat.pct_ms(99.0) / b.lat.pct_ms(99.0))
            .collect();
        r.set(key, spread(&ratios).0);
        r.set_samples(&format!("{key}_samples"), &ratios);
    }

    pub fn failed(&self) -> u64 {
        self.target.iter().map(Outcome::failed).sum()
    }

    /// Sets `key` to the median of `f` over `side` and `key_samples` to every value.
    pub fn record(r: &mut Report, key: &str, side: &[Outcome], f: impl Fn(&Outcome) -> f64) {
        let v = Self::of(side, f);
        r.set(key, spread(&v).0);
        r.set_samples(&format!("{key}_samples"), &v);
    }

    /// The throughputs (medians and samples) and the pair ratios (`{ratio}`: median, `_min`,
    /// `_max`, `_samples`); a line on stderr with all of them.
    pub fn record_rates(&self, r: &mut Report, base: &str, target: &str, ratio: &str) {
        Self::record(r, base, &self.base, Outcome::rps);
        Self::record(r, target, &self.target, Outcome::rps);
        let ratios = self.ratios();
        let (mid, min, max) = spread(&ratios);
        r.set(ratio, mid);
        r.set(&format!("{ratio}_min"), min);
        r.set(&format!("{ratio}_max"), max);
        r.set_samples(&format!("{ratio}_samples"), &ratios);
        let list = |v: Vec<f64>| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        say(format!(
            "{target}: [{}]/s vs {base} [{}]/s; pair ratios [{}], median {mid:.3} ({min:.3}–{max:.3})",
            list(Self::of(&self.target, Outcome::rps)),
            list(Self::of(&self.base, Outcome::rps)),
            ratios
                .iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// What checkout.lua boils down to: decrement stock if positive, one round trip by SHA.
const DECREMENT_IF_POSITIVE: &str = r"
local s = tonumber(redis.call('GET', KEYS[1]) or '0')
if s <= 0 then return -1 end
return redis.call('DECR', KEYS[1])
";

/// EVALSHA of the decrement script with as many connections, each with one call in flight,
/// as the HTTP scenarios use.
pub async fn redis_evalsha(stores: &Stores, load: Load, key: &str) -> Result<Outcome> {
    let mut setup = stores.redis_conn().await?;
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(i64::MAX / 2)
        .query_async(&mut setup)
        .await?;
    let from = Instant::now() + load.warmup;
    let end = from + load.duration;
    let mut workers = Vec::new();
    for _ in 0..load.conns {
        let mut conn = stores.redis_conn().await?;
        let key = key.to_string();
        workers.push(tokio::spawn(async move {
            let script = Script::new(DECREMENT_IF_POSITIVE);
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Latencies::default());
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r: redis::RedisResult<i64> = script.key(&key).invoke_async(&mut conn).await;
                let t1 = Instant::now();
                match r {
                    Ok(_) if t0 >= from && t1 <= end => {
                        ok += 1;
                        lat.push(t1 - t0);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if t0 >= from {
                            errors += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (ok, errors, lat)
        }));
    }
    let mut out = Outcome {
        secs: load.duration.as_secs_f64(),
        ..Outcome::default()
    };
    for w in workers {
        let (ok, errors, lat) = w.await?;
        out.ok += ok;
        out.errors += errors;
        out.lat.extend(lat);
    }
    out.lat = out.lat.finish();
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut setup).await?;
    Ok(out)
}

/// The bare POST route alone, in pairs with nothing, for runs without the enqueue scenario
/// (whose pairs set the same keys): the herd's figure is read against it.
pub async fn http_alone(load: Load, runs: usize, r: &mut Report) -> Result<()> {
    let mut outs = Vec::new();
    for _ in 0..runs {
        let bare = BareRoute::start()?;
        let o = bare.post(load).await;
        say(format!("baseline http: {}", o.summary()));
        outs.push(o);
    }
    Pairs::record(r, "baseline_http_rps", &outs, Outcome::rps);
    Pairs::record(r, "baseline_http_p99_ms", &outs, |o| o.lat.pct_ms(99.0));
    Pairs::record(r, "bare_cpu_us", &outs, cpu_us);
    Ok(())
}

/// CPU per request of an outcome, NaN without a reading (the median skips nothing: a NaN
/// would show as a missing figure).
pub fn cpu_us(o: &Outcome) -> f64 {
    o.cpu_us.unwrap_or(f64::NAN)
}

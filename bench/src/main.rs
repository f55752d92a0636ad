//! waitroom-bench: measures what DESIGN.md ("Numbers we hold ourselves to") asks of waitroom,
//! against a release build on the local Redis and Postgres. Run it through `scripts/bench`,
//! which builds, starts the services and raises `ulimit -n`.
//!
//! Exit status: non-zero when a correctness counter (oversold, FIFO inversions, lost orders)
//! is not zero or a scenario could not run; never because of a speed figure.

mod baseline;
mod cpu;
mod history;
mod html;
mod load;
mod report;
mod scenarios;
mod server;
mod sse_worker;
mod stores;

// The typed API and the lean HTTP client are the test kit's, shared with tests/.
use waitroom_testkit::{api, client};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use report::Report;
use scenarios::{say, Ctx, Sizes};

const USAGE: &str = "\
usage: waitroom-bench [--quick] [SCENARIO...] [OPTIONS]

Scenarios (none = all):
  --enqueue      joins/s and latency at saturation
  --herd         checkouts against a sold-out sale
  --status       status reads with queue tokens, in pairs with a bare GET route
  --orders       admitted shoppers buying; Postgres checked after
  --webhooks     checkout p99 with a receiver taking 5 s per delivery vs no endpoint (pairs),
                 and deliveries/s to a receiver answering at once
  --variants     orders/s and p99 of a sale of 10 sizes vs one stock (pairs; not in --quick)
  --sse          streams over 3 instances (held by worker processes): RSS per stream, time
                 until each hears sold_out beside a bare `closed` broadcast
  --sale         a whole sale through 3 instances (FIFO, no oversell, no lost order)
  --admission    admitted per second over 60 s (quick: 5 s) with 3 instances
  --limits       rate-limiter memory with 1,000,000 distinct clients, and after the sweep
  --baseline     the bare route alone (--enqueue runs it in pairs with the joins)
  --pow          server CPU per proof-of-work verify, beside one SHA-256 (in process)
  --limits-cost  enqueue with the rate limits on vs off, 3 alternating pairs (about 75 s)
  --memory       Redis bytes per queued shopper at 1,000,000 queued (quick: 100,000)
  --browser-pow  median proof-of-work solve time of the page in headless Chromium (16 bits;
                 WAITROOM_CHROMEDRIVER / WAITROOM_CHROMIUM, default /usr/bin/...)

The last three never run with --quick: they measure, they check nothing.

Options:
  --quick              smaller and shorter (the smoke test scripts/test runs)
  --duration SECS      measured time of each saturation or open-loop run (default 10,
                       pairs 5; quick 3, pairs 1)
  --connections N      concurrent connections (default 64)
  --streams N          streams for --sse (default 50000, quick 3000)
  --server PATH        the waitroom binary (default: next to this one)
  --out PATH           the JSON report (default: <target>/bench/latest.json)
  --keep               keep the bench's sales in Redis and Postgres
  --markdown           print the report (latest.json, or --out) as the README's table; run nothing

Every run also writes report.html next to the JSON report and appends to history.jsonl there.";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Baseline,
    Enqueue,
    Herd,
    Status,
    Orders,
    Webhooks,
    Variants,
    Sse,
    Sale,
    Admission,
    Limits,
    Pow,
    LimitsCost,
    BrowserPow,
    Memory,
}

struct Opts {
    quick: bool,
    only: Vec<Scenario>,
    duration: Option<Duration>,
    conns: usize,
    streams: Option<usize>,
    server: Option<PathBuf>,
    out: Option<PathBuf>,
    keep: bool,
    markdown: bool,
}

impl Opts {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self> {
        let mut o = Opts {
            quick: false,
            only: Vec::new(),
            duration: None,
            conns: 64,
            streams: None,
            server: None,
            out: None,
            keep: false,
            markdown: false,
        };
        while let Some(a) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match a.as_str() {
                "--quick" => o.quick = true,
                "--keep" => o.keep = true,
                "--markdown" | "--readme" => o.markdown = true,
                "--memory" => o.only.push(Scenario::Memory),
                "--baseline" => o.only.push(Scenario::Baseline),
                "--enqueue" => o.only.push(Scenario::Enqueue),
                "--herd" => o.only.push(Scenario::Herd),
                "--status" => o.only.push(Scenario::Status),
                "--orders" => o.only.push(Scenario::Orders),
                "--webhooks" => o.only.push(Scenario::Webhooks),
                "--variants" => o.only.push(Scenario::Variants),
                "--sse" => o.only.push(Scenario::Sse),
                "--sale" => o.only.push(Scenario::Sale),
                "--admission" => o.only.push(Scenario::Admission),
                "--limits" => o.only.push(Scenario::Limits),
                "--pow" => o.only.push(Scenario::Pow),
                "--limits-cost" => o.only.push(Scenario::LimitsCost),
                "--browser-pow" => o.only.push(Scenario::BrowserPow),
                "--duration" => o.duration = Some(Duration::from_secs_f64(value(&a)?.parse()?)),
                "--connections" => o.conns = value(&a)?.parse::<usize>()?.max(1),
                "--streams" => o.streams = Some(value(&a)?.parse()?),
                "--server" => o.server = Some(value(&a)?.into()),
                "--out" => o.out = Some(value(&a)?.into()),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        Ok(o)
    }

    fn runs(&self, s: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&s)
    }

    /// Measurements only, nothing to check: never part of the smoke test.
    fn runs_full(&self, s: Scenario) -> bool {
        !self.quick && self.runs(s)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    raise_open_files_limit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Not in the usage: the baselines re-execute the bench as the bare-route server.
    if args.first().is_some_and(|a| a == baseline::WORKER_FLAG) {
        return match baseline::serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("waitroom-bench {}: {e:#}", baseline::WORKER_FLAG);
                ExitCode::FAILURE
            }
        };
    }
    // Not in the usage: the SSE scenario re-executes the bench as its load-generator workers.
    if args.first().is_some_and(|a| a == "--sse-worker") {
        let res = sse_worker::Args::parse(&args[1..]).map(sse_worker::run);
        let res = match res {
            Ok(work) => work.await,
            Err(e) => Err(e),
        };
        return match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("waitroom-bench --sse-worker: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match Opts::parse(args.into_iter()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("waitroom-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(opts).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("waitroom-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: Opts) -> Result<ExitCode> {
    let started = Instant::now();
    // target/release/waitroom-bench: the server binary is its sibling, the report goes to
    // target/bench (CARGO_TARGET_DIR moves both along).
    let exe = std::env::current_exe()?;
    let release_dir = exe.parent().context("executable without a directory")?;
    let work_dir = release_dir.parent().unwrap_or(release_dir).join("bench");
    let bin = opts
        .server
        .clone()
        .unwrap_or_else(|| release_dir.join("waitroom"));
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| work_dir.join("latest.json"));
    if opts.markdown {
        print!("{}", history::markdown(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    // The defaults are what scripts/bench exports: the bench's own Redis DB and database.
    let redis_url =
        std::env::var("WAITROOM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390/2".into());
    let database_url = std::env::var("WAITROOM_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://waitroom@127.0.0.1:5442/waitroom_bench".into());

    let env = server::Env::prepare(bin, &work_dir, redis_url.clone(), database_url.clone())?;
    let stores = stores::Stores::connect(&redis_url, &database_url).await?;
    let mut sizes = Sizes::new(opts.quick, opts.conns);
    if let Some(d) = opts.duration {
        sizes.load.duration = d;
        sizes.pair_load.duration = d;
        sizes.open_load.duration = d;
    }
    let ctx = Ctx::new(env, stores, sizes);
    let mut r = Report::default();
    let busy = cpu_busy_pct(Duration::from_secs(1)).await;
    if let Some(b) = busy.filter(|b| *b > 25.0) {
        r.note(format!(
            "the machine was already {b:.0} % busy before the run (a build or tests?): \
             speed figures come out lower than on an idle machine"
        ));
    }
    say(format!(
        "run {} ({} mode), {} connections, logs in {}",
        ctx.run,
        if opts.quick { "quick" } else { "full" },
        opts.conns,
        work_dir.display()
    ));

    // In this process, before anything has grown its heap, so its RSS is the limiters'.
    if opts.runs(Scenario::Limits) {
        let res = scenarios::limits::run(&mut r).await;
        record(&mut r, "limits", res);
    }
    if opts.runs_full(Scenario::Pow) {
        let res = scenarios::pow::run(&mut r);
        record(&mut r, "pow", res);
    }
    // The scenarios with a baseline run it in alternating pairs with their own figure; the
    // herd's is the bare route of the enqueue pairs, or of these runs without them.
    if !opts.runs(Scenario::Enqueue) && (opts.runs(Scenario::Baseline) || opts.runs(Scenario::Herd))
    {
        let res = baseline::http_alone(ctx.sizes.pair_load, ctx.sizes.pairs, &mut r).await;
        record(&mut r, "baseline", res);
    }
    if opts.runs(Scenario::Enqueue) {
        let res = scenarios::enqueue::run(&ctx, &mut r).await;
        record(&mut r, "enqueue", res);
    }
    if opts.runs(Scenario::Herd) {
        let res = scenarios::herd::run(&ctx, &mut r).await;
        record(&mut r, "herd", res);
    }
    if opts.runs(Scenario::Status) {
        let res = scenarios::status::run(&ctx, &mut r).await;
        record(&mut r, "status", res);
    }
    if opts.runs(Scenario::Orders) {
        let res = scenarios::orders::run(&ctx, &mut r).await;
        record(&mut r, "orders", res);
    }
    if opts.runs(Scenario::Webhooks) {
        let res = scenarios::webhooks::run(&ctx, &mut r).await;
        record(&mut r, "webhooks", res);
    }
    if opts.runs_full(Scenario::Variants) {
        let res = scenarios::variants::run(&ctx, &mut r).await;
        record(&mut r, "variants", res);
    }
    if opts.runs(Scenario::Sse) {
        let res = scenarios::sse::run(&ctx, &mut r, opts.streams).await;
        record(&mut r, "sse", res);
    }
    if opts.runs(Scenario::Sale) {
        let res = scenarios::sale::run(&ctx, &mut r).await;
        record(&mut r, "sale", res);
    }
    if opts.runs(Scenario::Admission) {
        let res = scenarios::admission::run(&ctx, &mut r).await;
        record(&mut r, "admission", res);
    }
    if opts.runs_full(Scenario::LimitsCost) {
        let res = scenarios::enqueue::run_limits(&ctx, &mut r).await;
        record(&mut r, "limits-cost", res);
    }
    if opts.runs(Scenario::Memory) {
        let res = scenarios::memory::run(&ctx, &mut r, opts.quick).await;
        record(&mut r, "memory", res);
    }
    if opts.runs_full(Scenario::BrowserPow) {
        let res = scenarios::browser::run(&ctx, &mut r).await;
        record(&mut r, "browser-pow", res);
    }
    if opts.quick
        && opts.only.iter().any(|s| {
            matches!(
                s,
                Scenario::Pow | Scenario::LimitsCost | Scenario::BrowserPow
            )
        })
    {
        r.note("--pow, --limits-cost and --browser-pow do not run with --quick");
    }

    if !opts.keep {
        if let Err(e) = ctx.stores.cleanup(&ctx.sales()).await {
            r.note(format!("clean-up of the bench's sales failed: {e:#}"));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mode = if opts.quick { "quick" } else { "full" };
    let meta = json!({
        "mode": mode,
        "scenarios": opts.only.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>(),
        "connections": opts.conns,
        "duration_secs": ctx.sizes.load.duration.as_secs_f64(),
        "warmup_secs": ctx.sizes.load.warmup.as_secs_f64(),
        "pairs": ctx.sizes.pairs,
        "pair_secs": ctx.sizes.pair_load.duration.as_secs_f64(),
        "open_loop_secs": ctx.sizes.open_load.duration.as_secs_f64(),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "elapsed_secs": (secs * 10.0).round() / 10.0,
        "cpu_busy_before_pct": busy.map(|b| b.round()),
        "run_id": ctx.run,
    });
    let (prev, page) = history::publish(&mut r, meta, &out, mode)?;

    println!();
    print!("{}", r.table(&prev));
    println!(
        "\n{:.0} s in all; report written to {} and {}",
        secs,
        out.display(),
        page.display()
    );
    let failed = r.failed_counters();
    for (k, v) in &failed {
        println!("FAIL: {k} = {v}");
    }
    for e in r.errors() {
        println!("ERROR: {e}");
    }
    Ok(if failed.is_empty() && r.errors().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn record(r: &mut Report, name: &str, res: Result<()>) {
    if let Err(e) = res {
        r.error(format!("{name}: {e:#}"));
    }
}

/// Soft open-files limit up to the hard one, as scripts/bench does with `ulimit -n`: every
/// SSE stream is a socket, and the servers and workers this process starts inherit it.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit; failure leaves the limit as it was.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// How busy the whole machine was during `d`, from /proc/stat. Anything else running (a
/// build, a test suite) takes cores from the server and lowers every speed figure.
async fn cpu_busy_pct(d: Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = v.get(3)? + v.get(4)?;
        let total: u64 = v.iter().sum();
        Some((total - idle, total))
    }
    let a = sample()?;
    tokio::time::sleep(d).await;
    let b = sample()?;
    let total = b.1.checked_sub(a.1).filter(|t| *t > 0)?;
    Some(b.0.saturating_sub(a.0) as f64 * 100.0 / total as f64)
}

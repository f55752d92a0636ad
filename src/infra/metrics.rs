//! Prometheus metrics through the `metrics` facade and `metrics-exporter-prometheus`. The
//! recorder is global to the process and installed once (tests run many instances in one
//! process: they share it); `/metrics` renders its handle. Every name is `waitroom_`-prefixed;
//! docs/operations.md lists them.
//!
//! Hot paths use handles registered once (`METRICS`), so a count is one atomic add with no
//! key lookup; the thin `inc`/`add` wrappers keep call sites one line.

mod window;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::core::config::Class;
use crate::core::domain::SaleId;
use crate::core::fault::Fault;
use crate::infra::store::{Live, Tick};

/// Latency buckets in seconds, 0.5 ms to 5 s: a join or status is a Redis round trip or
/// two, a checkout adds a Postgres commit; past 5 s a client has long given up.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A gauge nobody has set for this long leaves the export: a finished sale leaves the
/// ticker's working set, so its per-sale series disappear this long after its last sample.
/// Process-wide gauges are set on every tick, so they never go idle.
const IDLE_GAUGE: Duration = Duration::from_secs(60);

/// How often histograms are folded into their distributions when nobody scrapes: without it
/// their samples pile up in memory between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: LazyLock<PrometheusHandle> = LazyLock::new(|| {
    let recorder = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .expect("buckets are not empty")
        .idle_timeout(MetricKindMask::GAUGE, Some(IDLE_GAUGE))
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        // Only this module installs one; if an embedder did, its recorder gets our numbers.
        tracing::warn!("a metrics recorder was already installed: /metrics will be empty");
    }
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms drain on scrape only");
    }
    handle
});

/// Installs the process's recorder; every later call (every other instance) shares it.
pub fn install() {
    LazyLock::force(&HANDLE);
    crate::core::fault::observe_with(count_fault);
}

/// Counts a store failure by store and kind (see `core::fault::observe_with`).
fn count_fault(fault: &Fault) {
    match fault {
        Fault::Redis(e) => redis_error(e),
        Fault::Postgres(e) => postgres_error(e),
        Fault::Busy(_) | Fault::Bug(_) => {}
    }
}

/// The Prometheus text of everything recorded in this process.
pub fn render() -> String {
    HANDLE.render()
}

/// A counter registered once; `inc`/`add` are the call sites' words.
pub struct Counter(metrics::Counter);

impl Counter {
    fn new(name: &'static str) -> Self {
        Self(metrics::counter!(name))
    }
    pub fn inc(&self) {
        self.0.increment(1);
    }
    pub fn add(&self, n: u64) {
        self.0.increment(n);
    }
}

/// Open event streams. Counted here and written to the exporter as an absolute value, so a
/// series dropped while idle comes back right (see `IDLE_GAUGE`).
#[derive(Default)]
pub struct Streams(AtomicI64);

impl Streams {
    pub fn add(&self, n: i64) {
        let now = self.0.fetch_add(n, Ordering::Relaxed) + n;
        metrics::gauge!("waitroom_sse_streams").set(now as f64);
    }
    fn refresh(&self) {
        metrics::gauge!("waitroom_sse_streams").set(self.0.load(Ordering::Relaxed) as f64);
    }
}

/// The routes whose latency is recorded (`time`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Join,
    Status,
    Checkout,
    Webhook,
}

impl Route {
    const ALL: [Route; 4] = [Route::Join, Route::Status, Route::Checkout, Route::Webhook];

    fn label(self) -> &'static str {
        match self {
            Route::Join => "join",
            Route::Status => "status",
            Route::Checkout => "checkout",
            Route::Webhook => "webhook",
        }
    }
}

pub struct Metrics {
    pub joins: Counter,
    pub admitted: Counter,
    pub orders: Counter,
    pub checkout_rejected: Counter,
    pub dependency_errors: Counter,
    pub ledger_synced: Counter,
    pub units_released: Counter,
    pub refunds_due: Counter,
    pub webhooks_delivered: Counter,
    pub sse_streams: Streams,
    limited_writes: Counter,
    limited_reads: Counter,
    latency: [metrics::Histogram; 4],
    ticker_lag: metrics::Histogram,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    // Handles taken before the recorder exists would record into nothing.
    install();
    Metrics {
        joins: Counter::new("waitroom_joins_total"),
        admitted: Counter::new("waitroom_admitted_total"),
        orders: Counter::new("waitroom_orders_total"),
        checkout_rejected: Counter::new("waitroom_checkout_rejected_total"),
        dependency_errors: Counter::new("waitroom_dependency_errors_total"),
        ledger_synced: Counter::new("waitroom_ledger_synced_total"),
        units_released: Counter::new("waitroom_units_released_total"),
        refunds_due: Counter::new("waitroom_refunds_due_total"),
        webhooks_delivered: Counter::new("waitroom_webhook_delivered_total"),
        sse_streams: Streams::default(),
        limited_writes: Counter(metrics::counter!(LIMITED, "class" => "write")),
        limited_reads: Counter(metrics::counter!(LIMITED, "class" => "read")),
        latency: Route::ALL.map(|r| metrics::histogram!(LATENCY, "route" => r.label())),
        ticker_lag: metrics::histogram!("waitroom_ticker_lag_seconds"),
    }
});

const LIMITED: &str = "waitroom_limiter_rejections_total";
const LATENCY: &str = "waitroom_request_duration_seconds";

impl Metrics {
    pub fn limiter_rejections(&self, class: Class) -> &Counter {
        match class {
            Class::Write => &self.limited_writes,
            Class::Read => &self.limited_reads,
        }
    }
}

/// Times a handler from here until the guard drops (whatever it returns, or if the client
/// goes away mid-request): `let _timer = metrics::time(Route::Join);`.
pub fn time(route: Route) -> Timer {
    Timer {
        route,
        start: Instant::now(),
    }
}

pub struct Timer {
    route: Route,
    start: Instant,
}

impl Drop for Timer {
    fn drop(&mut self) {
        let took = self.start.elapsed();
        METRICS.latency[self.route as usize].record(took.as_secs_f64());
        if self.route == Route::Checkout {
            window::CHECKOUT.record(took);
        }
    }
}

/// Checkout latency p99 in milliseconds over roughly the last minute (50 to 60 s) on this
/// process, or None when no checkout finished in that time. For the operator dashboard: a
/// rolling window, unlike the histogram, which counts since start. Resolution about 10%
/// (log-spaced buckets, the bucket's upper bound is answered). Instances in one process (the
/// tests) share it.
pub fn checkout_p99_ms() -> Option<f64> {
    window::CHECKOUT.quantile_ms(0.99)
}

/// Once per admission tick: how late the tick ran against its schedule (`Every::lag`), and
/// the process-wide gauges refreshed so they never go idle.
pub fn on_tick(lag: Duration) {
    METRICS.ticker_lag.record(lag.as_secs_f64());
    METRICS.sse_streams.refresh();
}

/// A sale's numbers from an admission tick.
pub fn sale_tick(sale: &SaleId, t: &Tick) {
    sale_sample(sale, t.queue_len, t.stock, t.active, t.admitted_total);
}

/// A sale's numbers from the ticker's read of sales with nothing to admit.
pub fn sale_live(sale: &SaleId, l: &Live) {
    sale_sample(
        sale,
        l.queue_len,
        l.remaining,
        l.admitted_active,
        l.admitted_total,
    );
}

fn sale_sample(sale: &SaleId, queue_len: i64, units_left: i64, active: i64, admitted: i64) {
    let set = |name: &'static str, v: i64| {
        metrics::gauge!(name, "sale" => sale.to_string()).set(v as f64);
    };
    set("waitroom_sale_queue_length", queue_len);
    set("waitroom_sale_units_left", units_left.max(0));
    set("waitroom_sale_active_tickets", active);
    set("waitroom_sale_admitted", admitted);
}

/// A webhook attempt that failed (or was answered 410), by endpoint id.
pub fn webhook_failure(endpoint: &uuid::Uuid) {
    metrics::counter!("waitroom_webhook_failures_total", "endpoint" => endpoint.to_string())
        .increment(1);
}

/// The webhook backlog over every endpoint, as the relay last read it from Postgres (every
/// instance reads the same numbers).
pub fn webhook_backlog(pending: i64, oldest_secs: f64) {
    metrics::gauge!("waitroom_webhook_pending").set(pending as f64);
    metrics::gauge!("waitroom_webhook_oldest_pending_seconds").set(oldest_secs);
}

/// A Redis failure, by kind, wherever it happens (requests and background loops alike).
fn redis_error(e: &redis::RedisError) {
    use redis::{ErrorKind as K, ServerErrorKind as S};
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
        "connection"
    } else {
        match e.kind() {
            K::Server(S::BusyLoading) => "loading",
            K::Server(S::NoScript) => "noscript",
            K::Server(S::ReadOnly) => "readonly",
            K::Server(S::Moved | S::Ask | S::TryAgain | S::ClusterDown | S::MasterDown)
            | K::Server(S::CrossSlot)
            | K::ClusterConnectionNotFound => "cluster",
            K::Server(_) | K::Extension => "server",
            K::Parse | K::UnexpectedReturnType => "reply",
            _ => "client",
        }
    };
    metrics::counter!(STORE_ERRORS, "store" => "redis", "kind" => kind).increment(1);
}

/// A Postgres failure, by kind.
fn postgres_error(e: &sqlx::Error) {
    use sqlx::Error as E;
    let kind = match e {
        E::Io(_) => "connection",
        E::Tls(_) => "tls",
        E::PoolTimedOut => "pool_timeout",
        E::PoolClosed | E::WorkerCrashed => "pool_closed",
        E::Database(_) => "database",
        E::Protocol(_) => "protocol",
        E::RowNotFound => "row_not_found",
        E::Decode(_) | E::ColumnDecode { .. } | E::TypeNotFound { .. } => "decode",
        _ => "client",
    };
    metrics::counter!(STORE_ERRORS, "store" => "postgres", "kind" => kind).increment(1);
}

const STORE_ERRORS: &str = "waitroom_store_errors_total";

fn describe() {
    let counters = [
        ("waitroom_joins_total", "shoppers who joined a line"),
        (
            "waitroom_admitted_total",
            "shoppers admitted by this instance's ticker",
        ),
        ("waitroom_orders_total", "orders accepted by this instance"),
        (
            "waitroom_checkout_rejected_total",
            "checkouts refused (sold out, expired, invalid)",
        ),
        (
            "waitroom_dependency_errors_total",
            "requests answered 503 because Redis or Postgres failed",
        ),
        (
            "waitroom_ledger_synced_total",
            "orders written to Postgres by the ledger sync",
        ),
        (
            "waitroom_units_released_total",
            "units returned to stock by failed or expired holds",
        ),
        (
            "waitroom_refunds_due_total",
            "orders made refund_due: paid after the hold lapsed or the payment failed",
        ),
        (
            "waitroom_webhook_delivered_total",
            "webhook deliveries a receiver answered with a 2xx",
        ),
        (
            "waitroom_webhook_failures_total",
            "failed webhook attempts (no answer, not 2xx, 410), by endpoint",
        ),
        (LIMITED, "requests refused by the per-client rate limits"),
        (
            STORE_ERRORS,
            "Redis and Postgres failures by store and kind",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
    }
    let gauges = [
        (
            "waitroom_sse_streams",
            "open event streams on this instance",
        ),
        (
            "waitroom_sale_queue_length",
            "shoppers waiting in the sale's line",
        ),
        (
            "waitroom_sale_units_left",
            "units the sale has left to sell",
        ),
        (
            "waitroom_sale_active_tickets",
            "admitted shoppers whose ticket is still valid",
        ),
        (
            "waitroom_sale_admitted",
            "shoppers admitted since the sale began",
        ),
        (
            "waitroom_webhook_pending",
            "webhook deliveries not yet delivered nor given up, over every endpoint",
        ),
        (
            "waitroom_webhook_oldest_pending_seconds",
            "age of the oldest pending webhook delivery",
        ),
    ];
    for (name, help) in gauges {
        describe_gauge!(name, help);
    }
    describe_histogram!(LATENCY, Unit::Seconds, "handler time by route");
    describe_histogram!(
        "waitroom_ticker_lag_seconds",
        Unit::Seconds,
        "how late each admission tick ran against its schedule"
    );
}

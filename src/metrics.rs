//! Process counters in Prometheus text format. Plain atomics: the hot paths pay one relaxed
//! add, and no metrics crate is needed for a handful of counters.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Metrics {
    pub joins: Counter,
    pub admitted: Counter,
    pub orders: Counter,
    pub checkout_rejected: Counter,
    pub dependency_errors: Counter,
    pub ledger_synced: Counter,
    pub units_released: Counter,
    pub sse_streams: Gauge,
    pub limited_writes: Counter,
    pub limited_reads: Counter,
}

pub static METRICS: std::sync::LazyLock<Metrics> = std::sync::LazyLock::new(Metrics::default);

impl Metrics {
    pub fn limiter_rejections(&self, class: crate::door::limits::Class) -> &Counter {
        match class {
            crate::door::limits::Class::Write => &self.limited_writes,
            crate::door::limits::Class::Read => &self.limited_reads,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, u64); 7] = [
            (
                "waitroom_joins_total",
                "shoppers who joined a line",
                self.joins.get(),
            ),
            (
                "waitroom_admitted_total",
                "shoppers admitted by this instance's ticker",
                self.admitted.get(),
            ),
            (
                "waitroom_orders_total",
                "orders accepted by this instance",
                self.orders.get(),
            ),
            (
                "waitroom_checkout_rejected_total",
                "checkouts refused (sold out, expired, invalid)",
                self.checkout_rejected.get(),
            ),
            (
                "waitroom_dependency_errors_total",
                "Redis or Postgres failures",
                self.dependency_errors.get(),
            ),
            (
                "waitroom_ledger_synced_total",
                "orders written to Postgres by the ledger sync",
                self.ledger_synced.get(),
            ),
            (
                "waitroom_units_released_total",
                "units returned to stock by failed or expired holds",
                self.units_released.get(),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP waitroom_limiter_rejections_total requests refused by the per-client rate limits\n# TYPE waitroom_limiter_rejections_total counter\nwaitroom_limiter_rejections_total{{class=\"write\"}} {}\nwaitroom_limiter_rejections_total{{class=\"read\"}} {}",
            self.limited_writes.get(),
            self.limited_reads.get()
        );
        let _ = writeln!(
            out,
            "# HELP waitroom_sse_streams open event streams on this instance\n# TYPE waitroom_sse_streams gauge\nwaitroom_sse_streams {}",
            self.sse_streams.get()
        );
        out
    }
}

//! Once a second, one background task per instance reads every sale's numbers (one Postgres
//! query, one pipelined Redis read), keeps the last fifteen minutes per sale in a ring, and
//! hands the sample, serialised once, to every open dashboard through a `watch`: the cost is
//! the same for one dashboard or fifty, and a slow one skips samples instead of lagging.
//!
//! Sales the background loops no longer look at (finished: not in `wr:sales`) are read once
//! and then repeat their last reading, so only live sales cost a read each second.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use bytestring::ByteString;
use serde::Serialize;
use tokio::sync::watch;

use crate::core::domain::variant::{self, VariantStock};
use crate::core::domain::SaleId;
use crate::core::fault::Fault;
use crate::infra::ledger::{Ledger, SaleRow};
use crate::infra::store::{Reading, Store};

/// Fifteen minutes of one sample a second.
pub const WINDOW: usize = 900;
const WINDOW_MS: i64 = WINDOW as i64 * 1000;

/// One sale at one second, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SaleSample {
    pub id: SaleId,
    pub name: String,
    pub open: bool,
    pub units: i64,
    pub sold: i64,
    pub remaining: i64,
    pub queue_len: i64,
    pub admitted_active: i64,
    pub admitted_total: i64,
    pub pending_sync: i64,
    /// Orders owed a refund (paid after they lapsed or failed).
    pub refunds_due: i64,
    pub admissions_per_sec: f64,
    pub orders_per_sec: f64,
    pub checkout_p99_ms: Option<f64>,
    pub rate_per_sec: i64,
    pub max_active: i64,
    pub opens_at: Option<String>,
    pub closes_at: Option<String>,
    /// Each variant's units and units left, in a sale with variants.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_variant: Vec<VariantStock>,
}

/// Every sale at one second; `t` is Redis's clock in ms.
#[derive(Debug, Serialize)]
pub struct Sample {
    pub t: i64,
    pub sales: Vec<SaleSample>,
}

/// What the charts draw of one second.
#[derive(Debug, Clone, Copy)]
struct Point {
    t: i64,
    queue_len: i64,
    admissions_per_sec: f64,
    orders_per_sec: f64,
    remaining: i64,
    admitted_active: i64,
    pending_sync: i64,
    checkout_p99_ms: Option<f64>,
}

impl From<(i64, &SaleSample)> for Point {
    fn from((t, s): (i64, &SaleSample)) -> Self {
        Self {
            t,
            queue_len: s.queue_len,
            admissions_per_sec: s.admissions_per_sec,
            orders_per_sec: s.orders_per_sec,
            remaining: s.remaining,
            admitted_active: s.admitted_active,
            pending_sync: s.pending_sync,
            checkout_p99_ms: s.checkout_p99_ms,
        }
    }
}

/// One sale's history, column by column (what uPlot takes, and a third of the JSON).
#[derive(Debug, Default, Serialize)]
struct Series {
    t: Vec<i64>,
    queue_len: Vec<i64>,
    admissions_per_sec: Vec<f64>,
    orders_per_sec: Vec<f64>,
    remaining: Vec<i64>,
    admitted_active: Vec<i64>,
    pending_sync: Vec<i64>,
    checkout_p99_ms: Vec<Option<f64>>,
}

impl Series {
    fn push(&mut self, p: &Point) {
        self.t.push(p.t);
        self.queue_len.push(p.queue_len);
        self.admissions_per_sec.push(p.admissions_per_sec);
        self.orders_per_sec.push(p.orders_per_sec);
        self.remaining.push(p.remaining);
        self.admitted_active.push(p.admitted_active);
        self.pending_sync.push(p.pending_sync);
        self.checkout_p99_ms.push(p.checkout_p99_ms);
    }
}

#[derive(Default)]
struct Rings {
    by_sale: HashMap<SaleId, VecDeque<Point>>,
    latest: Option<ByteString>,
}

/// The instance's samples: the rings, and the latest sample for the streams.
pub struct Console {
    rings: Mutex<Rings>,
    latest: watch::Sender<Option<ByteString>>,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            rings: Mutex::default(),
            latest: watch::Sender::new(None),
        }
    }
}

impl Console {
    /// New samples from here on; mark the current one seen before reading `history`.
    pub fn subscribe(&self) -> watch::Receiver<Option<ByteString>> {
        self.latest.subscribe()
    }

    /// The `history` event's data: up to fifteen minutes per sale, and the latest sample.
    pub fn history(&self) -> ByteString {
        #[derive(Serialize)]
        struct History<'a> {
            series: HashMap<&'a SaleId, Series>,
            latest: Option<serde_json::Value>,
        }
        let rings = self.rings.lock().expect("console lock");
        let mut series = HashMap::new();
        for (sale, ring) in &rings.by_sale {
            let mut s = Series::default();
            ring.iter().for_each(|p| s.push(p));
            series.insert(sale, s);
        }
        let latest = rings
            .latest
            .as_ref()
            .and_then(|j| serde_json::from_str(j).ok());
        let json = serde_json::to_string(&History { series, latest });
        json.expect("history serializes").into()
    }

    /// Keeps a sample in the rings and hands it to every open dashboard.
    pub fn record(&self, sample: &Sample) {
        let json: ByteString = serde_json::to_string(sample)
            .expect("a sample serializes")
            .into();
        let mut rings = self.rings.lock().expect("console lock");
        let live: HashSet<&SaleId> = sample.sales.iter().map(|s| &s.id).collect();
        rings.by_sale.retain(|sale, _| live.contains(sale));
        for s in &sample.sales {
            let ring = rings.by_sale.entry(s.id.clone()).or_default();
            ring.push_back(Point::from((sample.t, s)));
            while ring.len() > WINDOW || ring.front().is_some_and(|p| p.t <= sample.t - WINDOW_MS) {
                ring.pop_front();
            }
        }
        rings.latest = Some(json.clone());
        drop(rings);
        self.latest.send_replace(Some(json));
    }
}

/// What the sampler remembers between seconds.
#[derive(Default)]
pub struct Sampler {
    rows: Vec<SaleRow>,
    /// The last reading of each sale and its time: rates are differences of readings.
    last: HashMap<SaleId, (i64, Reading)>,
    /// `wr:sales` as last read; None before the first read (then every sale is read).
    listed: Option<HashSet<SaleId>>,
}

/// Per second over the interval between two readings; counters that fell (a release, a
/// rebuilt sale) count as no progress.
fn per_sec(before: Option<(i64, i64)>, t: i64, now: i64) -> f64 {
    match before {
        Some((t0, v0)) if t > t0 => (now - v0).max(0) as f64 * 1000.0 / (t - t0) as f64,
        _ => 0.0,
    }
}

impl Sampler {
    /// One sample of every sale: the ledger's names and settings, Redis's live numbers.
    pub async fn step(&mut self, store: &Store, ledger: &Ledger) -> Result<Sample, Fault> {
        // A Postgres outage leaves the names and settings as last read; Redis's numbers go on.
        match ledger.sales().await {
            Ok(rows) => self.rows = rows,
            Err(e) => tracing::debug!(error = %e, "console cannot list sales"),
        }
        let due: Vec<SaleId> = self
            .rows
            .iter()
            .map(|r| r.id.clone())
            .filter(|id| {
                let listed = self.listed.as_ref().is_none_or(|l| l.contains(id));
                listed || !self.last.contains_key(id)
            })
            .collect();
        let read = store.console_read(&due).await?;
        let p99 = crate::infra::metrics::checkout_p99_ms();
        let mut sales = Vec::with_capacity(self.rows.len());
        let mut fresh = HashMap::with_capacity(due.len());
        for (id, reading) in due.iter().zip(read.readings) {
            fresh.insert(id.clone(), reading);
        }
        let mut last = HashMap::with_capacity(self.rows.len());
        for row in &self.rows {
            let before = self.last.get(&row.id);
            let Some(r) = fresh
                .remove(&row.id)
                .or_else(|| before.map(|b| b.1.clone()))
            else {
                continue;
            };
            let prev = |f: fn(&Reading) -> i64| before.map(|(t, b)| (*t, f(b)));
            let l = &r.live;
            sales.push(SaleSample {
                id: row.id.clone(),
                name: row.name.clone(),
                open: l.open,
                units: row.units.into(),
                sold: row.sold.into(),
                remaining: l.remaining,
                queue_len: l.queue_len,
                admitted_active: l.admitted_active,
                admitted_total: l.admitted_total,
                pending_sync: r.pending,
                refunds_due: r.refunds,
                admissions_per_sec: per_sec(
                    prev(|b| b.live.admitted_total),
                    read.at_ms,
                    l.admitted_total,
                ),
                orders_per_sec: per_sec(prev(|b| b.orders), read.at_ms, r.orders),
                checkout_p99_ms: p99,
                rate_per_sec: row.rate_per_sec.into(),
                max_active: row.max_active.into(),
                opens_at: row.opens_at.map(|t| t.to_rfc3339()),
                closes_at: row.closes_at.map(|t| t.to_rfc3339()),
                by_variant: variant::by_variant(&row.variants, l.variants_left.as_ref(), None),
            });
            last.insert(row.id.clone(), (read.at_ms, r));
        }
        self.last = last;
        self.listed = Some(read.listed);
        Ok(Sample {
            t: read.at_ms,
            sales,
        })
    }
}

//! The scenarios and what they share. Each starts its own server instance(s), so one
//! scenario's leftovers (allocator state, open sockets) do not colour the next one's figures.

pub mod admission;
pub mod browser;
pub mod enqueue;
pub mod herd;
pub mod limits;
pub mod memory;
pub mod orders;
pub mod pow;
pub mod sale;
pub mod sse;
pub mod status;
pub mod variants;
pub mod webhooks;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;

use crate::load::Load;
use crate::report::Report;
use crate::server::{Env, Instance};
use crate::stores::{LedgerCheck, Stores};

/// Scenario sizes: full mode holds the DESIGN.md numbers, quick mode is a smoke test.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub load: Load,
    /// Units (= shoppers) of the orders scenario.
    pub orders: usize,
    /// The herd: units on sale, and ticket holders clicking for them.
    pub herd_units: usize,
    pub herd_crowd: usize,
    pub sse_streams: usize,
    pub sale_shoppers: usize,
    pub sale_units: usize,
    pub sale_rate: usize,
    /// How long the admission scenario measures (DESIGN.md: 60 s).
    pub admission_window: Duration,
    /// Alternating (baseline, target) pairs, and the load of each of their runs.
    pub pairs: usize,
    pub pair_load: Load,
    /// Each open-loop run (its rate comes from the closed-loop maximum of the same run).
    pub open_load: Load,
    /// Queued shoppers whose tokens the status reads use, round robin.
    pub status_shoppers: usize,
    /// At most this many admitted tickets for the open-loop checkouts (one each).
    pub open_orders_max: usize,
}

impl Sizes {
    pub fn new(quick: bool, conns: usize) -> Self {
        if quick {
            Self {
                load: Load {
                    conns,
                    warmup: Duration::from_millis(500),
                    duration: Duration::from_secs(3),
                },
                orders: 2_000,
                herd_units: 200,
                herd_crowd: 2_000,
                sse_streams: 3_000,
                sale_shoppers: 2_000,
                sale_units: 400,
                sale_rate: 200,
                admission_window: Duration::from_secs(5),
                pairs: 3,
                pair_load: Load {
                    conns,
                    warmup: Duration::from_millis(300),
                    duration: Duration::from_secs(1),
                },
                open_load: Load {
                    conns,
                    warmup: Duration::from_millis(300),
                    duration: Duration::from_millis(1_500),
                },
                status_shoppers: 1_000,
                open_orders_max: 6_000,
            }
        } else {
            Self {
                load: Load {
                    conns,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs(10),
                },
                orders: 20_000,
                herd_units: 1_000,
                herd_crowd: 20_000,
                sse_streams: 50_000,
                sale_shoppers: 20_000,
                sale_units: 1_000,
                sale_rate: 500,
                admission_window: Duration::from_secs(60),
                pairs: 3,
                pair_load: Load {
                    conns,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs(5),
                },
                open_load: Load {
                    conns,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs(10),
                },
                status_shoppers: 10_000,
                open_orders_max: 40_000,
            }
        }
    }
}

pub struct Ctx {
    pub env: Env,
    pub stores: Stores,
    pub sizes: Sizes,
    /// Short id of this run, in every sale id it makes.
    pub run: String,
    sales: Mutex<Vec<String>>,
}

impl Ctx {
    pub fn new(env: Env, stores: Stores, sizes: Sizes) -> Self {
        Self {
            env,
            stores,
            sizes,
            run: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            sales: Mutex::new(Vec::new()),
        }
    }

    /// A fresh sale id, remembered for the clean-up.
    pub fn sale_id(&self, scenario: &str) -> String {
        let id = format!("bench-{}-{scenario}", self.run);
        self.sales.lock().expect("sales lock").push(id.clone());
        id
    }

    pub fn sales(&self) -> Vec<String> {
        self.sales.lock().expect("sales lock").clone()
    }

    pub async fn start(&self, name: &str) -> Result<Instance> {
        self.env.start(name).await
    }

    pub async fn start_with(&self, name: &str, vars: &[(&str, &str)]) -> Result<Instance> {
        self.env.start_with(name, vars).await
    }

    /// Checks a sale's ledger against the orders the API accepted and adds to the counters.
    pub async fn check_ledger(
        &self,
        r: &mut Report,
        sale: &str,
        accepted: &[uuid::Uuid],
    ) -> Result<LedgerCheck> {
        let c = self.stores.check_ledger(sale, accepted).await?;
        r.add("oversold", c.oversold);
        r.add("lost_orders", c.lost);
        if c.oversold > 0 || c.lost > 0 {
            r.note(format!(
                "{sale}: {c:?} with {} orders accepted by the API",
                accepted.len()
            ));
        }
        Ok(c)
    }
}

/// Progress on stderr, so a long run shows what it is doing.
/// The wall clock in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn say(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

/// The median, NaN for none (sorts `v`).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

//! Schedules: a sale opens at `opens_at` and closes at `closes_at`, by Redis's clock, within
//! one tick, on whichever instance's ticker gets there first.
//!
//! Each instance remembers which sales have a time pending and when (`Schedules`): from the
//! ticker's read of every sale (about once a second) and, at once, from changes made through
//! this instance. Every tick it runs lua/schedule.lua for the sales whose time is near by
//! Redis's clock as last read, so a tick costs O(sales due soon), nothing per shopper, and a
//! closed sale nobody waits in (one the ticker otherwise skips) is looked at all the same.
//! The script decides by Redis `TIME` and clears the time it fires, so exactly one call of
//! all instances' writes the flip to the ledger and the audit trail.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::core::domain::SaleId;
use crate::flows::audit::{self, Kind, Source};
use crate::infra::ledger::Ledger;
use crate::infra::store::{Fired, Live, Store};

#[derive(Default)]
pub struct Schedules(Mutex<Known>);

#[derive(Default)]
struct Known {
    /// Sale → its earliest pending time, unix ms.
    due: HashMap<SaleId, i64>,
    /// Redis's time (ms) at the last read of every sale, and when that was here: Redis's
    /// clock now, near enough to choose which sales to ask (the script decides).
    clock: Option<(i64, Instant)>,
}

impl Schedules {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().expect("schedules lock")
    }

    /// The ticker read every listed sale (`live`, in the order of `sales`) at Redis time
    /// `at_us`: what is pending now.
    pub fn observe(&self, at_us: i64, sales: &[SaleId], live: &[Live]) {
        let mut k = self.known();
        k.clock = Some((at_us / 1000, Instant::now()));
        k.due = sales
            .iter()
            .zip(live)
            .filter_map(|(sale, l)| {
                let next = [l.opens_at_ms, l.closes_at_ms].into_iter().flatten().min();
                Some((sale.clone(), next?))
            })
            .collect();
    }

    /// The sale's next pending time changed here (a create, a PATCH, a schedule fired).
    pub fn expect(&self, sale: &SaleId, due_ms: Option<i64>) {
        let mut k = self.known();
        match due_ms {
            Some(ms) => k.due.insert(sale.clone(), ms),
            None => k.due.remove(sale),
        };
    }

    /// Sales whose time comes before Redis's clock plus `ahead` (all of them before the first
    /// read of Redis's clock).
    fn due_within(&self, ahead: Duration) -> HashSet<SaleId> {
        let k = self.known();
        let horizon = k.clock.map_or(i64::MAX, |(ms, read)| {
            ms + (read.elapsed() + ahead).as_millis() as i64
        });
        let near = k.due.iter().filter(|(_, &due)| due <= horizon);
        near.map(|(sale, _)| sale.clone()).collect()
    }
}

/// How often a fired schedule's ledger write is tried: backing off to every 30 s, for about
/// half an hour (a Postgres outage longer than that needs the operator anyway).
const WRITE_TRIES: u32 = 64;

/// One tick's look at the schedules: runs lua/schedule.lua for every sale whose time is due
/// before the next read of every sale (five ticks), with a tick to spare.
pub async fn run_due(store: &Store, ledger: &Ledger, schedules: &Schedules, tick: Duration) {
    let due = schedules.due_within(tick * 6);
    let fire = |sale| fire(store, ledger, schedules, sale);
    futures_util::future::join_all(due.into_iter().map(fire)).await;
}

async fn fire(store: &Store, ledger: &Ledger, schedules: &Schedules, sale: SaleId) {
    match store.run_schedule(&sale).await {
        Ok((fired, next)) => {
            schedules.expect(&sale, next);
            if !fired.is_empty() {
                // Off the ticker: a slow Postgres must not hold up admission.
                tokio::spawn(write_down(ledger.clone(), sale, fired));
            }
        }
        Err(e) => tracing::debug!(%sale, error = %e, "schedule check failed"),
    }
}

/// This instance's call fired these: the ledger and the audit trail hear them from here only.
async fn write_down(ledger: Ledger, sale: SaleId, fired: Vec<Fired>) {
    for f in &fired {
        write_one(&ledger, &sale, f).await;
    }
}

async fn write_one(ledger: &Ledger, sale: &SaleId, f: &Fired) {
    let open = f.flipped.then_some(f.opens);
    // Until the ledger has it: a schedule the ledger still holds would be armed again by a
    // rebuild from it. Redis cleared the time and made the flip already; the sweeper copies the
    // switch to the ledger meanwhile (`recovery::watch`).
    let mut wait = Duration::from_millis(500);
    let mut tries = 0;
    while let Err(e) = ledger.schedule_fired(sale, f.opens, f.due_ms, open).await {
        tries += 1;
        if tries >= WRITE_TRIES {
            tracing::error!(%sale, error = %e, "a fired schedule never reached the ledger");
            break;
        }
        tracing::warn!(%sale, error = %e, "a fired schedule is not in the ledger yet; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
    tracing::info!(%sale, opens = f.opens, flipped = f.flipped, "schedule fired");
    if f.flipped {
        let kind = if f.opens { Kind::Opened } else { Kind::Closed };
        let detail = json!({"at_ms": f.at_ms, "due_ms": f.due_ms});
        audit::record(ledger, sale, kind, Source::Schedule, detail).await;
    }
}

//! The background loops every instance runs: the admission ticker and the sweeper.
//!
//! Both are safe on any number of instances at once: admit.lua is atomic on Redis's clock,
//! and the sweeper's writes are idempotent, so no leader election is needed.

use std::sync::Arc;

use crate::metrics::METRICS;
use crate::state::{AppState, Every};

/// Every `tick`, runs admit.lua for every admitting sale and publishes its numbers to local
/// streams. The per-tick cost is per sale, not per waiting shopper. Every fifth tick also
/// reads every sale's numbers in one pipelined round trip (a redis-cli open is seen within
/// five ticks; an API open at once, through the hub), and runs admit.lua only for sales with
/// something to do: sold-out sales and closed ones nobody waits in cost no script at all.
pub async fn run_ticker(s: Arc<AppState>) {
    let mut every = Every::new(s.config.tick, &s.shutdown);
    let mut sales: Vec<String> = Vec::new();
    let mut n: u64 = 0;
    while every.tick().await {
        crate::metrics::on_tick(every.lag());
        crate::schedule::run_due(&s).await;
        let look_at_all = n.is_multiple_of(5);
        n += 1;
        let due: Vec<&String> = if look_at_all {
            // The sale list changes rarely: refresh it about once a second.
            match s.store.sale_ids().await {
                Ok(ids) => sales = ids,
                Err(e) => tracing::debug!(error = %e, "ticker cannot list sales"),
            }
            busy_sales(&s, &sales).await
        } else {
            let admitting =
                |sale: &&String| s.hub.progress(sale).is_none_or(|p| p.open && !p.sold_out);
            sales.iter().filter(admitting).collect()
        };
        let ticks = due.into_iter().map(|sale| {
            let s = &s;
            async move { (sale, s.store.admit(sale).await) }
        });
        for (sale, result) in futures_util::future::join_all(ticks).await {
            match result {
                Ok(t) => {
                    METRICS.admitted.add(t.admitted.len() as u64);
                    crate::report::record_tick(&s, sale, &t);
                    s.hub.on_tick(sale, &t);
                    crate::metrics::sale_tick(sale, &t);
                }
                Err(e) => tracing::debug!(sale, error = %e, "admission tick failed"),
            }
        }
    }
}

/// Of these sales, the ones admit.lua has work for: units left and someone waiting, admitted
/// or free to be let in. The others' numbers go to their streams straight from the read.
async fn busy_sales<'a>(s: &AppState, sales: &'a [String]) -> Vec<&'a String> {
    let ids: Vec<&str> = sales.iter().map(String::as_str).collect();
    let (at_us, live) = match s.store.live_many(&ids).await {
        Ok(read) => read,
        Err(e) => {
            tracing::debug!(error = %e, "ticker cannot read sales");
            return sales.iter().collect();
        }
    };
    s.schedules.observe(at_us, sales, &live);
    let mut busy = Vec::new();
    for (sale, l) in sales.iter().zip(live) {
        let has_work = l.remaining > 0 && (l.open || l.queue_len > 0 || l.admitted_active > 0);
        // A sale that just closed or sold out gets one more tick: admit.lua then empties its
        // bucket, so a later reopen or restock starts without a burst.
        let was_admitting = s.hub.progress(sale).is_none_or(|p| p.open && !p.sold_out);
        if has_work || was_admitting {
            busy.push(sale);
        } else {
            s.hub.on_live(sale, &l, at_us);
            crate::metrics::sale_live(sale, &l);
        }
    }
    busy
}

/// Every `sweep`: expires lapsed holds, writes Redis-accepted orders that missed Postgres,
/// settles sales rebuilt a while ago, and retires finished sales from the working set.
pub async fn run_sweeper(s: Arc<AppState>) {
    let mut every = Every::new(s.config.sweep, &s.shutdown);
    while every.tick().await {
        if let Err(e) = crate::payments::expire_holds(&s).await {
            tracing::debug!(error = %e, "hold sweep failed");
        }
        // One round trip finds the few sales with work; idle sales cost nothing more.
        let due = match s.store.sale_ids().await {
            Ok(ids) => {
                if let Err(e) = crate::recovery::watch(&s, &ids).await {
                    tracing::debug!(error = %e, "watching redis against the ledger failed");
                }
                s.store.needing_sweep(&ids, s.config.settle_after).await
            }
            Err(e) => Err(e),
        };
        match due {
            Ok(due) => {
                for (sale, work) in due {
                    // Orders younger than this are still inside their own checkout request.
                    if work.pending {
                        if let Err(e) = crate::checkout::sync_pending(&s, &sale, 3_000).await {
                            tracing::debug!(sale, error = %e, "ledger sync failed");
                        }
                    }
                    if work.unsettled_due {
                        if let Err(e) = crate::recovery::settle_rebuilt(&s, &sale).await {
                            tracing::warn!(sale, error = %e, "settling a rebuilt sale failed");
                        }
                    }
                    if work.maybe_finished {
                        if let Err(e) = crate::sales::retire_if_finished(&s, &sale).await {
                            tracing::debug!(sale, error = %e, "finishing a sale failed");
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "sweep cannot list sales"),
        }
    }
}

/// Every ten sweeps: rebuilds the sales Redis has lost, so one nobody looks at comes back
/// too. A loop of its own: a Redis that lost hundreds of sales must not hold up hold expiry,
/// releases and settling behind their rebuilds.
pub async fn run_rebuilder(s: Arc<AppState>) {
    let mut every = Every::new(s.config.sweep * 10, &s.shutdown);
    while every.tick().await {
        if let Err(e) = crate::recovery::detect_lost_sales(&s).await {
            tracing::debug!(error = %e, "rebuilding lost sales failed");
        }
    }
}

//! The admission ticker. Safe on any number of instances at once: admit.lua is atomic on
//! Redis's clock, so together they admit exactly the configured rate, with no leader.

use std::sync::Arc;

use crate::core::domain::SaleId;
use crate::flows::Deps;
use crate::infra::metrics::METRICS;
use crate::tasks::every::Every;

/// Every `tick`, runs admit.lua for every admitting sale and publishes its numbers to local
/// streams. The per-tick cost is per sale, not per waiting shopper. Every fifth tick also
/// reads every sale's numbers in one pipelined round trip (a redis-cli open is seen within
/// five ticks; an API open at once, through the hub), and runs admit.lua only for sales with
/// something to do: sold-out sales and closed ones nobody waits in cost no script at all.
pub async fn run(s: Arc<Deps>, mut every: Every) {
    let mut sales: Vec<SaleId> = Vec::new();
    let mut n: u64 = 0;
    let drawing = Arc::default();
    while every.tick().await {
        crate::infra::metrics::on_tick(every.lag());
        crate::flows::schedule::run_due(&s.store, &s.ledger, &s.schedules, s.config.loops.tick)
            .await;
        // After the schedule (an opening it fired freezes the draw now), before admission.
        crate::flows::draw::tick(&s, &drawing, n.is_multiple_of(5)).await;
        let look_at_all = n.is_multiple_of(5);
        n += 1;
        let due: Vec<&SaleId> = if look_at_all {
            // The sale list changes rarely: refresh it about once a second.
            match s.store.sale_ids().await {
                Ok(ids) => sales = ids,
                Err(e) => tracing::debug!(error = %e, "ticker cannot list sales"),
            }
            busy_sales(&s, &sales).await
        } else {
            let admitting =
                |sale: &&SaleId| s.hub.progress(sale).is_none_or(|p| p.open && !p.sold_out);
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
                    crate::flows::report::record_tick(&s, sale, &t);
                    s.hub.on_tick(sale, &t);
                    crate::infra::metrics::sale_tick(sale, &t);
                }
                Err(e) => tracing::debug!(%sale, error = %e, "admission tick failed"),
            }
        }
    }
}

/// Of these sales, the ones admit.lua has work for: units left and someone waiting, admitted
/// or free to be let in. The others' numbers go to their streams straight from the read.
async fn busy_sales<'a>(s: &Deps, sales: &'a [SaleId]) -> Vec<&'a SaleId> {
    let (at_us, live) = match s.store.live_many(sales).await {
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
            crate::infra::metrics::sale_live(sale, &l);
        }
    }
    busy
}

//! Recovering a sale Redis lost: detect, rebuild, settle.
//!
//! Redis holds a sale's live state (the line, admissions, stock, who bought); Postgres holds
//! the ledger (the sale and every order) and is the authority. Redis can lose some or all of
//! a sale: a FLUSH, a restart without its AOF, a failover to a replica that was behind.
//! **Detect**: a script answers that the sale is unknown, a shopper holding a valid token is
//! in none of the sale's sets, or the sweeper finds a sale the ledger has and Redis does not.
//! **Rebuild**: the sale comes back from the ledger in one atomic script (settings, stock =
//! units − sold, every buyer's order, every ticket whose order lapsed) and is marked
//! `unsettled`; a waiting shopper's place comes back at the join time in their token, once the
//! ledger says they did not buy. **Settle**: make Redis's stock agree with the ledger, under
//! the sale's row lock. A checkout Redis accepted just before the loss may commit after the
//! rebuild read the ledger, so any instance's sweeper settles a rebuilt sale once
//! `SETTLE_AFTER` has passed (no order commits later than that); until then releases add no
//! units. Meanwhile stock can be high by the units of orders in flight at the loss: the
//! Postgres CHECK (`sold <= units`) then refuses the extra order, so nothing is oversold, but
//! that shopper hears 409 after Redis said yes. An order whose ledger verdict differs from
//! Redis's is settled on its own: the ticket bought before (keep the ledger's order, give back
//! what Redis took again) or the ledger refused it (void the ticket, settle the stock).
//!
//! Layering: this module uses `store` and `ledger` only; the flows call it.

use std::sync::Arc;
use std::time::Duration;

use crate::core::domain::{OrderRecord, QueueId, SaleId};
use crate::core::fault::Fault;
use crate::flows::audit::{self, Kind, Source};
use crate::flows::Deps;
use crate::infra::ledger::{LockedSale, Order, Recorded};
use crate::infra::store::{Settlement, Verdict};

/// By then every order Redis accepted before it lost a sale has committed or given up, and a
/// settle ends the rebuilt sale's `unsettled` state.
pub use crate::core::config::SETTLE_AFTER;

// ---- detect ----

/// Redis answered that it does not know this sale. If the caller proved the sale existed
/// (a token signed for it) or this instance has seen it, Redis lost it: rebuild it and
/// answer whether it is back. Unproven ids never reach Postgres, so made-up sale ids cost
/// one Redis round trip only.
pub async fn detect(s: &Deps, id: &SaleId, proven: bool) -> Result<bool, Fault> {
    if !proven && s.hub.progress(id).is_none() {
        return Ok(false);
    }
    rebuild(s, id).await
}

/// The sweep: rebuilds every live sale the ledger has and Redis lost, even one nobody looks
/// at. Finished sales are left out (O(live sales)); one comes back when someone reads it.
pub async fn detect_lost_sales(s: &Deps) -> Result<usize, Fault> {
    let ids = s.ledger.live_sale_ids().await?;
    let missing = s.store.missing(&ids).await?;
    for sale in &missing {
        rebuild(s, sale).await?;
    }
    for sale in s.store.unlisted(&ids).await? {
        tracing::warn!(%sale, "sale in redis but not in wr:sales; listed again");
        s.store.list_sale(&sale).await?;
    }
    Ok(missing.len())
}

// ---- rebuild ----

/// Makes sure Redis has the sale, rebuilding it from the ledger if Redis lost it. False if
/// Postgres does not know the sale either. The waiting line itself comes back as shoppers
/// re-present their queue tokens (`rebuild_shopper`).
pub async fn rebuild(s: &Deps, id: &SaleId) -> Result<bool, Fault> {
    // One rebuild of a sale at a time per instance: a herd of requests finding it gone waits
    // for the one rebuilding it, then looks once, instead of each reading the ledger.
    let lock = s
        .rebuilding
        .lock()
        .expect("rebuilding lock")
        .entry(id.clone())
        .or_default()
        .clone();
    let Ok(_one) = lock.try_lock() else {
        drop(lock.lock().await);
        return match s.store.has_sale(id).await? {
            true => Ok(true),
            false => Err(Fault::Busy("the sale is being rebuilt")),
        };
    };
    let rebuilt = rebuild_sale(s, id).await;
    s.rebuilding.lock().expect("rebuilding lock").remove(id);
    rebuilt
}

async fn rebuild_sale(s: &Deps, id: &SaleId) -> Result<bool, Fault> {
    if s.store.has_sale(id).await? {
        return Ok(true);
    }
    let Some(state) = s.ledger.sale_state(id).await? else {
        return Ok(false);
    };
    let stock = (state.sale.units - state.sale.sold) as i64;
    let spec = state.sale.spec().map_err(|e| Fault::bug(e.to_string()))?;
    let ended_ms = state.sale.ended_at.map(|t| t.timestamp_millis());
    let switch = (state.sale.open, ended_ms);
    if s.store
        .rebuild_sale(&spec, stock, &state.orders, switch)
        .await?
    {
        tracing::warn!(
            sale = %id, stock, buyers = state.orders.bought.len(),
            "sale was missing from redis; rebuilt from postgres"
        );
        let detail = serde_json::json!({"stock": stock, "buyers": state.orders.bought.len(),
            "lapsed": state.orders.lapsed.len(), "open": state.sale.open});
        audit::record(&s.ledger, id, Kind::Rebuilt, Source::System, detail).await;
        crate::flows::draw::after_rebuild(s, id, &state.sale.settings).await?;
    }
    Ok(true)
}

/// Redis has no trace of this shopper: it lost the sale, and the rebuild came before anything
/// this shopper did since. The ledger says whether they bought (Redis is told, and they stay
/// out of the line) or were admitted (the admission comes back, lapsed or live); otherwise
/// their place comes back at `score`, the join time in their token.
pub async fn rebuild_shopper(
    s: &Deps,
    sale: &SaleId,
    qid: &QueueId,
    score: i64,
) -> Result<(), Fault> {
    match s.ledger.order_by_ticket(sale, qid).await? {
        Some(order) if order.is_live() => s
            .store
            .settle_order(sale, qid, Verdict::Kept(&order.record()))
            .await
            .map(drop),
        Some(order) => {
            s.store.release(sale, &[order.released()]).await?;
            if order.status == "refund_due" {
                s.store.mark_refund(sale, qid).await?;
            }
            Ok(())
        }
        // Admitted before the loss and never ordered: the admission comes back (lapsed or
        // not), the place in line does not.
        None => match s.ledger.admitted_at(sale, qid).await? {
            Some(at_us) => {
                let ttl = s.ledger.sale(sale).await?.map_or(0, |r| r.ticket_ttl_secs);
                let expires_ms = at_us / 1000 + i64::from(ttl) * 1000;
                s.store.restore_admission(sale, qid, expires_ms).await
            }
            None => {
                // A drawn entry comes back at its rank, not at its join time.
                let score = crate::flows::draw::restored_score(s, sale, qid, score).await?;
                s.store.rebuild_place(sale, qid, score).await
            }
        },
    }
}

// ---- settle ----

/// Settles a sale rebuilt at least `SETTLE_AFTER` ago (the sweeper finds them with
/// `Store::needing_sweep`). The mark is in Redis, so whichever instance's sweeper comes first
/// does it, even if the instance that rebuilt the sale is gone.
/// `early`: every instance confirmed its writes from before Redis's restart
/// (`confirm_writes`), so the settle need not wait `settle_after` out.
pub async fn settle_rebuilt(s: &Deps, sale: &SaleId, early: bool) -> Result<(), Fault> {
    let after = if early {
        Duration::ZERO
    } else {
        s.config.loops.settle_after
    };
    let stock = s
        .ledger
        .with_sale_locked(sale, async |locked| settle_locked(s, locked, after).await)
        .await?;
    tracing::info!(%sale, ?stock, "rebuilt sale settled");
    let detail = serde_json::json!({"stock": stock, "after": "rebuild"});
    audit::record(&s.ledger, sale, Kind::Reconciled, Source::System, detail).await;
    Ok(())
}

/// Sets Redis's stock from the ledger (lua/settle.lua) while holding the sale's row, so no
/// order commits between reading `sold` and setting stock. None if the ledger has no such
/// sale.
pub async fn settle_stock(s: &Deps, sale: &SaleId) -> Result<Option<i64>, Fault> {
    s.ledger
        .with_sale_locked(sale, async |locked| {
            settle_locked(s, locked, s.config.loops.settle_after).await
        })
        .await
}

/// `settle_stock` for a caller already holding the row.
async fn settle_locked(
    s: &Deps,
    locked: &mut LockedSale,
    settle_after: Duration,
) -> Result<i64, Fault> {
    // No order of this sale commits while the row is held, so what the ledger says holds
    // until the script has run.
    let orders = locked.orders().await?;
    let ledger = Settlement {
        units: locked.row.units as i64,
        sold: locked.row.sold as i64,
        open: locked.row.open,
        released: &locked.released,
        orders: &orders,
        variants: &locked.row.variants,
    };
    s.store
        .settle_sale(&locked.row.id, ledger, settle_after)
        .await
}

/// Brings Redis in line with what the ledger made of an order Redis accepted. Returns the
/// ledger's order, or None if the ledger refused it.
pub async fn settle_order(
    s: &Deps,
    sale: &SaleId,
    qid: &QueueId,
    rec: &OrderRecord,
    recorded: Recorded,
) -> Result<Option<Order>, Fault> {
    match recorded {
        Recorded::Order(order) if order.id == rec.order_id => return Ok(Some(order)),
        Recorded::Order(order) if order.is_live() => {
            tracing::warn!(%sale, %qid, "ticket bought twice in redis; the second is undone");
            s.store
                .settle_order(sale, qid, Verdict::Kept(&order.record()))
                .await?;
            return Ok(Some(order));
        }
        // Refused, or the ticket's earlier order lapsed: neither is a purchase.
        _ => {}
    }
    // Under the sale's row lock: no copy of this order commits (the ledger sync racing its
    // own checkout) and no release lands between the re-check and the void, so a buyer is
    // never told `sold_out` for an order that exists, and a lapsed order is never kept.
    let kept = s
        .ledger
        .with_sale_locked(sale, async |locked| {
            if let Some(order) = locked.order_by_ticket(qid).await?.filter(Order::is_live) {
                if order.id != rec.order_id {
                    let kept = Verdict::Kept(&order.record());
                    s.store.settle_order(sale, qid, kept).await?;
                }
                return Ok(Some(order));
            }
            tracing::error!(
                %sale,
                %qid,
                "ledger refused an order redis accepted: redis stock was ahead; settling"
            );
            s.store.settle_order(sale, qid, Verdict::Refused).await?;
            settle_locked(s, locked, s.config.loops.settle_after).await?;
            Ok(None)
        })
        .await?;
    Ok(kept.flatten())
}

// ---- watch ----

/// Each sweep, after `watch`: once any instance declared that Redis restarted into `seen`,
/// this instance confirms (once) that its order writes from before are done; answers when
/// every instance alive within `settle_after` has confirmed (Redis ms), so the sweeper
/// settles the sales the restart left unsettled at once instead of after `settle_after` (the
/// fallback for an instance that went silent). `confirmed`: the run this instance confirmed.
pub async fn after_restart(
    s: &Arc<Deps>,
    seen: &Option<String>,
    confirmed: &mut Option<String>,
) -> Option<i64> {
    let run = seen.as_ref()?;
    if confirmed.as_ref() != Some(run) && s.store.restart_declared(run).await.ok()? {
        confirm_writes(s, run.clone());
        *confirmed = Some(run.clone());
    }
    let window = s.config.loops.settle_after;
    s.store.writes_confirmed(run, window).await.ok().flatten()
}

/// Once every order write this instance started before now is done, says so in Redis. Off
/// the sweeper's path: the wait is the slowest write's.
fn confirm_writes(s: &Arc<Deps>, run_id: String) {
    let s = s.clone();
    tokio::spawn(async move {
        s.ledger.earlier_writes_done().await;
        if let Err(e) = s.store.confirm_writes(&run_id, &s.instance).await {
            tracing::warn!(error = %e, "cannot confirm this instance's writes; the settle waits");
        }
    });
}

/// Every sweep, over the sales Redis lists: marks them `unsettled` (no checkout until a settle
/// reconciles them with the ledger) if Redis restarted (its `run_id` changed: an AOF may miss
/// its last second) or if a sale's stock is ahead of the ledger (stock went back in time), and
/// copies open switches flipped in Redis (redis-cli's too) to the ledger, so a sale Redis
/// loses comes back as it was. `seen` is the `run_id` of the Redis the caller last saw.
pub async fn watch(s: &Deps, seen: &mut Option<String>, sales: &[SaleId]) -> Result<(), Fault> {
    let run_id = s.store.run_id().await?;
    if seen.as_ref().is_some_and(|seen| *seen != run_id) {
        tracing::warn!(
            sales = sales.len(),
            "redis restarted: sales held until reconciled"
        );
        s.store.declare_restart(&run_id).await?;
        s.store.mark_unsettled(sales).await?;
    }
    *seen = Some(run_id);
    // The ledger first: an order commits after Redis took its units, so a stock read after
    // `sold` has every unit `sold` counts taken out already.
    let ledger = s.ledger.standing(sales).await?;
    let ids: Vec<SaleId> = ledger.iter().map(|l| l.id.clone()).collect();
    let held = s.store.standing(&ids).await?;
    let mut flips = Vec::new();
    for (l, h) in ledger.iter().zip(held) {
        if !h.present || h.unsettled {
            continue;
        }
        if h.open != l.open {
            flips.push((l.id.clone(), h.open));
        }
        if i64::from(l.sold) + h.stock > i64::from(l.units) && stock_ahead(s, &l.id).await? {
            tracing::warn!(
                sale = %l.id,
                "redis stock ahead of the ledger: held until reconciled"
            );
            s.store.mark_unsettled(std::slice::from_ref(&l.id)).await?;
        }
    }
    if !flips.is_empty() {
        s.ledger.copy_open_flips(&flips).await?;
    }
    Ok(())
}

/// Confirms, under the sale's row lock (no order commits and no release lands meanwhile),
/// that Redis's stock is ahead of the ledger: a release between the unlocked reads looks so.
async fn stock_ahead(s: &Deps, sale: &SaleId) -> Result<bool, Fault> {
    let ahead = s
        .ledger
        .with_sale_locked(sale, async |locked| {
            let stock = s.store.stock(sale).await?.unwrap_or(0);
            Ok(i64::from(locked.row.sold) + stock > i64::from(locked.row.units))
        })
        .await?;
    Ok(ahead.unwrap_or(false))
}

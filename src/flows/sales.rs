//! Sales: creating them, opening and closing them, what they look like live, and the
//! admin's reconcile.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::core::domain::variant::{self, VariantChange, VariantStock};
use crate::core::domain::{
    InvalidInput, Patch, SaleId, SaleSpec, Settings, VariantId, VariantsLeft,
};
use crate::core::fault::Fault;
use crate::flows::audit::{self, Kind, Source};
use crate::flows::draw::{self, DrawError};
use crate::flows::Deps;
use crate::flows::{checkout, recovery};
use crate::infra::ledger::{LockedSale, Refunds, SaleRow};
use crate::infra::store::Live;

#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("a sale with this id already exists")]
    Exists,
    #[error("unknown sale")]
    UnknownSale,
    /// `units` below what is sold or held for payment (with orders Redis took that the
    /// ledger has not recorded yet).
    #[error("{0} units are sold or held")]
    UnitsBelowSold(i64),
    /// `units` may only grow: shrinking would take back what shoppers were told is left.
    #[error("the sale has {0} units; units may only grow")]
    UnitsShrink(i32),
    /// A variant's units may only grow, as the sale's.
    #[error("variant {0} has {1} units; units may only grow")]
    VariantShrinks(VariantId, i32),
    #[error(transparent)]
    Draw(#[from] DrawError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// A sale as shoppers see it.
#[derive(Debug, Serialize)]
pub struct PublicSale {
    pub id: SaleId,
    #[serde(flatten)]
    pub settings: Settings,
    pub remaining: i64,
    pub open: bool,
    pub sold_out: bool,
    pub queue_len: i64,
    /// Each variant's units left, in a sale with variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants_left: Option<VariantsLeft>,
    /// A draw sale's `{algorithm, commitment}` (flows::draw), public from its setting on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draw: Option<Value>,
}

/// A sale as its admin watches it.
#[derive(Debug, Serialize)]
pub struct AdminStats {
    #[serde(flatten)]
    pub sale: SaleRow,
    pub remaining: i64,
    pub queue_len: i64,
    pub admitted_active: i64,
    pub admitted_total: i64,
    pub open: bool,
    pub sold_out: bool,
    /// Each variant's units left, in a sale with variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants_left: Option<VariantsLeft>,
    /// Each variant declared, left and sold, in a sale with variants.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_variant: Vec<VariantStock>,
    /// Orders Redis accepted that Postgres has not recorded yet (non-zero only briefly, or
    /// while Postgres is down).
    pub pending_sync: usize,
    /// Orders paid after they lapsed or failed, owed back: how many and their sum.
    #[serde(flatten)]
    pub refunds: Refunds,
}

pub async fn create(s: &Deps, body: Map<String, Value>) -> Result<SaleRow, SaleError> {
    let spec = SaleSpec::parse(body)?;
    if !s.ledger.insert_sale(&spec).await? {
        return create_again(s, &spec).await;
    }
    s.store.put_sale(&spec, spec.settings.units as i64).await?;
    let sale = &spec.id;
    draw::on_settings(s, sale, &spec.settings).await?;
    s.schedules.expect(sale, spec.settings.next_schedule_ms());
    let detail = Value::Object(spec.settings.fields());
    audit::record(&s.ledger, sale, Kind::Created, Source::Api, detail).await;
    row(s, &spec.id).await
}

/// The same create again, from a client retrying after a lost answer or a 503: when the
/// ledger holds exactly these settings, whatever Redis missed the first time (its keys, or its
/// place in `wr:sales`, without which the ticker never looks at it) is made good and the sale
/// is answered as created. Other settings under the same id are 409.
async fn create_again(s: &Deps, spec: &SaleSpec) -> Result<SaleRow, SaleError> {
    let sale = row(s, &spec.id).await?;
    if sale.settings != spec.settings {
        return Err(SaleError::Exists);
    }
    if s.store.has_sale(&spec.id).await? {
        s.store.list_sale(&spec.id).await?;
    } else {
        recovery::rebuild(s, &spec.id).await?;
    }
    Ok(sale)
}

async fn row(s: &Deps, id: &SaleId) -> Result<SaleRow, SaleError> {
    s.ledger.sale(id).await?.ok_or(SaleError::UnknownSale)
}

pub async fn stats(s: &Deps, id: &SaleId) -> Result<AdminStats, SaleError> {
    let sale = row(s, id).await?;
    // The admin sees the sale as it is, not zeros, right after Redis lost it.
    recovery::rebuild(s, id).await?;
    let live = s.store.live(id).await?;
    let pending_sync = s.store.pending(id).await?.len();
    let refunds = s.ledger.refunds(id).await?;
    let by_variant = match sale.variants.is_empty() {
        true => Vec::new(),
        false => {
            let sold = s.ledger.variants_sold(id).await?;
            variant::by_variant(&sale.variants, live.variants_left.as_ref(), Some(&sold))
        }
    };
    Ok(AdminStats {
        sale,
        remaining: live.remaining,
        queue_len: live.queue_len,
        admitted_active: live.admitted_active,
        admitted_total: live.admitted_total,
        open: live.open,
        sold_out: live.remaining <= 0,
        variants_left: live.variants_left,
        by_variant,
        pending_sync,
        refunds,
    })
}

fn public(sale: SaleRow, live: Live, commitment: Option<String>) -> PublicSale {
    let draw = commitment.map(|c| json!({"algorithm": draw::ALGORITHM, "commitment": c}));
    PublicSale {
        draw,
        id: sale.id,
        settings: sale.settings,
        remaining: live.remaining,
        open: live.open,
        sold_out: live.remaining <= 0,
        queue_len: live.queue_len,
        variants_left: live.variants_left,
    }
}

pub async fn public_one(s: &Deps, id: &SaleId) -> Result<PublicSale, SaleError> {
    let sale = row(s, id).await?;
    let live = s.store.live(&sale.id).await?;
    let commitment = draw::commitments(s, std::slice::from_ref(id)).await?;
    Ok(public(
        sale,
        live,
        commitment.into_iter().next().map(|(_, c)| c),
    ))
}

/// Every sale with its live numbers: one Postgres query and one Redis round trip.
pub async fn public_list(s: &Deps) -> Result<Vec<PublicSale>, SaleError> {
    let sales = s.ledger.sales().await?;
    let ids: Vec<SaleId> = sales.iter().map(|r| r.id.clone()).collect();
    let (_, live) = s.store.live_many(&ids).await?;
    let mut commitments: std::collections::HashMap<_, _> =
        draw::commitments(s, &ids).await?.into_iter().collect();
    Ok(sales
        .into_iter()
        .zip(live)
        .map(|(r, l)| {
            let c = commitments.remove(&r.id);
            public(r, l, c)
        })
        .collect())
}

/// Sets or clears `wr:{id}:open`: what `SET wr:{id}:open 1` in redis-cli does, kept in the
/// ledger first so a sale Redis loses comes back as the admin left it. Opening also makes a
/// finished sale live again.
pub async fn set_open(s: &Deps, id: &SaleId, open: bool) -> Result<AdminStats, SaleError> {
    row(s, id).await?;
    let was_open = s.store.live(id).await?.open;
    if open {
        // Before Redis lists it again: a listed sale still marked finished would be retired.
        s.ledger.unfinish(id).await?;
    }
    // Redis's switch first, then the ledger's: the sweeper copies Redis's switch to the ledger
    // (`recovery::watch`), so a sweep between the two writes copies the new value. In the
    // other order it could copy the old one back over the admin's (a close lost, and a rebuild
    // reopening the sale).
    s.store.set_open(id, open).await?;
    s.ledger.set_open(id, open).await?;
    if was_open != open {
        let kind = if open { Kind::Opened } else { Kind::Closed };
        audit::record(&s.ledger, id, kind, Source::Api, json!({})).await;
    }
    stats(s, id).await
}

/// What a PATCH changed, once the ledger and Redis have it.
struct Changed {
    changes: Map<String, Value>,
    added: i64,
    stock: i64,
}

/// An admin's live change (`PATCH /api/admin/sales/{id}`): checked as create checks, written
/// to the ledger under the sale's row lock, then to Redis while the row is still held (so no
/// order or release lands between reading `sold` and growing the stock). Every instance
/// follows from its next tick: the scripts read `cfg` on every call. Changing nothing writes
/// nothing.
pub async fn change(
    s: &Deps,
    id: &SaleId,
    body: Map<String, Value>,
) -> Result<AdminStats, SaleError> {
    let patch = Patch::parse(body)?;
    // A sale Redis lost comes back first: the change then reaches Redis, not a rebuild that
    // may have read the ledger before it.
    if !recovery::rebuild(s, id).await? {
        return Err(SaleError::UnknownSale);
    }
    let sale = id;
    let done = s
        .ledger
        .with_sale_locked(sale, async |locked| apply(s, locked, &patch).await)
        .await?
        .ok_or(SaleError::UnknownSale)??;
    if let Some(c) = done {
        if let Some(row) = c.changes.get("prequeue").and(s.ledger.sale(sale).await?) {
            draw::on_settings(s, sale, &row.settings).await?;
        }
        let (units, added, stock) = (&c.changes.get("units").cloned(), c.added, c.stock);
        audit::record(
            &s.ledger,
            sale,
            Kind::Changed,
            Source::Api,
            Value::Object(c.changes),
        )
        .await;
        if added > 0 {
            // A finished sale left the working set: it is live again.
            s.store.list_sale(sale).await?;
            let detail = json!({"added": added, "units": units, "remaining": stock});
            audit::record(&s.ledger, sale, Kind::Restocked, Source::Api, detail).await;
        }
    }
    let stats = stats(s, id).await?;
    s.schedules.expect(sale, stats.sale.next_schedule_ms());
    Ok(stats)
}

/// The PATCH under the row lock. Refusals are the inner error: nothing was written.
async fn apply(
    s: &Deps,
    locked: &mut LockedSale,
    patch: &Patch,
) -> Result<Result<Option<Changed>, SaleError>, Fault> {
    let old = locked.row.settings.clone();
    let new = match old.patched(patch) {
        Ok(new) => new,
        Err(e) => return Ok(Err(e.into())),
    };
    let changes = new.changes_from(&old);
    if changes.is_empty() {
        return Ok(Ok(None));
    }
    match variant::change_refused(&old.variants, &new.variants) {
        Ok(()) => {}
        Err(VariantChange::NotTheSame) => {
            let why = "a sale keeps the variants it was created with: restock or rename them";
            return Ok(Err(InvalidInput::new("invalid_sale", why).into()));
        }
        Err(VariantChange::Shrinks(id, units)) => {
            return Ok(Err(SaleError::VariantShrinks(id, units)));
        }
    }
    let named: Vec<&str> = changes.keys().map(String::as_str).collect();
    match draw::may_change(s, &locked.row.id, &named).await {
        Err(DrawError::Fault(f)) => return Err(f),
        Err(e) => return Ok(Err(e.into())),
        Ok(()) => {}
    }
    let added = i64::from(new.units) - i64::from(old.units);
    if added < 0 {
        let held = sold_or_held(s, locked).await?;
        return Ok(Err(if i64::from(new.units) < held {
            SaleError::UnitsBelowSold(held)
        } else {
            SaleError::UnitsShrink(old.units)
        }));
    }
    locked.set_settings(&new).await?;
    // Only what this change changes reaches Redis: a schedule that fired (and was cleared
    // there) is not armed again by a change of the rate. Units go as the total: applied
    // twice, a change adds them once (the ledger commit after this may still fail).
    let cfg: Vec<_> = new
        .cfg()
        .into_iter()
        .filter(|(field, _)| changes.contains_key(field))
        .collect();
    let stock = s
        .store
        .change_sale(&locked.row.id, &cfg, i64::from(new.units), &new.variants)
        .await?
        .ok_or(Fault::Busy("the sale is being rebuilt"))?;
    Ok(Ok(Some(Changed {
        changes,
        added,
        stock,
    })))
}

/// Units sold or held for payment in the ledger, plus those of orders Redis accepted that
/// the ledger has not recorded yet. Read under the row lock: no order commits meanwhile.
async fn sold_or_held(s: &Deps, locked: &mut LockedSale) -> Result<i64, Fault> {
    let recorded = locked.orders().await?.bought;
    let unsynced: i64 = s
        .store
        .pending(&locked.row.id)
        .await?
        .into_iter()
        .filter(|(qid, rec)| recorded.get(qid).is_none_or(|r| r.order_id != rec.order_id))
        .map(|(_, rec)| i64::from(rec.quantity))
        .sum();
    Ok(i64::from(locked.row.sold) + unsynced)
}

/// A sale Redis sees sold out with nothing pending: if the ledger agrees no unit can come
/// back, the ticker and sweeper stop looking at it (per-tick cost is O(live sales)).
pub async fn retire_if_finished(s: &Deps, sale: &SaleId) -> Result<bool, Fault> {
    if !s.ledger.finish(sale).await? {
        return Ok(false);
    }
    s.store.unlist_sale(sale).await?;
    tracing::info!(%sale, "sale finished; the background loops leave it");
    Ok(true)
}

/// The admin's reconcile: rebuilds the sale if Redis lost it, writes the orders Postgres
/// missed, then sets Redis's stock from the ledger. Returns the stock now in Redis.
pub async fn reconcile(s: &Deps, id: &SaleId) -> Result<i64, SaleError> {
    if !recovery::rebuild(s, id).await? {
        return Err(SaleError::UnknownSale);
    }
    let synced = checkout::sync_pending(s, id, 0).await?;
    let stock = recovery::settle_stock(s, id)
        .await?
        .ok_or(SaleError::UnknownSale)?;
    let detail = serde_json::json!({"stock": stock, "orders_synced": synced});
    let (kind, source) = (
        crate::flows::audit::Kind::Reconciled,
        crate::flows::audit::Source::Api,
    );
    crate::flows::audit::record(&s.ledger, id, kind, source, detail).await;
    Ok(stock)
}

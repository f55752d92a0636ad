//! The instance's one Redis pub/sub subscriber: sale events in, fanned out by the hub.
//!
//! Events are sharded pub/sub (`SPUBLISH` to `wr:{S}:events`), so on Redis Cluster a sale's
//! messages stay on its slot's node and reach every instance subscribed there. Sharded
//! channels have no patterns: the subscriber `SSUBSCRIBE`s each sale's channel, the sales
//! listed in `wr:sales` (re-read every `REFRESH`) and any sale the hub meets first.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::{PushInfo, PushKind};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::{Admission, Hub, Notice, ShopperKey};
use crate::core::domain::{QueueId, SaleId, VariantsLeft};
use crate::infra::store::{self, Place, Store, Subscriber, Target};

/// A message on `wr:{sale}:events`, published by the Lua scripts and the admin API.
#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ids: Vec<QueueId>,
    expires_at: Option<i64>,
    admitted_total: Option<i64>,
    remaining: Option<i64>,
    /// Units held for payment, with stock news.
    held: Option<i64>,
    /// Redis time (µs) of a stock change.
    at: Option<String>,
    /// Each variant's units left, with stock news of a sale with variants.
    variants: Option<VariantsLeft>,
}

impl Hub {
    /// Applies one sale event: admissions and order news to their shoppers' streams, the rest
    /// to progress.
    pub fn on_message(&self, sale: &SaleId, payload: &str) {
        let Ok(m) = serde_json::from_str::<Message>(payload) else {
            tracing::warn!(%sale, payload, "unreadable event message");
            return;
        };
        let at = m.at.as_deref().and_then(|a| a.parse().ok());
        match m.kind.as_str() {
            "admitted" => {
                let a = Admission {
                    expires_at_ms: m.expires_at.unwrap_or(0),
                };
                for qid in &m.ids {
                    self.deliver(sale, qid, Notice::Admitted(a));
                }
                if let Some(total) = m.admitted_total {
                    self.update(
                        sale,
                        |p| p.admitted_total = p.admitted_total.max(total),
                        false,
                        None,
                    );
                }
            }
            "order" => {
                for qid in &m.ids {
                    self.deliver(sale, qid, Notice::Order);
                }
            }
            "all_held" => self.heard_sold_out(sale, at, m.held),
            "sold_out" => self.heard_sold_out(sale, at, Some(0)),
            "variant_sold_out" => self.update(
                sale,
                |p| p.variants_left = m.variants.or(p.variants_left.take()),
                false,
                at,
            ),
            "restocked" | "reconciled" => {
                // A reconciled sale's buyer list in Redis may have grown from the ledger.
                if m.kind == "reconciled" {
                    self.forget_buyers(sale);
                }
                self.update(
                    sale,
                    |p| {
                        p.remaining = m.remaining.unwrap_or(p.remaining).max(0);
                        p.sold_out = p.remaining == 0;
                        p.held = m.held.unwrap_or(p.held);
                        if m.variants.is_some() {
                            p.variants_left = m.variants;
                        }
                    },
                    false,
                    at,
                )
            }
            // Redis may be behind the ledger: a buyer list read from it may miss buyers.
            "unsettled" => self.forget_buyers(sale),
            "opened" => self.update(sale, |p| p.open = true, false, None),
            "closed" => self.update(sale, |p| p.open = false, false, None),
            other => tracing::debug!(%sale, kind = other, "ignored event"),
        }
    }

    /// After a pub/sub (re)subscription, messages sent meanwhile were missed (pub/sub is at
    /// most once): read every sale this instance knows, listed or finished, and apply its
    /// numbers (a `sold_out` missed is announced from the flip), then ask about every shopper
    /// streaming here and deliver the admissions they missed. Two pipelined reads. False if
    /// Redis did not answer: the caller tries again.
    async fn resync(&self, store: &Store) -> bool {
        let sales = self.known_sales();
        if !sales.is_empty() {
            match store.live_many(&sales).await {
                Ok((at_us, live)) => {
                    for (sale, l) in sales.iter().zip(live) {
                        self.on_live(sale, &l, at_us);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "resync cannot read sales");
                    return false;
                }
            }
        }
        let keys: Vec<ShopperKey> = self
            .shoppers
            .lock()
            .expect("hub lock")
            .keys()
            .cloned()
            .collect();
        let places = match store.places(&keys).await {
            Ok(places) => places,
            Err(e) => {
                tracing::debug!(error = %e, "resync cannot read places");
                return false;
            }
        };
        for ((sale, qid), place) in keys.iter().zip(places) {
            match place {
                Place::Admitted { expires_at_ms } => {
                    self.deliver(sale, qid, Notice::Admitted(Admission { expires_at_ms }))
                }
                // A buyer may have missed their order's news: they re-read it (a repeat of an
                // unchanged standing is harmless; a resync is rare: a reconnect, a new sale).
                Place::Purchased { .. }
                | Place::PaymentFailed
                | Place::RefundDue
                | Place::Expired => self.deliver(sale, qid, Notice::Order),
                _ => {}
            }
        }
        true
    }
}

/// How often the subscriber looks for sales it has not subscribed to yet.
const REFRESH: Duration = Duration::from_secs(1);

/// Runs the instance's one pub/sub subscriber until shutdown, reconnecting after failures.
/// It uses its own connection: a subscribed connection is not shared with the store.
pub async fn run_subscriber(
    hub: Arc<Hub>,
    target: Target,
    store: Store,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tx, mut pushes) = mpsc::unbounded_channel();
        match target.subscriber(tx).await {
            Ok(mut sub) => {
                if follow(&hub, &store, &mut sub, &mut pushes, &mut shutdown).await {
                    return;
                }
                tracing::warn!("redis pub/sub connection lost; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "redis pub/sub connect failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Subscribes to every sale's channel as sales appear and hands messages to the hub, until
/// the connection is lost (false) or the instance stops (true). After each (re)subscription
/// the hub resyncs: pub/sub is at most once, and messages sent before it were missed.
async fn follow(
    hub: &Hub,
    store: &Store,
    sub: &mut Subscriber,
    pushes: &mut mpsc::UnboundedReceiver<PushInfo>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut subscribed: HashSet<SaleId> = HashSet::new();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut resync, mut reconnecting) = (true, false);
    loop {
        tokio::select! {
            _ = refresh.tick() => {}
            _ = hub.new_sale.notified() => {}
            push = pushes.recv() => {
                let Some(push) = push else { return false };
                match push.kind {
                    PushKind::SMessage | PushKind::Message => on_push(hub, push),
                    PushKind::Disconnection if !sub.reconnects() => return false,
                    PushKind::Disconnection => reconnecting = true,
                    // A cluster node came back and the client resubscribed to its channels.
                    PushKind::SSubscribe if reconnecting => {
                        (resync, reconnecting) = (true, false);
                    }
                    _ => {}
                }
                continue;
            }
            _ = shutdown.changed() => return true,
        }
        match subscribe_new(hub, store, sub, &mut subscribed).await {
            Ok(n) => resync |= n > 0,
            Err(e) if sub.reconnects() => tracing::warn!(error = %e, "redis ssubscribe failed"),
            Err(e) => {
                tracing::warn!(error = %e, "redis ssubscribe failed");
                return false;
            }
        }
        if std::mem::take(&mut resync) {
            // Not done: again at the next refresh, until Redis answers.
            resync = !hub.resync(store).await;
        }
    }
}

/// Subscribes to the channels of listed sales not subscribed yet; answers how many.
async fn subscribe_new(
    hub: &Hub,
    store: &Store,
    sub: &mut Subscriber,
    subscribed: &mut HashSet<SaleId>,
) -> Result<usize, crate::core::fault::Fault> {
    let new: Vec<SaleId> = store
        .sale_ids()
        .await?
        .into_iter()
        .filter(|s| !subscribed.contains(s))
        .collect();
    if new.is_empty() {
        return Ok(0);
    }
    let channels: Vec<String> = new.iter().map(store::events_channel).collect();
    sub.ssubscribe(&channels).await?;
    // Messages sent before the subscription were missed: read the state they changed, now
    // that later ones will arrive (a message used to be what first told the hub of a sale;
    // `wr:sales` lists live sales only, so this stays small).
    let (at_us, live) = store.live_many(&new).await?;
    for (sale, l) in new.iter().zip(live) {
        hub.on_live(sale, &l, at_us);
    }
    subscribed.extend(new);
    Ok(channels.len())
}

/// A message push is `[channel, payload]`.
fn on_push(hub: &Hub, push: PushInfo) {
    let [channel, payload] = &push.data[..] else {
        return;
    };
    let (Ok(channel), Ok(payload)) = (
        redis::from_redis_value_ref::<String>(channel),
        redis::from_redis_value_ref::<String>(payload),
    ) else {
        return;
    };
    if let Some(sale) = store::sale_of_channel(&channel) {
        hub.on_message(&sale, &payload);
    }
}

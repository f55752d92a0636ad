//! The instance's one Redis pub/sub subscriber: sale events in, fanned out by the hub.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;

use super::{Admission, Hub, ShopperKey};
use crate::store::{self, Place, Store};

/// A message on `wr:{sale}:events`, published by the Lua scripts and the admin API.
#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ids: Vec<String>,
    expires_at: Option<i64>,
    admitted_total: Option<i64>,
    remaining: Option<i64>,
    /// Redis time (µs) of a stock change.
    at: Option<String>,
}

impl Hub {
    /// Applies one sale event: admissions to their shoppers' streams, the rest to progress.
    pub fn on_message(&self, sale: &str, payload: &str) {
        let Ok(m) = serde_json::from_str::<Message>(payload) else {
            tracing::warn!(sale, payload, "unreadable event message");
            return;
        };
        let at = m.at.as_deref().and_then(|a| a.parse().ok());
        match m.kind.as_str() {
            "admitted" => {
                let a = Admission {
                    expires_at_ms: m.expires_at.unwrap_or(0),
                };
                for qid in &m.ids {
                    self.deliver(sale, qid, a);
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
            "sold_out" => self.update(
                sale,
                |p| {
                    p.sold_out = true;
                    p.remaining = 0;
                },
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
                    },
                    false,
                    at,
                )
            }
            // Redis may be behind the ledger: a buyer list read from it may miss buyers.
            "unsettled" => self.forget_buyers(sale),
            "opened" => self.update(sale, |p| p.open = true, false, None),
            "closed" => self.update(sale, |p| p.open = false, false, None),
            other => tracing::debug!(sale, kind = other, "ignored event"),
        }
    }

    /// After a pub/sub reconnect, admissions may have been missed (pub/sub is at most once):
    /// ask Redis about every shopper streaming here and deliver what they missed.
    async fn resync(&self, store: &Store) {
        let keys: Vec<ShopperKey> = self
            .shoppers
            .lock()
            .expect("hub lock")
            .keys()
            .cloned()
            .collect();
        for (sale, qid) in keys {
            if let Ok(snap) = store.snapshot(&sale, &qid).await {
                if let Place::Admitted { expires_at_ms } = snap.place {
                    self.deliver(&sale, &qid, Admission { expires_at_ms });
                }
            }
        }
    }
}

/// Runs the instance's one pub/sub subscriber until shutdown, reconnecting after failures.
/// It uses its own connection: a subscribed connection cannot serve commands, so it never
/// comes from the pool.
pub async fn run_subscriber(
    hub: Arc<Hub>,
    client: redis::Client,
    store: Store,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut ps) => match ps.psubscribe(store::EVENTS_PATTERN).await {
                Ok(()) => {
                    hub.resync(&store).await;
                    let mut messages = ps.on_message();
                    loop {
                        tokio::select! {
                            m = messages.next() => match m {
                                Some(m) => {
                                    let payload: String = m.get_payload().unwrap_or_default();
                                    if let Some(sale) = store::sale_of_channel(m.get_channel_name()) {
                                        hub.on_message(sale, &payload);
                                    }
                                }
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                    tracing::warn!("redis pub/sub connection lost; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "redis psubscribe failed"),
            },
            Err(e) => tracing::warn!(error = %e, "redis pub/sub connect failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

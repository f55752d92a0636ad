//! The relay: from `outbox` to the shop. Every instance runs it (`tasks::relay`), no leader:
//! each round fans new events out to deliveries, then claims the due ones this instance has
//! room for and sends each in a task of its own, outside any transaction. A slow or dead
//! receiver holds only its own attempts (at most `concurrency` per instance, each cut off at
//! the timeout) and a few connections of the webhooks' own pool; checkout shares neither.
//!
//! The message (Standard Webhooks v1): `webhook-id` = `msg_<event id>`, `webhook-timestamp`
//! = now, `webhook-signature` = `v1,<sig>` by the endpoint's secret, then by the rotated-out
//! one while it still signs; body `{"type", "timestamp" (the event's, RFC 3339), "data"}`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use hyper::body::Bytes;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::core::config;
use crate::core::fault::Fault;
use crate::core::webhooks::{message_id, retry_after, Destination, Retry};
use crate::infra::ledger::webhooks::{Claimed, Webhooks};
use crate::infra::metrics::{self, METRICS};
use crate::infra::outbound::{Answer, Message, Sender};

/// Outbox rows fanned out per statement; a round repeats while batches come back full.
const FAN_OUT_BATCH: i64 = 500;
/// Batches one round fans out at most, so a huge backlog does not starve the sends.
const FAN_OUT_ROUNDS: usize = 20;
/// Longest `last_error` kept.
const MAX_ERROR: usize = 300;

pub struct Relay {
    store: Webhooks,
    sender: Sender,
    config: config::Webhooks,
    slots: Arc<Semaphore>,
}

/// How an attempt ended.
enum Outcome {
    Delivered(u16),
    /// 410: the endpoint is disabled.
    Gone,
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

impl Relay {
    pub fn new(store: Webhooks, sender: Sender, config: config::Webhooks) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(config.concurrency)),
            store,
            sender,
            config,
        })
    }

    /// One round: fan out, then start the due attempts there is room for. True if it filled
    /// every free slot: more may be due at once.
    pub async fn round(self: &Arc<Self>) -> Result<bool, Fault> {
        for _ in 0..FAN_OUT_ROUNDS {
            if self.store.fan_out(FAN_OUT_BATCH).await? < FAN_OUT_BATCH {
                break;
            }
        }
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(true);
        }
        // A claim outlives its attempt (the timeout, then writing the outcome); past it, an
        // instance that died mid-attempt leaves the delivery to the others.
        let lease = self.config.timeout * 2 + Duration::from_secs(1);
        let claimed = self.store.claim(free as i64, lease).await?;
        let full = claimed.len() == free;
        for claimed in claimed {
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                // Cannot happen (only rounds take slots, one round at a time); the claim
                // lapses and the delivery is tried again.
                break;
            };
            let relay = self.clone();
            tokio::spawn(async move {
                relay.attempt(claimed).await;
                drop(slot);
            });
        }
        Ok(full)
    }

    /// Whether an attempt slot frees within a poll period (at once if one is free).
    pub async fn slot_free(&self) -> bool {
        let free = tokio::time::timeout(self.config.poll, self.slots.acquire());
        matches!(free.await, Ok(Ok(_)))
    }

    /// Reads the backlog into the metrics.
    pub async fn report_backlog(&self) -> Result<(), Fault> {
        let b = self.store.backlog().await?;
        metrics::webhook_backlog(b.pending, b.oldest_secs);
        Ok(())
    }

    async fn attempt(&self, c: Claimed) {
        let outcome = self.send(&c).await;
        if let Err(e) = self.record(&c, outcome).await {
            // The claim lapses and the delivery goes again: at least once.
            tracing::warn!(endpoint = %c.endpoint_id, event = %c.event_id, error = %e,
                "webhook outcome not recorded; it will be sent again");
        }
    }

    async fn send(&self, c: &Claimed) -> Outcome {
        let failed = |error: String| Outcome::Failed {
            status: None,
            error,
            retry_after: None,
        };
        // Checked again at send time: the settings may have changed since it was made.
        let dest = match Destination::parse(&c.url, self.config.allow_private) {
            Ok(d) => d,
            Err(e) => return failed(format!("destination refused: {}", e.message)),
        };
        let body = json!({
            "type": c.event_type,
            "timestamp": c.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": c.data.0,
        });
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let id = message_id(c.event_id);
        let timestamp = Utc::now().timestamp();
        let signature = match sign(c, &id, timestamp, &body) {
            Ok(s) => s,
            Err(e) => return failed(format!("cannot sign: {e}")),
        };
        let message = Message {
            url: dest.url().as_str(),
            id: &id,
            timestamp,
            signature: &signature,
            body,
        };
        match self.sender.post(message).await {
            Ok(Answer { status, .. }) if (200..300).contains(&status) => Outcome::Delivered(status),
            Ok(Answer { status: 410, .. }) => Outcome::Gone,
            Ok(Answer {
                status,
                retry_after: after,
            }) => Outcome::Failed {
                status: Some(status),
                error: format!("answered {status}"),
                retry_after: after
                    .filter(|_| status == 429 || status == 503)
                    .and_then(|v| retry_after(&v, Utc::now())),
            },
            Err(e) => Outcome::Failed {
                status: e.status(),
                error: e.to_string(),
                retry_after: None,
            },
        }
    }

    async fn record(&self, c: &Claimed, outcome: Outcome) -> Result<(), Fault> {
        match outcome {
            Outcome::Delivered(status) => {
                METRICS.webhooks_delivered.inc();
                self.store.delivered(c.id, status).await
            }
            Outcome::Gone => {
                metrics::webhook_failure(&c.endpoint_id);
                tracing::warn!(endpoint = %c.endpoint_id, "receiver answered 410: endpoint disabled");
                self.store.gone(c.id, c.endpoint_id, "answered 410").await
            }
            Outcome::Failed {
                status,
                error,
                retry_after,
            } => {
                metrics::webhook_failure(&c.endpoint_id);
                let error: String = error.chars().take(MAX_ERROR).collect();
                let attempts = c.attempts.max(1) as u32;
                let retry = match Retry::after_failure(
                    attempts,
                    self.config.retry_scale,
                    rand::random::<f64>(),
                    retry_after,
                ) {
                    Retry::After(wait) => Some(wait),
                    Retry::GiveUp => {
                        tracing::warn!(endpoint = %c.endpoint_id, event = %c.event_id, attempts,
                            "webhook delivery given up");
                        None
                    }
                };
                tracing::debug!(endpoint = %c.endpoint_id, event = %c.event_id, attempts,
                    error = %error, "webhook attempt failed");
                self.store.attempt_failed(c.id, status, &error, retry).await
            }
        }
    }
}

/// `v1,<sig>` by the endpoint's secret, and by the rotated-out one after a space while it
/// still signs, so a receiver holding either verifies.
fn sign(
    c: &Claimed,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, standardwebhooks::WebhookError> {
    let mut signature = standardwebhooks::Webhook::new(&c.secret)?.sign(id, timestamp, body)?;
    if let Some(previous) = &c.previous_secret {
        let old = standardwebhooks::Webhook::new(previous)?.sign(id, timestamp, body)?;
        signature.push(' ');
        signature.push_str(&old);
    }
    Ok(signature)
}

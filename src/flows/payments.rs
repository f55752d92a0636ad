//! Payments: the provider's signed webhook, and the return of units from failed payments and
//! lapsed holds so the next shopper in line can buy them.
//!
//! A webhook is signed one of two ways with `WAITROOM_PAYMENT_SECRET`: `X-Waitroom-Signature`
//! (hex HMAC-SHA256 of the body), or Standard Webhooks v1 (`webhook-id`,
//! `webhook-timestamp` within 5 minutes, `webhook-signature`), verified by the
//! `standardwebhooks` crate, so a shop signs with the library it verifies ours with. For that
//! the key is the secret's bytes, or, for a `whsec_<base64>` secret, the decoded base64.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::core::domain::{EventId, InvalidInput};
use crate::core::fault::Fault;
use crate::flows::audit::{self, Kind, Source};
use crate::flows::Deps;
use crate::infra::ledger::{Order, Payment, RedisStep, Release};
use crate::infra::metrics::METRICS;

/// Header carrying `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "x-waitroom-signature";

/// How the provider signed an event.
pub enum Signature<'a> {
    /// `X-Waitroom-Signature: sha256=<hex>` (None: absent).
    Hmac(Option<&'a str>),
    /// Standard Webhooks' `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard {
        id: &'a str,
        timestamp: &'a str,
        signature: &'a str,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    order_id: Uuid,
    event_id: String,
    outcome: Outcome,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Succeeded,
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the signature does not match")]
    BadSignature,
    #[error("invalid body: {0}")]
    InvalidBody(String),
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("unknown order")]
    UnknownOrder,
    #[error("event_id already used for another order")]
    EventReused,
    #[error(transparent)]
    Fault(#[from] Fault),
}

#[derive(Serialize)]
pub struct Applied {
    pub order_id: Uuid,
    pub status: String,
    pub duplicate: bool,
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(sig) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok() // constant time
}

/// Standard Webhooks v1, keyed with the secret's bytes (or a `whsec_` secret's base64).
fn verify_standard(secret: &str, body: &[u8], id: &str, timestamp: &str, signature: &str) -> bool {
    let hook = match secret.strip_prefix("whsec_") {
        Some(_) => standardwebhooks::Webhook::new(secret),
        None => standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec()),
    };
    hook.is_ok_and(|h| crate::core::webhooks::verify(&h, id, timestamp, signature, body))
}

pub async fn webhook(
    s: &Deps,
    body: &[u8],
    signature: Signature<'_>,
) -> Result<Applied, WebhookError> {
    let secret = secrecy::ExposeSecret::expose_secret(&s.config.tokens.payment_secret);
    let verified = !secret.is_empty()
        && match signature {
            Signature::Hmac(header) => verify(secret, body, header),
            Signature::Standard {
                id,
                timestamp,
                signature,
            } => verify_standard(secret, body, id, timestamp, signature),
        };
    if !verified {
        return Err(WebhookError::BadSignature);
    }
    let e: Event =
        serde_json::from_slice(body).map_err(|err| WebhookError::InvalidBody(err.to_string()))?;
    let event_id = EventId::parse(e.event_id)?;
    let outcome = match s
        .ledger
        .apply_payment(e.order_id, &event_id, e.outcome == Outcome::Succeeded)
        .await?
    {
        Payment::Applied(outcome) => *outcome,
        Payment::UnknownOrder => return Err(WebhookError::UnknownOrder),
        Payment::EventReused => return Err(WebhookError::EventReused),
    };
    if let Some(r) = &outcome.released {
        release(s, r).await;
    }
    if outcome.refund_due {
        METRICS.refunds_due.inc();
        tracing::info!(
            sale = %outcome.order.sale_id, order = %outcome.order.id,
            amount_cents = outcome.order.amount_cents, "payment arrived late: refund due"
        );
        // If Redis refuses, the ledger's `refund_mark_due` stays and the sweeper retries.
        if let Err(e) = mark_refund(s, &outcome.order).await {
            tracing::warn!(
                order = %outcome.order.id, error = %e,
                "refund due in postgres, not yet in redis; the sweeper marks it"
            );
        }
    }
    // Run on a redelivery too. If Redis refuses it, the ledger's `paid_due` mark stays and
    // the sweeper finishes it (`finish_paid`): the payment is recorded, so the provider hears
    // 200 and need not redeliver.
    if outcome.order.status == "paid" {
        if let Err(e) = finish_paid(s, &outcome.order).await {
            tracing::warn!(
                order = %outcome.order.id, error = %e,
                "paid in postgres, not yet in redis; the sweeper finishes it"
            );
        }
    }
    Ok(Applied {
        order_id: outcome.order.id,
        status: outcome.order.status,
        duplicate: outcome.duplicate,
    })
}

/// Gives units back to Redis after Postgres committed their release, then clears the
/// ledger's `restock_due` mark. If Redis is down the mark stays and the sweeper retries
/// (release.lua is idempotent): the units are undersold for a while, never lost or oversold.
async fn release(s: &Deps, r: &Release) {
    let result = match s.store.release(&r.sale, &r.orders).await {
        Ok(_) => s.ledger.restocked(r).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => METRICS.units_released.add(r.units as u64),
        Err(e) => tracing::warn!(
            sale = %r.sale, units = r.units, error = %e,
            "units released in postgres, not yet in redis; the sweeper retries"
        ),
    }
}

/// Tells Redis a hold was paid (paid.lua: no longer held; the waitlist hears `sold_out` when
/// it was the last), then clears the ledger's `paid_due` mark.
async fn finish_paid(s: &Deps, o: &Order) -> Result<(), Fault> {
    if s.store.paid(&o.sale_id, &o.ticket_id, o.quantity).await? {
        let detail = serde_json::json!({"order_id": o.id, "last_hold_paid": true});
        audit::record(&s.ledger, &o.sale_id, Kind::SoldOut, Source::System, detail).await;
    }
    s.ledger.redis_step_done(RedisStep::Paid, o.id).await
}

/// Puts the refund marker in Redis, where the shopper's status reads it, then clears the
/// ledger's `refund_mark_due`.
async fn mark_refund(s: &Deps, o: &Order) -> Result<(), Fault> {
    s.store.mark_refund(&o.sale_id, &o.ticket_id).await?;
    s.ledger.redis_step_done(RedisStep::RefundMark, o.id).await
}

/// Expires lapsed holds and returns their units (the waitlist effect: admission resumes),
/// retries any release Redis did not confirm, and finishes payments and refund markers Redis
/// did not take.
pub async fn expire_holds(s: &Deps) -> Result<(), Fault> {
    for r in s.ledger.expire_holds().await? {
        tracing::info!(
            sale = %r.sale,
            units = r.units,
            "holds expired; units back in stock"
        );
        release(s, &r).await;
    }
    for r in s.ledger.restocks_due(5.0).await? {
        release(s, &r).await;
    }
    for o in s.ledger.redis_steps_due(RedisStep::Paid, 5.0).await? {
        finish_paid(s, &o).await?;
    }
    for o in s.ledger.redis_steps_due(RedisStep::RefundMark, 5.0).await? {
        mark_refund(s, &o).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures() {
        let sig = super::sign("k", b"body");
        assert!(super::verify("k", b"body", Some(&sig)));
        assert!(!super::verify("k", b"body2", Some(&sig)));
        assert!(!super::verify("other", b"body", Some(&sig)));
        assert!(!super::verify("k", b"body", Some("sha256=zz")));
        assert!(!super::verify("k", b"body", None));
    }

    #[test]
    fn standard_signatures() {
        let now = chrono::Utc::now().timestamp();
        let sign = |key: &[u8], ts: i64, body: &[u8]| {
            let hook = standardwebhooks::Webhook::from_bytes(key.to_vec()).unwrap();
            hook.sign("msg_1", ts, body).unwrap()
        };
        let check = |secret: &str, ts: i64, sig: &str| {
            super::verify_standard(secret, b"{}", "msg_1", &ts.to_string(), sig)
        };
        assert!(check("k", now, &sign(b"k", now, b"{}")));
        assert!(check(
            "k",
            now,
            &format!("v1,bm9wZQ== {}", sign(b"k", now, b"{}"))
        ));
        assert!(!check("other", now, &sign(b"k", now, b"{}")));
        assert!(!check("k", now, &sign(b"k", now, b"{ }")));
        assert!(!check("k", now - 301, &sign(b"k", now - 301, b"{}")));
        assert!(!check("k", now, "garbage"));
        let whsec = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let key = standardwebhooks::Webhook::new(whsec).unwrap();
        let sig = key.sign("msg_1", now, b"{}").unwrap();
        assert!(check(whsec, now, &sig));
    }
}

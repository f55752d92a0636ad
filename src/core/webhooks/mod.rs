//! Outbound webhooks as values: the event types the shop can hear, a destination checked once
//! at the edge, the `whsec_` signing secret, and the retry schedule. Nothing here does I/O.

mod destination;
mod retry;

pub use destination::{is_private, private_destination, Destination};
pub use retry::{retry_after, Retry, SCHEDULE};

use crate::core::domain::InvalidInput;

/// Every event type the outbox carries (migrations/0012's CHECK), in a filter's vocabulary.
pub const EVENT_TYPES: [&str; 8] = [
    "order.created",
    "order.paid",
    "order.failed",
    "order.expired",
    "order.refund_due",
    "sale.opened",
    "sale.closed",
    "sale.sold_out",
];

/// An endpoint's event filter: known types only, deduplicated; empty means every type.
pub fn event_filter(types: &[String]) -> Result<Vec<String>, InvalidInput> {
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for t in types {
        if !EVENT_TYPES.contains(&t.as_str()) {
            return Err(InvalidInput::new(
                "unknown_event_type",
                format!(
                    "{t:?} is not an event type; known: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// `whsec_` and the base64 of 32 random bytes: the form Standard Webhooks libraries take.
pub fn new_secret() -> String {
    use base64::Engine as _;
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Standard Webhooks v1 verification of one message by `hook`'s key, from its three header
/// values: the crate checks the timestamp (5 minutes either way) and every `v1,` signature
/// in constant time.
pub fn verify(
    hook: &standardwebhooks::Webhook,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
) -> bool {
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        (standardwebhooks::HEADER_WEBHOOK_ID, id),
        (standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, timestamp),
        (standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature),
    ] {
        match http::HeaderValue::from_str(value) {
            Ok(v) => headers.insert(name, v),
            Err(_) => return false,
        };
    }
    hook.verify(body, &headers).is_ok()
}

/// The `webhook-id` of an outbox event: the same on every attempt and to every endpoint.
pub fn message_id(event: uuid::Uuid) -> String {
    format!("msg_{}", event.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_known_types_once() {
        let f = event_filter(&["order.paid".into(), "order.paid".into()]).unwrap();
        assert_eq!(f, ["order.paid"]);
        assert_eq!(
            event_filter(&["order.nope".into()]).unwrap_err().code,
            "unknown_event_type"
        );
        assert!(event_filter(&[]).unwrap().is_empty());
    }

    #[test]
    fn secrets_are_standard_webhooks_keys() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_ne!(s, new_secret());
        assert!(standardwebhooks::Webhook::new(&s).is_ok());
        let id = message_id(uuid::Uuid::nil());
        assert_eq!(id, "msg_00000000000000000000000000000000");
    }
}

//! Input parsed into domain types once, at the edge: past this module an invalid sale id or
//! an impossible sale cannot exist.

/// What an id made of checked text has besides its `parse`: read as text, written as text,
/// and parsed from a `String` (serde's `try_from`).
macro_rules! text_newtype {
    ($id:ident) => {
        impl $id {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $id {
            type Error = InvalidInput;
            fn try_from(s: String) -> Result<Self, InvalidInput> {
                Self::parse(&s)
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub mod draw;
mod order;
mod sale;
pub mod shop_url;
pub mod variant;

pub use order::{OrderRecord, ReleasedOrder};
pub use sale::{changeable, setting_names, Patch, SaleSpec, Settings};
pub use variant::{Variant, VariantId, VariantStock, VariantsLeft};

use serde::{Deserialize, Serialize};

/// Input that cannot become a domain value: a stable code and a message for the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct InvalidInput {
    pub code: &'static str,
    pub message: String,
}

impl InvalidInput {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// `[a-z0-9-]{1,64}`: safe inside a Redis hash tag, a URL path and a log line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SaleId(String);

impl SaleId {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if slug(s, 64) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidInput::new(
                "invalid_sale_id",
                "a sale id is 1 to 64 characters of a-z, 0-9 and -",
            ))
        }
    }
}

text_newtype!(SaleId);

/// A place in a sale's line: what the queue, the admitted set, `used` and the ledger's orders
/// (`ticket_id`) are keyed by. Made by the server (`http::door::session`, `lua/enqueue.lua`):
/// 28 hex characters, then `.` and the client's tag in a sale capping places per client; tokens
/// carry it (`sub`, `jti`), so one that is not a queue id makes the token invalid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueId(String);

impl QueueId {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidInput::new(
                "invalid_queue_id",
                "a queue id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '-' and '_'",
            ))
        }
    }
}

text_newtype!(QueueId);

/// `[a-z0-9-]{1,max}`: safe inside a Redis key or hash tag, a URL path, JSON and a log line.
fn slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Text someone outside chose that goes to Postgres: 1 to `max` characters, none of them a
/// control character. Postgres cannot store a NUL: it answered 503, and a provider retried
/// forever a request that can never succeed.
fn plain_text(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// A payment provider's event id: what its redeliveries of one event are recognised by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId(String);

impl EventId {
    pub fn parse(s: String) -> Result<Self, InvalidInput> {
        if plain_text(&s, 200) {
            Ok(Self(s))
        } else {
            Err(InvalidInput::new(
                "invalid_event",
                "event_id must be 1 to 200 characters, none of them control characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_ids() {
        assert!(SaleId::parse("spring-drop-2026").is_ok());
        for bad in ["", "UPPER", "a b", "a{b}", "x".repeat(65).as_str(), "é"] {
            assert!(SaleId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn event_ids() {
        assert!(EventId::parse("evt_1 ünïcode".into()).is_ok());
        for bad in ["".into(), "a\0b".into(), "tab\t".into(), "x".repeat(201)] {
            assert!(EventId::parse(bad.clone()).is_err(), "{bad:?} accepted");
        }
    }
}

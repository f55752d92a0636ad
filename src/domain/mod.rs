//! Input parsed into domain types once, at the edge: past this module an invalid sale id or
//! an impossible sale cannot exist.

mod order;

pub use order::{OrderRecord, ReleasedOrder};

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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SaleId(String);

impl SaleId {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidInput::new(
                "invalid_sale_id",
                "a sale id is 1 to 64 characters of a-z, 0-9 and -",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SaleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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

/// The admin's request to create a sale, as received.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSaleRequest {
    pub id: String,
    pub name: String,
    pub units: i64,
    pub price_cents: i64,
    pub rate_per_sec: Option<i64>,
    pub ticket_ttl_secs: Option<i64>,
    pub max_per_order: Option<i64>,
    /// Admitted shoppers allowed at once (0 = bounded only by units left).
    pub max_active: Option<i64>,
    /// How long an order waits for payment before its units return.
    pub hold_secs: Option<i64>,
    /// Places one client may hold waiting in line at once (0 = no cap).
    pub max_places_per_client: Option<i64>,
    /// Leading zero bits a join's proof-of-work must have (0 = no proof asked).
    pub pow_difficulty: Option<i64>,
}

/// A sale's fixed settings, valid by construction.
#[derive(Debug, Clone, Serialize)]
pub struct SaleSpec {
    pub id: SaleId,
    pub name: String,
    pub units: i32,
    pub price_cents: i64,
    pub rate_per_sec: i32,
    pub ticket_ttl_secs: i32,
    pub max_per_order: i32,
    pub max_active: i32,
    pub hold_secs: i32,
    pub max_places_per_client: i32,
    pub pow_difficulty: i32,
}

fn in_range(field: &str, v: i64, min: i64, max: i64) -> Result<i32, InvalidInput> {
    if (min..=max).contains(&v) {
        Ok(v as i32)
    } else {
        Err(InvalidInput::new(
            "invalid_sale",
            format!("{field} must be between {min} and {max}"),
        ))
    }
}

impl SaleSpec {
    pub fn parse(r: NewSaleRequest) -> Result<Self, InvalidInput> {
        let name = r.name.trim().to_string();
        if !plain_text(&name, 200) {
            return Err(InvalidInput::new(
                "invalid_sale",
                "name must be 1 to 200 characters, none of them control characters",
            ));
        }
        if !(0..=100_000_000_000).contains(&r.price_cents) {
            return Err(InvalidInput::new(
                "invalid_sale",
                "price_cents must be between 0 and 100000000000",
            ));
        }
        Ok(Self {
            id: SaleId::parse(&r.id)?,
            name,
            units: in_range("units", r.units, 0, 10_000_000)?,
            price_cents: r.price_cents,
            rate_per_sec: in_range("rate_per_sec", r.rate_per_sec.unwrap_or(50), 1, 100_000)?,
            ticket_ttl_secs: in_range(
                "ticket_ttl_secs",
                r.ticket_ttl_secs.unwrap_or(60),
                5,
                3_600,
            )?,
            max_per_order: in_range("max_per_order", r.max_per_order.unwrap_or(1), 1, 1_000)?,
            max_active: in_range("max_active", r.max_active.unwrap_or(0), 0, 10_000_000)?,
            hold_secs: in_range("hold_secs", r.hold_secs.unwrap_or(600), 5, 86_400)?,
            max_places_per_client: in_range(
                "max_places_per_client",
                r.max_places_per_client.unwrap_or(0),
                0,
                1_000_000,
            )?,
            pow_difficulty: in_range("pow_difficulty", r.pow_difficulty.unwrap_or(0), 0, 32)?,
        })
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

    #[test]
    fn sale_names_hold_no_control_characters() {
        let named = |name: &str| {
            SaleSpec::parse(NewSaleRequest {
                id: "drop".into(),
                name: name.into(),
                units: 1,
                price_cents: 1,
                rate_per_sec: None,
                ticket_ttl_secs: None,
                max_per_order: None,
                max_active: None,
                hold_secs: None,
                max_places_per_client: None,
                pow_difficulty: None,
            })
        };
        assert!(named(" Spring drop ").is_ok());
        for bad in ["\0", "a\0b", "a\u{7}b", "line\nbreak"] {
            assert!(named(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! An order as Redis remembers it, and an order whose units go back to stock.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{QueueId, VariantId};

/// What checkout.lua keeps in a sale's `used` hash for the ticket that bought: the one
/// encoding of an order in Redis. It is JSON, `{"id","qty","at"}` (`at` in unix ms, by
/// Redis's clock; `v`, the variant, only in a sale with variants), so the scripts read it with `cjson.decode` and Rust with serde; neither
/// side splits strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    #[serde(rename = "id")]
    pub order_id: Uuid,
    #[serde(rename = "qty")]
    pub quantity: i32,
    #[serde(rename = "at", with = "chrono::serde::ts_milliseconds")]
    pub at: DateTime<Utc>,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<VariantId>,
}

impl OrderRecord {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("an order record always serialises")
    }

    pub fn decode(raw: &str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }

    /// The record for an order made at `ms` (unix milliseconds).
    pub fn at_ms(order_id: Uuid, quantity: i32, ms: i64) -> Option<Self> {
        Some(Self {
            order_id,
            quantity,
            at: Utc.timestamp_millis_opt(ms).single()?,
            variant: None,
        })
    }
}

/// An order the ledger released (failed payment, lapsed hold): the ticket that bought it, its
/// id and the units it gives back.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReleasedOrder {
    #[sqlx(rename = "ticket_id")]
    pub ticket: QueueId,
    #[sqlx(rename = "id")]
    pub order_id: Uuid,
    pub quantity: i32,
    /// Its payment failed (else its hold lapsed): what its shopper's status then says.
    #[sqlx(default)]
    pub failed: bool,
    /// The variant its units go back to, in a sale with variants.
    #[sqlx(rename = "variant_id", default)]
    pub variant: Option<VariantId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_the_scripts_encoding() {
        let id = Uuid::new_v4();
        let r = OrderRecord::at_ms(id, 3, 1_700_000_000_123).unwrap();
        assert_eq!(
            r.encode(),
            format!(r#"{{"id":"{id}","qty":3,"at":1700000000123}}"#)
        );
        assert_eq!(OrderRecord::decode(&r.encode()), Some(r.clone()));
        // cjson writes integers as plain numbers and may order the fields differently.
        let lua = format!(r#"{{"at":1700000000123,"qty":3,"id":"{id}"}}"#);
        assert_eq!(OrderRecord::decode(&lua).unwrap().quantity, 3);
        assert!(OrderRecord::decode("nope").is_none());
        let sized = OrderRecord {
            variant: Some(VariantId::parse("42").unwrap()),
            ..r
        };
        assert!(sized.encode().ends_with(r#","v":"42"}"#));
        assert_eq!(OrderRecord::decode(&sized.encode()), Some(sized));
    }
}

//! A sale's settings, declared once, and the two ways an admin sets them: create and PATCH.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::LazyLock;

use super::draw::{check_beacon, Prequeue};
use super::variant::{self, Variant};
use super::{plain_text, shop_url, InvalidInput, SaleId};

/// Everything an admin chooses about a sale, declared once. The ledger's columns carry these
/// names (`SaleRow` flattens this struct and the ledger writes every field by name), Redis's
/// `cfg` hash holds every number and time (`cfg`), the admin's and shoppers' JSON show them,
/// and create's and PATCH's bodies are these fields, checked by the one `checked`.
/// A new setting: a field here with its default, a line in `checked`, a migration column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub name: String,
    /// With variants, their sum (and may be left out).
    #[serde(default = "default::units")]
    pub units: i32,
    pub price_cents: i64,
    #[serde(default = "default::rate_per_sec")]
    pub rate_per_sec: i32,
    #[serde(default = "default::ticket_ttl_secs")]
    pub ticket_ttl_secs: i32,
    #[serde(default = "default::max_per_order")]
    pub max_per_order: i32,
    /// Admitted shoppers allowed at once (0 = bounded only by units left).
    #[serde(default)]
    pub max_active: i32,
    /// How long an order waits for payment before its units return.
    #[serde(default = "default::hold_secs")]
    pub hold_secs: i32,
    /// Places one client may hold waiting in line at once (0 = no cap).
    #[serde(default)]
    pub max_places_per_client: i32,
    /// Leading zero bits a join's proof-of-work must have (0 = no proof asked).
    #[serde(default)]
    pub pow_difficulty: i32,
    /// When the schedule opens the sale (cleared once that time has come).
    #[serde(default)]
    pub opens_at: Option<DateTime<Utc>>,
    /// When the schedule closes the sale (cleared once that time has come).
    #[serde(default)]
    pub closes_at: Option<DateTime<Utc>>,
    /// The shop's payment page, where the queue page hands a buyer on (`shop_url`). Text, so
    /// never in Redis's `cfg`: only the hand-off and the page read it, from the ledger.
    #[serde(default)]
    pub checkout_url: Option<String>,
    /// Sizes with stock of their own (none: the sale has one stock, as before variants).
    /// Text, so never in `cfg`: Redis keeps each one's stock in hashes of its own.
    #[serde(default)]
    #[sqlx(json)]
    pub variants: Vec<Variant>,
    /// `fifo` (arrival order) or `draw`: joins before the opening are drawn (core::domain::draw).
    #[serde(default)]
    pub prequeue: Prequeue,
    /// Public randomness (e.g. a drand round) the draw mixes in; set before the opening.
    #[serde(default)]
    pub draw_beacon: Option<String>,
}

mod default {
    /// Not given: a sale with variants adds theirs up; one without must say.
    pub const UNITS_UNSET: i32 = i32::MIN;
    pub fn units() -> i32 {
        UNITS_UNSET
    }
    pub fn rate_per_sec() -> i32 {
        50
    }
    pub fn ticket_ttl_secs() -> i32 {
        60
    }
    pub fn max_per_order() -> i32 {
        1
    }
    pub fn hold_secs() -> i32 {
        600
    }
}

/// Settings a sale keeps from its creation on: orders and admissions were counted by them.
const FIXED: [&str; 2] = ["price_cents", "max_per_order"];

fn in_range(field: &str, v: i32, min: i32, max: i32) -> Result<(), InvalidInput> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(invalid(format!("{field} must be between {min} and {max}")))
    }
}

fn invalid(message: String) -> InvalidInput {
    InvalidInput::new("invalid_sale", message)
}

/// A body that is not the settings' shape (unknown field, wrong type): as actix's JSON
/// extractor answers it.
fn bad_json(e: impl std::fmt::Display) -> InvalidInput {
    InvalidInput::new("invalid_json", e.to_string())
}

/// The times a schedule may name: what Postgres, Redis (unix ms) and RFC 3339 all hold. A year
/// like -5000 parses, but the ledger would refuse it (it answered 503 for a client's typo).
const EARLIEST_TIME_MS: i64 = 0;
const LATEST_TIME_MS: i64 = 253_402_300_799_999;

/// Redis and the page count in milliseconds: a time is kept at that precision everywhere, so
/// the ledger and Redis hold the same instant.
fn to_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Units one sale may have, variants' included.
const MAX_UNITS: i32 = 10_000_000;

impl Settings {
    /// Settings from a body of these fields, defaults filled in, checked.
    pub fn parse(body: Map<String, Value>) -> Result<Self, InvalidInput> {
        let s: Self = serde_json::from_value(Value::Object(body)).map_err(bad_json)?;
        s.checked()
    }

    fn checked(mut self) -> Result<Self, InvalidInput> {
        self.name = self.name.trim().to_string();
        if !plain_text(&self.name, 200) {
            return Err(invalid(
                "name must be 1 to 200 characters, none of them control characters".into(),
            ));
        }
        if !(0..=100_000_000_000).contains(&self.price_cents) {
            return Err(invalid(
                "price_cents must be between 0 and 100000000000".into(),
            ));
        }
        self.units = self.units_declared()?;
        in_range("units", self.units, 0, MAX_UNITS)?;
        in_range("rate_per_sec", self.rate_per_sec, 1, 100_000)?;
        in_range("ticket_ttl_secs", self.ticket_ttl_secs, 5, 3_600)?;
        in_range("max_per_order", self.max_per_order, 1, 1_000)?;
        in_range("max_active", self.max_active, 0, 10_000_000)?;
        in_range("hold_secs", self.hold_secs, 5, 86_400)?;
        in_range(
            "max_places_per_client",
            self.max_places_per_client,
            0,
            1_000_000,
        )?;
        in_range("pow_difficulty", self.pow_difficulty, 0, 32)?;
        self.opens_at = self.opens_at.map(to_ms);
        self.closes_at = self.closes_at.map(to_ms);
        for (field, t) in [("opens_at", self.opens_at), ("closes_at", self.closes_at)] {
            if t.is_some_and(|t| {
                !(EARLIEST_TIME_MS..=LATEST_TIME_MS).contains(&t.timestamp_millis())
            }) {
                return Err(invalid(format!(
                    "{field} must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"
                )));
            }
        }
        if let (Some(opens), Some(closes)) = (self.opens_at, self.closes_at) {
            if closes <= opens {
                return Err(invalid("closes_at must be after opens_at".into()));
            }
        }
        if let Some(url) = &self.checkout_url {
            shop_url::check(url)?;
        }
        if let Some(b) = &self.draw_beacon {
            check_beacon(b)?;
        }
        Ok(self)
    }

    /// `units` as given, or as the variants add up (which a given `units` must equal).
    fn units_declared(&mut self) -> Result<i32, InvalidInput> {
        let given = (self.units != default::UNITS_UNSET).then_some(self.units);
        if self.variants.is_empty() {
            return given.ok_or_else(|| bad_json("missing field `units`"));
        }
        let sum = variant::checked(&mut self.variants, MAX_UNITS)?;
        match given {
            Some(units) if units != sum => Err(invalid(format!(
                "units must be the sum of the variants' units ({sum}), or left out"
            ))),
            _ => Ok(sum),
        }
    }

    /// The declared variant of that id.
    pub fn variant(&self, id: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.id.as_str() == id)
    }

    /// The settings as JSON fields, by name.
    pub fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("settings serialize to an object"),
        }
    }

    /// These settings with a PATCH applied, checked exactly as create checks them.
    pub fn patched(&self, patch: &Patch) -> Result<Self, InvalidInput> {
        let mut all = self.fields();
        // A restock of variants changes the sum: `units` follows unless the PATCH names it.
        if patch.0.contains_key("variants") {
            all.remove("units");
        }
        all.extend(patch.0.clone());
        Self::parse(all)
    }

    /// What differs from `old`: `{"field": {"old": .., "new": ..}}`.
    pub fn changes_from(&self, old: &Self) -> Map<String, Value> {
        let before = old.fields();
        self.fields()
            .into_iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .map(|(k, new)| {
                let old = before.get(&k).cloned().unwrap_or(Value::Null);
                (k, json!({ "old": old, "new": new }))
            })
            .collect()
    }

    /// What Redis's scripts read, as `cfg` hash fields: every number, and the times in unix
    /// ms (None: no such time, the field is cleared). Text settings (`name`, `checkout_url`)
    /// are not numbers and stay out.
    pub fn cfg(&self) -> Vec<(String, Option<i64>)> {
        let mut out: Vec<(String, Option<i64>)> = self
            .fields()
            .into_iter()
            .filter_map(|(k, v)| v.as_i64().map(|n| (k, Some(n))))
            .collect();
        let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
        out.push(("opens_at".into(), ms(self.opens_at)));
        out.push(("closes_at".into(), ms(self.closes_at)));
        // 1: a draw sale (admission waits for the draw, lua/draw.lua).
        let draw = self.prequeue == Prequeue::Draw;
        out.push(("prequeue".into(), draw.then_some(1)));
        out
    }

    /// The earliest pending schedule time, unix ms.
    pub fn next_schedule_ms(&self) -> Option<i64> {
        [self.opens_at, self.closes_at]
            .into_iter()
            .flatten()
            .map(|t| t.timestamp_millis())
            .min()
    }
}

/// A new sale: its id and settings.
#[derive(Debug, Clone)]
pub struct SaleSpec {
    pub id: SaleId,
    pub settings: Settings,
}

impl SaleSpec {
    /// Create's body: `id` and the settings' fields.
    pub fn parse(mut body: Map<String, Value>) -> Result<Self, InvalidInput> {
        let id = match body.remove("id") {
            Some(Value::String(id)) => SaleId::parse(&id)?,
            Some(_) => return Err(bad_json("id must be a string")),
            None => return Err(bad_json("missing field `id`")),
        };
        Ok(Self {
            id,
            settings: Settings::parse(body)?,
        })
    }
}

/// The names of every setting, in declaration order: serde knows them, and a sale made of
/// the defaults is how to ask it without a macro.
static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let sample = json!({"name": "x", "units": 0, "price_cents": 0});
    let sample: Settings = serde_json::from_value(sample).expect("the defaults parse");
    sample.fields().into_iter().map(|(k, _)| k).collect()
});

/// Every setting's name, in declaration order.
pub fn setting_names() -> &'static [String] {
    &NAMES
}

/// The settings a PATCH may name.
pub fn changeable() -> impl Iterator<Item = &'static str> {
    NAMES
        .iter()
        .map(String::as_str)
        .filter(|k| !FIXED.contains(k))
}

/// A PATCH body: fields of the settings a live sale may change, not yet checked together.
#[derive(Debug, Clone)]
pub struct Patch(Map<String, Value>);

impl Patch {
    pub fn parse(body: Map<String, Value>) -> Result<Self, InvalidInput> {
        if let Some(k) = body.keys().find(|k| !changeable().any(|c| c == *k)) {
            let names: Vec<&str> = changeable().collect();
            return Err(bad_json(format!(
                "unknown field `{k}`: a PATCH may change {}",
                names.join(", ")
            )));
        }
        Ok(Self(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn sale() -> Settings {
        Settings::parse(body(
            json!({"name": "Drop", "units": 10, "price_cents": 100}),
        ))
        .unwrap()
    }

    #[test]
    fn names_hold_no_control_characters() {
        let named = |name: &str| {
            SaleSpec::parse(body(
                json!({"id": "drop", "name": name, "units": 1, "price_cents": 1}),
            ))
        };
        assert_eq!(named(" Spring drop ").unwrap().settings.name, "Spring drop");
        for bad in ["\0", "a\0b", "a\u{7}b", "line\nbreak"] {
            assert_eq!(named(bad).unwrap_err().code, "invalid_sale", "{bad:?}");
        }
    }

    #[test]
    fn a_patch_is_checked_as_create_checks() {
        let s = sale();
        let p = |v: Value| Patch::parse(body(v)).and_then(|p| s.patched(&p));
        assert_eq!(
            p(json!({"rate_per_sec": 0})).unwrap_err().code,
            "invalid_sale"
        );
        assert_eq!(
            p(json!({"rate_per_sec": "x"})).unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            p(json!({"price_cents": 5})).unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(p(json!({"nope": 5})).unwrap_err().code, "invalid_json");
        let later = p(json!({"rate_per_sec": 7, "opens_at": "2030-01-01T00:00:00.1234Z"})).unwrap();
        let changes = later.changes_from(&s);
        assert_eq!(changes["rate_per_sec"], json!({"old": 50, "new": 7}));
        assert_eq!(changes["opens_at"]["new"], "2030-01-01T00:00:00.123Z");
        assert_eq!(changes.len(), 2);
        let cleared = later.patched(&Patch::parse(body(json!({"opens_at": null}))).unwrap());
        assert_eq!(cleared.unwrap().opens_at, None);
        let url = p(json!({"checkout_url": "https://shop.example/pay"})).unwrap();
        assert_eq!(
            url.checkout_url.as_deref(),
            Some("https://shop.example/pay")
        );
        let cleared = url.patched(&Patch::parse(body(json!({"checkout_url": null}))).unwrap());
        assert_eq!(cleared.unwrap().checkout_url, None);
        let insecure = p(json!({"checkout_url": "http://shop.example/pay"})).unwrap_err();
        assert_eq!(insecure.code, "invalid_sale");
        let backwards =
            json!({"opens_at": "2030-01-02T00:00:00Z", "closes_at": "2030-01-01T00:00:00Z"});
        assert_eq!(p(backwards).unwrap_err().code, "invalid_sale");
    }

    #[test]
    fn redis_gets_numbers_and_times_in_ms() {
        let mut s = sale();
        s.opens_at = DateTime::from_timestamp_millis(1_900_000_000_123);
        let cfg = s.cfg();
        let get = |k: &str| cfg.iter().find(|(f, _)| f == k).map(|(_, v)| *v);
        assert_eq!(get("rate_per_sec"), Some(Some(50)));
        assert_eq!(get("opens_at"), Some(Some(1_900_000_000_123)));
        assert_eq!(get("closes_at"), Some(None));
        assert_eq!(get("name"), None);
        s.checkout_url = Some("https://shop.example/pay".into());
        assert_eq!(s.cfg().iter().find(|(f, _)| f == "checkout_url"), None);
        assert!(changeable().any(|k| k == "units") && !changeable().any(|k| k == "price_cents"));
    }
}

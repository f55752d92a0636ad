//! A sale's live numbers: what every page, the ticker, the dashboard and an admin read of it,
//! and each variant's units left beside them (a status read takes the numbers alone: the page
//! has the variants from its stream).

use std::collections::BTreeMap;

use super::{key, unexpected, Store};
use crate::core::domain::{SaleId, Variant, VariantId, VariantsLeft};
use crate::core::fault::Fault;

/// A sale's numbers as every page and admin sees them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Live {
    pub open: bool,
    pub remaining: i64,
    pub queue_len: i64,
    pub admitted_active: i64,
    pub admitted_total: i64,
    /// Units held for payment: with no stock left, the line is a waitlist while any are.
    pub held: i64,
    /// As the scripts read it now (0 if Redis does not know the sale).
    pub rate_per_sec: i64,
    /// Pending schedule times, unix ms (the ticker runs lua/schedule.lua near them).
    pub opens_at_ms: Option<i64>,
    pub closes_at_ms: Option<i64>,
    /// Each variant's units left, in a sale with variants (not read by a status read: the
    /// page has them from the stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants_left: Option<VariantsLeft>,
}

impl Live {
    /// Nothing left and nothing that could come back.
    pub fn sold_out(&self) -> bool {
        self.remaining <= 0 && self.held <= 0
    }
}

/// open, stock, queue length, admitted now, admitted ever, held, cfg (rate, opens at, closes at).
pub(super) type LiveReply = (
    Option<String>,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    (Option<i64>, Option<i64>, Option<i64>),
);
/// Replies per sale in `live_commands`.
pub(super) const LIVE_REPLIES: usize = 7;

pub(super) fn live_commands<'a>(
    pipe: &'a mut redis::Pipeline,
    sale: &SaleId,
) -> &'a mut redis::Pipeline {
    pipe.get(key(sale, "open"))
        .get(key(sale, "stock"))
        .zcard(key(sale, "queue"))
        .zcard(key(sale, "admitted"))
        .get(key(sale, "admits"))
        .get(key(sale, "held"))
        .cmd("HMGET")
        .arg(key(sale, "cfg"))
        .arg(&["rate_per_sec", "opens_at", "closes_at"])
}

impl From<LiveReply> for Live {
    fn from((open, stock, queue_len, active, total, held, cfg): LiveReply) -> Self {
        Self {
            open: open.as_deref() == Some("1"),
            remaining: stock.unwrap_or(0),
            queue_len,
            admitted_active: active,
            admitted_total: total.unwrap_or(0),
            held: held.unwrap_or(0),
            rate_per_sec: cfg.0.unwrap_or(0),
            opens_at_ms: cfg.1,
            closes_at_ms: cfg.2,
            variants_left: None,
        }
    }
}

/// `live_commands`, then each variant's units left: what a page, the ticker or an admin reads
/// of a sale.
pub(super) fn live_and_variants<'a>(
    pipe: &'a mut redis::Pipeline,
    sale: &SaleId,
) -> &'a mut redis::Pipeline {
    live_commands(pipe, sale).hgetall(key(sale, "vstock"))
}

/// The replies of `live_and_variants`.
pub(super) fn live_of(replies: &[redis::Value]) -> Result<Live, Fault> {
    let bad = |_| unexpected("live");
    let (live, variants) = replies.split_at(LIVE_REPLIES.min(replies.len()));
    let live: LiveReply =
        redis::from_redis_value(redis::Value::Array(live.to_vec())).map_err(bad)?;
    let variants: BTreeMap<String, i64> = match variants {
        [v] => redis::from_redis_value(v.clone()).map_err(bad)?,
        _ => return Err(unexpected("live")),
    };
    Ok(Live {
        variants_left: variants_left(variants),
        ..Live::from(live)
    })
}

/// Units left by variant as Redis keeps them; None for a sale without variants. A field that
/// is not a variant id was not written by us and is left out.
pub(super) fn variants_left(raw: BTreeMap<String, i64>) -> Option<VariantsLeft> {
    let left: VariantsLeft = raw
        .into_iter()
        .filter_map(|(v, n)| Some((VariantId::parse(&v).ok()?, n)))
        .collect();
    (!left.is_empty()).then_some(left)
}

/// `variants_left` from the scripts' JSON ('' for none).
pub(super) fn variants_of(json: &str) -> Result<Option<VariantsLeft>, serde_json::Error> {
    if json.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(json).map(variants_left)
}

/// Each variant's units as the scripts take them (`vunits`): variant → units.
pub(super) fn vunits(variants: &[Variant]) -> BTreeMap<&str, i32> {
    variants.iter().map(|v| (v.id.as_str(), v.units)).collect()
}

impl Store {
    /// The live numbers of many sales in one round trip, and Redis's time (µs) of the read.
    pub async fn live_many(&self, sales: &[SaleId]) -> Result<(i64, Vec<Live>), Fault> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for sale in sales {
            live_and_variants(&mut pipe, sale);
        }
        let mut flat: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let rest = flat.split_off(1);
        let (secs, micros): (i64, i64) =
            redis::from_redis_value(flat.pop().ok_or_else(|| unexpected("TIME"))?)
                .map_err(|_| unexpected("TIME"))?;
        let live = rest
            .chunks(LIVE_REPLIES + 1)
            .map(live_of)
            .collect::<Result<_, _>>()?;
        Ok((secs * 1_000_000 + micros, live))
    }

    pub async fn live(&self, sale: &SaleId) -> Result<Live, Fault> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let replies: Vec<redis::Value> = live_and_variants(&mut pipe, sale)
            .query_async(&mut self.conn())
            .await?;
        live_of(&replies)
    }
}

//! The line: joining it, the admission tick, and where one shopper stands.

use super::batch::Entry;
use super::scripts::ADMIT;
use super::{key, time_ms, unexpected, variants_of, Live, Store};
use crate::core::domain::{QueueId, SaleId, VariantsLeft};
use crate::core::fault::Fault;

/// How many replies `place_commands` adds.
pub(super) const PLACE_FIELDS: usize = 8;

/// Where one shopper stands in Redis's view.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// No such sale in Redis.
    Unknown,
    /// The sale exists but this shopper is in none of its sets: the queue was lost (Redis
    /// flushed or failed over) and the place can be rebuilt from the shopper's token.
    Lost,
    SoldOut,
    Waiting {
        position: i64,
    },
    Admitted {
        expires_at_ms: i64,
    },
    Expired,
    /// The shopper bought, and the payment failed: the units went back to the line.
    PaymentFailed,
    /// The shopper's money arrived after their hold lapsed or their payment failed: it is
    /// owed back (the ledger's `refund_due`).
    RefundDue,
    /// A new place refused: the sale asks for more proof-of-work than was shown.
    PowRequired,
    /// A new place refused: its client already holds this many.
    TooManyPlaces {
        held: i64,
    },
    /// The `used` record (an encoded `OrderRecord`), empty when only the fact is known;
    /// `paid` once the payment succeeded (paid.lua), else the units wait for it.
    Purchased {
        record: String,
        paid: bool,
    },
}

impl Place {
    /// Whether a join that answered this holds a place (waiting, or further along): what a
    /// proof-of-work buys. Refusals and a sale Redis does not know hold none.
    pub fn is_held(&self) -> bool {
        !matches!(
            self,
            Place::Unknown
                | Place::Lost
                | Place::SoldOut
                | Place::PowRequired
                | Place::TooManyPlaces { .. }
        )
    }
}

/// What the door learned about a new shopper, for enqueue.lua to weigh.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewPlace<'a> {
    /// `door::places::tag` of the client.
    pub client_tag: &'a str,
    /// Bits of proof-of-work verified for this join (0: none shown).
    pub pow_bits: u32,
    /// When the tag names a wider IPv6 network: its clients together hold at most this many
    /// times the places cap (`WideLimits::share`).
    pub net_share: u32,
}

#[derive(Debug, Clone)]
pub struct Joined {
    pub place: Place,
    /// The queue id to sign: a new place carries its client's tag.
    pub queue_id: QueueId,
    /// The sale is admitting (meaningful when waiting).
    pub open: bool,
    /// Waiting with no stock left, while units are held for payment.
    pub waitlisted: bool,
    pub score: i64,
    pub seq: i64,
}

/// One admission tick's outcome: the sale's progress plus who was let in.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    pub open: bool,
    pub stock: i64,
    pub active: i64,
    pub queue_len: i64,
    pub admitted_total: i64,
    pub rate_per_sec: i64,
    /// Units held for payment.
    pub held: i64,
    /// Who was let in: queue id and the join score (Redis µs) they waited from.
    pub admitted: Vec<(String, i64)>,
    /// Redis time (µs) the tick ran at: orders its numbers against stock messages.
    pub at_us: i64,
    /// Each variant's units left, in a sale with variants.
    pub variants_left: Option<VariantsLeft>,
}

/// A shopper's place, read atomically with the sale's progress so the page can derive later
/// positions from `admitted_total` alone.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub place: Place,
    pub live: Live,
}

impl Store {
    /// Joins the line (`score` = None) or re-presents a queue token's place: `Place::Lost` if
    /// Redis no longer has it (see `rebuild_place`). `door` only matters to a new place.
    pub async fn enqueue(
        &self,
        sale: &SaleId,
        qid: &QueueId,
        score: Option<i64>,
        door: NewPlace<'_>,
    ) -> Result<Joined, Fault> {
        self.run_enqueue(sale, qid, score, "", door).await
    }

    /// Puts a lost place back in line at the score its token records.
    pub async fn rebuild_place(
        &self,
        sale: &SaleId,
        qid: &QueueId,
        score: i64,
    ) -> Result<(), Fault> {
        self.run_enqueue(sale, qid, Some(score), "restore", NewPlace::default())
            .await
            .map(drop)
    }

    async fn run_enqueue(
        &self,
        sale: &SaleId,
        qid: &QueueId,
        score: Option<i64>,
        mode: &'static str,
        door: NewPlace<'_>,
    ) -> Result<Joined, Fault> {
        self.join_batch(sale, |reply| Entry {
            qid: qid.to_owned(),
            score,
            mode,
            tag: door.client_tag.to_owned(),
            pow_bits: door.pow_bits,
            net_share: door.net_share,
            reply,
        })
        .await
    }

    pub async fn admit(&self, sale: &SaleId) -> Result<Tick, Fault> {
        let mut v: Vec<redis::Value> = ADMIT.on(sale).run(self).await?;
        if v.is_empty() {
            return Err(Fault::Busy("the sale is not in redis"));
        }
        let bad = |_| unexpected("admit.lua");
        let pairs: Vec<String> =
            redis::from_redis_value(redis::Value::Array(v.split_off(10.min(v.len()))))
                .map_err(bad)?;
        let admitted = pairs
            .chunks_exact(2)
            .map(|p| {
                Ok((
                    p[0].clone(),
                    p[1].parse().map_err(|_| unexpected("admit.lua"))?,
                ))
            })
            .collect::<Result<_, Fault>>()?;
        let variants: String =
            redis::from_redis_value(v.pop().ok_or_else(|| unexpected("admit.lua"))?)
                .map_err(bad)?;
        let variants_left = variants_of(&variants).map_err(|_| unexpected("admit.lua"))?;
        let at: String = redis::from_redis_value(v.pop().ok_or_else(|| unexpected("admit.lua"))?)
            .map_err(bad)?;
        let at_us = at.parse().map_err(|_| unexpected("admit.lua"))?;
        let n: Vec<i64> = redis::from_redis_value(redis::Value::Array(v)).map_err(bad)?;
        let [open, stock, active, queue_len, admitted_total, _expired_now, rate, held] = n[..]
        else {
            return Err(unexpected("admit.lua"));
        };
        Ok(Tick {
            open: open == 1,
            stock,
            active,
            queue_len,
            admitted_total,
            rate_per_sec: rate,
            held,
            admitted,
            at_us,
            variants_left,
        })
    }

    /// Where each of many shoppers stands, in one pipelined round trip (what a resync after
    /// a pub/sub reconnect needs). Not atomic per shopper, unlike `snapshot`: a place may be
    /// a moment stale, which the shopper's next event or status read corrects.
    pub async fn places(&self, shoppers: &[(SaleId, QueueId)]) -> Result<Vec<Place>, Fault> {
        if shoppers.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for (sale, qid) in shoppers {
            place_commands(&mut pipe, sale, qid)
                .get(key(sale, "stock"))
                .get(key(sale, "held"));
        }
        let mut values: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let rest = values.split_off(1);
        let bad = |_| unexpected("places");
        let (secs, micros): (i64, i64) =
            redis::from_redis_value(values.pop().ok_or_else(|| unexpected("TIME"))?)
                .map_err(bad)?;
        let now_ms = time_ms(secs, micros);
        rest.chunks(PLACE_FIELDS + 2)
            .map(|c| {
                let mut c = c.to_vec();
                let (stock, held): (Option<i64>, Option<i64>) =
                    redis::from_redis_value(redis::Value::Array(c.split_off(PLACE_FIELDS)))
                        .map_err(bad)?;
                let reply = redis::from_redis_value(redis::Value::Array(c)).map_err(bad)?;
                let live = Live {
                    remaining: stock.unwrap_or(0),
                    held: held.unwrap_or(0),
                    ..Live::default()
                };
                Ok(place_of(reply, now_ms, &live))
            })
            .collect()
    }
}

/// Whether the sale exists, the shopper's rank in the line, admission expiry, purchase
/// record, whether their admission lapsed, whether their payment failed, whether they are
/// due a refund, and whether they paid.
pub(super) type PlaceReply = (
    bool,
    Option<i64>,
    Option<f64>,
    Option<String>,
    bool,
    bool,
    bool,
    bool,
);

pub(super) fn place_commands<'a>(
    pipe: &'a mut redis::Pipeline,
    sale: &SaleId,
    qid: &QueueId,
) -> &'a mut redis::Pipeline {
    pipe.exists(key(sale, "cfg"))
        .zrank(key(sale, "queue"), qid)
        .zscore(key(sale, "admitted"), qid)
        .hget(key(sale, "used"), qid)
        .sismember(key(sale, "expired"), qid)
        .sismember(key(sale, "failed"), qid)
        .sismember(key(sale, "refunds"), qid)
        .sismember(key(sale, "paid"), qid)
}

/// The place a `PlaceReply` read at `now_ms` means in the sale's `live` state.
pub(super) fn place_of(reply: PlaceReply, now_ms: i64, live: &Live) -> Place {
    let (exists, rank, expires, record, expired, failed, refund, paid) = reply;
    if !exists {
        Place::Unknown
    } else if refund {
        // First: a success after a failure leaves the ticket in `failed` too.
        Place::RefundDue
    } else if failed {
        Place::PaymentFailed
    } else if let Some(record) = record {
        Place::Purchased { record, paid }
    } else if let Some(exp) = expires.filter(|&e| e as i64 > now_ms) {
        Place::Admitted {
            expires_at_ms: exp as i64,
        }
    } else if expired || expires.is_some() {
        // An admission past its expiry is lapsed, even before the next tick sweeps it.
        Place::Expired
    } else if let Some(rank) = rank {
        // With no stock but units held for payment, the line waits on as a waitlist.
        if live.sold_out() {
            Place::SoldOut
        } else {
            Place::Waiting { position: rank + 1 }
        }
    } else {
        // Lost even when sold out: the ledger is asked, as this may be a buyer Redis forgot.
        Place::Lost
    }
}

/// One join's reply from enqueue.lua; `qid` is the id it was sent with.
pub(super) fn joined(mut reply: Vec<redis::Value>, qid: &QueueId) -> Result<Joined, Fault> {
    let bad = |_| unexpected("enqueue.lua");
    // Only a new place names its queue id (the sixth element).
    let named: Option<String> = match reply.len() {
        6 => Some(redis::from_redis_value(reply.pop().expect("six")).map_err(bad)?),
        _ => None,
    };
    let (status, score, seq, position, open): (String, String, i64, i64, i64) =
        redis::from_redis_value(redis::Value::Array(reply)).map_err(bad)?;
    let place = match status.as_str() {
        "waiting" | "waitlisted" => Place::Waiting { position },
        "sold_out" => Place::SoldOut,
        "admitted" => Place::Admitted { expires_at_ms: 0 },
        "expired" => Place::Expired,
        "purchased" => Place::Purchased {
            record: String::new(),
            paid: false,
        },
        "lost" => Place::Lost,
        "unknown" => Place::Unknown,
        "pow_required" => Place::PowRequired,
        "too_many_places" => Place::TooManyPlaces { held: position },
        _ => return Err(unexpected("enqueue.lua")),
    };
    Ok(Joined {
        place,
        queue_id: match named {
            Some(id) => QueueId::parse(&id).map_err(|_| unexpected("enqueue.lua"))?,
            None => qid.clone(),
        },
        open: open == 1,
        waitlisted: status == "waitlisted",
        score: score.parse().map_err(|_| unexpected("enqueue.lua"))?,
        seq,
    })
}

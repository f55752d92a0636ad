//! Joining the line and asking where one stands.

use serde::Serialize;

use crate::core::domain::{OrderRecord, QueueId, SaleId};
use crate::core::fault::Fault;
use crate::flows::door::pow::{self, Challenge, PowError, Proof};
use crate::flows::door::{places, ClientKey};
use crate::flows::recovery;
use crate::flows::Deps;
use crate::infra::metrics::METRICS;
use crate::infra::store::{Claim, NewPlace, Place, Snapshot};
use crate::infra::tokens::{QueueClaims, TokenError};

/// What a join needs from the session: the id a new place takes and the hash its tokens carry.
pub struct Seat {
    pub queue_id: QueueId,
    pub sid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue token: {0:?}")]
    Token(TokenError),
    #[error("unknown sale")]
    UnknownSale,
    #[error("sold out")]
    SoldOut,
    #[error("proof-of-work: {0}")]
    Pow(PowError),
    /// The client already holds this many places, the sale's cap.
    #[error("too many places")]
    TooManyPlaces(i64),
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// Where one shopper stands: the part a join and `/status` answer alike.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Standing {
    /// waiting | closed (waiting, sale not admitting) | waitlisted (waiting with no units left
    /// while some are held for payment) | admitted | purchased | expired | failed (bought, the
    /// payment failed) | refund_due (the payment arrived after the hold lapsed or failed: it
    /// will be refunded) | sold_out
    pub status: &'static str,
    /// Place in line, 1 = next; 0 once no longer waiting.
    pub position: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// With `purchased`: `pending_payment` until the payment succeeds, then `paid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_status: Option<&'static str>,
    /// What a status past waiting means for the shopper, when a word is not enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct JoinView {
    pub token: String,
    pub queue_id: QueueId,
    /// The n-th shopper to join this sale (0 when the place was there already: restored from
    /// a token, or found again for the same browser).
    pub seq: i64,
    #[serde(flatten)]
    pub standing: Standing,
}

/// Where a shopper stands, as `/status` answers and the stream's first `state` event says.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    #[serde(flatten)]
    pub standing: Standing,
    pub queue_len: i64,
    pub remaining: i64,
    pub open: bool,
    /// Admissions so far: with `position` it lets the page follow its place from `progress`.
    pub admitted_total: i64,
    pub rate_per_sec: i64,
    pub eta_secs: Option<i64>,
    /// Units held for payment: what a waitlist waits on.
    pub held: i64,
}

/// What a shopper whose money came too late reads (`refund_due`).
pub const REFUND_MESSAGE: &str = "Your payment arrived after your order had lapsed, so the \
     order was not completed. Your payment will be refunded.";

/// How a place in line reads: on the waitlist (no units left, some held), in an admitting
/// line, or in a closed one.
fn waiting_status(waitlisted: bool, open: bool) -> &'static str {
    match (waitlisted, open) {
        (true, _) => "waitlisted",
        (false, true) => "waiting",
        (false, false) => "closed",
    }
}

/// Joins the line, or with a queue token keeps (or restores) the place the token records.
/// Only a new place is weighed at the door: its `proof` of work and its `client`'s places.
/// A new place takes the browser's `seat` (`door::session`): a second join from the same
/// browser gets the live place the first one made.
pub async fn join(
    s: &Deps,
    sale: &SaleId,
    token: Option<&str>,
    client: &ClientKey,
    proof: &Proof,
    seat: &Seat,
) -> Result<JoinView, QueueError> {
    let claims = match token {
        Some(t) => Some(s.keys.verify_queue(t, sale).map_err(QueueError::Token)?),
        // A sold-out sale turns newcomers away from memory, without touching Redis.
        None if s.hub.is_sold_out(sale) => return Err(QueueError::SoldOut),
        None => None,
    };
    let qid = claims
        .as_ref()
        .map_or_else(|| seat.queue_id.clone(), |c| c.sub.clone());
    let score = claims.as_ref().map(|c| c.t);
    let shown = proof.challenge.is_some() || proof.nonce.is_some();
    let spent = match claims {
        None if shown => Some(prove(s, sale, client, proof, &qid).await?),
        _ => None,
    };
    let pow_bits = spent.as_ref().map_or(0, |p| p.bits);
    let wide = s.config.door.limits.wide;
    let tag = places::tag(client, client.widen(wide.prefix).as_ref());
    let door = NewPlace {
        client_tag: &tag,
        pow_bits,
        net_share: wide.share,
    };
    let mut joined = s.store.enqueue(sale, &qid, score, door).await?;
    if joined.place == Place::Unknown && recovery::detect(s, sale, claims.is_some()).await? {
        joined = s.store.enqueue(sale, &qid, score, door).await?;
    }
    // A proof is spent only on a place: refused, it stays the shopper's to use again.
    if let Some(p) = spent.filter(|p| p.fresh && !joined.place.is_held()) {
        s.store.unclaim_challenge(sale, &p.id).await?;
    }
    let mut view = JoinView {
        token: String::new(),
        queue_id: joined.queue_id.clone(),
        seq: joined.seq,
        standing: Standing::default(),
    };
    match (joined.place, &claims) {
        (Place::Unknown, _) | (Place::Lost, None) => return Err(QueueError::UnknownSale),
        (Place::SoldOut, _) => return Err(QueueError::SoldOut),
        // Shown but not enough: the sale asks more than the challenge it was issued.
        (Place::PowRequired, _) if shown => return Err(QueueError::Pow(PowError::Invalid)),
        (Place::PowRequired, _) => return Err(QueueError::Pow(PowError::Required)),
        (Place::TooManyPlaces { held }, _) => return Err(QueueError::TooManyPlaces(held)),
        (Place::Waiting { position }, _) => {
            view.standing.status = waiting_status(joined.waitlisted, joined.open);
            view.standing.position = position;
        }
        // A returning shopper (by token or by browser) may be past waiting, or lost with
        // Redis: answer as `/status` would.
        (_, c) => {
            let (qid, t, sid) = match c {
                Some(c) => (&c.sub, c.t, c.sid.as_deref()),
                None => (&joined.queue_id, joined.score, Some(seat.sid.as_str())),
            };
            view.standing = status_of(s, sale, qid, t, sid).await?.standing;
        }
    }
    view.token = match (token, claims) {
        (Some(t), Some(_)) => t.to_string(),
        _ => {
            if joined.seq > 0 {
                METRICS.joins.inc();
            }
            let ttl = s.config.tokens.queue_token_ttl.as_secs() as i64;
            s.keys.queue_token(
                sale,
                &view.queue_id,
                joined.score,
                joined.seq,
                ttl,
                Some(&seat.sid),
            )
        }
    };
    Ok(view)
}

/// A proof-of-work this join claimed.
struct Spent {
    /// The challenge's id (what `claim_challenge` marked).
    id: String,
    bits: u32,
    /// Claimed by this request (not by an earlier try of the same join).
    fresh: bool,
}

/// Verifies a proof-of-work and claims it for the place `qid`. The same place may present it
/// again (its first answer was lost); another place may not (409 `pow_reused`).
async fn prove(
    s: &Deps,
    sale: &SaleId,
    client: &ClientKey,
    proof: &Proof,
    qid: &QueueId,
) -> Result<Spent, QueueError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let v = s
        .pow
        .verify(sale, client, proof, now_ms)
        .map_err(QueueError::Pow)?;
    let ttl_ms = v.expires_at_ms - now_ms;
    let fresh = match s.store.claim_challenge(sale, &v.id, qid, ttl_ms).await? {
        Claim::New => true,
        Claim::Again => false,
        Claim::Taken => return Err(QueueError::Pow(PowError::Reused)),
    };
    Ok(Spent {
        id: v.id,
        bits: v.difficulty,
        fresh,
    })
}

/// The shopper's standing, rebuilding a place lost with Redis from the token's score.
pub async fn status(
    s: &Deps,
    sale: &SaleId,
    claims: &QueueClaims,
) -> Result<StatusView, QueueError> {
    status_of(s, sale, &claims.sub, claims.t, claims.sid.as_deref()).await
}

/// `status` for the place `qid` joined at `t`; a ticket it holds is bound to `sid`.
pub async fn status_of(
    s: &Deps,
    sale: &SaleId,
    qid: &QueueId,
    t: i64,
    sid: Option<&str>,
) -> Result<StatusView, QueueError> {
    let mut snap = s.store.snapshot(sale, qid).await?;
    if snap.place == Place::Unknown && recovery::detect(s, sale, true).await? {
        snap = s.store.snapshot(sale, qid).await?;
    }
    if snap.place == Place::Lost {
        recovery::rebuild_shopper(s, sale, qid, t).await?;
        snap = s.store.snapshot(sale, qid).await?;
    }
    view(s, sale, qid, sid, snap)
}

fn view(
    s: &Deps,
    sale: &SaleId,
    qid: &QueueId,
    sid: Option<&str>,
    snap: Snapshot,
) -> Result<StatusView, QueueError> {
    let live = snap.live;
    // The rate as the scripts read it now, so a stream's seed matches the next tick's.
    let rate = live.rate_per_sec;
    let mut eta_secs = None;
    let standing = match snap.place {
        Place::Unknown => return Err(QueueError::UnknownSale),
        // Not in line after the ledger was asked: a sold-out sale restores no place.
        Place::Lost if live.sold_out() => Standing {
            status: "sold_out",
            ..Standing::default()
        },
        Place::Lost => return Err(QueueError::UnknownSale),
        Place::PowRequired | Place::TooManyPlaces { .. } => {
            return Err(Fault::bug("a snapshot refused a place at the door").into())
        }
        Place::SoldOut => Standing {
            status: "sold_out",
            ..Standing::default()
        },
        Place::Expired => Standing {
            status: "expired",
            ..Standing::default()
        },
        Place::PaymentFailed => Standing {
            status: "failed",
            ..Standing::default()
        },
        Place::RefundDue => Standing {
            status: "refund_due",
            message: Some(REFUND_MESSAGE),
            ..Standing::default()
        },
        Place::Purchased { record, paid } => Standing {
            status: "purchased",
            order_id: OrderRecord::decode(&record).map(|r| r.order_id.to_string()),
            order_status: Some(if paid { "paid" } else { "pending_payment" }),
            ..Standing::default()
        },
        Place::Admitted { expires_at_ms } => Standing {
            status: "admitted",
            ticket: Some(s.keys.ticket(sale, qid, sid, expires_at_ms)),
            ticket_expires_at: Some(expires_at_ms),
            ..Standing::default()
        },
        Place::Waiting { position } => {
            let waitlisted = live.remaining <= 0;
            if live.open && rate > 0 && !waitlisted {
                eta_secs = Some((position + rate - 1) / rate);
            }
            Standing {
                status: waiting_status(waitlisted, live.open),
                position,
                ..Standing::default()
            }
        }
    };
    Ok(StatusView {
        standing,
        queue_len: live.queue_len,
        remaining: live.remaining,
        open: live.open,
        admitted_total: live.admitted_total,
        rate_per_sec: rate,
        eta_secs,
        held: live.held,
    })
}

/// A challenge for a new place in this sale, at the difficulty the sale asks now.
pub async fn challenge(
    s: &Deps,
    sale: &SaleId,
    client: &ClientKey,
) -> Result<Challenge, QueueError> {
    let mut bits = s.store.pow_difficulty(sale).await?;
    if bits.is_none() && recovery::detect(s, sale, false).await? {
        bits = s.store.pow_difficulty(sale).await?;
    }
    let bits = bits.ok_or(QueueError::UnknownSale)?;
    let expires_at = chrono::Utc::now().timestamp_millis() + pow::CHALLENGE_TTL.as_millis() as i64;
    Ok(s.pow.issue(sale, client, bits, expires_at))
}

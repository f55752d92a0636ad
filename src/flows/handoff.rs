//! The hand-off: the buyer goes from the queue page to the shop's payment page with a token
//! the shop can verify (`tokens::order`), for the order their place in line bought.
//!
//! Asked with the shopper's queue token or admission ticket (each names the place, `sub`);
//! the order is the ledger's, so what the token says is what the shop will be paid for. Only
//! an order still waiting for payment whose hold has not ended is handed off, and the token
//! lives at most `MAX_TTL_SECS` and never past the hold: the page asks for one when the buyer
//! clicks, so a short life costs nothing.

use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use crate::core::domain::{shop_url, SaleId};
use crate::core::fault::Fault;
use crate::flows::Deps;
use crate::infra::tokens::{OrderGrant, TokenError};

/// Long enough for the browser to post the form; the shop redeems it on arrival.
pub const MAX_TTL_SECS: i64 = 600;

#[derive(Debug, Serialize)]
pub struct Handoff {
    pub order_id: Uuid,
    pub checkout_url: String,
    pub token: String,
    /// The token's `exp`, in unix milliseconds like every time the API gives.
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("no queue token or ticket")]
    MissingToken,
    #[error("token: {0:?}")]
    Token(TokenError),
    #[error("unknown sale")]
    UnknownSale,
    #[error("this place has no order")]
    NoOrder,
    /// The order is not waiting for payment: its status (`paid`, `failed`, `expired`, ...).
    #[error("the order is {status}")]
    NotPayable { order_id: Uuid, status: String },
    #[error("the sale has no checkout_url")]
    NoCheckoutUrl {
        order_id: Uuid,
        hold_expires_at: i64,
    },
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// A hand-off token for the order the place behind `bearer` (queue token or ticket) bought.
pub async fn hand_off(
    s: &Deps,
    sale: &SaleId,
    bearer: Option<&str>,
) -> Result<Handoff, HandoffError> {
    let token = bearer.ok_or(HandoffError::MissingToken)?;
    let qid = match s.keys.verify_queue(token, sale) {
        Ok(q) => q.sub,
        Err(TokenError::WrongType) => {
            s.keys
                .verify_ticket(token, sale)
                .map_err(HandoffError::Token)?
                .sub
        }
        Err(e) => return Err(HandoffError::Token(e)),
    };
    let settings = s
        .ledger
        .sale(sale)
        .await?
        .ok_or(HandoffError::UnknownSale)?
        .settings;
    let order = s
        .ledger
        .order_by_ticket(sale, &qid)
        .await?
        .ok_or(HandoffError::NoOrder)?;
    let hold_end = order.hold_expires_at.timestamp();
    let now = Utc::now().timestamp();
    // A hold past its end is expired, whether or not the sweeper has said so yet.
    let status = match order.status.as_str() {
        "pending_payment" if hold_end <= now => "expired",
        other => other,
    };
    if status != "pending_payment" {
        return Err(HandoffError::NotPayable {
            order_id: order.id,
            status: status.to_string(),
        });
    }
    let url = settings.checkout_url.ok_or(HandoffError::NoCheckoutUrl {
        order_id: order.id,
        hold_expires_at: order.hold_expires_at.timestamp_millis(),
    })?;
    let origin =
        shop_url::origin(&url).ok_or_else(|| Fault::bug("a checked checkout_url has no origin"))?;
    let exp = hold_end.min(now + MAX_TTL_SECS);
    let token = s.keys.order_token(&OrderGrant {
        order_id: order.id,
        sale,
        quantity: order.quantity,
        total_cents: order.amount_cents,
        shop_origin: &origin,
        exp,
    });
    Ok(Handoff {
        order_id: order.id,
        checkout_url: url,
        token,
        expires_at: exp * 1000,
    })
}

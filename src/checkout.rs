//! Checkout: one admission ticket buys once, each unit is sold once, every accepted order
//! reaches the ledger.
//!
//! Order of trust: checkout.lua decides (atomically: admitted, unused, enough stock); then the
//! order goes to Postgres. If Postgres fails, the order stays in Redis's `pending` set and the
//! shopper gets 503: a retry with the same ticket, or the background sync, writes it later,
//! exactly once (the ledger is idempotent on the ticket).

use actix_web::http::StatusCode;
use uuid::Uuid;

use crate::domain::SaleId;
use crate::error::AppError;
use crate::ledger::{Order, OrderRecord};
use crate::metrics::METRICS;
use crate::sales;
use crate::state::AppState;
use crate::store::Take;
use crate::tokens;

pub struct Bought {
    /// 201 for a new order, 200 for the same ticket again.
    pub status: StatusCode,
    pub order: Order,
}

pub async fn checkout(
    s: &AppState,
    sale: &SaleId,
    ticket: Option<&str>,
    quantity: i32,
) -> Result<Bought, AppError> {
    let result = buy(s, sale, ticket, quantity).await;
    if result.is_err() {
        METRICS.checkout_rejected.inc();
    }
    result
}

async fn buy(
    s: &AppState,
    sale: &SaleId,
    ticket: Option<&str>,
    quantity: i32,
) -> Result<Bought, AppError> {
    // The herd after the last unit: answered from memory, before any signature or Redis work.
    // Buyers retrying still get their order (the slow path below).
    if s.hub.refuses_as_sold_out(
        sale.as_str(),
        ticket.and_then(tokens::unverified_subject).as_deref(),
    ) {
        return Err(AppError::sold_out());
    }
    let token = ticket.ok_or_else(|| {
        AppError::unauthorized(
            "missing_token",
            "an admission ticket is required as a bearer token",
        )
    })?;
    let claims = s
        .keys
        .verify_ticket(token, sale.as_str())
        .map_err(|e| e.into_app_error(true))?;
    // The upper bound (the sale's max_per_order) is checked inside checkout.lua.
    if quantity < 1 {
        return Err(AppError::bad_request(
            "invalid_quantity",
            "quantity must be at least 1",
        ));
    }
    let order_id = Uuid::now_v7().to_string();
    let mut taken = s
        .store
        .take(sale.as_str(), &claims.jti, quantity, &order_id)
        .await?;
    if taken == Take::Unknown && sales::recover(s, sale, true).await? {
        taken = s
            .store
            .take(sale.as_str(), &claims.jti, quantity, &order_id)
            .await?;
    }
    let (record, fresh) = match taken {
        Take::Taken(r) => (r, true),
        Take::Again(r) => (r, false),
        Take::Expired => return Err(AppError::ticket_expired()),
        Take::NotAdmitted => {
            return Err(AppError::forbidden(
                "not_admitted",
                "this ticket holds no admission",
            ))
        }
        Take::SoldOut => {
            // Learn who bought, so the rest of the herd is answered from memory.
            let gen = s.hub.sold_out_gen(sale.as_str());
            if let Ok(buyers) = s.store.buyers(sale.as_str()).await {
                s.hub.set_buyers(sale.as_str(), gen, buyers);
            }
            return Err(AppError::sold_out());
        }
        Take::Insufficient(left) => {
            return Err(AppError::conflict(
                "insufficient_stock",
                format!("only {left} left; ask for fewer"),
            ))
        }
        Take::TooMany(max) => {
            return Err(AppError::bad_request(
                "invalid_quantity",
                format!("at most {max} per order"),
            ))
        }
        Take::Unknown => return Err(AppError::unknown_sale()),
    };
    let rec = OrderRecord::parse(&record)
        .ok_or_else(|| AppError::unavailable("unreadable order record"))?;
    let recorded = s.ledger.record(sale.as_str(), &claims.jti, &rec).await?;
    let Some(order) = sales::settle(s, sale.as_str(), &claims.jti, &rec, recorded).await? else {
        return Err(AppError::sold_out());
    };
    // The order is safe in Postgres; if this fails the sync clears it later.
    let _ = s
        .store
        .clear_pending(sale.as_str(), &[claims.jti.as_str()])
        .await;
    let fresh = fresh && order.id == rec.order_id;
    if fresh {
        METRICS.orders.inc();
    }
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Bought { status, order })
}

//! Orders in Redis: taking units at checkout, the orders Postgres has yet to confirm, and
//! giving units back when the ledger releases them.

use std::collections::HashSet;

use redis::AsyncCommands;
use uuid::Uuid;

use super::scripts::{CHECKOUT, PAID, REFUND, RELEASE};
use super::{key, unexpected, variants_of, Store};
use crate::core::domain::{OrderRecord, QueueId, ReleasedOrder, SaleId, VariantId, VariantsLeft};
use crate::core::fault::Fault;

#[derive(Debug, Clone, PartialEq)]
pub enum Take {
    /// Units taken now.
    Taken(OrderRecord),
    /// Units taken now, and they were the last: this checkout sold the sale out.
    Last(OrderRecord),
    /// The ticket bought before: the same order again.
    Again(OrderRecord),
    Expired,
    /// No units left; `held` of them are held for payment.
    SoldOut {
        held: i64,
    },
    Insufficient(i64),
    TooMany(i64),
    /// The sale has no such variant, or has variants and the checkout named none.
    UnknownVariant,
    /// The named variant has no units left: what is left of each.
    VariantSoldOut(VariantsLeft),
    /// Redis does not have the sale.
    Unknown,
    /// Redis may be behind the ledger until the sale is reconciled.
    Unsettled,
}

fn record(raw: &str) -> Result<OrderRecord, Fault> {
    OrderRecord::decode(raw).ok_or_else(|| Fault::bug(format!("unreadable order record {raw}")))
}

impl Store {
    /// Runs checkout.lua: the single place stock goes down.
    /// `ticket_exp_ms`: the ticket's expiry, its signed proof of admission.
    pub async fn take(
        &self,
        sale: &SaleId,
        qid: &QueueId,
        qty: i32,
        variant: Option<&VariantId>,
        order_id: Uuid,
        ticket_exp_ms: i64,
    ) -> Result<Take, Fault> {
        let (outcome, detail): (String, String) = CHECKOUT
            .on(sale)
            .arg(qid)
            .arg(qty)
            .arg(order_id.to_string())
            .arg(ticket_exp_ms)
            .arg(variant.map_or("", |v| v.as_str()))
            .run(self)
            .await?;
        let number = || detail.parse().map_err(|_| unexpected("checkout.lua"));
        Ok(match outcome.as_str() {
            "ok" => Take::Taken(record(&detail)?),
            "last" => Take::Last(record(&detail)?),
            "dup" => Take::Again(record(&detail)?),
            "expired" => Take::Expired,
            "sold_out" => Take::SoldOut { held: number()? },
            "insufficient" => Take::Insufficient(number()?),
            "too_many" => Take::TooMany(number()?),
            "unknown_variant" => Take::UnknownVariant,
            "variant_sold_out" => Take::VariantSoldOut(
                variants_of(&detail)
                    .map_err(|_| unexpected("checkout.lua"))?
                    .unwrap_or_default(),
            ),
            "unknown" => Take::Unknown,
            "unsettled" => Take::Unsettled,
            _ => return Err(unexpected("checkout.lua")),
        })
    }

    /// Queue ids whose tickets bought (the `used` hash's keys).
    pub async fn buyers(&self, sale: &SaleId) -> Result<HashSet<String>, Fault> {
        Ok(self.conn().hkeys(key(sale, "used")).await?)
    }

    /// Orders Redis accepted that Postgres has not confirmed: (queue id, record).
    pub async fn pending(&self, sale: &SaleId) -> Result<Vec<(QueueId, OrderRecord)>, Fault> {
        let mut c = self.conn();
        let qids: Vec<String> = c.smembers(key(sale, "pending")).await?;
        if qids.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(key(sale, "used"))
            .arg(&qids)
            .query_async(&mut c)
            .await?;
        qids.into_iter()
            .zip(records)
            .filter_map(|(q, r)| match (QueueId::parse(&q), record(&r?)) {
                (Ok(q), Ok(rec)) => Some(Ok((q, rec))),
                (Err(e), _) => {
                    tracing::error!(%sale, qid = q, error = %e, "pending order skipped");
                    None
                }
                // One bad record must not stop the sale's other orders from syncing.
                (_, Err(e)) => {
                    tracing::error!(%sale, qid = q, error = %e, "pending order skipped");
                    None
                }
            })
            .collect()
    }

    pub async fn clear_pending(&self, sale: &SaleId, qids: &[&QueueId]) -> Result<(), Fault> {
        if qids.is_empty() {
            return Ok(());
        }
        let _: () = self.conn().srem(key(sale, "pending"), qids).await?;
        Ok(())
    }

    /// A hold was paid: its units are no longer held (lua/paid.lua, idempotent per ticket).
    /// The last hold of a sale with no stock settling sends the waitlist `sold_out`; true
    /// for that payment only.
    pub async fn paid(&self, sale: &SaleId, qid: &QueueId, quantity: i32) -> Result<bool, Fault> {
        let (_held, sold_out): (i64, bool) = PAID.on(sale).arg(qid).arg(quantity).run(self).await?;
        Ok(sold_out)
    }

    /// The ledger made this shopper's order `refund_due`: their status says so from now on,
    /// and their streams hear it (lua/refund.lua). Idempotent per ticket.
    pub async fn mark_refund(&self, sale: &SaleId, qid: &QueueId) -> Result<(), Fault> {
        let _: i64 = REFUND.on(sale).arg(qid).run(self).await?;
        Ok(())
    }

    /// Gives back the units of orders the ledger released and marks their tickets spent.
    /// Idempotent per ticket (see lua/release.lua). Returns the stock now, or `Busy` while
    /// Redis has lost the sale (the release is retried once it is rebuilt).
    pub async fn release(&self, sale: &SaleId, orders: &[ReleasedOrder]) -> Result<i64, Fault> {
        let mut call = RELEASE.on(sale);
        for o in orders {
            call.arg(&o.ticket)
                .arg(o.quantity)
                .arg(o.order_id.to_string())
                .arg(u8::from(o.failed))
                .arg(o.variant.as_ref().map_or("", |v| v.as_str()));
        }
        match call.run(self).await? {
            -1 => Err(Fault::Busy("the sale is missing from redis")),
            left => Ok(left),
        }
    }
}

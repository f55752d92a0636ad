//! The promised invariants, read from Redis and Postgres themselves after every operation,
//! and the model's predictions of what the stores hold.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use redis::aio::MultiplexedConnection;
use sqlx::Row;

use super::world::{Model, State};

/// One sale as the stores hold it, read at one instant per store.
#[derive(Debug)]
pub struct Stores {
    pub in_redis: bool,
    pub stock: Option<i64>,
    /// (queue id, expiry ms), soonest first.
    pub admitted: Vec<(String, i64)>,
    /// Queue ids, front first.
    pub queue: Vec<String>,
    pub used: HashMap<String, String>,
    pub pending: Vec<String>,
    pub unsettled: bool,
    pub open: bool,
    pub now_ms: i64,
    pub units: i64,
    pub sold: i64,
    /// (order id, ticket, quantity, status)
    pub orders: Vec<(String, String, i64, String)>,
    /// Each variant's units left in Redis (`vstock`), by variant id.
    pub vstock: HashMap<String, i64>,
    /// Each variant's (units, sold) in Postgres (`sale_variants`), and the units its live
    /// orders hold, by variant id.
    pub variants: HashMap<String, (i64, i64, i64)>,
}

pub fn key(sale: &str, name: &str) -> String {
    format!("wr:{{{sale}}}:{name}")
}

#[allow(clippy::type_complexity)]
pub async fn read(r: &mut MultiplexedConnection, pg: &sqlx::PgPool, sale: &str) -> Stores {
    let (in_redis, stock, admitted, queue, used, pending, unsettled, open, (secs, micros), vstock): (
        bool,
        Option<i64>,
        Vec<(String, f64)>,
        Vec<String>,
        HashMap<String, String>,
        Vec<String>,
        bool,
        bool,
        (i64, i64),
        HashMap<String, i64>,
    ) = redis::pipe()
        .atomic()
        .exists(key(sale, "cfg"))
        .get(key(sale, "stock"))
        .zrange_withscores(key(sale, "admitted"), 0, -1)
        .zrange(key(sale, "queue"), 0, -1)
        .hgetall(key(sale, "used"))
        .smembers(key(sale, "pending"))
        .exists(key(sale, "unsettled"))
        .exists(key(sale, "open"))
        .cmd("TIME")
        .hgetall(key(sale, "vstock"))
        .query_async(r)
        .await
        .unwrap();
    let row = sqlx::query("SELECT units, sold FROM sales WHERE id = $1")
        .bind(sale)
        .fetch_one(pg)
        .await
        .unwrap();
    let orders = sqlx::query(
        "SELECT id::text AS id, ticket_id, quantity, status FROM orders WHERE sale_id = $1",
    )
    .bind(sale)
    .fetch_all(pg)
    .await
    .unwrap()
    .into_iter()
    .map(|o| {
        (
            o.get::<String, _>("id"),
            o.get::<String, _>("ticket_id"),
            o.get::<i32, _>("quantity") as i64,
            o.get::<String, _>("status"),
        )
    })
    .collect();
    let variants = sqlx::query(
        "SELECT v.variant_id, v.units, v.sold,
                (SELECT coalesce(sum(quantity), 0)::bigint FROM orders o
                 WHERE o.sale_id = v.sale_id AND o.variant_id = v.variant_id
                   AND o.status IN ('pending_payment', 'paid')) AS held
         FROM sale_variants v WHERE v.sale_id = $1",
    )
    .bind(sale)
    .fetch_all(pg)
    .await
    .unwrap()
    .into_iter()
    .map(|v| {
        let units = v.get::<i32, _>("units") as i64;
        let sold = v.get::<i32, _>("sold") as i64;
        (
            v.get::<String, _>("variant_id"),
            (units, sold, v.get::<i64, _>("held")),
        )
    })
    .collect();
    Stores {
        vstock,
        variants,
        in_redis,
        stock,
        admitted: admitted.into_iter().map(|(q, s)| (q, s as i64)).collect(),
        queue,
        used,
        pending,
        unsettled,
        open,
        now_ms: secs * 1000 + micros / 1000,
        units: row.get::<i32, _>("units") as i64,
        sold: row.get::<i32, _>("sold") as i64,
        orders,
    }
}

fn is_live(status: &str) -> bool {
    matches!(status, "pending_payment" | "paid")
}

/// The invariants the design promises, whatever the model says.
pub fn invariants(m: &Model, st: &Stores) -> Result<(), TestCaseError> {
    let stock = st.stock.unwrap_or(0);
    let held: i64 = st
        .orders
        .iter()
        .filter(|o| is_live(&o.3))
        .map(|o| o.2)
        .sum();
    prop_assert_eq!(st.sold, held, "sales.sold is not the units of live orders");
    prop_assert!(
        stock >= 0 && stock + st.sold <= st.units,
        "oversold: stock {} + sold {} > units {}",
        stock,
        st.sold,
        st.units
    );
    if st.in_redis && st.pending.is_empty() && !st.unsettled {
        prop_assert_eq!(stock + held, st.units, "a settled sale lost units");
    }
    // Per variant: the ledger counts what its live orders hold, and no size is oversold in
    // either store.
    for (v, (units, sold, held)) in &st.variants {
        prop_assert_eq!(
            sold,
            held,
            "variant {} sold is not its live orders' units",
            v
        );
        let left = st.vstock.get(v).copied().unwrap_or(0);
        prop_assert!(
            left >= 0 && left + sold <= *units,
            "variant {} oversold: left {} + sold {} > units {}",
            v,
            left,
            sold,
            units
        );
    }
    let tickets: HashSet<&str> = st.orders.iter().map(|o| o.1.as_str()).collect();
    prop_assert_eq!(tickets.len(), st.orders.len(), "two orders for one ticket");

    // FIFO: everyone admitted joined before everyone still waiting, and the line is in join
    // order (the model's index is the order in which the joins were answered).
    let join = |qid: &str| m.shoppers.iter().position(|s| s.qid == qid);
    let mut line = Vec::new();
    for q in &st.queue {
        line.push(join(q).ok_or_else(|| TestCaseError::fail(format!("{q} never joined")))?);
    }
    prop_assert!(
        line.is_sorted(),
        "the line is out of join order: {:?}",
        line
    );
    let live: Vec<&(String, i64)> = st.admitted.iter().filter(|a| a.1 > st.now_ms).collect();
    for (q, _) in &live {
        let i = join(q).ok_or_else(|| TestCaseError::fail(format!("{q} never joined")))?;
        prop_assert!(
            line.first().is_none_or(|&first| i < first),
            "FIFO inversion: #{} admitted while #{:?} waits",
            i,
            line.first()
        );
    }
    let t = m.terms;
    if t.max_active > 0 {
        prop_assert!(live.len() as i64 <= t.max_active, "above max_active");
    }
    // Admission counts units: every admitted shopper could buy the most per order.
    let per = t.max_per_order.max(1);
    prop_assert!(
        live.len() as i64 <= (stock + per - 1) / per,
        "{} admitted for {} units at up to {} each",
        live.len(),
        stock,
        per
    );
    Ok(())
}

/// The model's predictions of what the stores hold.
pub fn agrees(m: &Model, st: &Stores) -> Result<(), TestCaseError> {
    prop_assert!(st.in_redis, "the sale is missing from Redis");
    prop_assert_eq!(st.stock, Some(m.stock()), "stock in Redis");
    prop_assert_eq!(st.sold, m.sold, "sold in Postgres");
    let by_id = |xs: &[i64]| -> HashMap<String, i64> {
        xs.iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), *n))
            .collect()
    };
    prop_assert_eq!(
        &st.vstock,
        &by_id(&m.vstock()),
        "each variant's stock in Redis"
    );
    let vsold: HashMap<String, i64> = st.variants.iter().map(|(v, t)| (v.clone(), t.1)).collect();
    prop_assert_eq!(vsold, by_id(&m.vsold), "each variant's sold in Postgres");
    prop_assert!(st.pending.is_empty() && !st.unsettled, "not settled");
    let qids = |idx: Vec<usize>| -> Vec<String> {
        idx.into_iter().map(|i| m.shoppers[i].qid.clone()).collect()
    };
    prop_assert_eq!(&st.queue, &qids(m.line()), "the line in Redis");
    let mut live: Vec<String> = st
        .admitted
        .iter()
        .filter(|a| a.1 > st.now_ms)
        .map(|a| a.0.clone())
        .collect();
    live.sort();
    let mut active = qids(m.active());
    active.sort();
    prop_assert_eq!(live, active, "admitted tickets in Redis");
    let mut orders = 0;
    for s in &m.shoppers {
        let Some((id, qty, _)) = &s.order else {
            continue;
        };
        orders += 1;
        let o = st.orders.iter().find(|o| &o.0 == id);
        let o = o.ok_or_else(|| TestCaseError::fail(format!("order {id} is not in Postgres")))?;
        prop_assert_eq!((&o.1, o.2), (&s.qid, *qty), "order {} in Postgres", id);
        let live = s.state == State::Bought;
        prop_assert_eq!(is_live(&o.3), live, "order {} is {}", id, o.3);
        let record = st.used.get(&s.qid).map(|r| r.contains(id.as_str()));
        prop_assert_eq!(record, live.then_some(true), "used record of {}", s.qid);
    }
    prop_assert_eq!(st.orders.len(), orders, "orders nobody was answered for");
    Ok(())
}

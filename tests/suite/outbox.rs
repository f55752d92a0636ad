//! The outbox (issue 20): every order and sale change writes its event in the same
//! transaction, whichever path made the change, once, in the order it happened.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use uuid::Uuid;

use waitroom_testkit::*;

const WAIT: Duration = Duration::from_secs(20);

/// (type, order id, data) of a sale's events, in the order they were written.
async fn events(sale: &str) -> Vec<(String, Option<Uuid>, Value)> {
    sqlx::query_as::<_, (String, Option<Uuid>, sqlx::types::Json<Value>)>(
        "SELECT type, order_id, data FROM outbox WHERE sale_id = $1 ORDER BY seq",
    )
    .bind(sale)
    .fetch_all(&pg().await)
    .await
    .unwrap()
    .into_iter()
    .map(|(t, o, d)| (t, o, d.0))
    .collect()
}

async fn buy(app: &TestApp, sale: &str) -> (String, String) {
    let shopper = app.join(sale).await;
    let ticket = app.ticket(sale, &shopper.token).await;
    let res = app.checkout(sale, &ticket, 1).await;
    assert_eq!(res.status(), 201);
    let o: Value = res.json().await.unwrap();
    (o["order_id"].as_str().unwrap().to_string(), shopper.token)
}

/// Each order's life as events: created, then what became of it (paid, failed, lapsed, a
/// payment after the lapse owed back), each once and in that order, with the payload the
/// contract names; the admin's open and close are sale events.
#[tokio::test]
async fn every_change_of_an_order_or_a_sale_is_one_event_in_order() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(5, 1000, json!({"hold_secs": 5, "price_cents": 1250}))
        .await;
    app.admin(&sale, "open").await;
    let (paid, _) = buy(&app, &sale).await;
    let (failed, _) = buy(&app, &sale).await;
    let (late, late_token) = buy(&app, &sale).await;
    app.pay(&paid, "succeeded").await;
    app.pay(&failed, "failed").await;
    let lapsed = eventually(WAIT, || async {
        (app.status(&sale, &late_token).await["status"] == "expired").then_some(())
    })
    .await;
    assert!(lapsed.is_some(), "the third hold lapsed");
    app.pay(&late, "succeeded").await;
    app.admin(&sale, "close").await;

    let all = events(&sale).await;
    let of = |order: &str| -> Vec<String> {
        let id: Uuid = order.parse().unwrap();
        all.iter()
            .filter(|(_, o, _)| *o == Some(id))
            .map(|(t, _, _)| t.clone())
            .collect()
    };
    assert_eq!(of(&paid), ["order.created", "order.paid"]);
    assert_eq!(of(&failed), ["order.created", "order.failed"]);
    assert_eq!(
        of(&late),
        ["order.created", "order.expired", "order.refund_due"]
    );
    let sale_events: Vec<&str> = all
        .iter()
        .filter(|(_, o, _)| o.is_none())
        .map(|(t, _, _)| t.as_str())
        .collect();
    assert_eq!(sale_events, ["sale.opened", "sale.closed"]);

    let (_, _, created) = all.iter().find(|(t, _, _)| t == "order.created").unwrap();
    assert_eq!(created["order_id"], paid.as_str());
    assert_eq!(created["sale_id"], sale.as_str());
    assert_eq!(
        (
            created["quantity"].as_i64(),
            created["unit_price_cents"].as_i64()
        ),
        (Some(1), Some(1250))
    );
    assert_eq!(created["total_cents"], 1250);
    assert_eq!(created["status"], "pending_payment");
    assert!(created["hold_expires_at"].is_string());
}

/// A sale whose every unit is paid for says so once: `sale.sold_out` when the sweeper
/// finishes it.
#[tokio::test]
async fn a_sale_sold_and_paid_out_is_one_sold_out_event() {
    let app = spawn_app().await;
    let sale = app.create_sale(2, 1000).await;
    app.admin(&sale, "open").await;
    for _ in 0..2 {
        let (order, _) = buy(&app, &sale).await;
        app.pay(&order, "succeeded").await;
    }
    let sold_out = eventually(WAIT, || async {
        let all = events(&sale).await;
        let n = all.iter().filter(|(t, _, _)| t == "sale.sold_out").count();
        (n > 0).then_some(all)
    })
    .await
    .expect("a sale.sold_out event");
    let (_, _, data) = sold_out
        .iter()
        .find(|(t, _, _)| t == "sale.sold_out")
        .unwrap();
    assert_eq!(
        (data["units"].as_i64(), data["sold"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        sold_out
            .iter()
            .filter(|(t, _, _)| t == "sale.sold_out")
            .count(),
        1
    );
}

/// 100 shoppers check out at once through two instances (the ledger's group commit writes
/// them in batches): exactly one `order.created` per order.
#[tokio::test]
async fn concurrent_checkouts_write_one_created_event_per_order() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    let sale = a.create_sale(100, 100_000).await;
    let shoppers = join_all((0..100).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.join(&sale)
    }))
    .await;
    a.admin(&sale, "open").await;
    let sale = sale.as_str();
    let checkouts = shoppers.iter().enumerate().map(|(i, s)| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move {
            let ticket = app.ticket(sale, &s.token).await;
            app.checkout(sale, &ticket, 1).await.status().as_u16()
        }
    });
    let codes = join_all(checkouts).await;
    let bought = codes.iter().filter(|&&c| c == 201).count();
    assert_eq!(bought, 100, "{codes:?}");

    let orders: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM orders WHERE sale_id = $1")
        .bind(sale)
        .fetch_all(&pg().await)
        .await
        .unwrap();
    let mut created: HashMap<Uuid, usize> = HashMap::new();
    for (t, o, _) in events(sale).await {
        if t == "order.created" {
            *created.entry(o.unwrap()).or_default() += 1;
        }
    }
    assert_eq!(orders.len(), 100);
    assert_eq!(created.len(), 100);
    assert!(orders.iter().all(|(id,)| created.get(id) == Some(&1)));
}

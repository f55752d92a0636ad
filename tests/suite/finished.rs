//! Only live sales cost anything: a sale sold out and paid for leaves the set the ticker and
//! sweeper go through, and still answers every read.

use redis::AsyncCommands;
use serde_json::Value;

use crate::checkout::admitted_tickets;
use waitroom_testkit::*;

async fn listed(sale: &str) -> bool {
    redis().await.sismember("wr:sales", sale).await.unwrap()
}

async fn finished_at_set(sale: &str) -> bool {
    sqlx::query_scalar("SELECT finished_at IS NOT NULL FROM sales WHERE id = $1")
        .bind(sale)
        .fetch_one(&pg().await)
        .await
        .unwrap()
}

/// Sells the sale's one unit, with `behind` more shoppers waiting: returns (buyer's queue
/// token, order id, the others' queue tokens).
async fn sell_the_unit(app: &TestApp, sale: &str, behind: usize) -> (String, String, Vec<String>) {
    let buyer = app.join(sale).await;
    let mut waiting = Vec::new();
    for _ in 0..behind {
        waiting.push(app.join(sale).await.token);
    }
    app.admin(sale, "open").await;
    let ticket = app.ticket(sale, &buyer.token).await;
    let res = app.checkout(sale, &ticket, 1).await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    let order = order["order_id"].as_str().unwrap().to_string();
    (buyer.token, order, waiting)
}

#[tokio::test]
async fn a_sale_sold_out_and_paid_leaves_the_working_set_and_still_answers() {
    let app = spawn_app().await;
    // Sold out, but its one order is only held: the unit may come back, so it stays.
    let held = app.create_sale(1, 1000).await;
    let (_, held_order, next) = sell_the_unit(&app, &held, 1).await;
    let done = app.create_sale(1, 1000).await;
    let (buyer, order, _) = sell_the_unit(&app, &done, 0).await;
    app.pay(&order, "succeeded").await;

    let left = eventually(WAIT, || async { (!listed(&done).await).then_some(()) }).await;
    assert!(left.is_some(), "a finished sale leaves wr:sales");
    assert!(finished_at_set(&done).await);
    // The sweep that retired `done` came after `held` sold out, and kept it.
    assert!(listed(&held).await, "a sale with a unit on hold stays");
    assert!(!finished_at_set(&held).await);

    let stats = app.stats(&done).await;
    assert_eq!(
        (stats["sold_out"].as_bool(), stats["sold"].as_i64()),
        (Some(true), Some(1))
    );
    assert_eq!(app.status(&done, &buyer).await["status"], "purchased");
    let public = app
        .client
        .get(app.url(&format!("/api/sales/{done}")))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200);

    // The held unit comes back when its payment fails: the next in line gets it.
    app.pay(&held_order, "failed").await;
    app.ticket(&held, &next[0]).await;

    // Sales made after still admit.
    let fresh = app.create_sale(5, 1000).await;
    assert_eq!(admitted_tickets(&app, &fresh, 1).await.len(), 1);
}

/// Redis does not grow forever: a finished sale's keys expire a day after it leaves the
/// working set (the ledger keeps it), and lose the expiry when an admin opens it again.
#[tokio::test]
async fn a_finished_sale_expires_from_redis_unless_it_goes_live_again() {
    let app = spawn_app().await;
    let sale = app.create_sale(1, 1000).await;
    let (_, order, _) = sell_the_unit(&app, &sale, 0).await;
    app.pay(&order, "succeeded").await;
    let left = eventually(WAIT, || async { (!listed(&sale).await).then_some(()) }).await;
    assert!(left.is_some(), "the finished sale left wr:sales");
    let ttl = |name: &'static str| {
        let sale = sale.clone();
        async move {
            let t: i64 = redis()
                .await
                .ttl(format!("wr:{{{sale}}}:{name}"))
                .await
                .unwrap();
            t
        }
    };
    for name in ["cfg", "stock", "used", "paid"] {
        let t = ttl(name).await;
        assert!(
            (1..=86_400).contains(&t),
            "{name} expires within a day: {t}"
        );
    }
    // Live again by a restock: reopened with nothing to sell, any instance's next sweep would
    // finish it again (the test raced that sweep and failed once in a full run).
    crate::live_changes::patch_ok(&app, &sale, serde_json::json!({"units": 2})).await;
    app.admin(&sale, "open").await;
    assert_eq!(ttl("cfg").await, -1, "live again: kept for good");
    assert!(listed(&sale).await);
}

/// A sale whose closing time came with units unsold is over too: once nothing is held, it
/// leaves the working set like a sold-out one; opened again, it is live again.
#[tokio::test]
async fn a_sale_closed_by_its_schedule_leaves_the_working_set() {
    let app = spawn_app().await;
    let mut r = redis().await;
    let closes = redis_now_ms(&mut r).await + 500;
    let when = chrono::DateTime::from_timestamp_millis(closes).unwrap();
    let sale = app
        .create_sale_with(5, 1000, serde_json::json!({"closes_at": when.to_rfc3339()}))
        .await;
    app.join(&sale).await;
    app.admin(&sale, "open").await;
    let left = eventually(WAIT, || async { (!listed(&sale).await).then_some(()) }).await;
    assert!(left.is_some(), "the ended sale left wr:sales");
    assert!(finished_at_set(&sale).await);
    let stats = app.stats(&sale).await;
    assert_eq!(
        (stats["open"].as_bool(), stats["remaining"].as_i64()),
        (Some(false), Some(5)),
        "closed, units unsold, still answering"
    );
    app.admin(&sale, "open").await;
    assert!(listed(&sale).await, "opened again: live again");
    ticks_after(&sale, 3).await;
    assert!(listed(&sale).await, "and not finished again while open");
}

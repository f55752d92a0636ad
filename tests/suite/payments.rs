use std::time::Duration;

use serde_json::{json, Value};

use crate::checkout::admitted_tickets;
use waitroom_testkit::*;

async fn webhook(app: &TestApp, body: &Value, secret: &str) -> reqwest::Response {
    app.payment_event(body, secret).await
}

async fn buy_one(app: &TestApp, sale: &str, ticket: &str) -> String {
    let res = app.checkout(sale, ticket, 1).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn webhook_checks_signatures_and_ignores_duplicates() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let tickets = admitted_tickets(&app, &sale, 1).await;
    let order = buy_one(&app, &sale, &tickets[0]).await;
    let event = json!({"order_id": order, "event_id": unique("ev"), "outcome": "succeeded"});
    let res = webhook(&app, &event, "not-the-secret").await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "invalid_signature"
    );

    let res = webhook(&app, &event, PAYMENT_SECRET).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["duplicate"].as_bool()),
        (Some("paid"), Some(false))
    );
    let res = webhook(&app, &event, PAYMENT_SECRET).await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["duplicate"].as_bool()),
        (Some("paid"), Some(true))
    );
    // A different event saying "failed" after payment changes nothing.
    let late = json!({"order_id": order, "event_id": unique("ev"), "outcome": "failed"});
    let v: Value = webhook(&app, &late, PAYMENT_SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "paid");
    let stats = app.stats(&sale).await;
    assert_eq!(sold_remaining(&stats), (Some(1), Some(4)));
    let unknown =
        json!({"order_id": uuid::Uuid::new_v4(), "event_id": unique("ev"), "outcome": "failed"});
    assert_eq!(webhook(&app, &unknown, PAYMENT_SECRET).await.status(), 404);
}

#[tokio::test]
async fn a_failed_payment_returns_the_unit_and_admits_the_next_in_line() {
    let app = spawn_app().await;
    let sale = app.create_sale(1, 1000).await;
    let first = app.join(&sale).await;
    let second = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &first.token).await;
    let order = buy_one(&app, &sale, &ticket).await;
    assert_eq!(app.stats(&sale).await["sold_out"], true);
    // The unit is held for payment, not gone: the line waits on as a waitlist.
    let waiting = app.status(&sale, &second.token).await;
    assert_eq!(waiting["status"], "waitlisted");
    assert_eq!(
        (waiting["position"].as_i64(), waiting["held"].as_i64()),
        (Some(1), Some(1))
    );

    let event = json!({"order_id": order, "event_id": unique("ev"), "outcome": "failed"});
    let v: Value = webhook(&app, &event, PAYMENT_SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "failed");
    let stats = app.stats(&sale).await;
    assert_eq!(sold_remaining(&stats), (Some(0), Some(1)));
    // The failed buyer reads that the payment failed, and the spent ticket cannot buy again.
    assert_eq!(app.status(&sale, &first.token).await["status"], "failed");
    assert_eq!(app.checkout(&sale, &ticket, 1).await.status(), 410);
    // The waitlist effect: the next shopper is admitted and can buy the returned unit.
    let t2 = app.ticket(&sale, &second.token).await;
    buy_one(&app, &sale, &t2).await;
    assert_eq!(app.stats(&sale).await["sold"], 1);
}

#[tokio::test]
async fn an_expired_hold_returns_its_unit_and_a_late_payment_is_refund_due() {
    let app = spawn_app().await;
    let sale = app.create_sale_with(1, 1000, json!({"hold_secs": 5})).await;
    let first = app.join(&sale).await;
    let second = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &first.token).await;
    let order = buy_one(&app, &sale, &ticket).await;
    // The hold lapses after 5 s; the sweeper returns the unit and the next shopper gets in.
    let t2 = eventually(Duration::from_secs(12), || async {
        app.status(&sale, &second.token).await["ticket"]
            .as_str()
            .map(str::to_string)
    })
    .await
    .expect("second shopper admitted after the hold expired");
    assert_eq!(app.status(&sale, &first.token).await["status"], "expired");
    let late = json!({"order_id": order, "event_id": unique("ev"), "outcome": "succeeded"});
    let v: Value = webhook(&app, &late, PAYMENT_SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "refund_due");
    buy_one(&app, &sale, &t2).await;
    let stats = app.stats(&sale).await;
    assert_eq!(sold_remaining(&stats), (Some(1), Some(0)));
}

/// Postgres releases a failed order's unit while Redis is unreachable: the unit is owed to
/// Redis until Redis confirms it, even if a late success turns the order into a refund; a
/// reconcile before the sweeper's retry counts it once, and neither the retry nor a second
/// release gives it back again.
#[tokio::test]
async fn a_release_redis_missed_is_given_back_exactly_once() {
    let proxy = ChaosProxy::start(redis_addr()).await;
    let url = redis_url_via(proxy.port);
    let app = spawn_app_with(|c| c.redis.url = url).await;
    let sale = app.create_sale(1, 1000).await;
    let shopper = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &shopper.token).await;
    let order = buy_one(&app, &sale, &ticket).await;

    proxy.break_all();
    let event = json!({"order_id": order, "event_id": unique("ev"), "outcome": "failed"});
    let res = webhook(&app, &event, PAYMENT_SECRET).await;
    assert_eq!(res.status(), 200, "the verdict is recorded in postgres");
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "failed");
    let late = json!({"order_id": order, "event_id": unique("ev"), "outcome": "succeeded"});
    let res = webhook(&app, &late, PAYMENT_SECRET).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "refund_due");
    let owed = |sale: String| {
        let ledger = &app.state.ledger;
        async move {
            let due = ledger.restocks_due(0.0).await.unwrap();
            due.into_iter().filter(|r| r.sale.as_str() == sale).count()
        }
    };
    assert_eq!(
        owed(sale.clone()).await,
        1,
        "the late success kept the unit owed"
    );
    let mut r = redis().await;
    let stock_key = format!("wr:{{{sale}}}:stock");
    let stock: i64 = redis::AsyncCommands::get(&mut r, &stock_key).await.unwrap();
    assert_eq!(stock, 0, "redis did not hear of the release");

    proxy.restore();
    let reconciled = eventually(Duration::from_secs(10), || async {
        let res = app
            .client
            .post(app.url(&format!("/api/admin/sales/{sale}/reconcile")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
    assert!(reconciled.is_some(), "reconcile works once redis is back");
    let retried = eventually(Duration::from_secs(20), || async {
        (owed(sale.clone()).await == 0).then_some(())
    })
    .await;
    assert!(retried.is_some(), "the sweeper retried the release");
    let left = app
        .state
        .store
        .release(
            &sale_id(&sale),
            &[waitroom::core::domain::ReleasedOrder {
                ticket: queue_id(&shopper.queue_id),
                order_id: order.parse().unwrap(),
                quantity: 1,
                failed: true,
                variant: None,
            }],
        )
        .await
        .unwrap();
    assert_eq!(left, 1, "the unit came back once, whoever gave it back");
    // The success came after the failure: the shopper hears their money is owed back, though
    // Redis missed the webhook (the reconcile's settle and the sweeper restore the marker).
    let status = app.status(&sale, &shopper.token).await;
    assert_eq!(status["status"], "refund_due", "{status}");
}

/// A release gives back what the ledger says the order held, even when Redis has no record of
/// the order (it was bought while Redis was being rebuilt, or the record was lost).
#[tokio::test]
async fn a_release_returns_the_ledgers_units_when_redis_lost_the_order() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(3, 1000, json!({"max_per_order": 3}))
        .await;
    let shopper = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &shopper.token).await;
    let res = app.checkout(&sale, &ticket, 3).await;
    assert_eq!(res.status(), 201);
    let order = res.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut r = redis().await;
    let _: () =
        redis::AsyncCommands::hdel(&mut r, format!("wr:{{{sale}}}:used"), &shopper.queue_id)
            .await
            .unwrap();

    let event = json!({"order_id": order, "event_id": unique("ev"), "outcome": "failed"});
    assert_eq!(webhook(&app, &event, PAYMENT_SECRET).await.status(), 200);
    let stats = app.stats(&sale).await;
    assert_eq!(
        (stats["remaining"].as_i64(), stats["sold"].as_i64()),
        (Some(3), Some(0))
    );
}

/// (status, events recorded) of one order, straight from the ledger's tables.
async fn recorded(order: &str) -> (String, i64) {
    let id: uuid::Uuid = order.parse().unwrap();
    let pg = pg().await;
    let status = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(&pg)
        .await
        .unwrap();
    let events = sqlx::query_scalar("SELECT count(*) FROM payment_events WHERE order_id = $1")
        .bind(id)
        .fetch_one(&pg)
        .await
        .unwrap();
    (status, events)
}

async fn refused(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(res.status(), status);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], code);
}

#[tokio::test]
async fn an_event_id_used_for_another_order_is_409_and_records_nothing() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let tickets = admitted_tickets(&app, &sale, 2).await;
    let (first, second) = (
        buy_one(&app, &sale, &tickets[0]).await,
        buy_one(&app, &sale, &tickets[1]).await,
    );
    let ev = unique("ev");
    let event =
        |order: &str, outcome: &str| json!({"order_id": order, "event_id": ev, "outcome": outcome});
    let paid = webhook(&app, &event(&first, "succeeded"), PAYMENT_SECRET).await;
    assert_eq!(paid.status(), 200);
    for outcome in ["succeeded", "failed"] {
        let res = webhook(&app, &event(&second, outcome), PAYMENT_SECRET).await;
        refused(res, 409, "event_id_reused").await;
    }
    assert_eq!(recorded(&second).await, ("pending_payment".into(), 0));
    assert_eq!(recorded(&first).await, ("paid".into(), 1));
    assert_eq!(sold_remaining(&app.stats(&sale).await), (Some(2), Some(3)));
    // The same event for the same order is still a harmless redelivery.
    let again = webhook(&app, &event(&first, "succeeded"), PAYMENT_SECRET).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
}

#[tokio::test]
async fn a_signed_event_with_a_nul_is_400_and_records_nothing() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let tickets = admitted_tickets(&app, &sale, 1).await;
    let order = buy_one(&app, &sale, &tickets[0]).await;
    for event_id in ["ev\u{0}1".to_string(), "\u{0}".into(), String::new()] {
        let event = json!({"order_id": order, "event_id": event_id, "outcome": "failed"});
        let res = webhook(&app, &event, PAYMENT_SECRET).await;
        refused(res, 400, "invalid_event").await;
    }
    assert_eq!(recorded(&order).await, ("pending_payment".into(), 0));
}

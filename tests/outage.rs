//! Postgres stopped in the middle of a sale (the real server, through scripts/pgctl). Its own
//! test binary, the only one beside tests/suite: cargo runs test binaries one after another,
//! so no other test sees the outage. (A process of its own, as `alone!` gives, would not do:
//! the suite's other tests would still be running on the same Postgres.)

use std::time::Duration;

use serde_json::{json, Value};

use waitroom_testkit::*;

fn pgctl(action: &str) {
    let script = std::env::var("WAITROOM_PGCTL")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pgctl").into());
    let status = std::process::Command::new(script)
        .arg(action)
        .status()
        .expect("scripts/pgctl runs");
    assert!(status.success(), "scripts/pgctl {action} failed");
}

/// Starts Postgres again even when an assertion fails mid-outage.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        pgctl("start");
    }
}

#[tokio::test]
async fn postgres_down_mid_sale_loses_nothing_and_sells_nothing_twice() {
    let app = spawn_app().await;
    let sale = app.create_sale(20, 1000).await;
    // The shop's receiver hears this sale's events through the outage.
    let receiver = Receiver::start().await;
    let hook = json!({"url": receiver.url(), "sales": [sale]});
    let res = app
        .client
        .post(app.url("/api/admin/webhooks"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let endpoint: Value = res.json().await.unwrap();
    receiver.trust(endpoint["secret"].as_str().unwrap());
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(app.join(&sale).await.token);
    }
    app.admin(&sale, "open").await;
    let mut tickets = Vec::new();
    for t in &tokens {
        tickets.push(app.ticket(&sale, t).await);
    }
    for t in &tickets[..3] {
        assert_eq!(app.checkout(&sale, t, 1).await.status(), 201);
    }

    let restart = Restart;
    pgctl("stop");
    // A load balancer takes the instance out within a second (the pool alone would keep
    // retrying a connection for 3 s before the probe failed).
    let out = eventually(Duration::from_millis(1500), || async {
        let res = app.client.get(app.url("/readyz")).send().await.ok()?;
        (res.status() == 503).then_some(())
    })
    .await;
    assert!(out.is_some(), "/readyz still 200 with Postgres stopped");
    for t in &tickets[3..7] {
        let res = app.checkout(&sale, t, 1).await;
        assert_eq!(res.status(), 503);
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "unavailable");
    }
    // The line keeps working without the ledger: joining needs Redis only.
    assert_eq!(app.join_raw(&sale, None).await.status(), 201);
    drop(restart);

    // A shopper retrying after the outage gets the order Redis accepted, once.
    let res = eventually(Duration::from_secs(15), || async {
        let res = app.checkout(&sale, &tickets[3], 1).await;
        (res.status() != 503).then_some(res)
    })
    .await
    .expect("checkout answers again after postgres returns");
    assert_eq!(
        res.status(),
        200,
        "the retry returns the order made during the outage"
    );
    // Shoppers who gave up still have their orders: the sweeper writes them.
    let synced = eventually(Duration::from_secs(15), || async {
        let (orders, units) = app.state.ledger.orders_count(&sale_id(&sale)).await.ok()?;
        (orders == 7).then_some(units)
    })
    .await;
    assert_eq!(synced, Some(7), "every order redis accepted is in postgres");
    for t in &tickets[3..7] {
        assert_eq!(
            app.checkout(&sale, t, 1).await.status(),
            200,
            "a used ticket never buys twice"
        );
    }
    let stats = app.stats(&sale).await;
    assert_eq!(sold_remaining(&stats), (Some(7), Some(13)));
    assert_eq!(stats["pending_sync"], 0);
    // The shop hears of every order, those the sync wrote after the outage included: one
    // `order.created` each, in the same transaction as the order.
    let created: Vec<(uuid::Uuid,)> =
        sqlx::query_as("SELECT order_id FROM outbox WHERE sale_id = $1 AND type = 'order.created'")
            .bind(&sale)
            .fetch_all(&pg().await)
            .await
            .unwrap();
    let mut ids: Vec<_> = created.into_iter().map(|(id,)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "one order.created per order, none twice");
    // And each reaches the shop, verified, those of the orders the sync wrote included.
    let events: Vec<(uuid::Uuid,)> =
        sqlx::query_as("SELECT id FROM outbox WHERE sale_id = $1 AND type = 'order.created'")
            .bind(&sale)
            .fetch_all(&pg().await)
            .await
            .unwrap();
    let webhook_ids: Vec<String> = events
        .iter()
        .map(|(id,)| format!("msg_{}", id.simple()))
        .collect();
    assert_eq!(webhook_ids.len(), 7);
    let got = receiver.wait_accepted(&webhook_ids).await;
    assert!(got.iter().all(|r| r.verified));
    let accepted = accepted_ids(&got);
    assert!(
        webhook_ids.iter().all(|id| accepted.contains(&id.as_str())),
        "each order.created delivered"
    );
}

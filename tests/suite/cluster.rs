//! The same whole sale on the three-master Redis Cluster `scripts/test` starts and on the
//! single Redis; and a cluster master killed and restarted mid-sale, its script cache empty.

use std::time::Duration;

use serde_json::{json, Value};

use crate::events::{connect, data, next_named};
use waitroom_testkit::*;

/// An app on the cluster, with a ledger database of the cluster tests' own.
async fn spawn_cluster_app(nodes: Vec<String>, db_suffix: &str) -> TestApp {
    let db = own_database(db_suffix).await;
    spawn_app_with(move |c| {
        c.redis.cluster_nodes = nodes;
        c.postgres.url = db.into();
    })
    .await
}

async fn buy(app: &TestApp, sale: &str, ticket: &str) -> String {
    let res = app.checkout(sale, ticket, 1).await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    v["order_id"].as_str().unwrap().to_string()
}

async fn live_orders(app: &TestApp, sale: &str, want: (i64, i64)) {
    let got = eventually(WAIT, || async {
        let n = app.state.ledger.orders_count(&sale_id(sale)).await.unwrap();
        (n == want).then_some(n)
    })
    .await;
    assert_eq!(got, Some(want), "live orders, units in Postgres");
}

/// sold, remaining, admitted ever, waiting: the admin's numbers.
async fn counts(app: &TestApp, sale: &str) -> [i64; 4] {
    let stats = app.stats(sale).await;
    ["sold", "remaining", "admitted_total", "queue_len"].map(|k| stats[k].as_i64().unwrap())
}

/// Create, open, five join for three units, three admitted by the ticker and buying, the two
/// still waiting hear `waitlisted` over SSE (every unit held for payment), a failed payment
/// gives a unit back, the first on the waitlist hears `admitted` over SSE (pub/sub: only a
/// script's message delivers it) and buys it, and once every hold is paid the last one hears
/// `sold_out`.
async fn whole_sale(app: &TestApp) {
    let sale = app.create_sale(3, 100).await;
    let mut shoppers = Vec::new();
    for n in 1..=5 {
        let j = app.join(&sale).await;
        assert_eq!(j.position, n);
        shoppers.push(j);
    }
    let mut fourth = connect(app, &sale, &shoppers[3].token, None).await;
    let mut fifth = connect(app, &sale, &shoppers[4].token, None).await;
    app.admin(&sale, "open").await;
    assert!(next_named(&mut fifth, "opened").await.is_some(), "opened");

    let mut orders = Vec::new();
    for s in &shoppers[..3] {
        let ticket = app.ticket(&sale, &s.token).await;
        orders.push(buy(app, &sale, &ticket).await);
    }
    let waitlisted = next_named(&mut fifth, "waitlisted").await;
    let waitlisted = waitlisted.expect("waitlisted over SSE");
    assert_eq!(data(&waitlisted)["held"], 3);
    assert_eq!(counts(app, &sale).await, [3, 0, 3, 2]);
    assert_eq!(app.stats(&sale).await["sold_out"], true);
    let fourth_stands = app.status(&sale, &shoppers[3].token).await;
    assert_eq!(
        (
            fourth_stands["status"].as_str(),
            fourth_stands["position"].as_i64()
        ),
        (Some("waitlisted"), Some(1))
    );
    live_orders(app, &sale, (3, 3)).await;

    let failed = json!({"order_id": orders[0], "event_id": unique("ev"), "outcome": "failed"});
    let res = app.payment_event(&failed, PAYMENT_SECRET).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "failed");
    let admitted = next_named(&mut fourth, "admitted")
        .await
        .expect("admitted over SSE");
    let ticket = data(&admitted)["ticket"].as_str().unwrap().to_string();
    orders[0] = buy(app, &sale, &ticket).await;

    assert_eq!(counts(app, &sale).await, [3, 0, 4, 1]);
    assert_eq!(
        app.status(&sale, &shoppers[0].token).await["status"],
        "failed"
    );
    assert_eq!(
        app.status(&sale, &shoppers[4].token).await["status"],
        "waitlisted"
    );
    live_orders(app, &sale, (3, 3)).await;

    // The last hold paid: nothing can come back, and the waitlist hears it.
    for order in &orders {
        let paid = json!({"order_id": order, "event_id": unique("ev"), "outcome": "succeeded"});
        let res = app.payment_event(&paid, PAYMENT_SECRET).await;
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "paid");
    }
    assert!(
        next_named(&mut fifth, "sold_out").await.is_some(),
        "sold_out once every hold is paid"
    );
    assert_eq!(
        app.status(&sale, &shoppers[4].token).await["status"],
        "sold_out"
    );
    let late = app.join_raw(&sale, None).await;
    assert_eq!(late.status(), 409, "a sale sold for good takes no joins");
}

#[tokio::test]
async fn a_whole_sale_on_the_cluster() {
    let app = spawn_cluster_app(require_cluster_nodes(), "_cluster").await;
    whole_sale(&app).await;
}

#[tokio::test]
async fn a_whole_sale_on_one_redis() {
    whole_sale(&spawn_app().await).await;
}

/// A master of a cluster this test owns is killed and restarted on its port: its script cache
/// is empty, and the next `EVALSHA` there (NOSCRIPT) marks the sales unsettled and reloads the
/// script. Checkouts then wait for a settle (503), and the sale goes on. The sweep (and with it
/// the readiness probe, which also reloads) is off, so only that path can reload;
/// `Store::ready` then reloads on every master after a `SCRIPT FLUSH`.
#[tokio::test]
async fn a_restarted_master_reloads_the_scripts_and_the_sale_goes_on() {
    let mut cluster = OwnCluster::start().await;
    let nodes = cluster.urls();
    let db = own_database("_cluster_restart").await;
    let app = spawn_app_with(move |c| {
        c.redis.cluster_nodes = nodes;
        c.postgres.url = db.into();
        c.loops.sweep = Duration::from_secs(3600);
        c.loops.settle_after = Duration::from_millis(300);
    })
    .await;
    let sale = app.create_sale(3, 100).await;
    let first = app.join(&sale).await;
    let second = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &first.token).await;
    buy(&app, &sale, &ticket).await;

    let owner = cluster.owner_of(&format!("wr:{{{sale}}}:cfg"));
    assert!(cluster.cached_scripts(owner) > 0);
    cluster.kill_and_restart(owner).await;
    assert_eq!(
        cluster.cached_scripts(owner),
        0,
        "a restarted node has no scripts"
    );

    // The client reconnects to the restarted node by itself; until then a request is a 503.
    let third = eventually(WAIT, || async {
        let res = app.join_raw(&sale, None).await;
        (res.status() == 201).then_some(())
    })
    .await;
    assert!(third.is_some(), "joining works again after the restart");
    let ticket = app.ticket(&sale, &second.token).await;
    let held = app.checkout(&sale, &ticket, 1).await;
    assert_eq!(held.status(), 503, "held until reconciled with the ledger");
    let settled = eventually(WAIT, || async {
        waitroom::flows::recovery::settle_stock(&app.state, &sale_id(&sale))
            .await
            .unwrap();
        (app.checkout(&sale, &ticket, 1).await.status() == 201).then_some(())
    })
    .await;
    assert!(settled.is_some(), "sells again once settled");
    assert!(
        cluster.cached_scripts(owner) > 0,
        "the scripts were reloaded"
    );
    assert_eq!(counts(&app, &sale).await[..2], [2, 1]);

    cluster.flush_scripts();
    app.state
        .store
        .ready()
        .await
        .expect("ready reloads the scripts");
    for p in cluster.ports {
        assert!(
            cluster.cached_scripts(p) > 0,
            "scripts loaded on master {p}"
        );
    }
}

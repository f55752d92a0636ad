use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;

use waitroom_testkit::*;

async fn admitted_total(app: &TestApp, sale: &str) -> i64 {
    app.stats(sale).await["admitted_total"].as_i64().unwrap()
}

/// Opens a sale exactly as an admin would in a terminal: `redis-cli SET wr:{sale}:open 1`.
fn redis_cli_open(sale: &str) {
    let addr = redis_addr();
    let out = std::process::Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-n", &redis_db().to_string()])
        .args(["SET", &format!("wr:{{{sale}}}:open"), "1"])
        .output()
        .expect("redis-cli runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
}

#[tokio::test]
async fn nobody_is_admitted_while_closed_then_redis_cli_opens_it_in_join_order() {
    let app = spawn_app().await;
    let sale = app.create_sale(100, 40).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(app.join(&sale).await.queue_id);
    }
    // Two ticks after the joins are enough for a ticker that ignores the flag to admit: the
    // first would start the bucket, the second spend it.
    ticks_after(&sale, 3).await;
    assert_eq!(admitted_total(&app, &sale).await, 0);

    redis_cli_open(&sale);
    let r = redis().await;
    let all = eventually(WAIT, || async {
        let admitted: Vec<String> = r
            .clone()
            .zrange(format!("wr:{{{sale}}}:admitted"), 0, -1)
            .await
            .unwrap();
        assert_prefix_of_join_order(&admitted, &ids);
        (admitted.len() == ids.len()).then_some(())
    })
    .await;
    assert!(all.is_some(), "not all 30 admitted after redis-cli opened");
}

/// The admitted set must always be a prefix of the join order, however far admission got.
fn assert_prefix_of_join_order(admitted: &[String], ids: &[String]) {
    let mut sorted: Vec<&String> = admitted.iter().collect();
    sorted.sort_by_key(|q| ids.iter().position(|i| i == *q).unwrap());
    for (k, q) in sorted.iter().enumerate() {
        assert_eq!(
            **q, ids[k],
            "admitted set is not a prefix of the join order"
        );
    }
}

/// Two tickers on one sale must share one bucket: however the two instances' ticks fall,
/// admissions never run ahead of the rate on Redis's clock. The bucket starts empty at open
/// (no burst is built while closed), so the bound has no burst term. How fast admission goes
/// on a busy machine is bench/'s business; here it only has to finish.
#[tokio::test]
async fn two_instances_together_admit_the_configured_rate() {
    let tick = |c: &mut waitroom::core::config::Config| c.loops.tick = Duration::from_millis(200);
    let a = spawn_app_with(tick).await;
    let b = spawn_app_with(tick).await;
    let sale = a.create_sale(100, 20).await;
    for _ in 0..40 {
        a.join(&sale).await;
    }
    let mut r = redis().await;
    let opened_ms = redis_now_ms(&mut r).await;
    b.admin(&sale, "open").await;
    let all = eventually(WAIT, || async {
        let admitted = admitted_total(&a, &sale).await;
        // Read after the count, so the count is no newer than this time.
        let elapsed_ms = redis_now_ms(&mut r.clone()).await - opened_ms;
        let bound = 20 * elapsed_ms / 1000;
        assert!(
            admitted <= bound,
            "{admitted} admitted {elapsed_ms} ms (Redis TIME) after opening at 20/s"
        );
        (admitted == 40).then_some(())
    })
    .await;
    assert!(all.is_some(), "not all 40 admitted");
}

#[tokio::test]
async fn admission_stops_at_units_left_and_an_expired_ticket_frees_a_place() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let mut joined = Vec::new();
    for _ in 0..10 {
        joined.push(app.join(&sale).await);
    }
    app.admin(&sale, "open").await;
    eventually(WAIT, || async {
        (admitted_total(&app, &sale).await >= 5).then_some(())
    })
    .await
    .expect("5 admitted");
    // Later ticks find no units left to admit against.
    ticks_after(&sale, 3).await;
    let stats = app.stats(&sale).await;
    assert_eq!(stats["admitted_total"], 5, "no more than units left");
    assert_eq!(stats["queue_len"], 5);
    let first_ticket = app.ticket(&sale, &joined[0].token).await;

    // The first shopper's ticket lapses: the next in line gets the place.
    let mut r = redis().await;
    let _: () = r
        .zadd(format!("wr:{{{sale}}}:admitted"), &joined[0].queue_id, 1)
        .await
        .unwrap();
    eventually(WAIT, || async {
        (admitted_total(&app, &sale).await == 6).then_some(())
    })
    .await
    .expect("the sixth shopper is admitted");
    assert_eq!(
        app.status(&sale, &joined[5].token).await["status"],
        "admitted"
    );
    assert_eq!(
        app.status(&sale, &joined[6].token).await["status"],
        "waiting"
    );
    assert_eq!(
        app.status(&sale, &joined[0].token).await["status"],
        "expired"
    );

    // The lapsed ticket cannot buy, and its queue token cannot win the place back.
    let res = app.checkout(&sale, &first_ticket, 1).await;
    assert_eq!(res.status(), 410);
    let again = app.join_raw(&sale, Some(&joined[0].token)).await;
    let v: serde_json::Value = again.json().await.unwrap();
    assert_eq!(v["status"], "expired");
    assert_eq!(app.stats(&sale).await["queue_len"], 4);
}

/// With up to 3 units per order, 10 units need at most 4 buyers: admission counts units, so
/// the 4 it lets in can buy everything and nobody else waits for a ticket that would hear 409.
#[tokio::test]
async fn admission_counts_units_when_orders_take_several() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(10, 100, json!({"max_per_order": 3}))
        .await;
    let mut joined = Vec::new();
    for _ in 0..10 {
        joined.push(app.join(&sale).await);
    }
    app.admin(&sale, "open").await;
    let four = eventually(WAIT, || async {
        (admitted_total(&app, &sale).await >= 4).then_some(())
    })
    .await;
    assert!(four.is_some(), "four shoppers were never admitted");
    ticks_after(&sale, 3).await;
    assert_eq!(admitted_total(&app, &sale).await, 4, "ceil(10 / 3) = 4");

    // The first four in line buy 3, 3, 3 and the last unit: all of them get their order.
    for (j, qty) in joined.iter().zip([3, 3, 3, 1]) {
        let ticket = app.ticket(&sale, &j.token).await;
        let res = app.checkout(&sale, &ticket, qty).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
    let stats = app.stats(&sale).await;
    assert_eq!(stats["remaining"], 0);
    assert_eq!(stats["admitted_total"], 4, "nobody admitted past the units");
}

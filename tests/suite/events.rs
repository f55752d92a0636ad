use std::time::Duration;

use eventsource_stream::Event;
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde_json::{json, Value};

use waitroom_testkit::*;

pub async fn connect(app: &TestApp, sale: &str, token: &str, last_id: Option<&str>) -> Events {
    let url = app.url(&format!("/api/sales/{sale}/events"));
    open_events(&app.client, &url, token, last_id).await
}

/// The next event named `name`, skipping others, within `WAIT`.
pub async fn next_named(s: &mut Events, name: &str) -> Option<Event> {
    tokio::time::timeout(WAIT, async {
        while let Some(e) = s.next().await {
            if e.event == name {
                return Some(e);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

pub fn data(e: &Event) -> Value {
    serde_json::from_str(&e.data).unwrap()
}

#[tokio::test]
async fn state_first_then_progress_then_admitted_with_a_ticket_that_buys() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 100).await;
    app.join(&sale).await;
    let me = app.join(&sale).await;
    let mut s = connect(&app, &sale, &me.token, None).await;
    let first = s.next().await.unwrap();
    assert_eq!(first.event, "state");
    assert_eq!(first.id, "1");
    let state = data(&first);
    assert_eq!(
        (state["status"].as_str(), state["position"].as_i64()),
        (Some("closed"), Some(2))
    );
    // Progress is sent when it changes (no periodic re-sends): one more shopper joins.
    app.join(&sale).await;
    let p = next_named(&mut s, "progress").await.expect("progress");
    assert_eq!(data(&p)["queue_len"], 3);

    app.admin(&sale, "open").await;
    let opened = next_named(&mut s, "opened").await;
    assert!(opened.is_some(), "opened event");
    let admitted = next_named(&mut s, "admitted").await.expect("admitted");
    let ticket = data(&admitted)["ticket"].as_str().unwrap().to_string();
    assert!(data(&admitted)["ticket_expires_at"].as_i64().unwrap() > 0);
    assert_eq!(app.checkout(&sale, &ticket, 1).await.status(), 201);
}

/// The names of the events other than `progress`, up to and including the first `name`
/// (fewer if it does not come within `WAIT`).
async fn sale_events_until(s: &mut Events, name: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = tokio::time::timeout(WAIT, async {
        while let Some(e) = s.next().await {
            if e.event != "progress" {
                names.push(e.event.clone());
            }
            if e.event == name {
                return;
            }
        }
    })
    .await;
    names
}

/// Every open stream hears the last unit go, once, and nothing it should not: no admission
/// (no unit is left for one) and no flip back. Closing the sale afterwards bounds what each
/// stream is checked for.
#[tokio::test]
async fn fifty_streams_hear_the_waitlist_then_sold_out_once_the_last_hold_is_paid() {
    let app = spawn_app().await;
    let sale = app.create_sale(1, 100).await;
    let buyer = app.join(&sale).await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let j = app.join(&sale).await;
        let mut s = connect(&app, &sale, &j.token, None).await;
        assert_eq!(s.next().await.unwrap().event, "state");
        streams.push(s);
    }
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &buyer.token).await;
    let res = app.checkout(&sale, &ticket, 1).await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    // The last unit is held for payment: everyone waiting is on the waitlist.
    let heard = join_all(
        streams
            .iter_mut()
            .map(|s| sale_events_until(s, "waitlisted")),
    )
    .await;
    for (i, names) in heard.iter().enumerate() {
        assert_eq!(names, &["opened", "waitlisted"], "stream {i}");
    }
    let paid =
        json!({"order_id": order["order_id"], "event_id": unique("ev"), "outcome": "succeeded"});
    assert_eq!(app.payment_event(&paid, PAYMENT_SECRET).await.status(), 200);
    let heard = join_all(streams.iter_mut().map(|s| sale_events_until(s, "sold_out"))).await;
    for (i, names) in heard.iter().enumerate() {
        assert_eq!(names, &["sold_out"], "stream {i}");
    }
    app.admin(&sale, "close").await;
    let heard = join_all(streams.iter_mut().map(|s| sale_events_until(s, "closed"))).await;
    for (i, names) in heard.iter().enumerate() {
        assert_eq!(names, &["closed"], "stream {i} after sold_out");
    }
}

#[tokio::test]
async fn a_stream_on_instance_b_hears_an_admission_made_by_instance_a() {
    let a = spawn_app().await;
    // B's ticker runs once at start and then not again within the test: the admission below
    // is A's.
    let b = spawn_app_with(|c| c.loops.tick = Duration::from_secs(3600)).await;
    let sale = a.create_sale(5, 100).await;
    let me = a.join(&sale).await;
    let mut s = connect(&b, &sale, &me.token, None).await;
    assert_eq!(s.next().await.unwrap().event, "state");
    a.admin(&sale, "open").await;
    let admitted = next_named(&mut s, "admitted")
        .await
        .expect("admitted via B");
    let ticket = data(&admitted)["ticket"].as_str().unwrap().to_string();
    assert_eq!(a.checkout(&sale, &ticket, 1).await.status(), 201);
}

#[tokio::test]
async fn reconnect_with_last_event_id_gets_a_fresh_state_and_redis_cli_flips_are_pushed() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 100).await;
    app.join(&sale).await;
    let me = app.join(&sale).await;
    let mut s = connect(&app, &sale, &me.token, Some("41")).await;
    let first = s.next().await.unwrap();
    assert_eq!((first.event.as_str(), first.id.as_str()), ("state", "42"));
    assert_eq!(data(&first)["position"], 2);

    // Set straight in Redis, as an admin with redis-cli would: the stream still hears it.
    let mut r = redis().await;
    let key = format!("wr:{{{sale}}}:open");
    let _: () = redis::AsyncCommands::set(&mut r, &key, "1").await.unwrap();
    assert!(next_named(&mut s, "opened").await.is_some());
    let _: () = redis::AsyncCommands::del(&mut r, &key).await.unwrap();
    assert!(next_named(&mut s, "closed").await.is_some());
}

#[tokio::test]
async fn an_admission_missed_while_redis_was_unreachable_is_delivered_after_reconnect() {
    let proxy = ChaosProxy::start(redis_addr()).await;
    let url = redis_url_via(proxy.port);
    let a = spawn_app_with(|c| c.redis.url = url).await;
    let b = spawn_app().await;
    // Streams of two sales, so the resync's one read covers several shoppers.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let sale = b.create_sale(5, 100).await;
        let me = b.join(&sale).await;
        let mut s = connect(&a, &sale, &me.token, None).await;
        assert_eq!(s.next().await.unwrap().event, "state");
        streams.push((sale, me, s));
    }

    // A loses Redis (its pub/sub connection too); meanwhile B's ticker admits the shoppers.
    proxy.break_all();
    proxy.all_closed().await;
    for (sale, me, _) in &streams {
        b.admin(sale, "open").await;
        eventually(WAIT, || async {
            (b.status(sale, &me.token).await["status"] == "admitted").then_some(())
        })
        .await
        .expect("admitted by B");
    }
    proxy.restore();
    // A resubscribes, asks Redis about its streams, and pushes what the shoppers missed.
    for (_, _, s) in &mut streams {
        let admitted = next_named(s, "admitted")
            .await
            .expect("admitted after reconnect");
        assert!(data(&admitted)["ticket"].as_str().is_some());
    }
}

//! Promises a shopper or operator relies on that once broke (issue 19): each test here failed
//! on the build before its fix.

use std::time::Duration;

use futures_util::StreamExt;

use redis::AsyncCommands;
use serde_json::json;

use waitroom_testkit::*;

async fn is_listed(sale: &str) -> bool {
    redis().await.sismember("wr:sales", sale).await.unwrap()
}

/// A create whose `SADD wr:sales` failed after the sale's keys were written (the ticker never
/// looks at such a sale): the same create again answers as created and lists it, another
/// create under the id is still 409, and the rebuilder lists it even when nobody retries.
#[tokio::test]
async fn a_half_made_sale_is_listed_by_a_retry_and_by_the_rebuilder() {
    let app = spawn_app().await;
    let id = unique("half");
    let body = json!({"id": id, "name": "half made", "units": 5, "price_cents": 100});
    assert_eq!(app.create_sale_json(body.clone()).await.status(), 201);
    let unlist = || async {
        let _: () = redis().await.srem("wr:sales", &id).await.unwrap();
    };

    unlist().await;
    assert!(!is_listed(&id).await);
    let again = app.create_sale_json(body.clone()).await;
    assert_eq!(again.status(), 201, "the same create again");
    assert!(is_listed(&id).await, "the retry listed it");
    let other = json!({"id": id, "name": "another", "units": 5, "price_cents": 100});
    assert_eq!(app.create_sale_json(other).await.status(), 409);

    unlist().await;
    // The rebuilder looks at sales older than 5 s, every ten sweeps.
    let listed = eventually(Duration::from_secs(20), || async {
        is_listed(&id).await.then_some(())
    })
    .await;
    assert!(listed.is_some(), "the rebuilder lists it again");
    // And it sells: the ticker admits from it once it is open.
    let token = app.join(&id).await.token;
    app.admin(&id, "open").await;
    app.ticket(&id, &token).await;
}

async fn solved_challenge(app: &TestApp, sale: &str) -> serde_json::Value {
    crate::door_join::solved(&crate::door_join::challenge(app, sale).await)
}

/// Joins with a proof as one browser: `cookie` is its `wr_sid` (None: a new browser).
async fn join_proved(
    app: &TestApp,
    sale: &str,
    proof: &serde_json::Value,
    cookie: Option<&str>,
) -> (u16, serde_json::Value, Option<String>) {
    let mut req = app
        .client
        .post(app.url(&format!("/api/sales/{sale}/queue")))
        .json(proof);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("wr_sid={c}"));
    }
    let res = req.send().await.unwrap();
    remember_session(&res);
    let sid = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.strip_prefix("wr_sid="))
        .map(str::to_string)
        .next();
    (res.status().as_u16(), res.json().await.unwrap(), sid)
}

/// A proof-of-work is spent only when it buys a place: the browser that joined with it may
/// send it again (its 201 was lost) and keeps its place; another browser may not; a join the
/// places cap refused leaves the proof unspent, to use once the cap allows.
#[tokio::test]
async fn a_proof_of_work_is_spent_only_on_a_place() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(
            10,
            10,
            json!({"pow_difficulty": 4, "max_places_per_client": 1}),
        )
        .await;
    let proof = solved_challenge(&app, &sale).await;
    let (code, first, sid) = join_proved(&app, &sale, &proof, None).await;
    assert_eq!(code, 201, "{first}");
    let sid = sid.expect("a join sets wr_sid");
    let (code, again, _) = join_proved(&app, &sale, &proof, Some(&sid)).await;
    assert_eq!(code, 201, "the same join again: {again}");
    assert_eq!(again["queue_id"], first["queue_id"], "its own place");
    let (code, err, _) = join_proved(&app, &sale, &proof, None).await;
    assert_eq!((code, err["code"].as_str()), (409, Some("pow_reused")));

    let second = solved_challenge(&app, &sale).await;
    let (code, err, _) = join_proved(&app, &sale, &second, None).await;
    assert_eq!((code, err["code"].as_str()), (429, Some("too_many_places")));
    let res = app
        .client
        .patch(app.url(&format!("/api/admin/sales/{sale}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"max_places_per_client": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (code, joined, _) = join_proved(&app, &sale, &second, None).await;
    assert_eq!(
        code, 201,
        "the refused join's proof was not spent: {joined}"
    );
}

/// One address opening a stream per token, a thousand tokens deep, is capped per client: past
/// `streams.per_client` it hears 429 `too_many_streams`, while another client still streams.
#[tokio::test]
async fn open_streams_are_capped_per_client_not_only_per_token() {
    let app = spawn_app_with(|c| {
        c.streams.per_client = 3;
        c.door.clients.trusted = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let sale = app.create_sale(5, 1000).await;
    let open = |token: String, from: &'static str| {
        let cookie = format!("{}; wr_queue={token}", session_cookie(&token).unwrap());
        app.client
            .get(app.url(&format!("/api/sales/{sale}/events")))
            .header("cookie", cookie)
            .header("x-forwarded-for", from)
            .timeout(Duration::from_secs(600))
            .send()
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let res = open(app.join(&sale).await.token, "203.0.113.1")
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        held.push(res);
    }
    let res = open(app.join(&sale).await.token, "203.0.113.1")
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let err: serde_json::Value = res.json().await.unwrap();
    assert_eq!(err["code"], "too_many_streams");
    let other = open(app.join(&sale).await.token, "198.51.100.2")
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another client is not held back");
}

/// A stream on an instance whose pub/sub connection was down when the last unit sold (and
/// whose ticker does not look at the sale) still hears `sold_out` once it resubscribes; a
/// stream opened after the end hears it too.
#[tokio::test]
async fn no_stream_misses_the_end_of_a_sale() {
    let proxy = ChaosProxy::start(redis_addr()).await;
    let url = redis_url_via(proxy.port);
    let a = spawn_app_with(|c| {
        c.redis.url = url;
        c.loops.tick = Duration::from_secs(3600);
    })
    .await;
    let b = spawn_app().await;
    let sale = b.create_sale(1, 100).await;
    let buyer = b.join(&sale).await;
    let watcher = b.join(&sale).await;
    let mut stream = crate::events::connect(&a, &sale, &watcher.token, None).await;
    assert_eq!(stream.next().await.unwrap().event, "state");

    // A loses Redis, its pub/sub connection too; meanwhile B sells the last unit and the
    // payment settles it, publishing `sold_out` to nobody on A.
    proxy.break_all();
    proxy.all_closed().await;
    b.admin(&sale, "open").await;
    let ticket = b.ticket(&sale, &buyer.token).await;
    let res = b.checkout(&sale, &ticket, 1).await;
    assert_eq!(res.status(), 201);
    let order: serde_json::Value = res.json().await.unwrap();
    b.pay(order["order_id"].as_str().unwrap(), "succeeded")
        .await;
    proxy.restore();

    let over = crate::events::next_named(&mut stream, "sold_out").await;
    assert!(
        over.is_some(),
        "the stream on A heard sold_out after A resubscribed"
    );
    let late = b.join_raw(&sale, None).await;
    assert_eq!(late.status(), 409, "a newcomer hears sold out");
    // The watcher's browser reconnects (a new tab): the end is said again.
    let mut again = crate::events::connect(&a, &sale, &watcher.token, Some("7")).await;
    let first = again.next().await.unwrap();
    assert_eq!(first.event, "state");
    let next = again.next().await.unwrap();
    assert_eq!(
        next.event, "sold_out",
        "re-sent to a stream opened after the end"
    );
}

/// The last hold's payment arrives while Redis refuses the instance: the ledger records it
/// (200, no redelivery needed) and the sweeper finishes it in Redis, so the units are no
/// longer held, a newcomer hears sold out rather than joining a waitlist, and the waiting
/// shoppers' streams hear `sold_out`.
#[tokio::test]
async fn a_payment_redis_missed_is_finished_by_the_sweeper() {
    let proxy = ChaosProxy::start(redis_addr()).await;
    let url = redis_url_via(proxy.port);
    let a = spawn_app_with(|c| c.redis.url = url).await;
    let b = spawn_app().await;
    let sale = b.create_sale(1, 100).await;
    let buyer = b.join(&sale).await;
    let watcher = b.join(&sale).await;
    b.admin(&sale, "open").await;
    let ticket = b.ticket(&sale, &buyer.token).await;
    let res = b.checkout(&sale, &ticket, 1).await;
    assert_eq!(res.status(), 201);
    let order: serde_json::Value = res.json().await.unwrap();
    let order = order["order_id"].as_str().unwrap().to_string();
    let mut stream = crate::events::connect(&b, &sale, &watcher.token, None).await;
    assert_eq!(stream.next().await.unwrap().event, "state");
    let joined = b.join_raw(&sale, None).await;
    assert_eq!(joined.status(), 201, "waitlisted while the hold is open");

    proxy.break_all();
    proxy.all_closed().await;
    let event = json!({"order_id": order, "event_id": unique("ev"), "outcome": "succeeded"});
    let res = a.payment_event(&event, PAYMENT_SECRET).await;
    assert_eq!(res.status(), 200, "the payment is recorded in postgres");
    proxy.restore();

    let over = crate::events::next_named(&mut stream, "sold_out").await;
    assert!(over.is_some(), "the waitlist heard sold_out");
    let held: i64 = redis()
        .await
        .get(format!("wr:{{{sale}}}:held"))
        .await
        .unwrap();
    assert_eq!(held, 0, "nothing held once paid");
    assert_eq!(b.join_raw(&sale, None).await.status(), 409, "sold out");
}

/// Redis loses a sale after some shoppers were admitted: one whose ticket lapsed unused does
/// not get its place back (ahead of everyone waiting), one whose ticket is live keeps it and
/// can still buy, and admission does not let a waiting shopper in on units those live
/// tickets may still take.
#[tokio::test]
async fn admissions_survive_redis_losing_the_sale() {
    // Settled soon after the rebuild: the keeper's ticket must still be live to buy.
    let app = spawn_app_with(|c| c.loops.settle_after = Duration::from_millis(300)).await;
    let sale = app
        .create_sale_with(2, 1000, json!({"ticket_ttl_secs": 8, "max_active": 1}))
        .await;
    let lapser = app.join(&sale).await;
    let keeper = app.join(&sale).await;
    let waiter = app.join(&sale).await;
    app.admin(&sale, "open").await;
    app.ticket(&sale, &lapser.token).await;
    // The first ticket lapses unused; the second shopper is let in on its unit.
    let lapsed = eventually(WAIT, || async {
        (app.status(&sale, &lapser.token).await["status"] == "expired").then_some(())
    })
    .await;
    assert!(lapsed.is_some(), "the first ticket lapsed");
    let ticket = app.ticket(&sale, &keeper.token).await;
    // The ledger keeps admissions a tick after they happen.
    let recorded = eventually(WAIT, || async {
        let report = admin_get(&app, &format!("/api/admin/sales/{sale}/report")).await;
        (report["admitted"] == 2).then_some(())
    })
    .await;
    assert!(recorded.is_some(), "both admissions in the ledger");

    wipe_sale_keys(&sale).await;
    assert_eq!(app.status(&sale, &lapser.token).await["status"], "expired");
    assert_eq!(app.status(&sale, &keeper.token).await["status"], "admitted");
    ticks_after(&sale, 5).await;
    assert_eq!(
        app.status(&sale, &waiter.token).await["status"],
        "waiting",
        "max_active 1 is the keeper's live ticket"
    );
    let bought = eventually(WAIT, || async {
        // Checkouts wait for the rebuilt sale to settle (503 until then).
        let res = app.checkout(&sale, &ticket, 1).await;
        (res.status() == 201).then_some(())
    })
    .await;
    assert!(bought.is_some(), "the keeper's ticket still buys");
}

/// A PATCH whose Redis step ran but whose ledger commit failed (here: the Redis step run by
/// hand, as the failed request left it) and that the admin then retries: the units it adds
/// reach the stock once, and Redis and the ledger agree.
#[tokio::test]
async fn a_retried_patch_adds_its_units_once() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let id = sale_id(&sale);
    let units = vec![("units".to_string(), Some(8))];
    let stock = app
        .state
        .store
        .change_sale(&id, &units, 8, &[])
        .await
        .unwrap();
    assert_eq!(stock, Some(8), "the lost request's Redis step");
    let res = app
        .client
        .patch(app.url(&format!("/api/admin/sales/{sale}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"units": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stats = app.stats(&sale).await;
    assert_eq!(
        (stats["units"].as_i64(), stats["remaining"].as_i64()),
        (Some(8), Some(8))
    );
}

/// A schedule that fired is spent: the operator closes the sale it opened, and a later
/// change of something else (here with the ledger still holding the time, as after a lost
/// write) does not arm it again and reopen the sale.
#[tokio::test]
async fn a_fired_schedule_is_not_armed_again_by_a_later_change() {
    let app = spawn_app().await;
    let mut r = redis().await;
    let opens = redis_now_ms(&mut r).await + 300;
    let when = chrono::DateTime::from_timestamp_millis(opens).unwrap();
    let sale = app
        .create_sale_with(5, 1000, json!({"opens_at": when.to_rfc3339()}))
        .await;
    let opened = eventually(WAIT, || async {
        (app.stats(&sale).await["open"] == true).then_some(())
    })
    .await;
    assert!(opened.is_some(), "the schedule opened it");
    app.admin(&sale, "close").await;
    // As if the fired schedule's ledger write had been lost.
    sqlx::query("UPDATE sales SET opens_at = $2 WHERE id = $1")
        .bind(&sale)
        .bind(when)
        .execute(&pg().await)
        .await
        .unwrap();
    let res = app
        .client
        .patch(app.url(&format!("/api/admin/sales/{sale}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"rate_per_sec": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    ticks_after(&sale, 5).await;
    assert_eq!(app.stats(&sale).await["open"], false, "still closed");
}

/// An order Redis accepted for a ticket whose earlier order lapsed (its payment failed) is no
/// purchase: the settle voids it, and the lapsed order is never written back into `used` as
/// bought (the shopper would read `purchased` for an order that will never be paid).
#[tokio::test]
async fn a_lapsed_order_is_never_kept_as_a_purchase() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let id = sale_id(&sale);
    let shopper = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &shopper.token).await;
    let res = app.checkout(&sale, &ticket, 1).await;
    assert_eq!(res.status(), 201);
    let first: serde_json::Value = res.json().await.unwrap();
    app.pay(first["order_id"].as_str().unwrap(), "failed").await;

    // Redis took a second order for the same ticket (it had forgotten the first).
    let qid = waitroom::infra::tokens::unverified_subject(&ticket).unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let again =
        waitroom::core::domain::OrderRecord::at_ms(uuid::Uuid::now_v7(), 1, now_ms).unwrap();
    let recorded = app
        .state
        .ledger
        .record(&id, &queue_id(&qid), &again)
        .await
        .unwrap();
    let kept =
        waitroom::flows::recovery::settle_order(&app.state, &id, &queue_id(&qid), &again, recorded)
            .await
            .unwrap();
    assert!(kept.is_none(), "no purchase: {kept:?}");
    let used: Option<String> = redis()
        .await
        .hget(format!("wr:{{{sale}}}:used"), &qid)
        .await
        .unwrap();
    assert_eq!(used, None, "the lapsed order is not in `used`");
    assert_ne!(
        app.status(&sale, &shopper.token).await["status"],
        "purchased"
    );
}

/// `waitroom_refunds_due_total` in this process's `/metrics` (0 while it is not exported).
async fn refunds_counter(app: &TestApp) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("waitroom_refunds_due_total "))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn admin_get(app: &TestApp, path: &str) -> serde_json::Value {
    let (status, body) = crate::audit::get(app, path).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Buys one unit with an admitted shopper's ticket: (order id, amount in cents).
async fn buy(app: &TestApp, sale: &str, token: &str) -> (String, i64) {
    let ticket = app.ticket(sale, token).await;
    let res = app.checkout(sale, &ticket, 1).await;
    assert_eq!(res.status(), 201);
    let o: serde_json::Value = res.json().await.unwrap();
    let id = o["order_id"].as_str().unwrap().to_string();
    (id, o["amount_cents"].as_i64().unwrap())
}

/// Everywhere a person looks says `order` (of `cents`) is owed back: the shopper's status
/// and stream, the admin stats and report, the audit trail, and `/metrics` (counted since
/// `counted_before`).
async fn assert_refund_due(
    app: &TestApp,
    sale: &str,
    token: &str,
    order: &str,
    cents: i64,
    counted_before: f64,
) {
    let status = app.status(sale, token).await;
    assert_eq!(status["status"], "refund_due", "{status}");
    assert!(status["message"]
        .as_str()
        .is_some_and(|m| m.contains("refund")));
    let mut stream = crate::events::connect(app, sale, token, None).await;
    let state = stream.next().await.unwrap();
    assert_eq!(state.event, "state");
    assert_eq!(crate::events::data(&state)["status"], "refund_due");

    let stats = app.stats(sale).await;
    assert_eq!(stats["refunds_due"], 1, "{stats}");
    assert_eq!(stats["refund_due_cents"], cents, "{stats}");
    let report = admin_get(app, &format!("/api/admin/sales/{sale}/report")).await;
    assert_eq!(report["refunds_due"], 1, "{report}");
    assert_eq!(report["refund_due_cents"], cents, "{report}");
    let trail = admin_get(app, &format!("/api/admin/sales/{sale}/events?limit=1000")).await;
    let rows: Vec<&serde_json::Value> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "refund_due")
        .collect();
    assert_eq!(rows.len(), 1, "{trail}");
    assert_eq!(rows[0]["detail"]["order_id"], order);
    assert_eq!(rows[0]["detail"]["amount_cents"], cents);
    assert!(
        refunds_counter(app).await > counted_before,
        "counted in /metrics"
    );
}

/// A payment that arrives after the hold lapsed is refund_due, and nobody can miss it: the
/// shopper reads `refund_due` (not `expired`), the operator sees it in the stats, the report,
/// the audit trail and `/metrics`.
#[tokio::test]
async fn a_payment_after_the_hold_lapsed_is_a_refund_everyone_sees() {
    let app = spawn_app().await;
    let sale = app.create_sale_with(2, 1000, json!({"hold_secs": 5})).await;
    let shopper = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let (order, cents) = buy(&app, &sale, &shopper.token).await;
    // The sweeper expires the hold 5 s on (Postgres's clock) and gives the unit back.
    let lapsed = eventually(WAIT, || async {
        (app.status(&sale, &shopper.token).await["status"] == "expired").then_some(())
    })
    .await;
    assert!(lapsed.is_some(), "the hold lapsed");
    let before = refunds_counter(&app).await;

    app.pay(&order, "succeeded").await;
    assert_refund_due(&app, &sale, &shopper.token, &order, cents, before).await;
}

/// A success after a failure is refund_due too, and stays visible after Redis loses the
/// sale: the rebuild restores the shopper's `refund_due` from the ledger.
#[tokio::test]
async fn a_success_after_a_failure_is_a_refund_that_survives_a_rebuild() {
    let app = spawn_app().await;
    let sale = app.create_sale(2, 1000).await;
    let shopper = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let (order, cents) = buy(&app, &sale, &shopper.token).await;
    app.pay(&order, "failed").await;
    assert_eq!(app.status(&sale, &shopper.token).await["status"], "failed");
    let before = refunds_counter(&app).await;

    app.pay(&order, "succeeded").await;
    assert_refund_due(&app, &sale, &shopper.token, &order, cents, before).await;

    wipe_sale_keys(&sale).await;
    let status = app.status(&sale, &shopper.token).await;
    assert_eq!(
        status["status"], "refund_due",
        "rebuilt from the ledger: {status}"
    );
}

/// One field of one of the sale's Redis hashes (`key`: `places`, `cfg`, ...).
async fn sale_hash_field<T: redis::FromRedisValue>(sale: &str, key: &str, field: &str) -> T {
    redis()
        .await
        .hget(format!("wr:{{{sale}}}:{key}"), field)
        .await
        .unwrap()
}

async fn places_held(sale: &str) -> Option<i64> {
    let tag = waitroom::flows::door::places::tag(&crate::door_join::me(), None);
    sale_hash_field(sale, "places", &tag).await
}

/// A cap set mid-sale counts the places taken before it and gives no browser a second place;
/// lifting it does not either.
#[tokio::test]
async fn a_cap_set_mid_sale_counts_earlier_places_and_moves_none() {
    let app = spawn_app().await;
    let sale = app.create_sale(10, 10).await;
    let first = app.join(&sale).await;
    let mine = session_cookie(&first.token).expect("the join set a session cookie");
    app.join(&sale).await;
    app.join(&sale).await;
    assert_eq!(
        places_held(&sale).await,
        None,
        "nothing counted without a cap"
    );

    crate::live_changes::patch_ok(&app, &sale, json!({"max_places_per_client": 3})).await;
    assert_eq!(places_held(&sale).await, Some(3), "the line counted afresh");
    let res = app.join_raw(&sale, None).await;
    assert_eq!(res.status(), 429, "a fourth browser is over the cap");
    for cap in [3, 0] {
        crate::live_changes::patch_ok(&app, &sale, json!({"max_places_per_client": cap})).await;
        let again = crate::door_session::join_as(&app, &sale, &mine).await;
        assert_eq!(again["queue_id"], first.queue_id.as_str(), "cap {cap}");
        assert_eq!(
            (again["position"].as_i64(), again["seq"].as_i64()),
            (Some(1), Some(0))
        );
    }
    assert_eq!(places_held(&sale).await, None, "no cap, no count");
    assert_eq!(app.stats(&sale).await["queue_len"], 3);
}

/// A place a re-presented token restored, then bought by the shopper's ticket, frees its
/// client's count: without that, clients behind one address are refused for good.
#[tokio::test]
async fn a_restored_place_bought_by_its_ticket_frees_its_count() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(10, 50, json!({"max_places_per_client": 1}))
        .await;
    let shopper = app.join(&sale).await;
    assert_eq!(places_held(&sale).await, Some(1));
    assert_eq!(app.join_raw(&sale, None).await.status(), 429);

    // The state a Redis loss leaves: the shopper was admitted (their ticket is valid), Redis
    // lost the admission before the ledger had it, and re-presenting the queue token brought
    // the place back. The ticket is made here with the app's keys, as admission makes it.
    let sid = waitroom::infra::tokens::unverified_sid(&shopper.token).flatten();
    let expires = redis_now_ms(&mut redis().await).await + 60_000;
    let ticket = app.state.keys.ticket(
        &sale_id(&sale),
        &queue_id(&shopper.queue_id),
        sid.as_deref(),
        expires,
    );
    // The ticket still buys (it is proof of the admission), and the place goes with it.
    assert_eq!(app.checkout(&sale, &ticket, 1).await.status(), 201);
    assert_eq!(
        places_held(&sale).await,
        None,
        "the count went with the place"
    );
    assert_eq!(app.stats(&sale).await["queue_len"], 0);
    assert_eq!(app.join_raw(&sale, None).await.status(), 201);
}

async fn cfg_field(sale: &str, field: &str) -> Option<String> {
    sale_hash_field(sale, "cfg", field).await
}

/// A sale its closing time ended is still ended after Redis loses it: the rebuild restores
/// `ended` from the ledger, so the sweeper can finish it as before the loss.
#[tokio::test]
async fn a_sale_its_closing_time_ended_is_ended_after_a_rebuild() {
    let app = spawn_app().await;
    let closes = redis_now_ms(&mut redis().await).await + 300;
    let when = chrono::DateTime::from_timestamp_millis(closes).unwrap();
    let sale = app
        .create_sale_with(5, 1000, json!({"closes_at": when.to_rfc3339()}))
        .await;
    let shopper = app.join(&sale).await;
    app.admin(&sale, "open").await;
    // Held by an order, so the sweeper cannot finish (and expire) the sale meanwhile.
    let ticket = app.ticket(&sale, &shopper.token).await;
    assert_eq!(app.checkout(&sale, &ticket, 1).await.status(), 201);
    let ended = eventually(Duration::from_secs(10), || async {
        cfg_field(&sale, "ended").await
    })
    .await;
    assert!(ended.is_some(), "the closing time ended the sale");
    let in_ledger = eventually(Duration::from_secs(10), || async {
        let at: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT ended_at FROM sales WHERE id = $1")
                .bind(&sale)
                .fetch_one(&pg().await)
                .await
                .unwrap();
        at
    })
    .await;
    assert!(in_ledger.is_some(), "the ledger has it");

    wipe_sale_keys(&sale).await;
    app.status(&sale, &shopper.token).await;
    assert!(
        cfg_field(&sale, "ended").await.is_some(),
        "rebuilt as ended"
    );
    assert_eq!(app.stats(&sale).await["open"], false);
}

/// An opening time that fired, whose ledger write had not landed when the admin closed the
/// sale, is not armed again by a rebuild (it would reopen the sale the admin closed).
#[tokio::test]
async fn a_fired_opening_time_is_not_rearmed_by_a_rebuild_after_a_close() {
    let app = spawn_app().await;
    let opens = redis_now_ms(&mut redis().await).await + 300;
    let when = chrono::DateTime::from_timestamp_millis(opens).unwrap();
    let sale = app
        .create_sale_with(5, 1000, json!({"opens_at": when.to_rfc3339()}))
        .await;
    let opened = eventually(Duration::from_secs(10), || async {
        (app.stats(&sale).await["open"] == true).then_some(())
    })
    .await;
    assert!(opened.is_some(), "the opening time fired");
    // The fired write still retrying: the ledger holds the spent time.
    sqlx::query("UPDATE sales SET opens_at = $2 WHERE id = $1")
        .bind(&sale)
        .bind(when)
        .execute(&pg().await)
        .await
        .unwrap();

    app.admin(&sale, "close").await;
    wipe_sale_keys(&sale).await;
    assert_eq!(app.stats(&sale).await["open"], false, "rebuilt closed");
    assert_eq!(
        cfg_field(&sale, "opens_at").await,
        None,
        "the spent time is not armed"
    );
}

//! The audit trail (`/events`) and the fairness report (`/report`) against scripted sales.

use futures_util::future::join_all;
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::checkout::admitted_tickets;
use waitroom::flows::audit::{self, Kind, Source};
use waitroom_testkit::*;

/// An admin GET: its status and JSON body.
pub(crate) async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn report(app: &TestApp, sale: &str) -> Value {
    let (status, v) = get(app, &format!("/api/admin/sales/{sale}/report")).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The whole trail of a sale, oldest first.
async fn trail(app: &TestApp, sale: &str) -> Vec<Value> {
    let (status, v) = get(app, &format!("/api/admin/sales/{sale}/events?limit=1000")).await;
    assert_eq!(status, 200, "{v}");
    v["events"].as_array().unwrap().clone()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// Waits until the sale's trail has a row of `kind`, then returns those rows.
async fn rows_of(app: &TestApp, sale: &str, kind: &str) -> Vec<Value> {
    eventually(WAIT, || async {
        let rows: Vec<Value> = of_kind(&trail(app, sale).await, kind)
            .into_iter()
            .cloned()
            .collect();
        (!rows.is_empty()).then_some(rows)
    })
    .await
    .unwrap_or_else(|| panic!("no {kind} row for {sale}"))
}

async fn order_of(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    v["order_id"].as_str().unwrap().to_string()
}

/// Six join a closed sale, all are admitted, three buy (one pays, one's payment fails, one
/// still holds), three let their 5 s tickets lapse.
#[tokio::test]
async fn the_report_of_a_scripted_sale_has_the_scripted_numbers() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(10, 20, json!({"ticket_ttl_secs": 5}))
        .await;
    let mut r = redis().await;
    let start_ms = redis_now_ms(&mut r).await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(app.join(&sale).await.token);
    }
    app.admin(&sale, "open").await;
    let tickets = join_all(tokens.iter().map(|t| app.ticket(&sale, t))).await;
    // Every admission happened before this Redis time.
    let all_in_ms = redis_now_ms(&mut r).await;

    let mut orders = Vec::new();
    for t in &tickets[..3] {
        orders.push(order_of(app.checkout(&sale, t, 1).await).await);
    }
    let paid = json!({"order_id": orders[0], "event_id": unique("ev"), "outcome": "succeeded"});
    let failed = json!({"order_id": orders[1], "event_id": unique("ev"), "outcome": "failed"});
    for event in [&paid, &failed, &paid] {
        assert_eq!(app.payment_event(event, PAYMENT_SECRET).await.status(), 200);
    }
    for t in &tokens[3..] {
        let lapsed = eventually(WAIT, || async {
            (app.status(&sale, t).await["status"] == "expired").then_some(())
        })
        .await;
        assert!(lapsed.is_some(), "an unused ticket lapses");
    }

    // The tick's rows are written by a task: wait for all of them.
    let v = eventually(WAIT, || async {
        let v = report(&app, &sale).await;
        (v["admitted"] == 6).then_some(v)
    })
    .await
    .expect("six admissions in the report");
    let keys = ["joined", "admitted", "bought", "lapsed", "fifo_inversions"];
    let counts: Vec<i64> = keys.iter().map(|k| v[*k].as_i64().unwrap()).collect();
    assert_eq!(counts, [6, 6, 2, 3, 0], "{v}");
    assert_eq!(v["configured_rate"], 20);
    let (p50, p95) = (v["wait_p50_ms"].as_f64(), v["wait_p95_ms"].as_f64());
    let (p50, p95) = (p50.expect("p50"), p95.expect("p95"));
    // Joins came after `start_ms`, admissions before `all_in_ms` (+1: that read is floored).
    let longest = (all_in_ms + 1 - start_ms) as f64;
    assert!(0.0 <= p50 && p50 <= p95 && p95 <= longest, "{v}");
    assert!(v["admission_rate"].is_null() || v["admission_rate"].as_f64().unwrap() > 0.0);

    let events = trail(&app, &sale).await;
    let admitted = of_kind(&events, "admitted");
    let total: i64 = admitted
        .iter()
        .map(|e| e["detail"]["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 6, "per-tick counts add up to everyone");
    assert!(admitted
        .iter()
        .all(|e| e["source"] == "system" && e["detail"]["tick_at_ms"].is_i64()));
    // The redelivered success wrote nothing.
    let payments: Vec<(&Value, &Value)> = of_kind(&events, "payment")
        .iter()
        .map(|e| (&e["detail"]["order_id"], &e["detail"]["outcome"]))
        .collect();
    assert_eq!(
        payments,
        [
            (&json!(orders[0]), &json!("succeeded")),
            (&json!(orders[1]), &json!("failed"))
        ]
    );
}

/// A place Redis lost comes back at its old join time when its token is re-presented, after
/// two later joiners were let in: the report counts that one inversion.
#[tokio::test]
async fn a_place_restored_after_later_joiners_got_in_is_a_fifo_inversion() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let first = app.join(&sale).await;
    let later = [app.join(&sale).await, app.join(&sale).await];
    let mut r = redis().await;
    let queue = format!("wr:{{{sale}}}:queue");
    let _: () = r.zrem(&queue, &first.queue_id).await.unwrap();
    app.admin(&sale, "open").await;
    join_all(later.iter().map(|j| app.ticket(&sale, &j.token))).await;
    // Its status finds it in no set: the ledger says it never bought, so the place returns.
    app.ticket(&sale, &first.token).await;

    let v = eventually(WAIT, || async {
        let v = report(&app, &sale).await;
        (v["admitted"] == 3).then_some(v)
    })
    .await
    .expect("three admissions in the report");
    assert_eq!(
        (&v["joined"], &v["fifo_inversions"]),
        (&json!(3), &json!(1)),
        "{v}"
    );
}

/// Exact numbers from admissions written straight into the table: three ticks a second apart.
#[tokio::test]
async fn the_report_computes_waits_inversions_and_rate_from_admissions() {
    let app = spawn_app().await;
    let sale = app.create_sale(10, 7).await;
    let t0: i64 = 1_000_000_000_000;
    let s = 1_000_000;
    // (queue id, joined, admitted): waits 5, 4, 4, 3, 3, 6.5 s; q6 joined before q2..q4, who
    // got in a tick earlier. q5 and q6 share a tick: their order inside it is no inversion.
    let rows = [
        ("q1", t0 - 5 * s, t0),
        ("q2", t0 - 4 * s, t0),
        ("q3", t0 - 3 * s, t0 + s),
        ("q4", t0 - 2 * s, t0 + s),
        ("q5", t0 - s, t0 + 2 * s),
        ("q6", t0 - 9 * s / 2, t0 + 2 * s),
    ];
    let pool = pg().await;
    for (q, joined, admitted) in rows {
        sqlx::query("INSERT INTO admissions VALUES ($1, $2, $3, $4)")
            .bind(&sale)
            .bind(q)
            .bind(joined)
            .bind(admitted)
            .execute(&pool)
            .await
            .unwrap();
    }
    let v = report(&app, &sale).await;
    // percentile_cont over 3, 3, 4, 4, 5, 6.5 s: p50 at 2.5 → 4 s; p95 at 4.75 → 6.125 s.
    let expected = json!({
        "joined": 6, "admitted": 6, "bought": 0, "lapsed": 6,
        "wait_p50_ms": 4000.0, "wait_p95_ms": 6125.0, "fifo_inversions": 1,
        "admission_rate": 2.0, "configured_rate": 7, "refunds_due": 0, "refund_due_cents": 0
    });
    assert_eq!(v, expected);
}

#[tokio::test]
async fn the_trail_pages_with_after_and_limit() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 10).await;
    for n in 0..5 {
        audit::record(
            &app.state.ledger,
            &sale_id(&sale),
            Kind::Changed,
            Source::Api,
            json!({"n": n}),
        )
        .await;
    }
    let all: Vec<i64> = trail(&app, &sale)
        .await
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(all.len() >= 5);
    let (status, v) = get(&app, &format!("/api/admin/sales/{sale}/events")).await;
    assert_eq!(status, 200);
    assert_eq!(v["events"].as_array().unwrap().len(), all.len());
    assert_eq!(v["next_after"], *all.last().unwrap());
    let first = &v["events"][0];
    assert!(first["at"].is_string() && first["source"].is_string() && first["detail"].is_object());

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/api/admin/sales/{sale}/events?after={after}&limit=2");
        let (status, v) = get(&app, &path).await;
        assert_eq!(status, 200);
        let page = v["events"].as_array().unwrap();
        assert!(page.len() <= 2);
        if page.is_empty() {
            assert_eq!(
                v["next_after"], after,
                "an empty page keeps the given after"
            );
            break;
        }
        seen.extend(page.iter().map(|e| e["id"].as_i64().unwrap()));
        after = v["next_after"].as_i64().unwrap();
        assert_eq!(after, *seen.last().unwrap());
    }
    assert_eq!(seen, all);
}

#[tokio::test]
async fn bad_paging_is_400_and_an_unknown_sale_404() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 10).await;
    for query in [
        "after=-1",
        "after=abc",
        "limit=0",
        "limit=1001",
        "limit=1.5",
    ] {
        let (status, v) = get(&app, &format!("/api/admin/sales/{sale}/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {v}");
        assert!(v["code"].is_string());
    }
    let (status, _) = get(&app, &format!("/api/admin/sales/{sale}/events?limit=1000")).await;
    assert_eq!(status, 200);
    let nobody = unique("nosale");
    for what in ["events", "report"] {
        let (status, v) = get(&app, &format!("/api/admin/sales/{nobody}/{what}")).await;
        assert_eq!(
            (status, &v["code"]),
            (404, &json!("unknown_sale")),
            "{what}"
        );
    }
    let res = app
        .client
        .get(app.url(&format!("/api/admin/sales/{sale}/report")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the admin token is required");
}

/// Two instances sell the last units at once: only the checkout that took stock to 0 writes
/// `all_held`. The sale is sold out for good only when the last hold is paid: one `sold_out`
/// row, naming that payment's order, however the payments spread over the instances.
#[tokio::test]
async fn the_last_unit_is_all_held_and_the_last_payment_sold_out() {
    let (a, b) = (spawn_app().await, spawn_app().await);
    let sale = a.create_sale(6, 1000).await;
    let tickets = admitted_tickets(&a, &sale, 6).await;
    let apps = |i: usize| if i.is_multiple_of(2) { &a } else { &b };
    let buys = tickets
        .iter()
        .enumerate()
        .map(|(i, t)| apps(i).checkout(&sale, t, 1));
    let mut orders = Vec::new();
    for res in join_all(buys).await {
        orders.push(order_of(res).await);
    }
    let held = rows_of(&a, &sale, "all_held").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(orders.contains(&held[0]["detail"]["order_id"].as_str().unwrap().to_string()));
    assert_eq!(held[0]["source"], "system");

    // Five of six paid: still a hold out, so not sold out.
    let (last, first) = orders.split_last().unwrap();
    join_all(
        first
            .iter()
            .enumerate()
            .map(|(i, o)| apps(i).pay(o, "succeeded")),
    )
    .await;
    assert!(of_kind(&trail(&a, &sale).await, "sold_out").is_empty());
    // The last two webhooks race (one a redelivery): one row all the same.
    join_all([a.pay(last, "succeeded"), b.pay(last, "succeeded")]).await;
    let sold_out = rows_of(&a, &sale, "sold_out").await;
    assert_eq!(sold_out.len(), 1, "{sold_out:?}");
    assert_eq!(sold_out[0]["detail"]["order_id"], json!(last));
    assert_eq!(of_kind(&trail(&a, &sale).await, "all_held").len(), 1);
}

/// redis-cli flips the open switch: the sweeper copies it to the ledger with one row per flip,
/// by source `redis`, however many instances see it.
#[tokio::test]
async fn a_redis_cli_flip_is_one_row_by_source_redis() {
    let (a, _b) = (spawn_app().await, spawn_app().await);
    let sale = a.create_sale(5, 10).await;
    let mut r = redis().await;
    let open = format!("wr:{{{sale}}}:open");
    let _: () = r.set(&open, "1").await.unwrap();
    let opened = rows_of(&a, &sale, "opened").await;
    let _: () = r.del(&open).await.unwrap();
    let closed = rows_of(&a, &sale, "closed").await;
    assert_eq!((opened.len(), closed.len()), (1, 1));
    assert!(opened.iter().chain(&closed).all(|e| e["source"] == "redis"));
}

/// Redis loses the sale: the rebuild and the settle after it are on the trail, with counts.
#[tokio::test]
async fn a_rebuild_and_its_settle_are_on_the_trail() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let tickets = admitted_tickets(&app, &sale, 1).await;
    order_of(app.checkout(&sale, &tickets[0], 1).await).await;
    wipe_sale_keys(&sale).await;
    let rebuilt = rows_of(&app, &sale, "rebuilt").await;
    assert_eq!(rebuilt.len(), 1);
    assert_eq!(
        (
            &rebuilt[0]["detail"]["stock"],
            &rebuilt[0]["detail"]["buyers"]
        ),
        (&json!(4), &json!(1))
    );
    let settled = rows_of(&app, &sale, "reconciled").await;
    assert!(settled
        .iter()
        .all(|e| e["detail"]["stock"] == 4 && e["source"] == "system"));
}

#[tokio::test]
async fn the_trail_and_admissions_refuse_update_and_delete() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 10).await;
    audit::record(
        &app.state.ledger,
        &sale_id(&sale),
        Kind::Changed,
        Source::Api,
        json!({}),
    )
    .await;
    sqlx::query("INSERT INTO admissions VALUES ($1, 'q', 1, 2)")
        .bind(&sale)
        .execute(&pg().await)
        .await
        .unwrap();
    let pool = pg().await;
    for statement in [
        "UPDATE sale_events SET kind = 'rewritten' WHERE sale_id = $1",
        "DELETE FROM sale_events WHERE sale_id = $1",
        "UPDATE admissions SET joined_us = 0 WHERE sale_id = $1",
        "DELETE FROM admissions WHERE sale_id = $1",
    ] {
        let refused = sqlx::query(statement).bind(&sale).execute(&pool).await;
        let e = refused.expect_err(statement).to_string();
        assert!(e.contains("append-only"), "{statement}: {e}");
    }
    assert_eq!(of_kind(&trail(&app, &sale).await, "changed").len(), 1);
}

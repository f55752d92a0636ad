//! Live changes and schedules: `PATCH /api/admin/sales/{id}` applies on every instance from
//! its next tick, units only grow, and `opens_at` / `closes_at` flip the sale within a tick by
//! Redis's clock, written down once however many instances run.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{json, Value};

use waitroom_testkit::*;

/// A Redis database of this file's own, for the test that counts on exactly its two
/// instances ticking: no other test's ticker admits anything there. (Other tests' rebuilders
/// still copy its sales from the shared ledger into their own database, so a test that
/// counts audit rows stays on the shared one.)
const DB: u8 = 13;

async fn two_apps(
    tick: Duration,
    url: &str,
) -> (TestApp, TestApp, redis::aio::MultiplexedConnection) {
    let config = |c: &mut waitroom::core::config::Config| {
        c.redis.url = url.to_string();
        c.loops.tick = tick;
    };
    let a = spawn_app_with(config).await;
    let b = spawn_app_with(config).await;
    (a, b, redis_at(url).await)
}

pub(crate) async fn patch(app: &TestApp, sale: &str, body: &Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/admin/sales/{sale}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn patch_ok(app: &TestApp, sale: &str, body: Value) -> Value {
    let res = patch(app, sale, &body).await;
    assert_eq!(res.status(), 200, "{body}");
    res.json().await.unwrap()
}

/// A JSON error with this status and code.
async fn refused(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(res.status().as_u16(), status);
    let body: Value = res.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
}

async fn public(app: &TestApp, sale: &str) -> Value {
    let res = app
        .client
        .get(app.url(&format!("/api/sales/{sale}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The sale's audit rows of one kind, oldest first: (source, detail), straight from Postgres.
async fn audit_rows(sale: &str, kind: &str) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT source, detail FROM sale_events WHERE sale_id = $1 AND kind = $2 ORDER BY id",
    )
    .bind(sale)
    .bind(kind)
    .fetch_all(&pg().await)
    .await
    .unwrap()
}

/// Unix ms of an RFC 3339 time in JSON.
fn ms(v: &Value) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    Some(t.timestamp_millis())
}

/// RFC 3339 of a unix ms time.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn a_change_made_through_one_instance_applies_on_another() {
    let (a, b, _) = two_apps(Duration::from_millis(50), &redis_url_db(DB)).await;
    let sale = a.create_sale_with(10, 1000, json!({"max_active": 1})).await;
    let shoppers: Vec<Joined> = futures_util::future::join_all((0..4).map(|_| a.join(&sale))).await;
    a.admin(&sale, "open").await;
    let one_in = eventually(WAIT, || async {
        (b.stats(&sale).await["admitted_active"] == 1).then_some(())
    })
    .await;
    assert!(one_in.is_some(), "max_active 1 lets one in");

    let stats = patch_ok(&a, &sale, json!({"max_active": 3, "rate_per_sec": 20})).await;
    assert_eq!(
        (stats["max_active"].clone(), stats["rate_per_sec"].clone()),
        (json!(3), json!(20))
    );
    // Only B ticks from here on: what it admits now, it admits by the new settings.
    a.handle.stop().await;
    let three_in = eventually(WAIT, || async {
        (b.stats(&sale).await["admitted_active"] == 3).then_some(())
    })
    .await;
    assert!(three_in.is_some(), "B's ticker follows max_active 3");
    let on_b = public(&b, &sale).await;
    assert_eq!(
        (on_b["max_active"].clone(), on_b["rate_per_sec"].clone()),
        (json!(3), json!(20))
    );
    // B's streams and status answers carry the rate its ticks read.
    let last = &shoppers[3].token;
    let rate = eventually(WAIT, || async {
        (b.status(&sale, last).await["rate_per_sec"] == 20).then_some(())
    })
    .await;
    assert!(rate.is_some(), "B's progress shows the new rate");
    b.handle.stop().await;
}

#[tokio::test]
async fn units_grow_but_never_below_sold_and_held() {
    let app = spawn_app().await;
    let sale = app.create_sale(2, 1000).await;
    let (first, second, third) = (
        app.join(&sale).await,
        app.join(&sale).await,
        app.join(&sale).await,
    );
    app.admin(&sale, "open").await;
    let mut orders = Vec::new();
    for shopper in [&first, &second] {
        let ticket = app.ticket(&sale, &shopper.token).await;
        let res = app.checkout(&sale, &ticket, 1).await;
        assert_eq!(res.status(), 201);
        let order: Value = res.json().await.unwrap();
        orders.push(order["order_id"].as_str().unwrap().to_string());
    }
    assert_eq!(public(&app, &sale).await["sold_out"], true);

    // Both units are held for payment: 1 unit would oversell them.
    refused(
        patch(&app, &sale, &json!({"units": 1})).await,
        409,
        "units_below_sold",
    )
    .await;
    let stats = app.stats(&sale).await;
    assert_eq!(
        (stats["units"].clone(), stats["remaining"].clone()),
        (json!(2), json!(0))
    );
    assert!(
        audit_rows(&sale, "changed").await.is_empty(),
        "a refused PATCH writes no row"
    );

    // Paid for: the sale finishes and leaves the working set; a restock brings it back.
    for order in &orders {
        let event = json!({"order_id": order, "event_id": unique("ev"), "outcome": "succeeded"});
        assert_eq!(
            app.payment_event(&event, PAYMENT_SECRET).await.status(),
            200
        );
    }
    let unlisted = eventually(WAIT, || async {
        let listed: bool = redis().await.sismember("wr:sales", &sale).await.unwrap();
        (!listed).then_some(())
    })
    .await;
    assert!(unlisted.is_some(), "the sold-out, paid sale finishes");

    let stats = patch_ok(&app, &sale, json!({"units": 4})).await;
    assert_eq!(
        (stats["units"].clone(), stats["remaining"].clone()),
        (json!(4), json!(2))
    );
    assert_eq!(stats["sold_out"], false);
    let stock: i64 = redis()
        .await
        .get(format!("wr:{{{sale}}}:stock"))
        .await
        .unwrap();
    assert_eq!(stock, 2);
    assert_eq!(public(&app, &sale).await["sold_out"], false);
    let listed: bool = redis().await.sismember("wr:sales", &sale).await.unwrap();
    assert!(listed, "the restocked sale is live again");
    // The shopper who waited through the sell-out is let in.
    let ticket = app.ticket(&sale, &third.token).await;
    assert_eq!(app.checkout(&sale, &ticket, 1).await.status(), 201);

    refused(
        patch(&app, &sale, &json!({"units": 3})).await,
        409,
        "units_cannot_shrink",
    )
    .await;
    assert_eq!(app.stats(&sale).await["units"], 4);
    let changed = audit_rows(&sale, "changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].1, json!({"units": {"old": 2, "new": 4}}));
    let restocked = audit_rows(&sale, "restocked").await;
    assert_eq!(restocked.len(), 1);
    assert_eq!(restocked[0].1["added"], 2);
}

#[tokio::test]
async fn a_schedule_opens_and_closes_the_sale_within_a_tick_once() {
    let tick = Duration::from_millis(100);
    let (a, b, mut r) = two_apps(tick, &redis_url()).await;
    let now = redis_now_ms(&mut r).await;
    let (opens, closes) = (now + 1_500, now + 3_000);
    let sale = a
        .create_sale_with(
            10,
            1000,
            json!({"opens_at": rfc3339(opens), "closes_at": rfc3339(closes)}),
        )
        .await;
    let shown = public(&b, &sale).await;
    assert_eq!(ms(&shown["opens_at"]), Some(opens));
    assert_eq!(shown["open"], false);
    let early = a.join(&sale).await;

    let flip = |kind: &'static str| {
        let sale = sale.clone();
        async move {
            let rows = eventually(WAIT, || async {
                let rows = audit_rows(&sale, kind).await;
                (!rows.is_empty()).then_some(rows)
            })
            .await;
            rows.unwrap_or_else(|| panic!("no {kind} row"))
        }
    };
    let opened = flip("opened").await;
    assert_eq!(opened[0].0, "schedule");
    let at = opened[0].1["at_ms"].as_i64().unwrap();
    let within = tick.as_millis() as i64;
    assert!(
        (opens..=opens + within).contains(&at),
        "opened at {at}, due {opens}, tick {within} ms (Redis's clock)"
    );
    let ticket = a.ticket(&sale, &early.token).await;
    assert!(!ticket.is_empty());

    let closed = flip("closed").await;
    let at = closed[0].1["at_ms"].as_i64().unwrap();
    assert!(
        (closes..=closes + within).contains(&at),
        "closed at {at}, due {closes}"
    );
    assert_eq!(public(&b, &sale).await["open"], false);
    // Both instances kept ticking past both times: still one row each, and the times are
    // spent in the ledger and in the sale's JSON.
    let past = redis_now_ms(&mut r).await + 5 * within;
    let later = eventually(WAIT, || {
        let mut r = r.clone();
        async move { (redis_now_ms(&mut r).await >= past).then_some(()) }
    })
    .await;
    assert!(later.is_some());
    assert_eq!(audit_rows(&sale, "opened").await.len(), 1);
    assert_eq!(audit_rows(&sale, "closed").await.len(), 1);
    let (opens_at, closes_at, open): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
        bool,
    ) = sqlx::query_as("SELECT opens_at, closes_at, open FROM sales WHERE id = $1")
        .bind(&sale)
        .fetch_one(&pg().await)
        .await
        .unwrap();
    assert_eq!((opens_at, closes_at, open), (None, None, false));
    assert_eq!(public(&a, &sale).await["opens_at"], Value::Null);
    a.handle.stop().await;
    b.handle.stop().await;
}

#[tokio::test]
async fn every_patch_that_changes_something_writes_one_row() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 50).await;
    let created = audit_rows(&sale, "created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].1["units"], 5);

    patch_ok(&app, &sale, json!({"rate_per_sec": 10, "name": "Renamed"})).await;
    patch_ok(&app, &sale, json!({"rate_per_sec": 10})).await;
    let when = "2031-05-01T12:00:00.250Z";
    patch_ok(&app, &sale, json!({"opens_at": when})).await;
    let stats = patch_ok(&app, &sale, json!({"opens_at": null})).await;
    assert_eq!(stats["opens_at"], Value::Null);
    let changed: Vec<Value> = audit_rows(&sale, "changed")
        .await
        .into_iter()
        .map(|(source, detail)| {
            assert_eq!(source, "api");
            detail
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            json!({"rate_per_sec": {"old": 50, "new": 10},
                   "name": {"old": "Test sale", "new": "Renamed"}}),
            json!({"opens_at": {"old": null, "new": when}}),
            json!({"opens_at": {"old": when, "new": null}}),
        ]
    );

    // Opening twice is one opening.
    app.admin(&sale, "open").await;
    app.admin(&sale, "open").await;
    app.admin(&sale, "close").await;
    let opened = audit_rows(&sale, "opened").await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].0, "api");
    assert_eq!(audit_rows(&sale, "closed").await.len(), 1);
}

#[tokio::test]
async fn bad_patches_are_json_400s_and_change_nothing() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 50).await;
    for (body, code) in [
        (json!({"nope": 1}), "invalid_json"),
        (json!({"price_cents": 1}), "invalid_json"),
        (json!({"id": "other"}), "invalid_json"),
        (json!({"rate_per_sec": "fast"}), "invalid_json"),
        (json!({"rate_per_sec": null}), "invalid_json"),
        (json!({"opens_at": "tomorrow"}), "invalid_json"),
        (json!([1]), "invalid_json"),
        (json!({"rate_per_sec": 0}), "invalid_sale"),
        (json!({"name": "a\u{0}b"}), "invalid_sale"),
        (json!({"pow_difficulty": 33}), "invalid_sale"),
        // Times Postgres cannot store (it answered 503 for these).
        (json!({"opens_at": "-5000-01-01T00:00:00Z"}), "invalid_sale"),
        (
            json!({"closes_at": "+20000-01-01T00:00:00Z"}),
            "invalid_sale",
        ),
        (
            json!({"opens_at": "2031-01-02T00:00:00Z", "closes_at": "2031-01-01T00:00:00Z"}),
            "invalid_sale",
        ),
    ] {
        let res = patch(&app, &sale, &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["code"], code, "{body}: {err}");
    }
    let res = app
        .client
        .patch(app.url(&format!("/api/admin/sales/{sale}")))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    refused(res, 400, "invalid_json").await;
    refused(
        patch(&app, "no-such-sale", &json!({"units": 9})).await,
        404,
        "unknown_sale",
    )
    .await;
    refused(
        patch(&app, "Bad_Id!", &json!({"units": 9})).await,
        400,
        "invalid_sale_id",
    )
    .await;
    let res = app
        .client
        .patch(app.url(&format!("/api/admin/sales/{sale}")))
        .json(&json!({"units": 9}))
        .send()
        .await
        .unwrap();
    refused(res, 401, "invalid_admin_token").await;
    assert!(audit_rows(&sale, "changed").await.is_empty());
    assert_eq!(app.stats(&sale).await["rate_per_sec"], 50);
}

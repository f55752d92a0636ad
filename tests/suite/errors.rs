use std::time::Duration;

use serde_json::{json, Value};

use waitroom_testkit::*;

async fn expect(res: reqwest::Response, status: u16, code: &str) -> reqwest::header::HeaderMap {
    assert_eq!(res.status().as_u16(), status);
    let headers = res.headers().clone();
    let body: Value = res.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    headers
}

#[tokio::test]
async fn client_mistakes_get_clear_json_errors() {
    let app = spawn_app().await;
    let c = &app.client;
    expect(
        app.join_raw("no-such-sale", None).await,
        404,
        "unknown_sale",
    )
    .await;
    expect(app.join_raw("Bad_Id!", None).await, 400, "invalid_sale_id").await;
    let sale =
        |units: i64| json!({"id": unique("e"), "name": "x", "units": units, "price_cents": 1});
    expect(app.create_sale_json(sale(-1)).await, 400, "invalid_sale").await;
    let res = c
        .post(app.url("/api/admin/sales"))
        .bearer_auth("wrong-admin-token")
        .json(&sale(1))
        .send()
        .await
        .unwrap();
    expect(res, 401, "invalid_admin_token").await;
    let res = c
        .post(app.url("/api/admin/sales"))
        .json(&sale(1))
        .send()
        .await
        .unwrap();
    expect(res, 401, "invalid_admin_token").await;
    let res = c
        .post(app.url("/api/admin/sales"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect(res, 400, "invalid_json").await;
    let res = c
        .post(app.url("/api/admin/sales"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(format!(r#"{{"name":"{}"}}"#, "x".repeat(100_000)))
        .send()
        .await
        .unwrap();
    expect(res, 413, "payload_too_large").await;
    // A provider's event may be larger than a shopper's body, within its own limit.
    let event = |size: usize| {
        c.post(app.url("/api/payments/webhook"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"pad":"{}"}}"#, "x".repeat(size)))
            .send()
    };
    expect(event(100_000).await.unwrap(), 401, "invalid_signature").await;
    expect(event(300_000).await.unwrap(), 413, "payload_too_large").await;
    let dup = sale(1);
    assert_eq!(app.create_sale_json(dup.clone()).await.status(), 201);
    // The same create again is a retry, answered as created; other settings are a conflict.
    assert_eq!(app.create_sale_json(dup.clone()).await.status(), 201);
    let mut other = dup;
    other["units"] = json!(2);
    expect(app.create_sale_json(other).await, 409, "sale_exists").await;
    let res = c.get(app.url("/api/nope")).send().await.unwrap();
    expect(res, 404, "not_found").await;
    let id = app.create_sale(5, 5).await;
    let res = c
        .get(app.url(&format!("/api/sales/{id}/status")))
        .send()
        .await
        .unwrap();
    expect(res, 401, "missing_token").await;
    let res = c
        .get(app.url(&format!("/api/sales/{id}/events")))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    expect(res, 401, "invalid_token").await;
    let res = c
        .post(app.url(&format!("/api/sales/{id}/checkout")))
        .send()
        .await
        .unwrap();
    expect(res, 401, "missing_token").await;
    // A malformed optional body is refused, never read as "all defaults".
    let post = |path: &str, body: &'static str| {
        c.post(app.url(&format!("/api/sales/{id}/{path}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    expect(
        post("queue", r#"{"token": 5}"#).await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    expect(post("queue", "{").await.unwrap(), 400, "invalid_json").await;
    expect(
        post("checkout", r#"{"quantity":"2"}"#).await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    expect(
        post("checkout", r#"{"qty":2}"#).await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_eq!(
        post("queue", "").await.unwrap().status(),
        201,
        "an empty body joins"
    );
}

#[tokio::test]
async fn redis_outage_answers_503_with_retry_after_and_recovers_by_itself() {
    let proxy = ChaosProxy::start(redis_addr()).await;
    let url = redis_url_via(proxy.port);
    let app = spawn_app_with(|c| c.redis.url = url).await;
    let sale = app.create_sale(10, 10).await;
    app.join(&sale).await;

    proxy.break_all();
    let res = app.join_raw(&sale, None).await;
    let headers = expect(res, 503, "unavailable").await;
    assert!(headers.contains_key("retry-after"));
    let readiness = |want: u16| {
        let app = &app;
        async move {
            let res = app.client.get(app.url("/readyz")).send().await.ok()?;
            (res.status() == want).then_some(())
        }
    };
    let unready = eventually(WAIT, || readiness(503)).await;
    assert!(unready.is_some(), "readiness sees redis gone");

    proxy.restore();
    let back = eventually(Duration::from_secs(10), || async {
        let res = app.join_raw(&sale, None).await;
        (res.status() == 201).then_some(())
    })
    .await;
    assert!(back.is_some(), "joins work again after redis returns");
    let ready = eventually(WAIT, || readiness(200)).await;
    assert!(ready.is_some(), "and readiness with them");
    assert_eq!(app.stats(&sale).await["queue_len"], 2);
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_that_says_what_is_allowed() {
    let app = spawn_app().await;
    for (method, path) in [
        (reqwest::Method::DELETE, "/api/sales"),
        (reqwest::Method::PUT, "/api/sales/x/checkout"),
    ] {
        let res = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        let headers = expect(res, 405, "method_not_allowed").await;
        assert!(headers.contains_key("allow"), "{path} names its methods");
    }
}

/// A time the ledger cannot store is the client's mistake, answered 400 at parse, not a 503
/// from Postgres; nothing is created.
#[tokio::test]
async fn a_schedule_out_of_any_calendar_is_refused_and_nothing_is_created() {
    let app = spawn_app().await;
    for (field, when) in [
        ("opens_at", "-5000-01-01T00:00:00Z"),
        ("closes_at", "+20000-01-01T00:00:00Z"),
        ("opens_at", "1969-12-31T23:59:59Z"),
    ] {
        let id = unique("when");
        let body = json!({"id": id, "name": "n", "units": 1, "price_cents": 1, field: when});
        expect(app.create_sale_json(body).await, 400, "invalid_sale").await;
        assert_not_created(&app, &id).await;
    }
}

#[tokio::test]
async fn a_sale_name_with_a_nul_is_refused_and_nothing_is_created() {
    let app = spawn_app().await;
    for name in ["a\u{0}b", "\u{0}", "tab\tin name"] {
        let id = unique("nul");
        let body = json!({"id": id, "name": name, "units": 1, "price_cents": 1});
        expect(app.create_sale_json(body).await, 400, "invalid_sale").await;
        assert_not_created(&app, &id).await;
    }
}

/// The refused create left no sale behind.
async fn assert_not_created(app: &TestApp, id: &str) {
    let res = app
        .client
        .get(app.url(&format!("/api/admin/sales/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    expect(res, 404, "unknown_sale").await;
}

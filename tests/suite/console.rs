//! The operator's dashboard from the API's side: the session cookie that stands in for the
//! admin token, its CSRF header, and the admin stream of per-second samples.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use waitroom_testkit::*;

const CSRF: &str = "x-waitroom-admin";

async fn sign_in_raw(app: &TestApp, token: &str, https: bool) -> reqwest::Response {
    let mut req = app.client.post(app.url("/api/admin/session"));
    if https {
        req = req.header("x-forwarded-proto", "https");
    }
    req.json(&json!({ "token": token })).send().await.unwrap()
}

/// The `Set-Cookie` header of a response (there is exactly one).
fn set_cookie(res: &reqwest::Response) -> String {
    let all: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].to_str().unwrap().to_string()
}

/// Signs in; returns the `Cookie` header a browser would send back.
async fn sign_in(app: &TestApp) -> String {
    let res = sign_in_raw(app, ADMIN_TOKEN, false).await;
    assert_eq!(res.status(), 204);
    set_cookie(&res).split(';').next().unwrap().to_string()
}

fn with_cookie(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("cookie", cookie)
}

async fn code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or_default();
    (
        status,
        body["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_that_is_not_the_token() {
    let app = spawn_app_with(|c| {
        c.door.clients.trusted = vec!["127.0.0.1/32".parse().unwrap()];
        c.loops.console_sample = Some(Duration::from_secs(1));
    })
    .await;
    let res = sign_in_raw(&app, ADMIN_TOKEN, false).await;
    assert_eq!(res.status(), 204);
    let cookie = set_cookie(&res);
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    let value = attrs[0].strip_prefix("wr_admin=").expect(&cookie);
    for want in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(attrs.contains(&want), "{want} missing: {cookie}");
    }
    // Plain HTTP (127.0.0.1 in tests): a Secure cookie would never come back.
    assert!(!attrs.contains(&"Secure"), "{cookie}");
    assert!(
        !cookie.contains(ADMIN_TOKEN),
        "the admin token itself in the cookie"
    );
    assert_eq!(value.split('.').count(), 3, "a JWT: {value}");
    // Over HTTPS (a trusted proxy says so): Secure, under the __Host- name.
    let res = sign_in_raw(&app, ADMIN_TOKEN, true).await;
    let cookie = set_cookie(&res);
    assert!(cookie.starts_with("__Host-wr_admin="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Signing out: the browser is told to forget it.
    let cookie_header = attrs[0];
    let res = with_cookie(
        &app,
        reqwest::Method::DELETE,
        "/api/admin/session",
        cookie_header,
    );
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), 204);
    let gone = set_cookie(&res);
    assert!(
        gone.starts_with("wr_admin=;") && gone.contains("Max-Age=0"),
        "{gone}"
    );
}

#[tokio::test]
async fn a_wrong_token_or_a_foreign_cookie_is_401_json() {
    let app = spawn_console_app().await;
    let sale = app.create_sale(1, 1).await;
    assert_eq!(
        code(sign_in_raw(&app, "wrong", false).await).await,
        (401, "invalid_admin_token".into())
    );
    let garbage = app
        .client
        .post(app.url("/api/admin/session"))
        .body("{\"tok")
        .send();
    assert_eq!(garbage.await.unwrap().status(), 400);
    // A shopper's queue token or an admission ticket is no session, whatever its signature.
    let joined = app.join(&sale).await;
    let ticket = app.state.keys.ticket(
        &sale_id(&sale),
        &queue_id(&joined.queue_id),
        None,
        9_999_999_999_999,
    );
    let stats = format!("/api/admin/sales/{sale}");
    for forged in ["garbage", joined.token.as_str(), ticket.as_str()] {
        let req = with_cookie(
            &app,
            reqwest::Method::GET,
            &stats,
            &format!("wr_admin={forged}"),
        );
        assert_eq!(req.send().await.unwrap().status(), 401, "{forged}");
    }
    let bad_bearer = app
        .client
        .get(app.url(&stats))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(code(bad_bearer).await, (401, "invalid_admin_token".into()));
    // And a session is no ticket at the gate.
    let cookie = sign_in(&app).await;
    let session = cookie.strip_prefix("wr_admin=").unwrap();
    let gate = app
        .client
        .get(app.url(&format!("/api/gate?sale={sale}")))
        .bearer_auth(session);
    assert_eq!(gate.send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_cookie_is_accepted_and_changes_need_the_csrf_header() {
    let app = spawn_console_app().await;
    let sale = app.create_sale(5, 1).await;
    let cookie = sign_in(&app).await;
    let stats = format!("/api/admin/sales/{sale}");
    let res = with_cookie(&app, reqwest::Method::GET, &stats, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let who = with_cookie(&app, reqwest::Method::GET, "/api/admin/session", &cookie);
    assert_eq!(who.send().await.unwrap().status(), 200);
    // Without the header, a cookie changes nothing: POST and PATCH alike.
    let open = format!("/api/admin/sales/{sale}/open");
    let res = with_cookie(&app, reqwest::Method::POST, &open, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(code(res).await, (403, "admin_header_required".into()));
    let patch = with_cookie(&app, reqwest::Method::PATCH, &stats, &cookie)
        .json(&json!({ "rate_per_sec": 9 }));
    assert_eq!(
        code(patch.send().await.unwrap()).await,
        (403, "admin_header_required".into())
    );
    assert_eq!(app.stats(&sale).await["open"], false);
    let res = with_cookie(&app, reqwest::Method::POST, &open, &cookie).header(CSRF, "1");
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.stats(&sale).await["open"], true);
    // The bearer token (curl) needs no header.
    let close = app
        .client
        .post(app.url(&format!("/api/admin/sales/{sale}/close")));
    assert_eq!(
        close
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // No cookie and no token at all.
    assert_eq!(
        code(app.client.get(app.url(&stats)).send().await.unwrap())
            .await
            .0,
        401
    );
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Event> + Send>>;

async fn admin_events(app: &TestApp, cookie: &str) -> Events {
    let req = with_cookie(app, reqwest::Method::GET, "/api/admin/events", cookie);
    let res = req.timeout(Duration::from_secs(120)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    Box::pin(
        res.bytes_stream()
            .eventsource()
            .filter_map(|e| async { e.ok() }),
    )
}

/// The next `sample` in which `sale` passes `ok`; returns that sale's entry.
async fn sample_where(events: &mut Events, sale: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(e) = events.next().await {
            assert_eq!(e.event, "sample", "only samples after the history");
            let v: Value = serde_json::from_str(&e.data).unwrap();
            let entry = v["sales"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == sale);
            if let Some(s) = entry.filter(|s| ok(s)) {
                return s.clone();
            }
        }
        panic!("the admin stream ended");
    });
    found
        .await
        .unwrap_or_else(|_| panic!("no fitting sample of {sale} in {WAIT:?}"))
}

#[tokio::test]
async fn the_admin_stream_sends_history_then_samples_with_the_sales_numbers() {
    let app = spawn_console_app().await;
    let sale = app.create_sale(7, 50).await;
    for _ in 0..3 {
        app.join(&sale).await;
    }
    let cookie = sign_in(&app).await;
    let mut events = admin_events(&app, &cookie).await;
    let first = events.next().await.expect("a first event");
    assert_eq!(first.event, "history");
    let history: Value = serde_json::from_str(&first.data).unwrap();
    assert!(history["series"].is_object(), "{history}");
    let s = sample_where(&mut events, &sale, |s| s["queue_len"] == 3).await;
    assert_eq!(
        (
            &s["units"],
            &s["remaining"],
            &s["open"],
            &s["rate_per_sec"],
            &s["name"]
        ),
        (
            &json!(7),
            &json!(7),
            &json!(false),
            &json!(50),
            &json!("Test sale")
        ),
        "{s}"
    );
    assert_eq!(s["admitted_total"], 0);
    assert!(s["checkout_p99_ms"].is_null() || s["checkout_p99_ms"].is_number());
    // Opening lets the three in: the samples follow.
    app.admin(&sale, "open").await;
    let s = sample_where(&mut events, &sale, |s| s["admitted_total"] == 3).await;
    assert_eq!(
        (&s["open"], &s["queue_len"]),
        (&json!(true), &json!(0)),
        "{s}"
    );
    // A dashboard opened now gets those seconds as history, oldest first.
    let mut later = admin_events(&app, &cookie).await;
    let first = later.next().await.expect("a first event");
    assert_eq!(first.event, "history");
    let history: Value = serde_json::from_str(&first.data).unwrap();
    let series = &history["series"][&sale];
    let t: Vec<i64> = serde_json::from_value(series["t"].clone()).unwrap();
    assert!(
        t.len() >= 2 && t.windows(2).all(|w| w[0] < w[1]),
        "{series}"
    );
    let queue: Vec<i64> = serde_json::from_value(series["queue_len"].clone()).unwrap();
    assert!(queue.contains(&3) && queue.last() == Some(&0), "{series}");
    assert!(history["latest"]["sales"].is_array(), "{history}");
    // The stream ends when the instance stops.
    app.handle.stop().await;
    let end = tokio::time::timeout(WAIT, async { while later.next().await.is_some() {} });
    end.await.expect("the admin stream ends on shutdown");
}

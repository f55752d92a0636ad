//! At the door: one place per browser, tokens bound to the browser's session cookie, and the
//! cap on streams per token.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use waitroom_testkit::*;

pub(crate) async fn join_as(app: &TestApp, sale: &str, cookie: &str) -> Value {
    let res = app
        .client
        .post(app.url(&format!("/api/sales/{sale}/queue")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

/// The status of a GET to `path` with `token` as bearer and `cookie` (if any).
async fn code(app: &TestApp, path: &str, token: &str, cookie: Option<&str>) -> (u16, Value) {
    let mut req = app.client.get(app.url(path)).bearer_auth(token);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_place_per_browser_and_no_token_works_without_its_cookie() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let me = app.join(&sale).await;
    let mine = session_cookie(&me.token).expect("the join set a session cookie");
    let again = join_as(&app, &sale, &mine).await;
    assert_eq!(again["queue_id"], me.queue_id.as_str(), "the same place");
    assert_eq!(
        (again["position"].as_i64(), again["seq"].as_i64()),
        (Some(1), Some(0))
    );
    let other = app.join(&sale).await;
    assert_eq!(other.position, 2, "another browser gets its own place");
    let theirs = session_cookie(&other.token).unwrap();

    let status = format!("/api/sales/{sale}/status");
    let events = format!("/api/sales/{sale}/events");
    for path in [&status, &events] {
        for cookie in [None, Some(theirs.as_str())] {
            let (code, body) = code(&app, path, &me.token, cookie).await;
            assert_eq!(
                (code, &body["code"]),
                (403, &json!("token_not_bound")),
                "{path}"
            );
        }
    }
    assert_eq!(code(&app, &status, &me.token, Some(&mine)).await.0, 200);
    let rejoin = app
        .client
        .post(app.url(&format!("/api/sales/{sale}/queue")))
        .json(&json!({ "token": me.token }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        rejoin.status(),
        403,
        "a token re-presented without its cookie"
    );

    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &me.token).await;
    let bare = app
        .client
        .post(app.url(&format!("/api/sales/{sale}/checkout")))
        .bearer_auth(&ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 403, "a ticket without its cookie");
    assert_eq!(app.checkout(&sale, &ticket, 1).await.status(), 201);
    // A finished place lets the browser join again, at the back, under a new id.
    let next = join_as(&app, &sale, &mine).await;
    assert_ne!(next["queue_id"], me.queue_id.as_str());
    assert!(next["seq"].as_i64() > Some(0), "{next}");
}

#[tokio::test]
async fn with_binding_off_a_token_works_alone() {
    let app = spawn_app_with(|c| c.door.bind_tokens = false).await;
    let sale = app.create_sale(5, 1000).await;
    let me = app.join(&sale).await;
    let status = format!("/api/sales/{sale}/status");
    assert_eq!(code(&app, &status, &me.token, None).await.0, 200);
}

#[tokio::test]
async fn a_fourth_stream_of_one_token_replaces_the_oldest() {
    let app = spawn_app_with(|c| c.streams.per_token = 3).await;
    let sale = app.create_sale(5, 1000).await;
    let me = app.join(&sale).await;
    let cookie = format!(
        "{}; wr_queue={}",
        session_cookie(&me.token).unwrap(),
        me.token
    );
    let mut streams = Vec::new();
    for _ in 0..5 {
        let res = app
            .client
            .get(app.url(&format!("/api/sales/{sale}/events")))
            .header("cookie", &cookie)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        streams.push(res.bytes_stream());
        if streams.len() < 4 {
            continue;
        }
        // The oldest still open ends: `replaced`, then a long retry hint.
        let at = streams.len() - 4;
        let oldest = &mut streams[at];
        let text = tokio::time::timeout(WAIT, async {
            let mut text = String::new();
            while let Some(chunk) = oldest.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            }
            text
        })
        .await
        .expect("the oldest stream ended");
        assert!(text.contains("event: replaced"), "{text}");
        assert!(text.ends_with("retry: 30000\n\n"), "{text}");
    }
}

//! Outbound webhooks end to end: endpoints through the admin API, events written straight to
//! `outbox` (as the ledger writes them), and a real receiver (`testkit::receiver`) that
//! verifies every request with the `standardwebhooks` crate. Every instance of the suite
//! relays, so each test's endpoint names its own sale in its `sales` filter, and is deleted
//! at the end. Waits are on conditions, observed through the receiver or the deliveries API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::checkout::admitted_tickets;
use waitroom_testkit::*;

/// An endpoint of this test's sale, its receiver, and the admin API around them.
struct Hook {
    app: TestApp,
    receiver: Receiver,
    sale: String,
    id: String,
    secret: String,
    pg: sqlx::PgPool,
}

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn hook() -> Hook {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let sale = unique("wh");
    let body = json!({"url": receiver.url(), "sales": [sale], "description": "test receiver"});
    let (status, v) = admin(
        &app,
        reqwest::Method::POST,
        "/api/admin/webhooks",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    receiver.trust(&secret);
    Hook {
        id: v["id"].as_str().unwrap().to_string(),
        app,
        receiver,
        sale,
        secret,
        pg: pg().await,
    }
}

impl Hook {
    /// Writes an event of this test's sale to `outbox`; its `webhook-id`.
    async fn event(&self, kind: &str, order: Option<Uuid>, data: Value) -> (Uuid, String) {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO outbox (id, type, sale_id, order_id, data) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(kind)
        .bind(&self.sale)
        .bind(order)
        .bind(sqlx::types::Json(data))
        .execute(&self.pg)
        .await
        .unwrap();
        (id, format!("msg_{}", id.simple()))
    }

    async fn call(&self, method: reqwest::Method, tail: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!("/api/admin/webhooks/{}{tail}", self.id);
        admin(&self.app, method, &path, body).await
    }

    async fn delivery(&self, event: Uuid) -> Option<Value> {
        let (status, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/deliveries?event_id={event}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v.as_array().unwrap().first().cloned()
    }

    /// Waits until the event's delivery satisfies `done`, as the deliveries API shows it.
    async fn wait_delivery(&self, event: Uuid, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let found = eventually(WAIT, || async {
            self.delivery(event).await.filter(|d| done(d))
        });
        match found.await {
            Some(d) => d,
            None => panic!(
                "delivery of {event}: {what}; last {:?}",
                self.delivery(event).await
            ),
        }
    }

    /// Waits until the receiver accepted every event and the deliveries API shows each
    /// delivered.
    async fn wait_delivered(&self, events: &[(Uuid, String)]) {
        let ids: Vec<String> = events.iter().map(|e| e.1.clone()).collect();
        let got = self.receiver.wait_accepted(&ids).await;
        assert!(got.iter().all(|r| r.verified));
        for (event, _) in events {
            self.wait_delivery(*event, "delivered", |d| d["state"] == "delivered")
                .await;
        }
    }

    /// Replays `body` (`{event_id}` or `{since}`); how many were queued again.
    async fn replay(&self, body: Value) -> u64 {
        let (status, v) = self
            .call(reqwest::Method::POST, "/replay", Some(body))
            .await;
        assert_eq!(status, 200, "{v}");
        v["requeued"].as_u64().unwrap()
    }

    async fn endpoint(&self) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, "", None).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn delete(self) {
        let (status, _) = self.call(reqwest::Method::DELETE, "", None).await;
        assert_eq!(status, 204);
        let (status, v) = self.call(reqwest::Method::GET, "", None).await;
        assert_eq!((status, v["code"].as_str()), (404, Some("unknown_webhook")));
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a time").parse().expect("RFC 3339")
}

/// Six orders' events interleaved (and two sale events): every one arrives, verified, exactly
/// once by `webhook-id`, with its data, and one order's events in the order they happened,
/// although the receiver fails the first two attempts of a third of them.
#[tokio::test]
async fn every_event_arrives_once_in_per_order_order() {
    let h = hook().await;
    h.receiver.policy(|r, earlier| {
        if r.data["n"].as_i64().unwrap_or(0) % 3 == 0 && earlier < 2 {
            Answer::Status(500)
        } else {
            Answer::Ok
        }
    });
    let orders: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let kinds = ["order.created", "order.paid", "order.refund_due"];
    let mut events: Vec<(Option<Uuid>, usize, String, Value)> = Vec::new();
    let mut n = 0;
    for (step, kind) in kinds.iter().enumerate() {
        for order in &orders {
            n += 1;
            let data = json!({"order_id": order, "sale_id": h.sale, "n": n, "status": kind});
            let (_, id) = h.event(kind, Some(*order), data.clone()).await;
            events.push((Some(*order), step, id, data));
        }
        let data = json!({"sale_id": h.sale, "n": 100 + step});
        let (_, id) = h.event("sale.opened", None, data.clone()).await;
        events.push((None, step, id, data));
    }
    let ids: Vec<String> = events.iter().map(|e| e.2.clone()).collect();
    let got = h.receiver.wait_accepted(&ids).await;

    assert!(
        got.iter().all(|r| r.verified && r.path == "/hook"),
        "{got:#?}"
    );
    // At least once: a duplicate on the wire is allowed (an instance that died mid-attempt
    // leaves its claim to lapse), none after dedup by `webhook-id`.
    let accepted = accepted_ids(&got);
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(accepted, expected, "every event accepted");
    for (_, _, id, data) in &events {
        let r = got.iter().find(|r| &r.webhook_id == id).unwrap();
        assert_eq!(&r.data, data);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body["timestamp"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .is_ok());
        assert!(r.verifies_with(&h.secret));
    }
    // No request of an order's event before its earlier events were accepted.
    let mut done: Vec<&str> = Vec::new();
    for r in &got {
        let (order, step, ..) = events.iter().find(|e| e.2 == r.webhook_id).unwrap();
        if order.is_some() {
            for earlier in events.iter().filter(|e| e.0 == *order && e.1 < *step) {
                assert!(
                    done.contains(&earlier.2.as_str()),
                    "{} before {}",
                    r.webhook_id,
                    earlier.2
                );
            }
        }
        if r.accepted() {
            done.push(&r.webhook_id);
        }
    }
    let retried = got.iter().filter(|r| r.answered == 500).count();
    assert_eq!(
        retried,
        2 * events
            .iter()
            .filter(|e| e.3["n"].as_i64().unwrap() % 3 == 0)
            .count()
    );
    let d = h
        .delivery(events[2].2.trim_start_matches("msg_").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(d["state"], "delivered");
    assert!(d["attempts"].as_i64() >= Some(3), "{d}");
    h.delete().await;
}

/// A receiver that is down for a while loses nothing: attempts fail, and once it is back
/// every event arrives.
#[tokio::test]
async fn receiver_down_then_back_loses_nothing() {
    let h = hook().await;
    h.receiver.stop().await;
    let mut events = Vec::new();
    for n in 0..5 {
        let order = Uuid::new_v4();
        events.push(
            h.event(
                "order.created",
                Some(order),
                json!({"order_id": order, "n": n}),
            )
            .await,
        );
    }
    for (event, _) in &events {
        let d = h
            .wait_delivery(*event, "failed twice", |d| {
                d["attempts"].as_i64() >= Some(2)
            })
            .await;
        assert_eq!(d["state"], "pending");
        assert!(
            d["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{d}"
        );
        assert!(d["last_status"].is_null(), "{d}");
    }
    h.receiver.restart().await;
    h.wait_delivered(&events).await;
    h.delete().await;
}

/// 410 disables the endpoint: a later event is not even queued for it, its pending delivery
/// waits; enabling sends that one, and a replay since the start sends the rest.
#[tokio::test]
async fn gone_disables_the_endpoint_until_enabled() {
    let h = hook().await;
    let start = Utc::now() - chrono::Duration::seconds(1);
    h.receiver.answer(Answer::Status(410));
    let (first, first_id) = h.event("sale.opened", None, json!({"n": 1})).await;
    let ep = eventually(WAIT, || async {
        Some(h.endpoint().await).filter(|e| e["enabled"] == false)
    })
    .await
    .expect("the endpoint disabled");
    assert!(ep["disabled_reason"].as_str().unwrap().contains("410"));
    h.receiver.answer(Answer::Ok);

    let (later, later_id) = h.event("sale.closed", None, json!({"n": 2})).await;
    eventually(WAIT, || async {
        let fanned: bool = sqlx::query_scalar("SELECT fanned_out FROM outbox WHERE id = $1")
            .bind(later)
            .fetch_one(&h.pg)
            .await
            .unwrap();
        fanned.then_some(())
    })
    .await
    .expect("the later event fanned out");
    assert!(
        h.delivery(later).await.is_none(),
        "no delivery for a disabled endpoint"
    );
    let d = h.delivery(first).await.unwrap();
    assert_eq!(
        (d["state"].as_str(), d["last_status"].as_i64()),
        (Some("paused"), Some(410))
    );
    assert!(h
        .receiver
        .received()
        .iter()
        .all(|r| r.webhook_id == first_id));

    let (status, v) = h.call(reqwest::Method::POST, "/enable", None).await;
    assert_eq!((status, v["enabled"].as_bool()), (200, Some(true)), "{v}");
    h.receiver
        .wait_accepted(std::slice::from_ref(&first_id))
        .await;
    assert!(!h
        .receiver
        .received()
        .iter()
        .any(|r| r.webhook_id == later_id));

    assert_eq!(h.replay(json!({"since": start})).await, 2);
    h.receiver.wait_accepted(&[first_id, later_id]).await;
    h.delete().await;
}

/// 429 with `Retry-After: 30`: the next attempt is set no sooner than 30 s after the failed
/// one (the schedule alone would say 5 ms here); a replay sends it at once, same `webhook-id`.
#[tokio::test]
async fn retry_after_is_honoured_and_replay_resends_the_same_id() {
    let h = hook().await;
    h.receiver.policy(|_, earlier| {
        if earlier == 0 {
            Answer::RetryAfter(429, 30)
        } else {
            Answer::Ok
        }
    });
    let order = Uuid::new_v4();
    let (event, id) = h
        .event("order.paid", Some(order), json!({"order_id": order}))
        .await;
    let d = h
        .wait_delivery(event, "answered 429", |d| {
            d["last_status"] == 429 && !d["next_attempt_at"].is_null()
        })
        .await;
    assert_eq!(
        (d["attempts"].as_i64(), d["state"].as_str()),
        (Some(1), Some("pending"))
    );
    let wait = time(&d["next_attempt_at"]) - time(&d["last_attempt_at"]);
    assert!(
        wait >= chrono::Duration::seconds(30),
        "next attempt after {wait}"
    );

    assert_eq!(h.replay(json!({"event_id": event})).await, 1);
    h.receiver.wait_accepted(std::slice::from_ref(&id)).await;
    h.wait_delivery(event, "delivered", |d| d["state"] == "delivered")
        .await;

    assert_eq!(h.replay(json!({"event_id": event})).await, 1);
    let got = h
        .receiver
        .wait_until("the replay accepted", |r| {
            r.iter().filter(|x| x.accepted()).count() >= 2
        })
        .await;
    assert!(got.iter().all(|r| r.webhook_id == id && r.verified));
    h.delete().await;
}

/// After a rotation both secrets sign, so a receiver holding either one verifies.
#[tokio::test]
async fn rotation_signs_with_old_and_new_secrets() {
    let h = hook().await;
    let (_, before) = h.event("sale.opened", None, json!({"n": 1})).await;
    h.receiver
        .wait_accepted(std::slice::from_ref(&before))
        .await;

    let (status, v) = h.call(reqwest::Method::POST, "/rotate", None).await;
    assert_eq!(status, 200, "{v}");
    let new = v["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != h.secret);
    let until = time(&v["previous_until"]);
    assert!(until > Utc::now() + chrono::Duration::hours(23), "{until}");
    assert_eq!(time(&h.endpoint().await["previous_until"]), until);

    let (_, after) = h.event("sale.closed", None, json!({"n": 2})).await;
    let got = h.receiver.wait_accepted(std::slice::from_ref(&after)).await;
    let r = got.iter().find(|r| r.webhook_id == after).unwrap();
    assert!(r.verifies_with(&h.secret), "the old secret still verifies");
    assert!(r.verifies_with(&new), "the new secret verifies");
    assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
    let old = got.iter().find(|r| r.webhook_id == before).unwrap();
    assert!(
        !old.verifies_with(&new),
        "before the rotation only the old secret signed"
    );
    h.delete().await;
}

/// A 10 MB answer, a redirect, garbage and an answer slower than the timeout are each a
/// failed attempt, recorded in the deliveries; the redirect is not followed. Once the
/// receiver behaves, every one arrives.
#[tokio::test]
async fn bad_answers_are_failed_attempts() {
    let h = hook().await;
    let fixed = Arc::new(AtomicBool::new(false));
    let f = fixed.clone();
    h.receiver.policy(move |r, _| {
        if f.load(Ordering::SeqCst) {
            return Answer::Ok;
        }
        match r.data["mode"].as_str() {
            Some("huge") => Answer::Huge,
            Some("redirect") => Answer::Redirect,
            Some("garbage") => Answer::Garbage,
            Some("slow") => Answer::Slow(std::time::Duration::from_secs(4)),
            _ => Answer::Ok,
        }
    });
    let start = Utc::now() - chrono::Duration::seconds(1);
    let mut events = Vec::new();
    for mode in ["huge", "redirect", "garbage", "slow"] {
        let (event, id) = h.event("sale.opened", None, json!({"mode": mode})).await;
        events.push((mode, event, id));
    }
    for (mode, event, _) in &events {
        let d = h
            .wait_delivery(*event, "a failed attempt", |d| !d["last_error"].is_null())
            .await;
        assert_eq!(d["state"], "pending", "{mode}: {d}");
        let error = d["last_error"].as_str().unwrap();
        match *mode {
            "huge" => {
                assert_eq!(d["last_status"], 200, "{d}");
                assert!(error.contains("longer than"), "{error}");
            }
            "redirect" => assert_eq!(d["last_status"], 302, "{d}"),
            "garbage" => assert!(d["last_status"].is_null(), "{d}"),
            _ => assert!(error.contains("no answer within"), "{error}"),
        }
    }
    assert!(
        h.receiver.received().iter().all(|r| r.path == "/hook"),
        "a redirect was followed"
    );

    fixed.store(true, Ordering::SeqCst);
    // A replay makes them due now rather than at their next scheduled retry.
    assert_eq!(h.replay(json!({"since": start})).await, 4);
    let events: Vec<(Uuid, String)> = events.into_iter().map(|e| (e.1, e.2)).collect();
    h.wait_delivered(&events).await;
    h.delete().await;
}

/// Deliveries that keep failing show in `/metrics` as pending, and as failures of their
/// endpoint; the endpoint's card numbers say the same.
#[tokio::test]
async fn metrics_and_the_endpoint_show_pending_deliveries() {
    let h = hook().await;
    h.receiver.answer(Answer::Status(500));
    for n in 0..3 {
        h.event("sale.opened", None, json!({"n": n})).await;
    }
    // A claim counts the attempt before its answer is written: wait for both.
    let ep = eventually(WAIT, || async {
        Some(h.endpoint().await)
            .filter(|e| e["failing"].as_i64() == Some(3) && e["last_status"].as_i64() == Some(500))
    })
    .await
    .expect("three failing deliveries");
    assert_eq!(
        (ep["pending"].as_i64(), ep["last_status"].as_i64()),
        (Some(3), Some(500))
    );
    let (status, list) = admin(&h.app, reqwest::Method::GET, "/api/admin/webhooks", None).await;
    assert_eq!(status, 200);
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == h.id.as_str())
        .unwrap();
    assert!(
        mine.get("secret").is_none(),
        "a listing shows no secret: {mine}"
    );

    let failures = format!("waitroom_webhook_failures_total{{endpoint=\"{}\"}}", h.id);
    eventually(WAIT, || async {
        let text = h.app.metrics_text().await;
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        let pending = value("waitroom_webhook_pending")?;
        let oldest = value("waitroom_webhook_oldest_pending_seconds")?;
        let failed = value(&failures)?;
        (pending >= 3.0 && oldest > 0.0 && failed >= 3.0).then_some(())
    })
    .await
    .expect("pending deliveries and failures in /metrics");
    h.delete().await;
}

/// Bad input is a 400 with a stable code (never a 500), an unknown endpoint a 404. This
/// instance refuses private destinations and http://, as production does, and does not relay.
#[tokio::test]
async fn bad_input_is_400_with_stable_codes() {
    let app = spawn_app_with(|c| {
        c.webhooks.allow_private = false;
        c.webhooks.relay = false;
    })
    .await;
    let post = |body: Value| {
        let app = &app;
        async move {
            admin(
                app,
                reqwest::Method::POST,
                "/api/admin/webhooks",
                Some(body),
            )
            .await
        }
    };
    let sale = unique("wh");
    let public = "https://93.184.216.34/hook";
    for (body, code) in [
        (json!({"url": "not a url"}), "invalid_url"),
        (json!({"url": "ftp://example.com/x"}), "invalid_url"),
        (
            json!({"url": "https://user:pw@example.com/x"}),
            "invalid_url",
        ),
        (json!({"url": "http://example.com/x"}), "insecure_url"),
        (json!({"url": "https://127.0.0.1/x"}), "private_destination"),
        (
            json!({"url": "https://[::1]:8443/x"}),
            "private_destination",
        ),
        (json!({"url": "https://10.1.2.3/x"}), "private_destination"),
        (
            json!({"url": "https://169.254.169.254/latest"}),
            "private_destination",
        ),
        (json!({"url": "https://[fd12::1]/x"}), "private_destination"),
        (
            json!({"url": "https://localhost:9/x"}),
            "private_destination",
        ),
        (
            json!({"url": public, "events": ["order.nope"]}),
            "unknown_event_type",
        ),
        (
            json!({"url": public, "sales": ["Not A Sale"]}),
            "invalid_sale_id",
        ),
        (json!({"url": public, "bogus": 1}), "invalid_json"),
        (json!({"url": 42}), "invalid_json"),
        (json!({"events": []}), "invalid_json"),
    ] {
        let (status, v) = post(body.clone()).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }

    let (status, v) = post(json!({"url": public, "sales": [sale], "events": ["order.paid"]})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let path = |tail: &str| format!("/api/admin/webhooks/{id}{tail}");
    let (status, v) = admin(&app, reqwest::Method::GET, &path(""), None).await;
    assert_eq!((status, v["events"].clone()), (200, json!(["order.paid"])));
    assert!(v.get("secret").is_none(), "{v}");
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);
    let replay = |body: Value| (post.clone(), "/replay", Some(body));
    for ((method, tail, body), status, code) in [
        (replay(json!({})), 400, "invalid_replay"),
        (
            replay(json!({"event_id": Uuid::new_v4(), "since": Utc::now()})),
            400,
            "invalid_replay",
        ),
        (replay(json!({"since": "yesterday"})), 400, "invalid_json"),
        (
            replay(json!({"event_id": Uuid::new_v4()})),
            404,
            "unknown_event",
        ),
        (
            (get.clone(), "/deliveries?limit=0", None),
            400,
            "invalid_limit",
        ),
        (
            (get.clone(), "/deliveries?event_id=nope", None),
            400,
            "invalid_query",
        ),
    ] {
        let (got, v) = admin(&app, method, &path(tail), body.clone()).await;
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{tail} {body:?}: {v}"
        );
    }

    for unknown in [Uuid::new_v4().to_string(), "not-an-id".to_string()] {
        for (method, tail) in [
            (reqwest::Method::GET, ""),
            (reqwest::Method::DELETE, ""),
            (reqwest::Method::POST, "/rotate"),
            (reqwest::Method::POST, "/enable"),
            (reqwest::Method::GET, "/deliveries"),
        ] {
            let p = format!("/api/admin/webhooks/{unknown}{tail}");
            let (status, v) = admin(&app, method.clone(), &p, None).await;
            assert_eq!(
                (status, v["code"].as_str()),
                (404, Some("unknown_webhook")),
                "{method} {p}"
            );
        }
    }
    let res = app
        .client
        .get(app.url("/api/admin/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the admin token is required");
    let (status, _) = admin(&app, reqwest::Method::DELETE, &path(""), None).await;
    assert_eq!(status, 204);
}

/// The payment webhook also takes Standard Webhooks signatures (keyed with the payment
/// secret's bytes), within five minutes, beside today's header.
#[tokio::test]
async fn payment_webhook_accepts_standard_webhooks_signatures() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let tickets = admitted_tickets(&app, &sale, 2).await;
    let mut orders = Vec::new();
    for t in &tickets {
        let res = app.checkout(&sale, t, 1).await;
        assert_eq!(res.status(), 201);
        orders.push(
            res.json::<Value>().await.unwrap()["order_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let hook = standardwebhooks::Webhook::from_bytes(PAYMENT_SECRET.as_bytes().to_vec()).unwrap();
    let send = |body: &Value, ts: i64, signature: Option<String>| {
        let raw = serde_json::to_vec(body).unwrap();
        let signature = signature.unwrap_or_else(|| hook.sign("msg_pay1", ts, &raw).unwrap());
        app.client
            .post(app.url("/api/payments/webhook"))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_pay1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(raw)
            .send()
    };
    let now = Utc::now().timestamp();
    let event = json!({"order_id": orders[0], "event_id": unique("ev"), "outcome": "succeeded"});
    for (ts, sig) in [
        (now - 600, None),
        (now + 600, None),
        (now, Some("v1,bm90IGEgc2lnbmF0dXJl".to_string())),
        (now, Some(String::new())),
    ] {
        let res = send(&event, ts, sig.clone()).await.unwrap();
        assert_eq!(res.status(), 401, "{ts} {sig:?}");
        assert_eq!(
            res.json::<Value>().await.unwrap()["code"],
            "invalid_signature"
        );
    }
    let res = send(&event, now, None).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "paid");
    // Today's header still works.
    app.pay(&orders[1], "succeeded").await;
    assert_eq!(app.stats(&sale).await["sold"], 2);
}

/// Where private destinations are refused, the relay's client refuses them when it sends too:
/// a name that resolves to loopback (as a rebinding name would, after the check at creation)
/// and a loopback address literal both fail without a request reaching the receiver.
#[tokio::test]
async fn the_sender_refuses_private_addresses_when_it_connects() {
    use waitroom::infra::outbound::{Message, Sender};
    let receiver = Receiver::start().await;
    let post = |sender: Sender, url: String| async move {
        let message = Message {
            url: &url,
            id: "msg_1",
            timestamp: Utc::now().timestamp(),
            signature: "v1,x",
            body: "{}".into(),
        };
        sender.post(message).await
    };
    let timeout = std::time::Duration::from_secs(2);
    let refusing = Sender::new(timeout, false).unwrap();
    for host in ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"] {
        let url = format!("http://{host}:{}/hook", receiver.port);
        let err = post(refusing.clone(), url).await.unwrap_err();
        assert!(err.to_string().contains("private"), "{host}: {err}");
    }
    assert!(receiver.received().is_empty());
    // Where allowed it goes through (the receiver refuses the made-up signature).
    let allowed = Sender::new(timeout, true).unwrap();
    assert_eq!(post(allowed, receiver.url()).await.unwrap().status, 401);
}

/// The whole loop with real orders: a 2,000-shopper sale (the triggers write the outbox,
/// the relay delivers) reaches the shop with every event of every order exactly once after
/// dedup by `webhook-id`, each order's events in the order they happened, every one verified.
#[tokio::test]
async fn every_order_of_a_2000_shopper_sale_reaches_the_shop_once_in_order() {
    let h = hook().await;
    let body = json!({"id": h.sale, "name": "two thousand", "units": 2000, "price_cents": 500,
        "rate_per_sec": 100000, "ticket_ttl_secs": 600});
    assert_eq!(h.app.create_sale_json(body).await.status(), 201);
    let tickets = admitted_tickets(&h.app, &h.sale, 2000).await;
    let bought = futures_util::future::join_all(tickets.iter().map(|t| async {
        let res = h.app.checkout(&h.sale, t, 1).await;
        assert_eq!(res.status(), 201);
        let o: Value = res.json().await.unwrap();
        o["order_id"].as_str().unwrap().to_string()
    }))
    .await;
    // Every third pays, every seventh's payment fails: three kinds of history.
    for (i, order) in bought.iter().enumerate() {
        match (i % 3, i % 7) {
            (0, _) => h.app.pay(order, "succeeded").await,
            (_, 0) => h.app.pay(order, "failed").await,
            _ => {}
        }
    }

    let written: Vec<(Uuid, Option<Uuid>, i64)> =
        sqlx::query_as("SELECT id, order_id, seq FROM outbox WHERE sale_id = $1 ORDER BY seq")
            .bind(&h.sale)
            .fetch_all(&h.pg)
            .await
            .unwrap();
    let per_order = written.iter().filter(|w| w.1.is_some()).count();
    let paid = (0..2000).filter(|i| i % 3 == 0).count();
    let failed = (0..2000).filter(|i| i % 3 != 0 && i % 7 == 0).count();
    assert_eq!(per_order, 2000 + paid + failed, "one event per change");
    let ids: Vec<String> = written
        .iter()
        .map(|w| format!("msg_{}", w.0.simple()))
        .collect();
    let got = h.receiver.wait_accepted(&ids).await;
    assert!(got.iter().all(|r| r.verified), "every request verifies");
    assert_eq!(
        accepted_ids(&got).len(),
        ids.len(),
        "each event once after dedup"
    );

    // Per order, first arrivals follow the outbox's order (created, then paid or failed).
    let seq_of: std::collections::HashMap<&str, (Option<Uuid>, i64)> = ids
        .iter()
        .zip(&written)
        .map(|(id, w)| (id.as_str(), (w.1, w.2)))
        .collect();
    let mut last: std::collections::HashMap<Uuid, i64> = Default::default();
    let mut seen = std::collections::HashSet::new();
    for r in got.iter().filter(|r| seen.insert(r.webhook_id.clone())) {
        if let Some(&(Some(order), seq)) = seq_of.get(r.webhook_id.as_str()) {
            let before = last.insert(order, seq).unwrap_or(i64::MIN);
            assert!(before < seq, "order {order}: {seq} arrived after {before}");
        }
    }
    h.delete().await;
}

/// The README's verification snippet (docs/snippets/verify_webhook.rs) accepts real deliveries
/// of a real order and refuses a tampered body; the README shows it verbatim.
#[tokio::test]
async fn the_readmes_snippet_verifies_real_deliveries() {
    let readme = include_str!("../../README.md");
    let snippet = include_str!("../../docs/snippets/verify_webhook.rs");
    assert!(
        readme.contains(snippet),
        "README shows docs/snippets/verify_webhook.rs"
    );

    let h = hook().await;
    let body = json!({"id": h.sale, "name": "snippet", "units": 1, "price_cents": 700});
    assert_eq!(h.app.create_sale_json(body).await.status(), 201);
    let ticket = admitted_tickets(&h.app, &h.sale, 1).await.remove(0);
    assert_eq!(h.app.checkout(&h.sale, &ticket, 1).await.status(), 201);
    let got = h
        .receiver
        .wait_until("an order.created", |r| {
            r.iter()
                .any(|x| x.event_type == "order.created" && x.accepted())
        })
        .await;
    let r = got
        .iter()
        .find(|x| x.event_type == "order.created")
        .unwrap();
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("webhook-id", &r.webhook_id),
        ("webhook-timestamp", &r.timestamp),
        ("webhook-signature", &r.signature),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    let verify = crate::snippet_verify_webhook::verify_delivery;
    let event = verify(&h.secret, &headers, &r.body).expect("a real delivery verifies");
    assert_eq!(event["type"], "order.created");
    assert_eq!(event["data"]["total_cents"], 700);
    let mut tampered = r.body.clone();
    tampered.extend_from_slice(b" ");
    assert!(verify(&h.secret, &headers, &tampered).is_err());
    assert!(verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &headers, &r.body).is_err());
    h.delete().await;
}

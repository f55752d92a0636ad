//! The hand-off (issue 20): `POST /api/sales/{id}/payment` gives the buyer a `wr-order` token
//! for the shop's payment page (`checkout_url`), which the shop verifies from the JWKS; the
//! sale field's checks; a buyer's stream hears the order's payment.

use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use waitroom_testkit::*;

const SHOP: &str = "https://shop.example";

/// A sale handing off to `SHOP`, and one shopper who bought `quantity` of it: (sale, queue
/// token, ticket, the order as checkout answered it).
async fn bought(app: &TestApp, quantity: i64, extra: Value) -> (String, String, String, Value) {
    let mut settings =
        json!({"checkout_url": format!("{SHOP}/pay?from=waitroom"), "max_per_order": 3});
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let sale = app.create_sale_with(10, 1000, settings).await;
    let token = app.join(&sale).await.token;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &token).await;
    let res = app.checkout(&sale, &ticket, quantity).await;
    assert_eq!(res.status(), 201);
    (sale, token, ticket, res.json().await.unwrap())
}

/// The claims of a hand-off token, verified as the shop verifies it: the JWKS, EdDSA, its
/// own origin as `aud`.
async fn verify_as_shop(app: &TestApp, token: &str, aud: &str) -> Result<Value, String> {
    let jwks = app.jwks().await;
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("the kid is published")).unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "aud", "iss"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn refused(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

#[tokio::test]
async fn a_pending_order_is_handed_off_with_a_token_the_shop_verifies() {
    let app = spawn_app().await;
    let (sale, token, ticket, order) = bought(&app, 2, json!({})).await;
    let order_id = order["order_id"].as_str().unwrap();
    // The queue token or the ticket (both name the place) get the same order's hand-off.
    for bearer in [&token, &ticket] {
        let res = app.hand_off(&sale, bearer).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let h: Value = res.json().await.unwrap();
        assert_eq!(h["order_id"], order_id, "{h}");
        assert_eq!(h["checkout_url"], format!("{SHOP}/pay?from=waitroom"));
        let jwt = h["token"].as_str().unwrap();
        let claims = verify_as_shop(&app, jwt, SHOP).await.unwrap();
        assert_eq!(claims["typ"], "wr-order");
        assert_eq!(claims["jti"], order_id);
        assert_eq!(claims["sale"], sale.as_str());
        assert_eq!(claims["quantity"], 2);
        assert_eq!(claims["total_cents"], 5000, "2 at 2500");
        assert_eq!(claims["iss"], "waitroom");
        let exp = claims["exp"].as_i64().unwrap();
        let hold_end_ms = order["hold_expires_at"].as_i64().unwrap();
        assert!(
            exp * 1000 <= hold_end_ms,
            "exp {exp} after the hold {hold_end_ms}"
        );
        assert_eq!(h["expires_at"].as_i64(), Some(exp * 1000));
        // Another shop cannot use it.
        let elsewhere = verify_as_shop(&app, jwt, "https://evil.example").await;
        assert!(elsewhere.unwrap_err().contains("Audience"));
    }
}

#[tokio::test]
async fn the_hand_off_token_is_no_queue_token_or_ticket_and_needs_its_cookie() {
    let app = spawn_app().await;
    let (sale, token, _, _) = bought(&app, 1, json!({})).await;
    let h: Value = app.hand_off(&sale, &token).await.json().await.unwrap();
    let jwt = h["token"].as_str().unwrap();
    // Presented where a queue token, a ticket or an admission is expected: refused by its
    // signature check (an instance not binding tokens to cookies, so nothing refuses first).
    let unbound = spawn_app_with(|c| c.door.bind_tokens = false).await;
    let path = format!("/api/sales/{sale}/status");
    let as_queue = unbound.client.get(unbound.url(&path)).bearer_auth(jwt);
    let as_queue = as_queue.send().await.unwrap();
    let as_ticket = unbound.checkout(&sale, jwt, 1).await;
    let as_hand_off = unbound.hand_off(&sale, jwt).await;
    for (what, res) in [
        ("status", as_queue),
        ("checkout", as_ticket),
        ("payment", as_hand_off),
    ] {
        assert_eq!(res.status(), 401, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "invalid_token", "{what}: {body}");
    }
    let gate = format!("/api/gate?sale={sale}");
    let at_gate = unbound.client.get(unbound.url(&gate)).bearer_auth(jwt);
    assert_eq!(at_gate.send().await.unwrap().status(), 401, "gate");
    // The shopper's own token without the browser's cookie: refused.
    let bare = app
        .client
        .post(app.url(&format!("/api/sales/{sale}/payment")))
        .bearer_auth(&token);
    refused(bare.send().await.unwrap(), 403, "token_not_bound").await;
    let none = app
        .client
        .post(app.url(&format!("/api/sales/{sale}/payment")));
    refused(none.send().await.unwrap(), 401, "missing_token").await;
}

#[tokio::test]
async fn orders_that_cannot_be_handed_off_say_why() {
    let app = spawn_app().await;
    // A place that bought nothing.
    let sale = app
        .create_sale_with(5, 1000, json!({"checkout_url": format!("{SHOP}/pay")}))
        .await;
    let waiting = app.join(&sale).await.token;
    refused(app.hand_off(&sale, &waiting).await, 404, "no_order").await;
    // Paid, or its payment failed: not payable, with the status.
    let (sale, token, _, order) = bought(&app, 1, json!({})).await;
    let order_id = order["order_id"].as_str().unwrap();
    app.pay(order_id, "succeeded").await;
    let body = refused(app.hand_off(&sale, &token).await, 409, "not_payable").await;
    assert_eq!(
        (&body["status"], &body["order_id"]),
        (&json!("paid"), &json!(order_id))
    );
    let (sale, token, _, order) = bought(&app, 1, json!({})).await;
    app.pay(order["order_id"].as_str().unwrap(), "failed").await;
    let body = refused(app.hand_off(&sale, &token).await, 409, "not_payable").await;
    assert_eq!(body["status"], "failed");
    // A sale without a payment page: the hold's end instead.
    let sale = app.create_sale(5, 1000).await;
    let token = app.join(&sale).await.token;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &token).await;
    let order: Value = app.checkout(&sale, &ticket, 1).await.json().await.unwrap();
    let body = refused(app.hand_off(&sale, &token).await, 409, "no_checkout_url").await;
    assert_eq!(body["hold_expires_at"], order["hold_expires_at"]);
    // A hold that ended: expired, before or after the sweeper says so.
    let (sale, token, _, _) = bought(&app, 1, json!({"hold_secs": 5})).await;
    let lapsed = eventually(WAIT, || async {
        let res = app.hand_off(&sale, &token).await;
        let body: Value = res.json().await.unwrap();
        (body["code"] == "not_payable").then_some(body)
    })
    .await
    .expect("the hold ends");
    assert_eq!(lapsed["status"], "expired");
    // Another sale's token: wrong sale.
    let other = app.create_sale(1, 10).await;
    refused(app.hand_off(&other, &token).await, 403, "wrong_sale").await;
}

#[tokio::test]
async fn checkout_url_is_checked_at_create_and_set_and_cleared_by_patch() {
    let app = spawn_app().await;
    for bad in [
        json!("http://shop.example/pay"),
        json!("ftp://shop.example/pay"),
        json!("/pay"),
        json!("https://user:pw@shop.example/pay"),
        json!("https://shop.example/pay#top"),
        json!(format!("https://shop.example/{}", "a".repeat(2000))),
        json!(""),
    ] {
        let body = json!({"id": unique("t"), "name": "x", "units": 1, "price_cents": 1,
            "checkout_url": bad});
        let res = app.create_sale_json(body).await;
        let err = refused(res, 400, "invalid_sale").await;
        assert!(
            err["message"].as_str().unwrap().contains("checkout_url"),
            "{err}"
        );
    }
    let wrong_type = json!({"id": unique("t"), "name": "x", "units": 1, "price_cents": 1,
        "checkout_url": 5});
    refused(app.create_sale_json(wrong_type).await, 400, "invalid_json").await;
    // Plain http to this machine is development, and allowed.
    let local = json!({"checkout_url": "http://127.0.0.1:9000/pay"});
    let sale = app.create_sale_with(1, 10, local).await;
    let patch = |body: Value| {
        let (app, sale) = (&app, sale.clone());
        async move {
            let req = app
                .client
                .patch(app.url(&format!("/api/admin/sales/{sale}")));
            req.bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let set = patch(json!({"checkout_url": "https://shop.example/pay"})).await;
    assert_eq!(set.status(), 200);
    assert_eq!(
        app.public_sale(&sale).await["checkout_url"],
        "https://shop.example/pay"
    );
    let bad = patch(json!({"checkout_url": "http://shop.example/pay"})).await;
    refused(bad, 400, "invalid_sale").await;
    let cleared = patch(json!({"checkout_url": null})).await;
    assert_eq!(cleared.status(), 200);
    assert_eq!(app.public_sale(&sale).await["checkout_url"], Value::Null);
    // Never in Redis's cfg: it holds numbers for the scripts.
    let mut r = redis().await;
    let cfg: Option<String> =
        redis::AsyncCommands::hget(&mut r, format!("wr:{{{sale}}}:cfg"), "checkout_url")
            .await
            .unwrap();
    assert_eq!(cfg, None);
}

/// The buyer's open stream hears the payment: `state` with the order paid, no reload.
#[tokio::test]
async fn a_buyers_stream_hears_the_payment() {
    let app = spawn_app().await;
    let (sale, token, _, order) = bought(&app, 1, json!({})).await;
    let url = app.url(&format!("/api/sales/{sale}/events"));
    let mut events = open_events(&app.client, &url, &token, None).await;
    let first = events.next().await.unwrap();
    let state: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(
        (first.event.as_str(), &state["status"]),
        ("state", &json!("purchased"))
    );
    assert_eq!(state["order_status"], "pending_payment");
    app.pay(order["order_id"].as_str().unwrap(), "succeeded")
        .await;
    let paid = tokio::time::timeout(WAIT, async {
        while let Some(e) = events.next().await {
            // A resync may repeat the standing first (it is idempotent): the news is the paid one.
            let d: Value = serde_json::from_str(&e.data).unwrap_or_default();
            if e.event == "state" && d["order_status"] != "pending_payment" {
                return d;
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("the payment reached the stream");
    assert_eq!(
        (&paid["status"], &paid["order_status"]),
        (&json!("purchased"), &json!("paid"))
    );
    assert_eq!(paid["order_id"], order["order_id"]);
    assert_eq!(app.status(&sale, &token).await["order_status"], "paid");
}

/// The README shows the hand-off verification the test kit's shop runs, verbatim.
#[test]
fn the_readme_shows_the_shops_verification() {
    let readme = include_str!("../../README.md");
    let snippet = include_str!("../../docs/snippets/verify_handoff.rs");
    assert!(
        readme.contains(snippet),
        "README shows docs/snippets/verify_handoff.rs"
    );
}

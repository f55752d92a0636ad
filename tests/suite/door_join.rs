//! At the door: the places cap across instances and the proof-of-work at the join.

use redis::AsyncCommands;
use serde_json::{json, Value};
use waitroom::flows::door::pow::{self, Challenge};
use waitroom::flows::door::{places, ClientKey};

use waitroom_testkit::*;

/// What every test request comes from.
pub(crate) fn me() -> ClientKey {
    ClientKey::of([127, 0, 0, 1].into())
}

async fn join_body(app: &TestApp, sale: &str, body: Value) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/api/sales/{sale}/queue")));
    if let Some(token) = body["token"].as_str() {
        req = as_browser(req, token);
    }
    let res = req.json(&body).send().await.unwrap();
    remember_session(&res);
    (res.status().as_u16(), res.json().await.unwrap())
}

pub(crate) async fn challenge(app: &TestApp, sale: &str) -> Challenge {
    let res = app
        .client
        .get(app.url(&format!("/api/sales/{sale}/challenge")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

pub(crate) fn solved(c: &Challenge) -> Value {
    json!({ "challenge": c.challenge, "nonce": pow::solve(&c.challenge, c.difficulty) })
}

#[tokio::test]
async fn a_solved_challenge_joins_once_and_every_bad_proof_has_its_code() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(10, 10, json!({ "pow_difficulty": 8 }))
        .await;
    let info = app.public_sale(&sale).await;
    assert_eq!(
        info["pow_difficulty"], 8,
        "the page reads it before joining"
    );

    let (code, err) = join_body(&app, &sale, json!({})).await;
    assert_eq!((code, err["code"].as_str()), (400, Some("pow_required")));
    let c = challenge(&app, &sale).await;
    assert_eq!(c.difficulty, 8);
    let (code, err) = join_body(&app, &sale, json!({ "challenge": c.challenge })).await;
    assert_eq!((code, err["code"].as_str()), (400, Some("pow_required")));

    let wrong = (0..)
        .map(|n: u32| n.to_string())
        .find(|n| !pow::solves(&c.challenge, n, 8))
        .unwrap();
    let (code, err) = join_body(
        &app,
        &sale,
        json!({ "challenge": c.challenge, "nonce": wrong }),
    )
    .await;
    assert_eq!((code, err["code"].as_str()), (403, Some("pow_invalid")));

    let (code, joined) = join_body(&app, &sale, solved(&c)).await;
    assert_eq!(code, 201, "{joined}");
    let (code, err) = join_body(&app, &sale, solved(&c)).await;
    assert_eq!((code, err["code"].as_str()), (409, Some("pow_reused")));
    // Keeping one's place needs no new proof.
    let (code, again) = join_body(&app, &sale, json!({ "token": joined["token"] })).await;
    assert_eq!((code, &again["queue_id"]), (201, &joined["queue_id"]));

    // Foreign: another sale's challenge, another client's, one for less work than asked.
    let other = app
        .create_sale_with(10, 10, json!({ "pow_difficulty": 8 }))
        .await;
    let theirs = challenge(&app, &other).await;
    let elsewhere = ClientKey::of([198, 51, 100, 7].into());
    let far = app
        .state
        .pow
        .issue(&sale_id(&sale), &elsewhere, 8, c.expires_at);
    let easy = app.state.pow.issue(&sale_id(&sale), &me(), 2, c.expires_at);
    for foreign in [theirs, far, easy] {
        let (code, err) = join_body(&app, &sale, solved(&foreign)).await;
        assert_eq!((code, err["code"].as_str()), (403, Some("pow_invalid")));
    }

    // Expired: the same key, an expiry already past.
    let stale = app
        .state
        .pow
        .issue(&sale_id(&sale), &me(), 8, c.expires_at - 3_600_000);
    let (code, err) = join_body(&app, &sale, solved(&stale)).await;
    assert_eq!((code, err["code"].as_str()), (410, Some("pow_expired")));

    let res = app
        .client
        .get(app.url("/api/sales/no-such-sale/challenge"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.stats(&sale).await["queue_len"], 1);
}

#[tokio::test]
async fn the_places_cap_holds_across_instances_and_frees_on_admission() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    // One admitted at a time, so the line moves only when the test lets it.
    let extra = json!({ "max_places_per_client": 2, "max_active": 1 });
    let sale = a.create_sale_with(10, 50, extra).await;
    let first = a.join(&sale).await;
    let second = b.join(&sale).await;
    assert!(first
        .queue_id
        .ends_with(&format!(".{}", places::tag(&me(), None))));
    // Re-presenting a token is the same place, counted once.
    assert_eq!(
        b.join_with(&sale, Some(&first.token)).await.queue_id,
        first.queue_id
    );
    for app in [&a, &b] {
        let res = app.join_raw(&sale, None).await;
        assert_eq!(res.status(), 429);
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["code"], "too_many_places");
    }

    a.admin(&sale, "open").await;
    a.ticket(&sale, &first.token).await;
    let third = b.join(&sale).await;
    assert_eq!(third.position, 2, "behind the one still waiting");
    assert_eq!(a.join_raw(&sale, None).await.status(), 429);
    assert_eq!(b.status(&sale, &second.token).await["status"], "waiting");

    let mut r = redis().await;
    let held: Option<i64> = r
        .hget(format!("wr:{{{sale}}}:places"), places::tag(&me(), None))
        .await
        .unwrap();
    assert_eq!(held, Some(2));
}

#[tokio::test]
async fn no_cap_means_no_count() {
    let app = spawn_app().await;
    let sale = app.create_sale(10, 10).await;
    for i in 1..=5 {
        let j = app.join(&sale).await;
        assert_eq!(j.position, i);
        assert!(j
            .queue_id
            .ends_with(&format!(".{}", places::tag(&me(), None))));
    }
    let mut r = redis().await;
    let exists: bool = r.exists(format!("wr:{{{sale}}}:places")).await.unwrap();
    assert!(!exists, "nothing is counted without a cap");
}

//! Promises a shopper or operator relies on that once broke (issue 19): each test here failed
//! on the build before its fix.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;

use crate::common::*;

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

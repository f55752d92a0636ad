//! Variants (issue 21): sizes with stock of their own, each selling out on its own, on the real
//! Redis and Postgres over two instances.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::future::join_all;
use futures_util::StreamExt;
use serde_json::{json, Value};

use waitroom_testkit::*;

use crate::checkout::{admitted_tickets, wait_admitted};
use crate::live_changes::patch_ok;

/// `n` sizes named "38", "39", ... with `units` each.
fn sizes(n: usize, units: i64) -> Value {
    let v: Vec<Value> = (0..n)
        .map(|i| json!({"id": (38 + i).to_string(), "name": format!("EU {}", 38 + i), "units": units}))
        .collect();
    Value::Array(v)
}

/// A sale of `n` sizes × `units`, admitting fast; its id.
async fn sized_sale(app: &TestApp, n: usize, units: i64) -> String {
    let id = unique("v");
    let body = json!({"id": id, "name": "Sneaker drop", "price_cents": 12_000,
        "rate_per_sec": 100_000, "variants": sizes(n, units)});
    let res = app.create_sale_json(body).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    id
}

/// Per variant, (sold in `sale_variants`, units there, live orders naming it) in Postgres.
async fn ledger_by_variant(sale: &str) -> BTreeMap<String, (i64, i64, i64)> {
    let rows: Vec<(String, i32, i32, i64)> = sqlx::query_as(
        "SELECT v.variant_id, v.sold, v.units,
                (SELECT coalesce(sum(quantity), 0)::bigint FROM orders o
                 WHERE o.sale_id = v.sale_id AND o.variant_id = v.variant_id
                   AND o.status IN ('pending_payment', 'paid'))
         FROM sale_variants v WHERE v.sale_id = $1",
    )
    .bind(sale)
    .fetch_all(&pg().await)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(v, sold, units, orders)| (v, (sold.into(), units.into(), orders)))
        .collect()
}

/// Redis's units left of each variant (`vstock`), as the scripts count them.
async fn redis_by_variant(sale: &str) -> BTreeMap<String, i64> {
    use redis::AsyncCommands;
    let mut r = redis().await;
    r.hgetall(format!("wr:{{{sale}}}:vstock")).await.unwrap()
}

fn left(v: &Value) -> BTreeMap<String, i64> {
    serde_json::from_value(v["variants_left"].clone()).unwrap_or_default()
}

/// A buyer who wants one size and, when it is gone, takes any size still left: what a
/// shopper does with the page's picker. Returns the order's answer (or the last refusal).
async fn buy_any(app: &TestApp, sale: &str, ticket: &str, first: &str) -> (u16, Value) {
    let mut want = first.to_string();
    for _ in 0..20 {
        let res = app.checkout_variant(sale, ticket, &want).await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        match (status, body["code"].as_str()) {
            (409, Some("variant_sold_out")) => {
                match left(&body).into_iter().find(|(_, n)| *n > 0) {
                    Some((other, _)) => want = other,
                    None => return (status, body),
                }
            }
            (503, _) => continue,
            _ => return (status, body),
        }
    }
    panic!("no answer for {ticket}");
}

/// 5 sizes × 20 units, 2,000 shoppers over two instances; the 100 admitted ask for random
/// sizes, each twice at once on both instances. Per size exactly its units sell, none is
/// oversold in Redis or Postgres, and every waiting stream hears each size go.
#[tokio::test]
async fn two_thousand_shoppers_buying_random_sizes_sell_each_size_exactly() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    let sale = sized_sale(&a, 5, 20).await;
    let mut tokens = Vec::new();
    for i in 0..2000 {
        let app = if i % 2 == 0 { &a } else { &b };
        tokens.push(app.join(&sale).await.token);
    }
    // Streams of shoppers who will still be waiting, on both instances.
    let mut streams = Vec::new();
    for (i, t) in tokens[1900..1940].iter().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        let url = app.url(&format!("/api/sales/{sale}/events"));
        streams.push(open_events(&app.client, &url, t, None).await);
    }
    let heard = streams.into_iter().map(|mut s| async move {
        let mut gone = HashSet::new();
        while gone.len() < 5 {
            let e = s.next().await.expect("the stream stays open");
            if e.event == "variant_sold_out" {
                let v: Value = serde_json::from_str(&e.data).unwrap();
                gone.insert(v["variant"].as_str().unwrap().to_string());
            }
        }
        gone
    });
    let heard = tokio::spawn(async move { tokio::time::timeout(WAIT, join_all(heard)).await });

    a.admin(&sale, "open").await;
    wait_admitted(&a, &sale, 100).await;
    let mut tickets = Vec::new();
    for t in &tokens[..100] {
        tickets.push(a.ticket(&sale, t).await);
    }
    let buys = tickets.iter().enumerate().flat_map(|(i, t)| {
        let first = (38 + (i * 7919) % 5).to_string();
        [(&a, t, first.clone()), (&b, t, first)]
    });
    let answers = join_all(buys.map(|(app, t, first)| {
        let sale = &sale;
        async move { buy_any(app, sale, t, &first).await }
    }))
    .await;
    let mut orders: HashMap<String, String> = HashMap::new();
    for (i, (status, body)) in answers.iter().enumerate() {
        assert!([200, 201].contains(status), "{status}: {body}");
        let (id, variant) = (
            body["order_id"].as_str().unwrap(),
            body["variant"].as_str().unwrap(),
        );
        // Both attempts of one ticket answer with the same order.
        let prev = orders.insert(id.to_string(), variant.to_string());
        assert!(prev.is_none() || prev.as_deref() == Some(variant));
        assert_eq!(answers[i ^ 1].1["order_id"], body["order_id"]);
    }
    assert_eq!(orders.len(), 100, "one order per ticket");
    let mut per_size: BTreeMap<String, i64> = BTreeMap::new();
    for v in orders.values() {
        *per_size.entry(v.clone()).or_default() += 1;
    }
    let twenty: BTreeMap<String, i64> = (38..43).map(|s| (s.to_string(), 20)).collect();
    assert_eq!(per_size, twenty, "every size sold exactly its units");
    let zero: BTreeMap<String, i64> = (38..43).map(|s| (s.to_string(), 0)).collect();
    assert_eq!(
        redis_by_variant(&sale).await,
        zero,
        "none below zero in Redis"
    );
    let ledger: BTreeMap<String, (i64, i64, i64)> =
        (38..43).map(|s| (s.to_string(), (20, 20, 20))).collect();
    assert_eq!(
        ledger_by_variant(&sale).await,
        ledger,
        "Postgres: sold = units = orders"
    );
    let stats = b.stats(&sale).await;
    assert_eq!(
        (stats["sold"].as_i64(), stats["remaining"].as_i64()),
        (Some(100), Some(0))
    );
    assert_eq!(left(&stats), zero);

    let heard = heard
        .await
        .unwrap()
        .expect("every stream heard every size go");
    let all: HashSet<String> = (38..43).map(|s| s.to_string()).collect();
    for gone in heard {
        assert_eq!(gone, all);
    }
}

/// The refusals of a sale with variants, and of variants where a sale has none.
#[tokio::test]
async fn variant_refusals_are_clear() {
    let app = spawn_app().await;
    let sale = sized_sale(&app, 2, 1).await;
    let plain = app.create_sale(5, 1000).await;
    let t = admitted_tickets(&app, &sale, 2).await;
    let p = admitted_tickets(&app, &plain, 1).await;
    let code = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        (
            status,
            body["code"].as_str().unwrap_or_default().to_string(),
            body,
        )
    };
    let (s, c, _) = code(app.checkout_variant(&sale, &t[0], "47").await).await;
    assert_eq!((s, c.as_str()), (400, "unknown_variant"));
    let (s, c, _) = code(app.checkout(&sale, &t[0], 1).await).await;
    assert_eq!(
        (s, c.as_str()),
        (400, "unknown_variant"),
        "a sized sale needs a size"
    );
    let (s, c, _) = code(app.checkout_variant(&sale, &t[0], "Not A Size").await).await;
    assert_eq!((s, c.as_str()), (400, "invalid_variant"));
    let (s, c, _) = code(app.checkout_variant(&plain, &p[0], "38").await).await;
    assert_eq!(
        (s, c.as_str()),
        (400, "unknown_variant"),
        "a plain sale has no sizes"
    );
    // None of those spent a ticket.
    assert_eq!(app.checkout_variant(&sale, &t[0], "38").await.status(), 201);
    let (s, c, body) = code(app.checkout_variant(&sale, &t[1], "38").await).await;
    assert_eq!((s, c.as_str()), (409, "variant_sold_out"));
    assert_eq!(
        left(&body),
        BTreeMap::from([("38".into(), 0), ("39".into(), 1)])
    );
    assert_eq!(app.checkout_variant(&sale, &t[1], "39").await.status(), 201);

    let bad = [
        json!({"variants": [{"id": "38", "name": "a", "units": 1}, {"id": "38", "name": "b", "units": 1}]}),
        json!({"variants": [{"id": "Size 38", "name": "a", "units": 1}]}),
        json!({"variants": [{"id": "38", "name": "", "units": 1}]}),
        json!({"variants": [{"id": "38", "name": "a", "units": -1}]}),
        json!({"variants": [{"id": "38", "name": "a", "units": 1}], "units": 2}),
        json!({"variants": (0..101).map(|i| json!({"id": i.to_string(), "name": "s", "units": 1})).collect::<Vec<_>>()}),
    ];
    for extra in bad {
        let mut body = json!({"id": unique("v"), "name": "bad", "price_cents": 100});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = app.create_sale_json(body.clone()).await;
        let status = res.status().as_u16();
        assert!([400].contains(&status), "{status} for {body}");
    }
}

/// A PATCH restocks one size (grow only): the waiting shopper is admitted again and buys it;
/// shrinking a size or changing the sizes is refused.
#[tokio::test]
async fn restocking_one_size_readmits() {
    let app = spawn_app().await;
    let sale = sized_sale(&app, 2, 1).await;
    let tokens: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(app.join(&sale).await.token);
        }
        v
    };
    app.admin(&sale, "open").await;
    for (t, size) in tokens[..2].iter().zip(["38", "39"]) {
        let ticket = app.ticket(&sale, t).await;
        assert_eq!(
            app.checkout_variant(&sale, &ticket, size).await.status(),
            201
        );
    }
    let st = app.status(&sale, &tokens[2]).await;
    assert_eq!(st["status"], "waitlisted", "every unit held: {st}");

    let more = json!({"variants": [{"id": "38", "name": "EU 38", "units": 2},
                                   {"id": "39", "name": "EU 39", "units": 1}]});
    let stats = patch_ok(&app, &sale, more).await;
    assert_eq!(
        (stats["units"].as_i64(), stats["remaining"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        left(&stats),
        BTreeMap::from([("38".into(), 1), ("39".into(), 0)])
    );
    let ticket = app.ticket(&sale, &tokens[2]).await;
    let res = app.checkout_variant(&sale, &ticket, "39").await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        app.checkout_variant(&sale, &ticket, "38").await.status(),
        201
    );
    assert_eq!(
        ledger_by_variant(&sale).await,
        BTreeMap::from([("38".into(), (2, 2, 2)), ("39".into(), (1, 1, 1))])
    );

    let patch = |body: Value| {
        let app = &app;
        let sale = &sale;
        async move {
            let res = app
                .client
                .patch(app.url(&format!("/api/admin/sales/{sale}")))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let v: Value = res.json().await.unwrap();
            (status, v["code"].as_str().unwrap_or_default().to_string())
        }
    };
    let shrink = json!({"variants": [{"id": "38", "name": "EU 38", "units": 1},
                                     {"id": "39", "name": "EU 39", "units": 1}]});
    assert_eq!(patch(shrink).await, (409, "units_cannot_shrink".into()));
    let other = json!({"variants": [{"id": "38", "name": "EU 38", "units": 2}]});
    assert_eq!(patch(other).await, (400, "invalid_sale".into()));
    assert_eq!(
        patch(json!({"units": 10})).await,
        (400, "invalid_sale".into())
    );
}

/// A failed payment gives its units back to its own size, which can be bought again.
#[tokio::test]
async fn a_failed_payment_gives_back_to_its_size() {
    let app = spawn_app().await;
    let sale = sized_sale(&app, 2, 1).await;
    let t = admitted_tickets(&app, &sale, 2).await;
    let res = app.checkout_variant(&sale, &t[0], "39").await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    app.pay(order["order_id"].as_str().unwrap(), "failed").await;
    let back = eventually(WAIT, || async {
        let l = left(&app.stats(&sale).await);
        (l.get("39") == Some(&1)).then_some(l)
    })
    .await;
    assert!(back.is_some(), "size 39 back in stock");
    assert_eq!(app.checkout_variant(&sale, &t[1], "39").await.status(), 201);
    assert_eq!(
        ledger_by_variant(&sale).await,
        BTreeMap::from([("38".into(), (0, 1, 0)), ("39".into(), (1, 1, 1))])
    );
}

/// Redis wiped mid-sale: the rebuild counts each size's stock from the ledger.
#[tokio::test]
async fn a_wiped_sale_rebuilds_each_sizes_stock_from_the_ledger() {
    let app = spawn_app().await;
    let sale = sized_sale(&app, 3, 4).await;
    let tickets = admitted_tickets(&app, &sale, 6).await;
    for (t, size) in tickets.iter().zip(["38", "38", "38", "39", "40", "40"]) {
        assert_eq!(app.checkout_variant(&sale, t, size).await.status(), 201);
    }
    let before = redis_by_variant(&sale).await;
    assert_eq!(
        before,
        BTreeMap::from([("38".into(), 1), ("39".into(), 3), ("40".into(), 2)])
    );
    wipe_sale_keys(&sale).await;
    let stats = app.stats(&sale).await;
    assert_eq!(left(&stats), before, "rebuilt per size from the ledger");
    assert_eq!(redis_by_variant(&sale).await, before);
    assert_eq!(stats["remaining"], 6);
    // The settle that ends the rebuilt sale's unsettled state counts them the same way.
    let settled = app.admin(&sale, "reconcile").await;
    assert_eq!(settled["remaining"], 6, "{settled}");
    assert_eq!(redis_by_variant(&sale).await, before);
}

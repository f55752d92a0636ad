use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::common::*;

/// The payment of this checkout's order fails, as recorded in the ledger alone (Redis is not
/// told: the caller decides when).
async fn fail_in_ledger(app: &TestApp, order: &Value) -> waitroom::ledger::PaymentOutcome {
    let id = order["order_id"].as_str().unwrap().parse().unwrap();
    let outcome = app
        .state
        .ledger
        .apply_payment(id, &unique("ev"), false)
        .await;
    outcome.unwrap().expect("the order is in the ledger")
}

/// A 3-unit sale, closed again after one shopper bought one unit: (sale, buyer, order).
async fn one_buyer(app: &TestApp) -> (String, Joined, Value) {
    let sale = app.create_sale(3, 1000).await;
    let buyer = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &buyer.token).await;
    app.admin(&sale, "close").await;
    let order: Value = app.checkout(&sale, &ticket, 1).await.json().await.unwrap();
    (sale, buyer, order)
}

/// Joins `n` shoppers, opens the sale and returns their admission tickets.
pub async fn admitted_tickets(app: &TestApp, sale: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(app.join(sale).await.token);
    }
    app.admin(sale, "open").await;
    join_all(tokens.iter().map(|t| app.ticket(sale, t))).await
}

async fn orders_in_postgres(app: &TestApp, sale: &str) -> (i64, i64) {
    app.state.ledger.orders_count(sale).await.unwrap()
}

#[tokio::test]
async fn twenty_tickets_asking_for_three_twice_at_once_sell_exactly_six_orders() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(20, 1000, serde_json::json!({"max_per_order": 3}))
        .await;
    let tickets = admitted_tickets(&app, &sale, 20).await;
    let attempts = tickets
        .iter()
        .flat_map(|t| [t, t])
        .map(|t| app.checkout(&sale, t, 3));
    let responses = join_all(attempts).await;
    let mut by_ticket: std::collections::HashMap<usize, Vec<(u16, Value)>> = Default::default();
    for (i, res) in responses.into_iter().enumerate() {
        let status = res.status().as_u16();
        by_ticket
            .entry(i / 2)
            .or_default()
            .push((status, res.json().await.unwrap()));
    }
    let mut orders = std::collections::HashSet::new();
    for answers in by_ticket.values() {
        let ids: Vec<&str> = answers
            .iter()
            .filter(|(s, _)| *s == 201 || *s == 200)
            .map(|(_, v)| v["order_id"].as_str().unwrap())
            .collect();
        // One order per ticket: both answers name the same order, or neither bought.
        if let Some(first) = ids.first() {
            assert!(ids.iter().all(|i| i == first), "one ticket made two orders");
            orders.insert(first.to_string());
        }
        for (s, v) in answers {
            assert!([200, 201, 409].contains(s), "unexpected answer {s}: {v}");
        }
    }
    assert_eq!(orders.len(), 6, "20 units / 3 per order = 6 orders");
    let stats = app.stats(&sale).await;
    assert_eq!(stats["remaining"], 2);
    assert_eq!(stats["sold"], 18);
    assert_eq!(orders_in_postgres(&app, &sale).await, (6, 18));
    assert_eq!(
        stats["sold"].as_i64().unwrap() + stats["remaining"].as_i64().unwrap(),
        20
    );
}

#[tokio::test]
async fn two_thousand_concurrent_checkouts_on_two_instances_sell_exactly_one_hundred() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    let sale = a.create_sale(100, 100_000).await;
    // 400 admitted shoppers (units bound the room: admit in waves as tickets are used).
    let mut tokens = Vec::new();
    for _ in 0..400 {
        tokens.push(a.join(&sale).await.token);
    }
    a.admin(&sale, "open").await;
    let admitted = eventually(WAIT, || async {
        let admitted = a.stats(&sale).await["admitted_total"].as_i64().unwrap();
        (admitted >= 100).then_some(())
    })
    .await;
    assert!(admitted.is_some(), "not even 100 admitted");
    // Later ticks find no units left to admit against.
    ticks_after(&sale, 3).await;
    let mut tickets = Vec::new();
    for t in &tokens {
        let s = a.status(&sale, t).await;
        if let Some(ticket) = s["ticket"].as_str() {
            tickets.push(ticket.to_string());
        }
    }
    assert_eq!(tickets.len(), 100, "admission is bounded by units left");
    // 2,000 attempts: each ticket 20 times, spread over both instances, all at once.
    let attempts = (0..2000).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.checkout(&sale, &tickets[i % tickets.len()], 1)
    });
    let responses = join_all(attempts).await;
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for res in responses {
        let status = res.status().as_u16();
        assert!([200, 201].contains(&status), "status {status}");
        if status == 201 {
            created += 1;
        }
        let v: Value = res.json().await.unwrap();
        ids.insert(v["order_id"].as_str().unwrap().to_string());
    }
    assert_eq!(created, 100);
    assert_eq!(ids.len(), 100);
    assert_eq!(orders_in_postgres(&a, &sale).await, (100, 100));
    let stats = b.stats(&sale).await;
    assert_eq!(sold_remaining(&stats), (Some(100), Some(0)));
    assert_eq!(stats["sold_out"], true);
    // Everyone still waiting hears it: joining and checkout both say sold out.
    let res = a.join_raw(&sale, None).await;
    assert_eq!(res.status(), 409);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "sold_out");
    assert_eq!(a.status(&sale, &tokens[399]).await["status"], "sold_out");
}

#[tokio::test]
async fn refusals_are_clear() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(3, 1000, serde_json::json!({"max_per_order": 2}))
        .await;
    let other = app.create_sale(3, 1000).await;
    let j = app.join(&sale).await;
    let extra = app.join(&sale).await;
    app.admin(&sale, "open").await;
    let ticket = app.ticket(&sale, &j.token).await;
    let code = |res: reqwest::Response| async move {
        (
            res.status().as_u16(),
            res.json::<Value>().await.unwrap()["code"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    assert_eq!(
        code(app.checkout(&sale, "garbage", 1).await).await,
        (401, "invalid_token".into())
    );
    assert_eq!(
        code(app.checkout(&sale, &j.token, 1).await).await,
        (403, "wrong_token_type".into())
    );
    assert_eq!(
        code(app.checkout(&other, &ticket, 1).await).await,
        (403, "wrong_sale".into())
    );
    assert_eq!(
        code(app.checkout(&sale, &ticket, 3).await).await,
        (400, "invalid_quantity".into())
    );
    assert_eq!(
        code(app.checkout(&sale, &ticket, 0).await).await,
        (400, "invalid_quantity".into())
    );
    let res = app.checkout(&sale, &ticket, 2).await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    assert_eq!(order["quantity"], 2);
    assert_eq!(order["amount_cents"], 5000);
    assert_eq!(order["status"], "pending_payment");
    let hold = order["hold_expires_at"].as_i64().expect("unix ms");
    let ten_min = chrono::Utc::now().timestamp_millis() + 600_000;
    assert!(
        (ten_min - hold).abs() < 10_000,
        "default hold is 10 minutes"
    );
    // One left; the next shopper asks for two.
    let t2 = app.ticket(&sale, &extra.token).await;
    assert_eq!(
        code(app.checkout(&sale, &t2, 2).await).await,
        (409, "insufficient_stock".into())
    );
    assert_eq!(app.checkout(&sale, &t2, 1).await.status(), 201);
    assert_eq!(app.status(&sale, &j.token).await["status"], "purchased");
    // A returning shopper's join answers as /status does, with the order.
    let back: Value = app
        .join_raw(&sale, Some(&j.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(back["status"], "purchased");
    assert_eq!(back["order_id"], order["order_id"]);
}

#[tokio::test]
async fn sales_come_back_from_postgres_after_their_redis_keys_are_lost() {
    let app = spawn_app().await;
    let sale = app.create_sale(10, 1000).await;
    let tickets = admitted_tickets(&app, &sale, 4).await;
    for t in &tickets {
        assert_eq!(app.checkout(&sale, t, 1).await.status(), 201);
    }
    let before = app.stats(&sale).await;
    app.handle.stop().await;
    wipe_sale_keys(&sale).await;
    let app = spawn_app().await;
    let after = app.stats(&sale).await;
    for k in ["units", "sold", "remaining", "price_cents", "rate_per_sec"] {
        assert_eq!(before[k], after[k], "{k}");
    }
    assert_eq!(after["remaining"], 6);
    assert_eq!(after["open"], false, "a lost open flag means closed");
}

/// Redis loses a sale mid-sale and the same instance keeps running: the first request that
/// needs it rebuilds it from Postgres, with its buyers and lapsed shoppers.
#[tokio::test]
async fn a_lost_sale_is_rebuilt_on_first_use_knowing_who_bought_and_who_lapsed() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(10, 1000, serde_json::json!({"max_per_order": 2}))
        .await;
    let (a, b, c) = (
        app.join(&sale).await,
        app.join(&sale).await,
        app.join(&sale).await,
    );
    app.admin(&sale, "open").await;
    let (ta, tb, tc) = (
        app.ticket(&sale, &a.token).await,
        app.ticket(&sale, &b.token).await,
        app.ticket(&sale, &c.token).await,
    );
    app.admin(&sale, "close").await;
    let waiting = app.join(&sale).await;
    let order_a: Value = app.checkout(&sale, &ta, 2).await.json().await.unwrap();
    assert_eq!(app.checkout(&sale, &tb, 1).await.status(), 201);
    // C's payment fails in the ledger (Redis is told later, or never: it is about to be lost).
    let order_c: Value = app.checkout(&sale, &tc, 1).await.json().await.unwrap();
    let outcome = fail_in_ledger(&app, &order_c).await;
    assert_eq!(outcome.order.status, "failed");

    wipe_sale_keys(&sale).await;

    // The waiting shopper's status rebuilds the sale and restores the place.
    let st = app.status(&sale, &waiting.token).await;
    assert_eq!(
        (st["status"].as_str(), st["position"].as_i64()),
        (Some("closed"), Some(1))
    );
    let st = app.status(&sale, &a.token).await;
    assert_eq!(st["status"], "purchased");
    assert_eq!(st["order_id"], order_a["order_id"]);
    let again = app.checkout(&sale, &ta, 2).await;
    assert_eq!(again.status(), 200, "a buyer retrying gets the same order");
    assert_eq!(
        again.json::<Value>().await.unwrap()["order_id"],
        order_a["order_id"]
    );
    // The lapsed shopper cannot rejoin at the front.
    let rejoin = app.join_raw(&sale, Some(&c.token)).await;
    assert_eq!(rejoin.status(), 201);
    assert_eq!(rejoin.json::<Value>().await.unwrap()["status"], "expired");
    let stats = app.stats(&sale).await;
    assert_eq!(sold_remaining(&stats), (Some(3), Some(7)));
    assert_eq!(orders_in_postgres(&app, &sale).await, (2, 3));

    // Reconcile on demand repairs a stock Redis got wrong.
    let mut r = redis().await;
    let _: () = redis::AsyncCommands::set(&mut r, format!("wr:{{{sale}}}:stock"), 99)
        .await
        .unwrap();
    let fixed = app.admin(&sale, "reconcile").await;
    assert_eq!(sold_remaining(&fixed), (Some(3), Some(7)));
}

/// An order Redis accepted just before it lost the sale can commit after the rebuild read the
/// ledger: the rebuilt stock then counts that unit as unsold. Until the sale is settled, a
/// release of such an order must not add the unit a second time; the settling reconcile
/// (early reconciles do not settle) sets stock from the ledger.
#[tokio::test]
async fn a_rebuilt_sale_leaves_releases_to_the_reconcile_that_settles_it() {
    let app = spawn_app().await;
    let (sale, buyer, order) = one_buyer(&app).await;

    wipe_sale_keys(&sale).await;
    assert_eq!(
        app.stats(&sale).await["remaining"],
        2,
        "rebuilt on first use"
    );
    // As if the rebuild had read the ledger before this order committed.
    let mut r = redis().await;
    let stock = format!("wr:{{{sale}}}:stock");
    let _: () = redis::AsyncCommands::set(&mut r, &stock, 3).await.unwrap();
    let _: () = redis::AsyncCommands::hdel(&mut r, format!("wr:{{{sale}}}:used"), &buyer.queue_id)
        .await
        .unwrap();

    let released = fail_in_ledger(&app, &order).await.released.unwrap();
    let left = app.state.store.release(&sale, &released.orders).await;
    assert_eq!(left.unwrap(), 3, "never more than the units there are");
    app.admin(&sale, "reconcile").await;
    let unsettled = format!("wr:{{{sale}}}:unsettled");
    let marked: bool = redis::AsyncCommands::exists(&mut r, &unsettled)
        .await
        .unwrap();
    assert!(
        marked,
        "a reconcile right after the rebuild does not settle it"
    );
    let settled = eventually(waitroom::recovery::SETTLE_AFTER + WAIT, || async {
        let marked: bool = redis::AsyncCommands::exists(&mut redis().await, &unsettled)
            .await
            .ok()?;
        (!marked).then_some(())
    })
    .await;
    assert!(settled.is_some(), "a sweeper settles the sale");
    let stats = app.stats(&sale).await;
    assert_eq!(sold_remaining(&stats), (Some(0), Some(3)));
}

/// An order that commits after a rebuild read its snapshot leaves Redis with no trace of the
/// buyer. The ledger is asked before a place is restored: the buyer hears they bought instead
/// of jumping to the front of the line, and when the order fails its unit comes back once.
#[tokio::test]
async fn a_buyer_redis_forgot_is_found_in_the_ledger_not_put_back_in_line() {
    let app = spawn_app().await;
    let (sale, buyer, order) = one_buyer(&app).await;
    let other = app.join(&sale).await;
    let key = |name: &str| format!("wr:{{{sale}}}:{name}");
    let mut r = redis().await;
    let _: () = redis::AsyncCommands::hdel(&mut r, key("used"), &buyer.queue_id)
        .await
        .unwrap();
    // Both lost with Redis, and the sale (as Redis now sees it) sold out.
    let _: () = redis::AsyncCommands::zrem(&mut r, key("queue"), &other.queue_id)
        .await
        .unwrap();
    let _: () = redis::AsyncCommands::set(&mut r, key("stock"), 0)
        .await
        .unwrap();

    let rejoin = app.join_raw(&sale, Some(&buyer.token)).await;
    assert_eq!(rejoin.status(), 201);
    let rejoin: Value = rejoin.json().await.unwrap();
    assert_eq!(
        (&rejoin["status"], &rejoin["order_id"]),
        (&json!("purchased"), &order["order_id"])
    );
    assert_eq!(app.status(&sale, &buyer.token).await["status"], "purchased");
    assert_eq!(app.status(&sale, &other.token).await["status"], "sold_out");
    let _: () = redis::AsyncCommands::set(&mut r, key("stock"), 2)
        .await
        .unwrap();
    let stats = app.stats(&sale).await;
    assert_eq!(
        (stats["queue_len"].as_i64(), stats["remaining"].as_i64()),
        (Some(0), Some(2))
    );

    let outcome = fail_in_ledger(&app, &order).await;
    let released = outcome.released.expect("a failed order releases its unit");
    for _ in 0..2 {
        let left = app.state.store.release(&sale, &released.orders).await;
        assert_eq!(left.unwrap(), 3, "the unit comes back once");
    }
    assert_eq!(app.status(&sale, &buyer.token).await["status"], "expired");
}

/// An order Postgres has committed but Redis still lists as pending (its request has not yet
/// cleared it) is counted once by a reconcile: in `sold`, not again as unsynced.
#[tokio::test]
async fn reconcile_counts_an_order_committed_but_still_pending_once() {
    let app = spawn_app().await;
    let (sale, buyer, order) = one_buyer(&app).await;
    let mut r = redis().await;
    let _: () =
        redis::AsyncCommands::sadd(&mut r, format!("wr:{{{sale}}}:pending"), &buyer.queue_id)
            .await
            .unwrap();
    let store = &app.state.store;
    let settle = Duration::from_secs(15);
    let unknown = std::collections::HashMap::new();
    let stock = store.settle_sale(&sale, 3, 1, &[], &unknown, settle).await;
    assert_eq!(
        stock.unwrap(),
        1,
        "not known to be recorded: counted as unsynced too"
    );
    let id = order["order_id"].as_str().unwrap().parse().unwrap();
    let recorded = std::collections::HashMap::from([(buyer.queue_id.clone(), id)]);
    let stock = store.settle_sale(&sale, 3, 1, &[], &recorded, settle).await;
    assert_eq!(stock.unwrap(), 2, "recorded: counted once");
}

#[tokio::test]
async fn after_sold_out_the_herd_is_refused_but_a_buyer_retrying_gets_the_order() {
    let app = spawn_app().await;
    let sale = app.create_sale(1, 1000).await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        tokens.push(app.join(&sale).await.token);
    }
    app.admin(&sale, "open").await;
    let buyer = app.ticket(&sale, &tokens[0]).await;
    let first = app.checkout(&sale, &buyer, 1).await;
    assert_eq!(first.status(), 201);
    let order: Value = first.json().await.unwrap();
    let loser = crate::common::eventually(WAIT, || async {
        let mut r = crate::common::redis().await;
        let qid = waitroom::tokens::unverified_subject(&tokens[1]).unwrap();
        // Admit the second shopper by hand: units bound admission, so the ticker will not.
        let exp = chrono::Utc::now().timestamp_millis() + 60_000;
        let _: () =
            redis::AsyncCommands::zadd(&mut r, format!("wr:{{{sale}}}:admitted"), &qid, exp)
                .await
                .ok()?;
        app.status(&sale, &tokens[1]).await["ticket"]
            .as_str()
            .map(str::to_string)
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let res = app.checkout(&sale, &loser, 1).await;
        assert_eq!(res.status(), 409);
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "sold_out");
        let again = app.checkout(&sale, &buyer, 1).await;
        assert_eq!(again.status(), 200);
        assert_eq!(
            again.json::<Value>().await.unwrap()["order_id"],
            order["order_id"]
        );
    }
    // Once the instance knows the buyers, garbage in the herd is refused as sold out too,
    // before any signature check.
    let refused = crate::common::eventually(WAIT, || async {
        (app.checkout(&sale, "garbage", 1).await.status() == 409).then_some(())
    })
    .await;
    assert!(refused.is_some());
}

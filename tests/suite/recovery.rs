//! A sale Redis lost mid-sale: rebuilt from the ledger on first use, settled later, and no
//! buyer, lapse or release counted twice across it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::checkout::{admitted_tickets, orders_in_postgres};
use waitroom_testkit::*;

/// The payment of this checkout's order fails, as recorded in the ledger alone (Redis is not
/// told: the caller decides when).
async fn fail_in_ledger(app: &TestApp, order: &Value) -> waitroom::infra::ledger::PaymentOutcome {
    let id = order["order_id"].as_str().unwrap().parse().unwrap();
    let event = waitroom::core::domain::EventId::parse(unique("ev")).unwrap();
    let outcome = app.state.ledger.apply_payment(id, &event, false).await;
    match outcome.unwrap() {
        waitroom::infra::ledger::Payment::Applied(outcome) => *outcome,
        _ => panic!("the order is in the ledger"),
    }
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
    assert_eq!(after["open"], true, "open as the ledger kept it");
}

/// What the sweeper's watch does, called here on one sale so no other test's sale is touched:
/// an open switch flipped with redis-cli reaches the ledger; a stock ahead of the ledger (as a
/// Redis back from an AOF missing its last order has) or a Redis whose `run_id` changed holds
/// the sale, checkouts answering 503, until a settle reconciles it with the ledger.
#[tokio::test]
async fn redis_behind_the_ledger_holds_the_sale_until_it_is_settled() {
    let app = spawn_app_with(|c| {
        c.loops.sweep = Duration::from_secs(3600);
        c.loops.settle_after = Duration::from_millis(300);
    })
    .await;
    let s = &app.state;
    let sale = app.create_sale(10, 1000).await;
    let tickets = admitted_tickets(&app, &sale, 3).await;
    assert_eq!(app.checkout(&sale, &tickets[0], 1).await.status(), 201);
    let ids = [sale_id(&sale)];
    // The run_id the sweeper would remember between sweeps (its own loop is off here).
    let mut seen = None;
    let mut r = redis().await;
    let key = |name: &str| format!("wr:{{{sale}}}:{name}");
    let ledger_open = || async { s.ledger.sale(&sale_id(&sale)).await.unwrap().unwrap().open };

    let _: () = redis::AsyncCommands::del(&mut r, key("open"))
        .await
        .unwrap();
    waitroom::flows::recovery::watch(s, &mut seen, &ids)
        .await
        .unwrap();
    assert!(
        !ledger_open().await,
        "closed with redis-cli: closed in the ledger"
    );
    let _: () = redis::AsyncCommands::set(&mut r, key("open"), "1")
        .await
        .unwrap();
    waitroom::flows::recovery::watch(s, &mut seen, &ids)
        .await
        .unwrap();
    assert!(
        ledger_open().await,
        "opened with redis-cli: open in the ledger"
    );

    let held = |ticket: &str| {
        let (app, sale, ticket) = (&app, &sale, ticket.to_string());
        async move {
            let res = app.checkout(sale, &ticket, 1).await;
            assert_eq!(res.status(), 503, "held until reconciled");
            assert!(res.headers().contains_key("retry-after"));
        }
    };
    let settle = || async {
        let settled = eventually(WAIT, || async {
            waitroom::flows::recovery::settle_stock(s, &sale_id(&sale))
                .await
                .unwrap();
            let marked: bool = redis::AsyncCommands::exists(&mut redis().await, key("unsettled"))
                .await
                .unwrap();
            (!marked).then_some(())
        })
        .await;
        assert!(settled.is_some(), "settled once settle_after has passed");
    };

    let _: () = redis::AsyncCommands::incr(&mut r, key("stock"), 1)
        .await
        .unwrap();
    waitroom::flows::recovery::watch(s, &mut seen, &ids)
        .await
        .unwrap();
    held(&tickets[1]).await;
    settle().await;
    assert_eq!(app.stats(&sale).await["remaining"], 9, "the ledger's stock");
    assert_eq!(app.checkout(&sale, &tickets[1], 1).await.status(), 201);

    seen = Some("another redis".into());
    waitroom::flows::recovery::watch(s, &mut seen, &ids)
        .await
        .unwrap();
    held(&tickets[2]).await;
    settle().await;
    assert_eq!(app.checkout(&sale, &tickets[2], 1).await.status(), 201);
    assert_eq!(sold_remaining(&app.stats(&sale).await), (Some(3), Some(7)));
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
    // The shopper whose payment failed cannot rejoin at the front, and reads why.
    let rejoin = app.join_raw(&sale, Some(&c.token)).await;
    assert_eq!(rejoin.status(), 201);
    assert_eq!(rejoin.json::<Value>().await.unwrap()["status"], "failed");
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
    let left = app
        .state
        .store
        .release(&sale_id(&sale), &released.orders)
        .await;
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
    let settled = eventually(app.state.config.loops.settle_after + WAIT, || async {
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
    // Both lost with Redis, and the sale (as Redis now sees it) sold out, nothing held.
    let _: () = redis::AsyncCommands::zrem(&mut r, key("queue"), &other.queue_id)
        .await
        .unwrap();
    let _: () = redis::AsyncCommands::set(&mut r, key("stock"), 0)
        .await
        .unwrap();
    let _: () = redis::AsyncCommands::set(&mut r, key("held"), 0)
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
        let left = app
            .state
            .store
            .release(&sale_id(&sale), &released.orders)
            .await;
        assert_eq!(left.unwrap(), 3, "the unit comes back once");
    }
    assert_eq!(app.status(&sale, &buyer.token).await["status"], "failed");
}

/// An order Postgres has committed but Redis still lists as pending (its request has not yet
/// cleared it) is counted once by a reconcile: in `sold`, not again as unsynced.
#[tokio::test]
async fn reconcile_counts_an_order_committed_but_still_pending_once() {
    let app = spawn_app().await;
    let (sale, buyer, _) = one_buyer(&app).await;
    let mut r = redis().await;
    let _: () =
        redis::AsyncCommands::sadd(&mut r, format!("wr:{{{sale}}}:pending"), &buyer.queue_id)
            .await
            .unwrap();
    let stock = waitroom::flows::recovery::settle_stock(&app.state, &sale_id(&sale)).await;
    assert_eq!(
        stock.unwrap(),
        Some(2),
        "in the ledger's sold, not counted again as unsynced"
    );
}

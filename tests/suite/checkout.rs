use futures_util::future::join_all;
use serde_json::Value;

use waitroom_testkit::*;

/// Joins `n` shoppers, opens the sale and returns their admission tickets.
pub async fn admitted_tickets(app: &TestApp, sale: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(app.join(sale).await.token);
    }
    app.admin(sale, "open").await;
    join_all(tokens.iter().map(|t| app.ticket(sale, t))).await
}

/// Waits until at least `n` shoppers of the sale have been admitted.
pub async fn wait_admitted(app: &TestApp, sale: &str, n: i64) {
    let admitted = eventually(WAIT, || async {
        let total = app.stats(sale).await["admitted_total"].as_i64().unwrap();
        (total >= n).then_some(())
    })
    .await;
    assert!(admitted.is_some(), "not even {n} admitted");
}

pub async fn orders_in_postgres(app: &TestApp, sale: &str) -> (i64, i64) {
    app.state.ledger.orders_count(&sale_id(sale)).await.unwrap()
}

/// Admission counts units: 20 units at up to 3 per order let 7 shoppers in. Each sends two
/// checkouts for 3 at once; six orders of 3 are sold and the seventh hears 409 (2 left).
#[tokio::test]
async fn seven_tickets_asking_for_three_twice_at_once_sell_exactly_six_orders() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(20, 1000, serde_json::json!({"max_per_order": 3}))
        .await;
    let tickets = admitted_tickets(&app, &sale, 7).await;
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
    wait_admitted(&a, &sale, 100).await;
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
    // A 503 is the server saying "retry" (a shared, loaded Redis can time out): a client
    // retries it, and the outcome that counts is each ticket's final answer.
    let attempts = (0..2000).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let (sale, ticket) = (&sale, &tickets[i % tickets.len()]);
        async move {
            let mut res = app.checkout(sale, ticket, 1).await;
            for _ in 0..20 {
                if res.status() != 503 {
                    break;
                }
                res = app.checkout(sale, ticket, 1).await;
            }
            res
        }
    });
    let responses = join_all(attempts).await;
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for res in responses {
        let status = res.status().as_u16();
        if ![200, 201].contains(&status) {
            panic!("status {status}: {}", res.text().await.unwrap_or_default());
        }
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
    // Every unit is held for payment, so the line is a waitlist: a newcomer joins it behind
    // everyone still waiting, and those waiting read where they stand on it.
    let res = a.join_raw(&sale, None).await;
    assert_eq!(res.status(), 201);
    let joined: Value = res.json().await.unwrap();
    assert_eq!(joined["status"], "waitlisted");
    let last = a.status(&sale, &tokens[399]).await;
    assert_eq!(
        (last["status"].as_str(), last["held"].as_i64()),
        (Some("waitlisted"), Some(100))
    );
    assert!(joined["position"].as_i64() > last["position"].as_i64());
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
    let loser = waitroom_testkit::eventually(WAIT, || async {
        let mut r = waitroom_testkit::redis().await;
        let qid = waitroom::infra::tokens::unverified_subject(&tokens[1]).unwrap();
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
    let refused = waitroom_testkit::eventually(WAIT, || async {
        (app.checkout(&sale, "garbage", 1).await.status() == 409).then_some(())
    })
    .await;
    assert!(refused.is_some());
}

/// A ticket retried at once reaches the group writer twice with the same order, in one batch
/// or in two batches committing at once: either way it is one order, not a failed batch (the
/// order id is the primary key, which a conflict on the ticket alone does not cover).
#[tokio::test]
async fn the_same_order_twice_at_the_ledger_is_one_order() {
    let app = spawn_app().await;
    let sale = app.create_sale(100, 1000).await;
    for i in 0..20 {
        let ticket = format!("t{i}");
        // Made now: an old `at` would have its hold lapse under the sweeper mid-test.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let rec =
            waitroom::core::domain::OrderRecord::at_ms(uuid::Uuid::now_v7(), 1, now_ms).unwrap();
        // The first copy goes to one writer; the next ones arrive while it commits.
        let (ledger, sale2, ticket2, rec2) = (
            app.state.ledger.clone(),
            sale.clone(),
            ticket.clone(),
            rec.clone(),
        );
        let first = tokio::spawn(async move {
            ledger
                .record(&sale_id(&sale2), &queue_id(&ticket2), &rec2)
                .await
        });
        tokio::task::yield_now().await;
        let id = sale_id(&sale);
        let ticket = queue_id(&ticket);
        let copies = (0..3).map(|_| app.state.ledger.record(&id, &ticket, &rec));
        let mut all = join_all(copies).await;
        all.push(first.await.unwrap());
        for recorded in all {
            match recorded {
                Ok(waitroom::infra::ledger::Recorded::Order(o)) => assert_eq!(o.id, rec.order_id),
                other => panic!("copy of an order not recorded: {other:?}"),
            }
        }
    }
    assert_eq!(orders_in_postgres(&app, &sale).await, (20, 20));
}

use futures_util::future::join_all;
use redis::AsyncCommands;
use serde_json::{json, Value};
use waitroom::core::domain::QueueId;
use waitroom::infra::store::{NewPlace, Place};

use waitroom_testkit::*;

#[tokio::test]
async fn forty_shoppers_get_positions_one_to_forty_and_keep_them_on_rejoin() {
    let app = spawn_app().await;
    let sale = app.create_sale(100, 10).await;
    let first = app.join_raw(&sale, None).await;
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        first["status"], "closed",
        "joining before the sale opens is allowed"
    );
    assert_eq!(first["position"], 1);
    let mut joined = vec![];
    for i in 2..=40 {
        let j = app.join(&sale).await;
        assert_eq!(j.position, i, "join {i}");
        joined.push(j);
    }
    // Re-joining with a token keeps the place; it is not a new place at the back.
    for (i, j) in joined.iter().enumerate().rev() {
        let again = app.join_with(&sale, Some(&j.token)).await;
        assert_eq!(again.position, i as i64 + 2);
        assert_eq!(again.queue_id, j.queue_id);
    }
    let s = app.status(&sale, &joined[8].token).await;
    assert_eq!(s["position"], 10);
    assert_eq!(s["status"], "closed", "waiting while the sale is not open");
    assert_eq!(app.stats(&sale).await["queue_len"], 40);
    // Read all at once, the reads share round trips (store/reads.rs): each still gets its own.
    let all = join_all(joined.iter().map(|j| app.status(&sale, &j.token))).await;
    let positions: Vec<i64> = all
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, (2..=40).collect::<Vec<i64>>());
    assert!(all.iter().all(|s| s["queue_len"] == 40));
}

#[tokio::test]
async fn a_lost_queue_is_rebuilt_from_tokens_in_join_order() {
    let app = spawn_app().await;
    let sale = app.create_sale(100, 10).await;
    let mut joined = Vec::new();
    for _ in 0..12 {
        joined.push(app.join(&sale).await);
    }
    let mut r = redis().await;
    let _: () = r.del(format!("wr:{{{sale}}}:queue")).await.unwrap();
    // Shoppers come back in a scrambled order; the line comes back in the original one.
    let order = [7, 2, 11, 0, 5, 9, 1, 3, 10, 4, 8, 6];
    for &i in &order {
        app.join_with(&sale, Some(&joined[i].token)).await;
    }
    for (i, j) in joined.iter().enumerate() {
        assert_eq!(app.status(&sale, &j.token).await["position"], i as i64 + 1);
    }
    // A newcomer still goes to the back.
    assert_eq!(app.join(&sale).await.position, 13);
}

#[tokio::test]
async fn status_restores_a_lost_place_by_itself() {
    let app = spawn_app().await;
    let sale = app.create_sale(100, 10).await;
    let a = app.join(&sale).await;
    let b = app.join(&sale).await;
    let mut r = redis().await;
    let _: () = r.del(format!("wr:{{{sale}}}:queue")).await.unwrap();
    assert_eq!(app.status(&sale, &b.token).await["position"], 1);
    assert_eq!(
        app.status(&sale, &a.token).await["position"],
        1,
        "earlier joiner goes ahead"
    );
    assert_eq!(app.status(&sale, &b.token).await["position"], 2);
}

#[tokio::test]
async fn tokens_are_rejected_across_sales_and_when_forged() {
    let app = spawn_app().await;
    let s1 = app.create_sale(10, 10).await;
    let s2 = app.create_sale(10, 10).await;
    let j = app.join(&s1).await;
    let res = app.join_raw(&s2, Some(&j.token)).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "wrong_sale");
    let mut forged = j.token.clone();
    forged.pop();
    forged.push(if j.token.ends_with('A') { 'B' } else { 'A' });
    let res = app.join_raw(&s1, Some(&forged)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "invalid_token");
}

#[tokio::test]
async fn joins_batched_into_one_script_call_are_weighed_one_by_one_in_order() {
    let app = spawn_app().await;
    let cap = json!({ "max_places_per_client": 3 });
    let sale = app.create_sale_with(100, 10, cap).await;
    let tags = ["clientAA", "clientBB"];
    // Started in one poll, so they wait in one batch (store::batch) and go in one EVALSHA.
    let ids: Vec<QueueId> = (0..12).map(|i| queue_id(&format!("{i:032x}"))).collect();
    let id_of_sale = sale_id(&sale);
    let joins = ids.iter().enumerate().map(|(i, id)| {
        let door = NewPlace {
            client_tag: tags[i % 2],
            pow_bits: 0,
            net_share: 0,
        };
        app.state.store.enqueue(&id_of_sale, id, None, door)
    });
    let joined: Vec<_> = join_all(joins)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // Each client's first three get places, in arrival order, with distinct seq and scores.
    for (i, j) in joined.iter().enumerate().take(6) {
        assert_eq!(
            j.place,
            Place::Waiting {
                position: i as i64 + 1
            },
            "join {i}"
        );
        assert_eq!(j.seq, i as i64 + 1);
        assert_eq!(j.queue_id.as_str(), format!("{}.{}", ids[i], tags[i % 2]));
    }
    assert!(joined[..6].windows(2).all(|w| w[0].score < w[1].score));
    for j in &joined[6..] {
        assert_eq!(
            j.place,
            Place::TooManyPlaces { held: 3 },
            "the cap holds in a batch"
        );
    }
    // The same browser again in a later batch finds its place; a token keeps it.
    let again = app.state.store.enqueue(
        &id_of_sale,
        &ids[2],
        None,
        NewPlace {
            client_tag: tags[0],
            pow_bits: 0,
            net_share: 0,
        },
    );
    let kept = app.state.store.enqueue(
        &id_of_sale,
        &joined[4].queue_id,
        Some(joined[4].score),
        NewPlace::default(),
    );
    let (again, kept) = tokio::join!(again, kept);
    assert_eq!(
        (again.unwrap().place, kept.unwrap().place),
        (
            Place::Waiting { position: 3 },
            Place::Waiting { position: 5 }
        )
    );
    assert_eq!(app.stats(&sale).await["queue_len"], 6);
}

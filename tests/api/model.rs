//! A property test: random join / open / close / tick / expire sequences against the real
//! Redis scripts, checked against a plain model of a fair line.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use waitroom::store::{Place, Store};

use crate::common::*;

#[derive(Debug, Clone)]
enum Op {
    Join,
    Open,
    Close,
    Tick,
    /// Lapse the n-th (mod active) admitted ticket.
    Expire(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Join),
        1 => Just(Op::Open),
        1 => Just(Op::Close),
        3 => Just(Op::Tick),
        1 => any::<usize>().prop_map(Op::Expire),
    ]
}

#[derive(Default)]
struct Model {
    open: bool,
    queue: VecDeque<String>,
    active: Vec<String>,
    ever_admitted: Vec<String>,
    joined: Vec<String>,
    /// The bucket starts empty: the first tick that sees the sale open only starts its clock.
    admitting: bool,
}

async fn run(store: &Store, units: i32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let sale = unique("model");
    // Only this test may tick this sale. Other test apps' tickers keep a cached copy of the
    // sale list, so a sale listed even for an instant could be ticked by them: write its
    // keys here without ever adding it to the list.
    let mut r = redis().await;
    redis::pipe()
        .hset_multiple(
            format!("wr:{{{sale}}}:cfg"),
            &[
                ("units", units as i64),
                // Fast enough that the bucket never binds: the model checks order and bounds.
                ("rate_per_sec", 100_000),
                ("ticket_ttl_secs", 600),
                ("max_per_order", 1),
                ("max_active", 0),
            ],
        )
        .set(format!("wr:{{{sale}}}:stock"), units)
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Join => {
                let qid = uuid::Uuid::new_v4().simple().to_string();
                let j = store
                    .enqueue(&sale, &qid, None, Default::default())
                    .await
                    .unwrap();
                prop_assert_eq!(
                    j.place,
                    Place::Waiting {
                        position: m.queue.len() as i64 + 1
                    }
                );
                m.queue.push_back(qid.clone());
                m.joined.push(qid);
            }
            Op::Open | Op::Close => {
                m.open = matches!(op, Op::Open);
                store.set_open(&sale, m.open).await.unwrap();
            }
            Op::Tick => {
                tokio::time::sleep(Duration::from_millis(3)).await;
                let t = store.admit(&sale).await.unwrap();
                let room = (units as usize).saturating_sub(m.active.len());
                let expect = if m.open && m.admitting {
                    room.min(m.queue.len())
                } else {
                    0
                };
                m.admitting = m.open;
                prop_assert_eq!(
                    t.admitted.len(),
                    expect,
                    "admitted count (open={}) tick={:?} active={:?} queue={:?}",
                    m.open,
                    t,
                    m.active,
                    m.queue
                );
                let front: Vec<String> = m.queue.drain(..expect).collect();
                prop_assert_eq!(&t.admitted, &front, "admitted out of join order");
                m.active.extend(front.iter().cloned());
                m.ever_admitted.extend(front);
                prop_assert_eq!(t.queue_len as usize, m.queue.len());
                prop_assert_eq!(t.active as usize, m.active.len());
            }
            Op::Expire(n) if !m.active.is_empty() => {
                let qid = m.active.remove(n % m.active.len());
                let mut r = redis().await;
                let _: () =
                    redis::AsyncCommands::zadd(&mut r, format!("wr:{{{sale}}}:admitted"), &qid, 1)
                        .await
                        .unwrap();
            }
            Op::Expire(_) => {}
        }
        // Fairness: whoever was ever admitted is a prefix of the join order.
        prop_assert_eq!(&m.ever_admitted[..], &m.joined[..m.ever_admitted.len()]);
    }
    wipe_sale_keys(&sale).await;
    Ok(())
}

#[test]
fn admission_matches_a_model_of_a_fair_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(Store::connect(&redis_url(), 1)).unwrap();
    let config = ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    };
    proptest!(config, |(units in 1i32..8, ops in proptest::collection::vec(op(), 1..60))| {
        rt.block_on(run(&store, units, ops))?;
    });
}

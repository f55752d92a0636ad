//! Waiting for something that must happen, by polling it: tests never sleep to synchronise.

use std::time::Duration;

use redis::AsyncCommands;

use crate::services::{redis, redis_now_ms};

/// How long a test waits for something that must happen. Generous, since the machine may be
/// busy: a test fails on it only when the thing never happens, and speed is bench/'s concern.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `f` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the admission ticker has run on `sale` at least `n` times after this call,
/// as Redis records it: every tick rewrites the bucket's `last_ms` with Redis `TIME`. Lets a
/// test say "several ticks passed" without guessing how long that takes on a busy machine.
pub async fn ticks_after(sale: &str, n: usize) {
    let mut r = redis().await;
    let mut seen = redis_now_ms(&mut r).await;
    let mut ticks = 0;
    let bucket = format!("wr:{{{sale}}}:bucket");
    while ticks < n {
        let ticked = eventually(WAIT, || {
            let (mut r, bucket) = (r.clone(), &bucket);
            async move {
                let last: Option<i64> = r.hget(bucket, "last_ms").await.unwrap();
                last.filter(|&l| l > seen)
            }
        })
        .await;
        seen = ticked.unwrap_or_else(|| panic!("only {ticks} of {n} ticks on {sale} in {WAIT:?}"));
        ticks += 1;
    }
}

//! The admission rate over a long window with three instances ticking at once: a deep queue,
//! stock that never binds, and the sale's admission counter (`wr:{S}:admits`, raised only by
//! admit.lua) read together with Redis's clock every 100 ms. Admissions come in batches per
//! tick, so the rate is the least-squares slope through all readings, not two end points
//! that may each fall just before or after a batch.

use std::time::Duration;

use anyhow::{Context, Result};

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::load::join_many;
use crate::report::Report;

const INSTANCES: usize = 3;
const RATE: usize = 500;

/// Redis's clock (seconds) and the sale's admission counter, read atomically.
async fn reading(ctx: &Ctx, sale: &str) -> Result<(f64, i64)> {
    let mut c = ctx.stores.redis_conn().await?;
    let ((secs, micros), admits): ((i64, i64), Option<i64>) = redis::pipe()
        .atomic()
        .cmd("TIME")
        .get(format!("wr:{{{sale}}}:admits"))
        .query_async(&mut c)
        .await
        .context("read the admission counter")?;
    Ok((secs as f64 + micros as f64 / 1e6, admits.unwrap_or(0)))
}

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let window = ctx.sizes.admission_window;
    let mut instances = Vec::new();
    for i in 1..=INSTANCES {
        instances.push(ctx.start(&format!("admission-{i}")).await?);
    }
    let addrs: Vec<_> = instances.iter().map(|i| i.addr).collect();
    let sale = ctx.sale_id("admission");
    let mut admin = Conn::new(addrs[0]);
    let spec = SaleSpec {
        units: 10_000_000,
        rate_per_sec: RATE as i64,
        ticket_ttl_secs: 3_600,
        max_per_order: 1,
    };
    api::create_sale(&mut admin, &sale, &spec).await?;
    // Enough shoppers that the queue never runs dry: warm-up plus window plus margin.
    let shoppers = RATE * (window.as_secs() as usize + 4);
    say(format!(
        "admission: {shoppers} shoppers, {RATE}/s through {INSTANCES} instances for {} s",
        window.as_secs()
    ));
    join_many(&addrs, &sale, shoppers, ctx.sizes.load.conns).await?;
    api::admin(&mut admin, &sale, "open").await?;
    // Past the first ticks, when the bucket starts from empty.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut points = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        every.tick().await;
        points.push(reading(ctx, &sale).await?);
    }
    let measured = slope(&points);
    let err = (measured - RATE as f64) / RATE as f64 * 100.0;
    let (first, last) = (points[0], points[points.len() - 1]);
    say(format!(
        "admission: {} admitted in {:.2} s, fitted {measured:.1}/s vs {RATE}/s configured: {err:+.3} %",
        last.1 - first.1,
        last.0 - first.0
    ));
    r.set("admission_rate_per_sec", measured);
    r.set("admission_rate_error_pct", err);
    r.set("admission_window_secs", last.0 - first.0);
    api::admin(&mut admin, &sale, "close").await?;
    for mut i in instances {
        i.stop();
    }
    Ok(())
}

/// Least-squares slope of (seconds, count) points.
fn slope(points: &[(f64, i64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 as f64 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_a_staircase_is_its_rate() {
        // 100 admitted every 0.2 s, read every 0.1 s: 500/s.
        let pts: Vec<(f64, i64)> = (0..100).map(|i| (i as f64 * 0.1, (i / 2) * 100)).collect();
        assert!((super::slope(&pts) - 500.0).abs() < 5.0);
    }
}

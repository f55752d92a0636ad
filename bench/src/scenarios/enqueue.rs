//! Joins at saturation: `POST /api/sales/{id}/queue` with an empty body, keep-alive, for a
//! fixed time. The sale stays closed, so the ticker admits nobody and only the queue grows.

use anyhow::Result;

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::load::saturate;
use crate::report::Report;

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let inst = ctx.start("enqueue").await?;
    let sale = ctx.sale_id("enqueue");
    let spec = SaleSpec {
        units: 10_000_000,
        rate_per_sec: 1,
        ticket_ttl_secs: 60,
        max_per_order: 1,
    };
    api::create_sale(&mut Conn::new(inst.addr), &sale, &spec).await?;
    let load = ctx.sizes.load;
    say(format!(
        "enqueue: {} connections for {:?} (+{:?} warm-up)",
        load.conns, load.duration, load.warmup
    ));
    let out = saturate(inst.addr, load, api::join_req(&sale), 201).await;
    say(format!("enqueue: {}", out.summary()));
    r.set("enqueue_rps", out.rps());
    r.set("enqueue_p50_ms", out.lat.pct_ms(50.0));
    r.set("enqueue_p99_ms", out.lat.pct_ms(99.0));
    r.set("enqueue_failed", (out.unexpected + out.errors) as f64);
    Ok(())
}

//! The herd after the last unit: checkouts against a sold-out sale, at saturation. The
//! tickets are real: two shoppers are admitted to a 2-unit sale, the first buys both units,
//! and the second one's valid, unused ticket is what the herd presents. Every answer should
//! be 409 sold_out (the server answers the herd from memory; the buyer's own retries would
//! still get their order, so the buyer's ticket is not the herd's).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::load::saturate;
use crate::report::Report;

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let inst = ctx.start("herd").await?;
    let sale = ctx.sale_id("herd");
    let mut c = Conn::new(inst.addr);
    let spec = SaleSpec {
        units: 2,
        rate_per_sec: 1_000,
        ticket_ttl_secs: 600,
        max_per_order: 2,
    };
    api::create_sale(&mut c, &sale, &spec).await?;
    let buyer = api::join(&mut c, &sale).await?;
    let late = api::join(&mut c, &sale).await?;
    api::admin(&mut c, &sale, "open").await?;
    let wait = Duration::from_secs(10);
    let buyer_ticket = api::wait_ticket(&mut c, &sale, &buyer.token, wait).await?;
    let late_ticket = api::wait_ticket(&mut c, &sale, &late.token, wait).await?;

    let bought = c
        .send(&api::checkout_n_req(&sale, &buyer_ticket.ticket, 2))
        .await?;
    let Some(order) = api::order_id(&bought) else {
        bail!("buying both units: {}", bought.describe());
    };
    // The late shopper's first try may take the slow path (it teaches the instance who
    // bought); wait until it is refused.
    let req = api::checkout_req(&sale, &late_ticket.ticket);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = c.send(&req).await?;
        if again.status == 409 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "a late ticket not refused 5 s after the last unit sold: {}",
                again.describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let load = ctx.sizes.load;
    say(format!(
        "herd: {} connections for {:?}",
        load.conns, load.duration
    ));
    let out = saturate(inst.addr, load, req, 409).await;
    say(format!("herd: {}", out.summary()));
    r.set("checkout_reject_rps", out.rps());
    r.set("checkout_reject_p50_ms", out.lat.pct_ms(50.0));
    r.set("checkout_reject_p99_ms", out.lat.pct_ms(99.0));
    r.set(
        "checkout_reject_unexpected",
        (out.unexpected + out.errors) as f64,
    );
    ctx.check_ledger(r, &sale, &[order]).await?;
    Ok(())
}

//! The herd after the last unit: checkouts against a sold-out sale with a real (used)
//! ticket, at saturation. Every answer should be 409 sold_out, served from memory.

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
        units: 1,
        rate_per_sec: 1_000,
        ticket_ttl_secs: 600,
    };
    api::create_sale(&mut c, &sale, &spec).await?;
    api::admin(&mut c, &sale, "open").await?;
    let shopper = api::join(&mut c, &sale).await?;
    let ticket = api::wait_ticket(&mut c, &sale, &shopper.token, Duration::from_secs(10)).await?;

    // Buy the only unit, then wait until the instance itself knows the sale is sold out (a
    // repeat of the same ticket answers 200 with the same order until then).
    let req = api::checkout_req(&sale, &ticket.ticket);
    let bought = c.send(&req).await?;
    let Some(order) = api::order_id(&bought) else {
        bail!("buying the only unit: {}", bought.describe());
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = c.send(&req).await?;
        if again.status == 409 {
            break;
        }
        if Instant::now() > deadline {
            bail!("not sold out 5 s after the last unit sold: {}", again.describe());
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

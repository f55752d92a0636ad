//! Status reads at saturation: many shoppers queue in a closed sale, then
//! `GET /api/sales/{id}/status` with their queue tokens as bearer, round robin, keep-alive,
//! as fast as answers come back. The reads alternate with a bare GET route answering a small
//! JSON (3 pairs); DESIGN.md asks for ≥ 40,000/s and ≥ 50% of that route.

use std::time::Duration;

use anyhow::{bail, Result};

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::baseline::{alternate, cpu_us, BareRoute, Pairs, Side};
use crate::client::Conn;
use crate::cpu;
use crate::load::{join_many, saturate_on};
use crate::report::Report;

/// How long the idle instance's own CPU use is read before the load.
const IDLE_PROBE: Duration = Duration::from_millis(500);

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let inst = ctx.start("status").await?;
    let sale = ctx.sale_id("status");
    let n = ctx.sizes.status_shoppers;
    let mut c = Conn::new(inst.addr);
    // Closed: nobody is admitted, every read answers a queued shopper's position.
    let spec = SaleSpec::line_only();
    api::create_sale(&mut c, &sale, &spec).await?;
    say(format!("status: {n} shoppers join"));
    let joined = join_many(&[inst.addr], &sale, n, ctx.sizes.load.conns).await?;
    let Some(first) = joined.first() else {
        bail!("no shopper joined");
    };
    let s = api::status(&mut c, &sale, &first.token).await?;
    say(format!("status: a read answers {s}"));
    let reqs: Vec<_> = joined
        .iter()
        .map(|j| api::status_req(&sale, &j.token))
        .collect();

    let idle = cpu::idle_pct(inst.pid(), IDLE_PROBE).await;
    if let Some(pct) = idle.filter(|p| *p > 5.0) {
        r.note(format!(
            "status: the idle instance used {pct:.0} % of a core (other sales in its Redis?): \
             status_cpu_us includes that background work"
        ));
    }
    r.set("status_idle_cpu_pct", idle.unwrap_or(f64::NAN));
    let load = ctx.sizes.pair_load;
    let bare = BareRoute::start()?;
    let (inst, bare) = (&inst, &bare);
    let pairs = alternate(ctx.sizes.pairs, |side, pair| {
        let reqs = reqs.clone();
        async move {
            let o = match side {
                Side::Baseline => bare.get(load).await,
                Side::Target => saturate_on(inst.addr, Some(inst.pid()), load, reqs, 200).await,
            };
            say(format!("status {side:?} {pair}: {}", o.summary()));
            Ok(o)
        }
    })
    .await?;
    pairs.record_rates(r, "baseline_http_get_rps", "status_rps", "status_ratio");
    Pairs::record(r, "status_p50_ms", &pairs.target, |o| o.lat.pct_ms(50.0));
    Pairs::record(r, "status_p99_ms", &pairs.target, |o| o.lat.pct_ms(99.0));
    Pairs::record(r, "baseline_http_get_p99_ms", &pairs.base, |o| {
        o.lat.pct_ms(99.0)
    });
    Pairs::record(r, "status_cpu_us", &pairs.target, cpu_us);
    Pairs::record(r, "bare_get_cpu_us", &pairs.base, cpu_us);
    r.set("status_failed", pairs.failed() as f64);
    Ok(())
}

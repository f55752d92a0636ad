//! Variants: does a sale of sizes sell as fast as one stock? Checkouts of a sale of 10
//! variants alternating (3 pairs) with checkouts of a one-stock sale of as many units, on one
//! instance, each ticket of the sized sale asking for its own size in turn: orders per second,
//! p99 and the pair ratios (issue 21: within 10%). Postgres is checked after, per variant.

use anyhow::{bail, Result};
use serde_json::json;

use super::orders::{admitted, admitted_sized, checkouts};
use super::{say, Ctx};
use crate::baseline::{alternate, cpu_us, Pairs, Side};
use crate::report::Report;

const VARIANTS: usize = 10;

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let inst = ctx.start("variants").await?;
    let n = ctx.sizes.orders / 2;
    let workers = ctx.sizes.load.conns;
    let npairs = ctx.sizes.pairs;
    let batch = n.div_ceil(npairs);
    // Each batch asks size i % 10 of its i-th ticket: a batch not a multiple of 10 asks the
    // first sizes once more, so each size has that slack and none sells out mid-run.
    let per = n.div_ceil(VARIANTS) + npairs;
    let sizes: Vec<_> = (0..VARIANTS)
        .map(|i| json!({"id": i.to_string(), "name": format!("Size {i}"), "units": per}))
        .collect();
    let (plain, sized) = (ctx.sale_id("one-stock"), ctx.sale_id("ten-sizes"));
    let plain_tickets = admitted(ctx, &inst, &plain, n).await?;
    let sized_tickets = admitted_sized(ctx, &inst, &sized, n, &sizes).await?;
    say(format!(
        "variants: {npairs} pairs of {batch} checkouts, one stock vs {VARIANTS} sizes"
    ));
    let inst_ref = &inst;
    let (plain_ref, sized_ref) = (&plain, &sized);
    let (plain_t, sized_t) = (&plain_tickets, &sized_tickets);
    let accepted = std::sync::Mutex::new(Vec::new());
    let accepted_ref = &accepted;
    let pairs = alternate(npairs, |side, pair| async move {
        let take = |t: &Vec<String>| t.iter().skip(pair * batch).take(batch).cloned().collect();
        let (o, what) = match side {
            Side::Baseline => {
                let (o, _) = checkouts(inst_ref, plain_ref, take(plain_t), workers, 0).await;
                (o, "one stock")
            }
            Side::Target => {
                let (o, ids) =
                    checkouts(inst_ref, sized_ref, take(sized_t), workers, VARIANTS).await;
                accepted_ref.lock().expect("ids lock").extend(ids);
                (o, "10 sizes")
            }
        };
        say(format!("variants {what} {pair}: {}", o.summary()));
        Ok(o)
    })
    .await?;
    pairs.record_rates(
        r,
        "single_stock_orders_per_sec",
        "variants_orders_per_sec",
        "variants_orders_ratio",
    );
    Pairs::record(r, "single_stock_order_p99_ms", &pairs.base, |o| {
        o.lat.pct_ms(99.0)
    });
    Pairs::record(r, "variants_order_p99_ms", &pairs.target, |o| {
        o.lat.pct_ms(99.0)
    });
    pairs.record_p99_ratio(r, "variants_order_p99_ratio");
    Pairs::record(r, "variants_checkout_cpu_us", &pairs.target, cpu_us);
    let accepted = accepted.into_inner().expect("ids lock");
    let check = ctx.check_ledger(r, &sized, &accepted).await?;
    let oversold = ctx.stores.variants_oversold(&sized).await?;
    r.add("oversold", oversold);
    if oversold > 0 {
        r.note(format!("{sized}: {oversold} units oversold in some size"));
    }
    say(format!(
        "variants: Postgres sold {} of {}, no size over its units: {}",
        check.sold,
        check.units,
        oversold == 0
    ));
    if accepted.is_empty() {
        bail!("no sized checkout succeeded");
    }
    Ok(())
}

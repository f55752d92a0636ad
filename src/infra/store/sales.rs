//! Redis's side of operating a sale: an admin's live change (lua/change.lua) and schedules
//! (lua/schedule.lua).

use redis::AsyncCommands;

use super::scripts::{CHANGE, SCHEDULE};
use super::{vunits, Store, SALES_KEY};
use crate::core::domain::{SaleId, Variant};
use crate::core::fault::Fault;

/// A schedule time this call found due and cleared (no other call sees it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// `opens_at` (true) or `closes_at`.
    pub opens: bool,
    /// The time that was due, unix ms.
    pub due_ms: i64,
    /// Redis's time when it fired, unix ms.
    pub at_ms: i64,
    /// This call flipped the switch (it was not already as the schedule wanted).
    pub flipped: bool,
}

impl Store {
    /// Applies a change (lua/change.lua): the changed `cfg` fields (None clears one), and
    /// `units` as the new total (each variant's too), so the same change applied twice adds
    /// its units once. Returns the stock now; None if Redis has lost the sale.
    pub async fn change_sale(
        &self,
        sale: &SaleId,
        cfg: &[(String, Option<i64>)],
        units: i64,
        variants: &[Variant],
    ) -> Result<Option<i64>, Fault> {
        // Values as strings, stored as written: Lua may print a large number as 1.7e+14.
        let set: serde_json::Map<String, serde_json::Value> = cfg
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_ref()?.to_string().into())))
            .collect();
        let clear: Vec<&str> = cfg
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        let args = serde_json::json!({
            "set": set, "clear": clear, "units": units, "vunits": vunits(variants),
        });
        let stock: i64 = CHANGE.on(sale).arg(args.to_string()).run(self).await?;
        Ok((stock >= 0).then_some(stock))
    }

    /// Lists the sale for the ticker and sweeper again (a restocked finished sale).
    pub async fn list_sale(&self, sale: &SaleId) -> Result<(), Fault> {
        let _: () = self.conn().sadd(SALES_KEY, sale).await?;
        self.keep_sale(sale).await
    }

    /// Opens or closes the sale if a schedule time has come (lua/schedule.lua). Returns what
    /// this call fired and the next pending time (unix ms), if any.
    pub async fn run_schedule(&self, sale: &SaleId) -> Result<(Vec<Fired>, Option<i64>), Fault> {
        let (at_ms, next, fired): (i64, i64, Vec<(String, i64, i64)>) =
            SCHEDULE.on(sale).run(self).await?;
        let fired = fired
            .into_iter()
            .map(|(field, due_ms, flipped)| Fired {
                opens: field == "opens_at",
                due_ms,
                at_ms,
                flipped: flipped == 1,
            })
            .collect();
        Ok((fired, (next >= 0).then_some(next)))
    }
}

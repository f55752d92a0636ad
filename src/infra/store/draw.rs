//! Redis's side of the draw (lua/draw.lua): the ticker's check that freezes the entries at
//! the opening, reading them, and putting the drawn order in place. `wr:draws` lists the draw
//! sales not drawn yet, so the ticker looks at those only.

use redis::AsyncCommands;

use super::scripts::DRAW;
use super::{key, unexpected, Store};
use crate::core::domain::{QueueId, SaleId};
use crate::core::fault::Fault;

/// The draw sales the ticker checks each tick (a global key, like `wr:sales`: no script
/// touches it).
pub const DRAWS_KEY: &str = "wr:draws";

/// Where a draw sale stands in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawState {
    /// Not a draw sale (any more), or not in Redis.
    Off,
    /// Not open yet: entries still join.
    Waiting,
    /// Entries frozen at this cut (Redis µs): rank them and apply.
    Due { cut_us: i64 },
    /// The drawn order is in place; admission runs.
    Drawn,
}

impl Store {
    /// The draw sales not drawn yet, as last listed.
    pub async fn draw_sales(&self) -> Result<Vec<SaleId>, Fault> {
        let ids: Vec<String> = self.conn().smembers(DRAWS_KEY).await?;
        Ok(ids.iter().filter_map(|s| SaleId::parse(s).ok()).collect())
    }

    /// Lists (a draw was set, or a rebuilt draw sale must be drawn or re-marked) or unlists
    /// (drawn, or no longer a draw) a sale for the ticker's check.
    pub async fn watch_draw(&self, sale: &SaleId, on: bool) -> Result<(), Fault> {
        let mut c = self.conn();
        let _: () = if on {
            c.sadd(DRAWS_KEY, sale).await?
        } else {
            c.srem(DRAWS_KEY, sale).await?
        };
        Ok(())
    }

    /// The ticker's check (lua/draw.lua 'check'): freezes the entries once the sale is open.
    pub async fn draw_check(&self, sale: &SaleId) -> Result<DrawState, Fault> {
        let (state, cut): (String, String) = DRAW.on(sale).arg("check").run(self).await?;
        let cut_us = cut.parse().map_err(|_| unexpected("draw.lua"))?;
        Ok(match state.as_str() {
            "waiting" => DrawState::Waiting,
            "due" => DrawState::Due { cut_us },
            "drawn" => DrawState::Drawn,
            "fifo" | "unknown" => DrawState::Off,
            _ => return Err(unexpected("draw.lua")),
        })
    }

    /// Whether the sale's entries were frozen (its opening came) in Redis.
    pub async fn draw_frozen(&self, sale: &SaleId) -> Result<bool, Fault> {
        let (cut, drawn): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(key(sale, "cfg"))
            .arg("draw_cut")
            .arg("drawn")
            .query_async(&mut self.conn())
            .await?;
        Ok(cut.is_some() || drawn.is_some())
    }

    /// The entries: every place scored at or before the cut. Frozen once the cut is set (a
    /// later join scores above it and admission waits), so a plain read.
    pub async fn draw_entries(&self, sale: &SaleId, cut_us: i64) -> Result<Vec<QueueId>, Fault> {
        let ids: Vec<String> = self
            .conn()
            .zrangebyscore(key(sale, "queue"), "-inf", cut_us)
            .await?;
        ids.iter()
            .map(|q| QueueId::parse(q).map_err(|_| unexpected("draw entries")))
            .collect()
    }

    /// Puts the drawn order in place (lua/draw.lua 'apply'). Returns (entries re-scored,
    /// earlier places moved behind them); None if Redis lost the sale.
    pub async fn apply_draw(
        &self,
        sale: &SaleId,
        cut_us: i64,
        order: &[QueueId],
    ) -> Result<Option<(i64, i64)>, Fault> {
        let mut call = DRAW.on(sale);
        call.arg("apply").arg(cut_us).arg(order.len());
        for q in order {
            call.arg(q.as_str());
        }
        let (placed, behind): (i64, i64) = call.run(self).await?;
        Ok((placed >= 0).then_some((placed, behind)))
    }
}

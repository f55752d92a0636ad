//! The draw in the ledger (migrations/0018): a draw sale's secret seed and commitment, and the
//! drawn order, written once. The seed leaves this module only inside a `DrawRow`, which
//! flows reveal after `drawn_at` and never log (it has no `Debug`).

use chrono::{DateTime, Utc};

use super::{Ledger, LockedSale};
use crate::core::domain::draw::{self, Published, SEED_LEN};
use crate::core::domain::{QueueId, SaleId};
use crate::core::fault::Fault;

/// A sale's draw as stored. No `Debug`: the seed is secret until the draw ran.
#[derive(sqlx::FromRow)]
pub struct DrawRow {
    pub seed: Vec<u8>,
    pub commitment: String,
    pub cut_us: Option<i64>,
    pub entries_root: Option<String>,
    pub entries: Option<i32>,
    pub beacon: Option<String>,
    pub drawn_at: Option<DateTime<Utc>>,
}

impl DrawRow {
    /// What anyone may see: the seed and the root only once the draw ran.
    pub fn published(&self, beacon_now: Option<&str>) -> Published {
        let drawn = self.drawn_at.is_some();
        Published {
            algorithm: draw::ALGORITHM.into(),
            commitment: self.commitment.clone(),
            seed: drawn.then(|| draw::hex(&self.seed)),
            entries_root: self.entries_root.clone().filter(|_| drawn),
            entries: self.entries.map_or(0, i64::from),
            // Before the draw, the beacon the sale is set to use; after it, the one it used.
            beacon: if drawn {
                self.beacon.clone()
            } else {
                beacon_now.map(str::to_string)
            },
            drawn_at: self.drawn_at,
        }
    }
}

/// The drawn order as Redis applies it and a rebuild restores it.
pub struct Drawn {
    pub cut_us: i64,
    /// Queue ids, first = rank 1.
    pub order: Vec<QueueId>,
}

const ROW: &str = "SELECT seed, commitment, cut_us, entries_root, entries, beacon, drawn_at
                   FROM sale_draws WHERE sale_id = $1";

impl Ledger {
    /// Makes the sale's seed if it has none. Returns the commitment and whether it is new.
    /// A seed is made once per sale: set back to `fifo` and to `draw` again, the sale keeps
    /// the commitment it published.
    pub async fn commit_draw(&self, sale: &SaleId) -> Result<(String, bool), Fault> {
        let mut seed = [0u8; SEED_LEN];
        getrandom::fill(&mut seed).map_err(|e| Fault::bug(format!("no OS randomness: {e}")))?;
        let made: Option<String> = sqlx::query_scalar(
            "INSERT INTO sale_draws (sale_id, seed, commitment) VALUES ($1, $2, $3)
             ON CONFLICT (sale_id) DO NOTHING RETURNING commitment",
        )
        .bind(sale)
        .bind(&seed[..])
        .bind(draw::commitment(&seed))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(c) = made {
            return Ok((c, true));
        }
        let c = sqlx::query_scalar("SELECT commitment FROM sale_draws WHERE sale_id = $1")
            .bind(sale)
            .fetch_one(&self.pool)
            .await?;
        Ok((c, false))
    }

    pub async fn draw(&self, sale: &SaleId) -> Result<Option<DrawRow>, Fault> {
        Ok(sqlx::query_as(ROW)
            .bind(sale)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Commitments of these sales' draws (sales without one are left out).
    pub async fn commitments(&self, sales: &[SaleId]) -> Result<Vec<(SaleId, String)>, Fault> {
        let ids: Vec<&str> = sales.iter().map(SaleId::as_str).collect();
        Ok(sqlx::query_as(
            "SELECT sale_id, commitment FROM sale_draws WHERE sale_id = ANY($1::text[])",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The entries' public ids in rank order (empty before the draw).
    pub async fn draw_entries(&self, sale: &SaleId) -> Result<Vec<String>, Fault> {
        Ok(sqlx::query_scalar(
            "SELECT public_id FROM draw_entries WHERE sale_id = $1 ORDER BY rank",
        )
        .bind(sale)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The drawn order, once the draw ran.
    pub async fn drawn(&self, sale: &SaleId) -> Result<Option<Drawn>, Fault> {
        let cut: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT cut_us FROM sale_draws WHERE sale_id = $1 AND drawn_at IS NOT NULL",
        )
        .bind(sale)
        .fetch_optional(&self.pool)
        .await?;
        let Some(Some(cut_us)) = cut else {
            return Ok(None);
        };
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT queue_id FROM draw_entries WHERE sale_id = $1 ORDER BY rank",
        )
        .bind(sale)
        .fetch_all(&self.pool)
        .await?;
        let order = ids
            .iter()
            .map(|q| QueueId::parse(q).map_err(|e| Fault::bug(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Some(Drawn { cut_us, order }))
    }

    /// Where a place joined at `joined_us` belongs once the sale was drawn: its rank's score
    /// if it is an entry (`draw_score`), or just behind the entries if it joined before the
    /// cut but was not drawn (Redis had lost it then). None: not drawn, or a later join.
    pub async fn drawn_score(
        &self,
        sale: &SaleId,
        qid: &QueueId,
        joined_us: i64,
    ) -> Result<Option<i64>, Fault> {
        let row: Option<(i64, i32, Option<i32>)> = sqlx::query_as(
            "SELECT d.cut_us, d.entries, e.rank FROM sale_draws d
             LEFT JOIN draw_entries e ON e.sale_id = d.sale_id AND e.queue_id = $2
             WHERE d.sale_id = $1 AND d.drawn_at IS NOT NULL",
        )
        .bind(sale)
        .bind(qid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(cut, n, rank)| match rank {
            Some(r) => Some(draw_score(cut, n.into(), r.into())),
            None => (joined_us <= cut).then_some(cut),
        }))
    }

    /// The report's draw numbers: entries admitted, and admissions of an entry whose rank
    /// is ahead of (below) that of an entry admitted in an earlier tick.
    pub async fn rank_inversions(&self, sale: &SaleId) -> Result<(i64, i64), Fault> {
        Ok(sqlx::query_as(
            "WITH a AS (
                SELECT e.rank, a.admitted_us,
                       max(e.rank) OVER (ORDER BY a.admitted_us
                           RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS latest_before
                FROM draw_entries e
                JOIN admissions a ON a.sale_id = e.sale_id AND a.queue_id = e.queue_id
                WHERE e.sale_id = $1
             )
             SELECT count(*), count(*) FILTER (WHERE rank < latest_before) FROM a",
        )
        .bind(sale)
        .fetch_one(&self.pool)
        .await?)
    }
}

/// The queue score of the entry ranked `rank` (1 = first) of `n` cut at `cut_us`: the drawn
/// entries fill `cut - n ..= cut - 1`, ahead of every later join (scored above the cut).
pub fn draw_score(cut_us: i64, n: i64, rank: i64) -> i64 {
    cut_us - n - 1 + rank
}

impl LockedSale {
    /// The draw as stored, read under the sale's row lock.
    pub async fn draw(&mut self) -> Result<Option<DrawRow>, Fault> {
        Ok(sqlx::query_as(ROW)
            .bind(&self.row.id)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    /// Writes the drawn order, once: false if the sale was drawn already (by another
    /// instance) and nothing was written. `ranked`: (public id, queue id), rank order.
    pub async fn write_draw(
        &mut self,
        cut_us: i64,
        root: &str,
        beacon: Option<&str>,
        ranked: &[(String, QueueId)],
    ) -> Result<bool, Fault> {
        let done = sqlx::query(
            "UPDATE sale_draws SET cut_us = $2, entries_root = $3, entries = $4, beacon = $5,
                 drawn_at = now()
             WHERE sale_id = $1 AND drawn_at IS NULL",
        )
        .bind(&self.row.id)
        .bind(cut_us)
        .bind(root)
        .bind(ranked.len() as i32)
        .bind(beacon)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let (public, queue): (Vec<&str>, Vec<&str>) =
            ranked.iter().map(|(p, q)| (p.as_str(), q.as_str())).unzip();
        sqlx::query(
            "INSERT INTO draw_entries (sale_id, rank, public_id, queue_id)
             SELECT $1, r::int, p, q FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS t(p, q, r)",
        )
        .bind(&self.row.id)
        .bind(public)
        .bind(queue)
        .execute(&mut *self.tx)
        .await?;
        Ok(true)
    }
}

//! The draw (issue 22, docs/draw.md): a `prequeue: "draw"` sale's joins before the opening
//! are entries; at the opening they are ranked by `core::domain::draw` and put in that order
//! ahead of every later join.
//!
//! - **Commit.** Setting the draw (create or PATCH) makes the seed (`Ledger::commit_draw`);
//!   its SHA-256 is public from then on and in the audit trail (`draw_committed`).
//! - **Freeze.** The opening, however it comes, sets the cut in Redis atomically on Redis's
//!   clock (lua/schedule.lua at `opens_at`, else lua/draw.lua's check on the first tick that
//!   sees the switch on). admit.lua admits nobody from the sale until it is drawn.
//! - **Draw.** Any instance's ticker (`tick`) reads the entries, ranks them and writes the
//!   order to the ledger under the sale's row lock, once (`draw_sale`); then Redis gets exactly
//!   the ledger's order (lua/draw.lua 'apply'), whichever instance wrote it.
//! - **Restore.** A place a token brings back after Redis lost the sale takes its rank's
//!   score from the ledger (`restored_score`), so a rebuild gives the same order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;

pub use crate::core::domain::draw::ALGORITHM;
use crate::core::domain::draw::{self, Prequeue, Published};
use crate::core::domain::{QueueId, SaleId, Settings};
use crate::core::fault::Fault;
use crate::flows::audit::{self, Kind, Source};
use crate::flows::Deps;
use crate::infra::store::DrawState;

#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    #[error("unknown sale")]
    UnknownSale,
    /// The sale lines up in arrival order: there is no draw to show.
    #[error("this sale has no draw")]
    NotADraw,
    /// The entries are asked for before the opening drew them.
    #[error("the draw has not run yet")]
    NotDrawn,
    /// `prequeue` or `draw_beacon` changed once the sale opened.
    #[error("the draw has started")]
    Started,
    #[error(transparent)]
    Fault(#[from] Fault),
}

// ---- commit ----

/// After a create or a PATCH wrote `new`: a draw gets its seed (once) and the ticker's eye;
/// a sale set back to `fifo` leaves the ticker's list.
pub async fn on_settings(s: &Deps, sale: &SaleId, new: &Settings) -> Result<(), Fault> {
    if new.prequeue == Prequeue::Fifo {
        return s.store.watch_draw(sale, false).await;
    }
    let (commitment, made) = s.ledger.commit_draw(sale).await?;
    if made {
        let detail = json!({"algorithm": draw::ALGORITHM, "commitment": commitment});
        audit::record(&s.ledger, sale, Kind::DrawCommitted, Source::Api, detail).await;
    }
    s.store.watch_draw(sale, true).await
}

/// A PATCH may set `prequeue` or `draw_beacon` only before the opening: before the sale was
/// ever open and before any entry was frozen. Called under the sale's row lock.
pub async fn may_change(s: &Deps, sale: &SaleId, fields: &[&str]) -> Result<(), DrawError> {
    if !fields
        .iter()
        .any(|f| *f == "prequeue" || *f == "draw_beacon")
    {
        return Ok(());
    }
    let live = s.store.live(sale).await?;
    let frozen = s.store.draw_frozen(sale).await?;
    let drawn = s.ledger.drawn(sale).await?.is_some();
    if live.open || live.admitted_total > 0 || frozen || drawn {
        return Err(DrawError::Started);
    }
    Ok(())
}

// ---- the draw, from the ticker ----

/// This instance's view of the draw sales still to draw, and the draws it is running.
#[derive(Default)]
pub struct Drawing {
    sales: Mutex<Vec<SaleId>>,
    running: Mutex<HashSet<SaleId>>,
}

/// One tick's look at the draw sales (O(draw sales not drawn yet), usually none). `relist`:
/// read `wr:draws` again (about once a second). A sale whose entries froze is drawn from a
/// task of its own, so a large draw never holds up admission of other sales.
pub async fn tick(s: &Arc<Deps>, d: &Arc<Drawing>, relist: bool) {
    if relist {
        match s.store.draw_sales().await {
            Ok(ids) => *d.sales.lock().expect("draw list") = ids,
            Err(e) => tracing::debug!(error = %e, "ticker cannot list draws"),
        }
    }
    let sales = d.sales.lock().expect("draw list").clone();
    for sale in sales {
        match s.store.draw_check(&sale).await {
            Ok(DrawState::Due { cut_us }) => start(s, d, sale, cut_us),
            Ok(DrawState::Off) | Ok(DrawState::Drawn) => {
                d.sales.lock().expect("draw list").retain(|x| *x != sale);
                if let Err(e) = s.store.watch_draw(&sale, false).await {
                    tracing::debug!(%sale, error = %e, "draw not unlisted");
                }
            }
            Ok(DrawState::Waiting) => {}
            Err(e) => tracing::debug!(%sale, error = %e, "draw check failed"),
        }
    }
}

fn start(s: &Arc<Deps>, d: &Arc<Drawing>, sale: SaleId, cut_us: i64) {
    if !d
        .running
        .lock()
        .expect("draws running")
        .insert(sale.clone())
    {
        return;
    }
    let (s, d) = (s.clone(), d.clone());
    tokio::spawn(async move {
        if let Err(e) = draw_sale(&s, &sale, cut_us).await {
            // The next tick tries again: the sale stays due until drawn.
            tracing::warn!(%sale, error = %e, "draw failed; retrying");
        }
        d.running.lock().expect("draws running").remove(&sale);
    });
}

/// Ranks the entries frozen at `cut_us` and puts them in place. The ledger's order wins: if
/// another instance (or an earlier try) recorded it, Redis gets that one, with its cut.
pub async fn draw_sale(s: &Deps, sale: &SaleId, cut_us: i64) -> Result<(), Fault> {
    if s.ledger.drawn(sale).await?.is_none() {
        // A draw set while the ledger's seed write failed gets it now, still before anyone
        // sees the order (not under the row lock: the insert's key check would wait on it).
        if s.ledger.draw(sale).await?.is_none() {
            s.ledger.commit_draw(sale).await?;
        }
        let entries = s.store.draw_entries(sale, cut_us).await?;
        let wrote = s
            .ledger
            .with_sale_locked(sale, async |locked| {
                if locked.row.prequeue != Prequeue::Draw {
                    return Ok(None);
                }
                let Some(row) = locked.draw().await? else {
                    return Ok(None);
                };
                let beacon = locked.row.draw_beacon.clone();
                let by_public: std::collections::HashMap<String, QueueId> = entries
                    .iter()
                    .map(|q| (draw::public_id(q.as_str()), q.clone()))
                    .collect();
                let ids: Vec<String> = by_public.keys().cloned().collect();
                let root = draw::entries_root(&ids);
                let ranked: Vec<(String, QueueId)> =
                    draw::ranked(&row.seed, &ids, beacon.as_deref())
                        .into_iter()
                        .map(|p| {
                            let q = by_public[&p].clone();
                            (p, q)
                        })
                        .collect();
                let wrote = locked
                    .write_draw(cut_us, &root, beacon.as_deref(), &ranked)
                    .await?;
                let published = row.published(beacon.as_deref());
                Ok(wrote.then(|| (draw::hex(&row.seed), root, published.commitment)))
            })
            .await?
            .flatten();
        if let Some((seed, root, commitment)) = wrote {
            let detail = json!({"algorithm": draw::ALGORITHM, "commitment": commitment,
                "seed": seed, "entries_root": root, "entries": entries.len(), "cut_us": cut_us});
            audit::record(&s.ledger, sale, Kind::Drawn, Source::System, detail).await;
            tracing::info!(%sale, entries = entries.len(), "draw done");
        }
    }
    let Some(drawn) = s.ledger.drawn(sale).await? else {
        // Set back to fifo meanwhile: nothing to draw; the check unlists it.
        return Ok(());
    };
    s.store.apply_draw(sale, drawn.cut_us, &drawn.order).await?;
    Ok(())
}

/// A rebuilt draw sale comes back without its Redis draw marks: the ticker looks at it again
/// (it re-applies the ledger's order, or draws it if it was frozen but not drawn).
pub async fn after_rebuild(s: &Deps, sale: &SaleId, settings: &Settings) -> Result<(), Fault> {
    if settings.prequeue == Prequeue::Draw {
        s.store.watch_draw(sale, true).await?;
    }
    Ok(())
}

/// The score a place lost with Redis comes back at: its rank's once the sale was drawn,
/// else the join time its token holds.
pub async fn restored_score(
    s: &Deps,
    sale: &SaleId,
    qid: &QueueId,
    joined_us: i64,
) -> Result<i64, Fault> {
    Ok(s.ledger
        .drawn_score(sale, qid, joined_us)
        .await?
        .unwrap_or(joined_us))
}

// ---- what anyone may see ----

/// `GET /api/sales/{id}/draw`.
pub async fn published(s: &Deps, sale: &SaleId) -> Result<Published, DrawError> {
    let row = s.ledger.sale(sale).await?.ok_or(DrawError::UnknownSale)?;
    if row.prequeue != Prequeue::Draw {
        // A sale drawn and then... cannot be set back after the opening: no draw to show.
        return Err(DrawError::NotADraw);
    }
    let d = match s.ledger.draw(sale).await? {
        Some(d) => d,
        None => {
            s.ledger.commit_draw(sale).await?;
            s.ledger.draw(sale).await?.ok_or(DrawError::NotADraw)?
        }
    };
    Ok(d.published(row.draw_beacon.as_deref()))
}

/// `GET /api/sales/{id}/draw/entries`: the public ids in rank order, once drawn.
pub async fn entries(s: &Deps, sale: &SaleId) -> Result<Vec<String>, DrawError> {
    let p = published(s, sale).await?;
    if p.drawn_at.is_none() {
        return Err(DrawError::NotDrawn);
    }
    Ok(s.ledger.draw_entries(sale).await?)
}

/// The commitments of the draw sales among these, for the public sale list.
pub async fn commitments(s: &Deps, sales: &[SaleId]) -> Result<Vec<(SaleId, String)>, Fault> {
    s.ledger.commitments(sales).await
}

/// The fairness report's draw part.
#[derive(Debug, Clone, Serialize)]
pub struct DrawReport {
    pub algorithm: &'static str,
    /// Entries drawn (0 before the draw).
    pub entries: i64,
    /// SHA-256 of the stored seed equals the published commitment.
    pub commitment_verified: bool,
    pub drawn: bool,
    /// Entries admitted so far, and those admitted after an entry ranked behind them was
    /// admitted in an earlier tick (0 when admission followed the draw).
    pub entries_admitted: i64,
    pub rank_inversions: i64,
}

pub async fn report(s: &Deps, sale: &SaleId) -> Result<Option<DrawReport>, Fault> {
    let Some(d) = s.ledger.draw(sale).await? else {
        return Ok(None);
    };
    let (entries_admitted, rank_inversions) = s.ledger.rank_inversions(sale).await?;
    Ok(Some(DrawReport {
        algorithm: draw::ALGORITHM,
        entries: d.entries.map_or(0, i64::from),
        commitment_verified: draw::commitment(&d.seed) == d.commitment,
        drawn: d.drawn_at.is_some(),
        entries_admitted,
        rank_inversions,
    }))
}

// ---- checking a published draw from outside ----

/// What `waitroom verify-draw` found.
#[derive(Debug)]
pub struct Checked {
    pub published: Published,
    pub entries: usize,
    /// Every difference from the recomputation (empty: it matches).
    pub mismatches: Vec<String>,
}

/// The most a draw's entries list may take: 64 MiB is ~3.5 million entries.
const ENTRIES_CAP: usize = 64 << 20;

/// Fetches a sale's published draw and entries from `base` (e.g. `https://shop.example`)
/// over HTTP and recomputes commitment, root and every rank, as any shopper could.
pub async fn verify_remote(base: &str, sale: &SaleId) -> Result<Checked, String> {
    let client = crate::infra::outbound::Sender::new(std::time::Duration::from_secs(60), true)
        .map_err(|e| e.to_string())?;
    let base = base.trim_end_matches('/');
    let fetch = async |path: &str| {
        let url = format!("{base}/api/sales/{sale}/{path}");
        let (status, body) = client
            .get(&url, ENTRIES_CAP)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if status != 200 {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(format!("GET {url}: {status} {text}"));
        }
        Ok(body)
    };
    let published: Published = serde_json::from_slice(&fetch("draw").await?)
        .map_err(|e| format!("the draw is not the published shape: {e}"))?;
    let entries: Vec<String> = serde_json::from_slice(&fetch("draw/entries").await?)
        .map_err(|e| format!("the entries are not a list of ids: {e}"))?;
    let mismatches = draw::verify(&published, &entries);
    Ok(Checked {
        published,
        entries: entries.len(),
        mismatches,
    })
}

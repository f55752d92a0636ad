//! Status reads of one sale gathered into one atomic round trip per event-loop turn.
//!
//! A status read was one MULTI/EXEC of 17 commands: the shopper's place (7), Redis `TIME` and
//! the sale's live numbers (7). Concurrent reads of a sale share the last eight: a batch asks
//! `TIME` and the live numbers once and each shopper's place after them, all in one MULTI/EXEC,
//! so every shopper's place is read against the same consistent numbers, as before. The batch
//! mechanics (one turn of the event loop, its own flush task) are the joins' (`batch.rs`).

use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::batch::answer;
use super::queue::{place_commands, place_of, PlaceReply, Snapshot, PLACE_FIELDS};
use super::{live_commands, time_ms, unexpected, Live, LiveReply, Store, LIVE_REPLIES};
use crate::core::domain::{QueueId, SaleId};
use crate::core::fault::Fault;

/// Places per round trip: a longer MULTI would hold Redis (single-threaded) for longer.
const MAX_READS: usize = 256;

/// One status read waiting for its batch.
pub(super) struct Read {
    qid: QueueId,
    reply: oneshot::Sender<Result<Snapshot, Fault>>,
}

impl Store {
    /// Where one shopper stands: their place and the sale's numbers, read atomically.
    pub async fn snapshot(&self, sale: &SaleId, qid: &QueueId) -> Result<Snapshot, Fault> {
        let (reply, rx) = oneshot::channel();
        let read = Read {
            qid: qid.to_owned(),
            reply,
        };
        if self.reads.push(sale, read) {
            tokio::spawn(self.clone().flush_reads(sale.to_owned()));
        }
        rx.await
            .unwrap_or_else(|_| Err(Fault::bug("a status batch ended without a reply")))
    }

    async fn flush_reads(self, sale: SaleId) {
        let chunks = self.reads.take(&sale, MAX_READS).await;
        join_all(chunks.into_iter().map(|c| self.read_batch(&sale, c))).await;
    }

    async fn read_batch(&self, sale: &SaleId, batch: Vec<Read>) {
        let snaps = self.snapshots(sale, &batch).await;
        answer(batch, snaps, |r, snap| {
            let _ = r.reply.send(snap);
        });
    }

    async fn snapshots(&self, sale: &SaleId, batch: &[Read]) -> Result<Vec<Snapshot>, Fault> {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("TIME");
        live_commands(&mut pipe, sale);
        for r in batch {
            place_commands(&mut pipe, sale, &r.qid);
        }
        let mut values: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        if values.len() != 1 + LIVE_REPLIES + batch.len() * PLACE_FIELDS {
            return Err(unexpected("snapshot"));
        }
        let bad = |_| unexpected("snapshot");
        let places = values.split_off(1 + LIVE_REPLIES);
        let live_part = redis::Value::Array(values.split_off(1));
        let live = Live::from(redis::from_redis_value::<LiveReply>(live_part).map_err(bad)?);
        let (secs, micros): (i64, i64) =
            redis::from_redis_value(values.pop().ok_or_else(|| unexpected("snapshot"))?)
                .map_err(bad)?;
        let now_ms = time_ms(secs, micros);
        places
            .chunks(PLACE_FIELDS)
            .map(|c| {
                let reply: PlaceReply =
                    redis::from_redis_value(redis::Value::Array(c.to_vec())).map_err(bad)?;
                Ok(Snapshot {
                    place: place_of(reply, now_ms, &live),
                    live: live.clone(),
                })
            })
            .collect()
    }
}

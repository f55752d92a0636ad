//! Joins of one sale gathered into one enqueue.lua call per event-loop turn.
//!
//! A join's own Redis round trip (a socket write, a wake-up for the reply, the command's
//! framing) cost the server more CPU than the script it ran. The first join of a sale opens a
//! batch and spawns its flush; the flush yields once, so the joins the workers parse meanwhile
//! land in the same batch, then sends one `EVALSHA` for all of them in arrival order (the
//! script weighs each as if it came alone, handing out seq and score in that order, so FIFO
//! holds) and gives each join its own reply. A batch is one sale's keys, one hash tag: never
//! cross-slot on a cluster. A Redis error fails every join of the batch alike, as it would
//! have failed each alone. The flush is its own task, so a client hanging up cannot strand it.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::queue::{joined, Joined};
use super::scripts::ENQUEUE;
use super::{unexpected, Store};
use crate::core::domain::{QueueId, SaleId};
use crate::core::fault::Fault;

/// Joins per script call: a longer batch would hold Redis (single-threaded) for longer.
const MAX_BATCH: usize = 128;

/// One join waiting for its batch: enqueue.lua's five ARGV and where its reply goes.
pub(super) struct Entry {
    pub qid: QueueId,
    pub score: Option<i64>,
    pub mode: &'static str,
    pub tag: String,
    pub pow_bits: u32,
    pub net_share: u32,
    pub reply: oneshot::Sender<Result<Joined, Fault>>,
}

/// The open batch of each sale that has one (joins, or status reads: `reads.rs`).
pub struct Batches<E>(Mutex<HashMap<SaleId, Vec<E>>>);

impl<E> Default for Batches<E> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<E> Batches<E> {
    /// Adds `e` to its sale's batch: true if it opened the batch (the caller spawns its flush).
    pub(super) fn push(&self, sale: &SaleId, e: E) -> bool {
        let mut open = self.0.lock().expect("batches lock");
        match open.get_mut(sale) {
            Some(batch) => {
                batch.push(e);
                false
            }
            None => {
                open.insert(sale.to_owned(), vec![e]);
                true
            }
        }
    }

    /// After one turn of the event loop (what the workers parse meanwhile joins the batch),
    /// the sale's batch in arrival order, cut into calls of at most `max`.
    pub(super) async fn take(&self, sale: &SaleId, max: usize) -> Vec<Vec<E>> {
        tokio::task::yield_now().await;
        let mut batch = self
            .0
            .lock()
            .expect("batches lock")
            .remove(sale)
            .unwrap_or_default();
        let mut chunks = Vec::with_capacity(batch.len().div_ceil(max));
        while !batch.is_empty() {
            let rest = batch.split_off(max.min(batch.len()));
            chunks.push(std::mem::replace(&mut batch, rest));
        }
        chunks
    }
}

impl Store {
    /// Adds a join to its sale's batch and waits for the batch's reply.
    pub(super) async fn join_batch(
        &self,
        sale: &SaleId,
        entry: impl FnOnce(oneshot::Sender<Result<Joined, Fault>>) -> Entry,
    ) -> Result<Joined, Fault> {
        let (tx, rx) = oneshot::channel();
        if self.batches.push(sale, entry(tx)) {
            tokio::spawn(self.clone().flush(sale.to_owned()));
        }
        rx.await
            .unwrap_or_else(|_| Err(Fault::bug("an enqueue batch ended without a reply")))
    }

    async fn flush(self, sale: SaleId) {
        let chunks = self.batches.take(&sale, MAX_BATCH).await;
        join_all(chunks.into_iter().map(|c| self.run_batch(&sale, c))).await;
    }

    async fn run_batch(&self, sale: &SaleId, batch: Vec<Entry>) {
        let mut call = ENQUEUE.on(sale);
        for e in &batch {
            call.arg(&e.qid)
                .arg(e.score.map(|s| s.to_string()).unwrap_or_default())
                .arg(e.mode)
                .arg(&e.tag)
                .arg(e.pow_bits)
                .arg(e.net_share);
        }
        let replies = call
            .run::<Vec<Vec<redis::Value>>>(self)
            .await
            .and_then(|r| match r.len() == batch.len() {
                true => Ok(r),
                false => Err(unexpected("enqueue.lua")),
            });
        answer(batch, replies, |e, reply| {
            let _ = e.reply.send(reply.and_then(|r| joined(r, &e.qid)));
        });
    }
}

/// Gives each entry of a batch its own reply, or every entry the batch's fault.
pub(super) fn answer<E, T>(
    batch: Vec<E>,
    replies: Result<Vec<T>, Fault>,
    send: impl Fn(E, Result<T, Fault>),
) {
    match replies {
        Ok(replies) => batch
            .into_iter()
            .zip(replies)
            .for_each(|(e, r)| send(e, Ok(r))),
        Err(fault) => batch.into_iter().for_each(|e| send(e, Err(shared(&fault)))),
    }
}

/// The same fault again, for another member of a failed batch (counted once, where it arose).
fn shared(fault: &Fault) -> Fault {
    match fault {
        Fault::Redis(e) => Fault::Redis(e.clone()),
        Fault::Busy(why) => Fault::Busy(why),
        Fault::Bug(what) => Fault::Bug(what.clone()),
        Fault::Postgres(e) => Fault::bug(format!("postgres in an enqueue batch: {e}")),
    }
}

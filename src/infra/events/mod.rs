//! The event hub: one Redis pub/sub subscriber per instance, fanned out to local SSE streams.
//!
//! Progress goes through a `watch` per sale (latest value only: a slow stream skips stale
//! values instead of lagging), rare sale events through a `broadcast` (a stream that lags gets
//! a fresh snapshot), and an admission or an order's news goes to the shopper's own streams
//! only, through a map keyed by queue id, so delivering a batch costs O(batch), not O(streams). Nothing here awaits
//! a client: one slow browser never stalls the others.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, mpsc, watch};

mod progress;
mod subscriber;

pub use progress::{Frame, Progress, SaleEvent};
pub use subscriber::run_subscriber;

use progress::variants_gone;

use crate::core::domain::{QueueId, SaleId};
use crate::infra::store::{Live, Tick};

/// An admission for one shopper; the instance holding the stream signs the ticket.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub expires_at_ms: i64,
}

/// News for one shopper's own streams.
#[derive(Debug, Clone, Copy)]
pub enum Notice {
    Admitted(Admission),
    /// Their order changed (paid, payment failed, hold lapsed, refund due): the stream
    /// re-reads where the shopper stands and sends it as `state`.
    Order,
}

struct SaleChannels {
    progress: watch::Sender<Frame>,
    events: broadcast::Sender<SaleEvent>,
    /// Set by the first tick: flips are only announced against real earlier values.
    primed: AtomicBool,
    /// Counts sold-out flips, so a buyer list read across a flip is thrown away.
    sold_out_gen: AtomicU64,
    /// While sold out: the queue ids that bought. Their retries still get their order; any
    /// other ticket is refused from memory.
    buyers: RwLock<Option<Arc<HashSet<String>>>>,
    /// A buyer list is being read: one read per instance, however large the herd.
    loading_buyers: AtomicBool,
    /// Redis time (µs) of the newest stock reading applied. A tick computed before the last
    /// checkout can arrive after its `sold_out` message: it must not lift sold-out again.
    stock_at_us: AtomicI64,
}

/// How far behind the newest stock reading a stale one can be: a reply in flight.
const STALE_WINDOW_US: i64 = 5_000_000;

pub(super) type ShopperKey = (SaleId, QueueId);
/// Every stream a shopper has open here (several tabs), by registration id.
type ShopperStreams = Vec<(u64, mpsc::Sender<Notice>)>;

#[derive(Default)]
pub struct Hub {
    sales: RwLock<HashMap<SaleId, Arc<SaleChannels>>>,
    shoppers: Mutex<HashMap<ShopperKey, ShopperStreams>>,
    next_id: AtomicU64,
    /// Woken when the hub meets a sale for the first time, so the subscriber subscribes to
    /// its channel now rather than at its next look at `wr:sales`.
    new_sale: tokio::sync::Notify,
}

/// A stream's subscription to its shopper's own news; unregisters on drop.
pub struct Registration {
    hub: Arc<Hub>,
    key: ShopperKey,
    id: u64,
    pub notices: mpsc::Receiver<Notice>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.hub.shoppers.lock().expect("hub lock");
        if let Some(list) = map.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

impl Hub {
    fn channels(&self, sale: &SaleId) -> Arc<SaleChannels> {
        if let Some(c) = self.sales.read().expect("hub lock").get(sale) {
            return c.clone();
        }
        let mut map = self.sales.write().expect("hub lock");
        map.entry(sale.clone())
            .or_insert_with(|| {
                self.new_sale.notify_one();
                Arc::new(SaleChannels {
                    progress: watch::Sender::new(Frame::new(Progress::default())),
                    events: broadcast::Sender::new(64),
                    primed: AtomicBool::new(false),
                    sold_out_gen: AtomicU64::new(0),
                    buyers: RwLock::new(None),
                    loading_buyers: AtomicBool::new(false),
                    stock_at_us: AtomicI64::new(0),
                })
            })
            .clone()
    }

    pub fn subscribe(
        &self,
        sale: &SaleId,
    ) -> (watch::Receiver<Frame>, broadcast::Receiver<SaleEvent>) {
        let c = self.channels(sale);
        (c.progress.subscribe(), c.events.subscribe())
    }

    pub fn progress(&self, sale: &SaleId) -> Option<Progress> {
        let map = self.sales.read().expect("hub lock");
        map.get(sale).map(|c| c.progress.borrow().progress.clone())
    }

    /// Known sold out for good on this instance (set by the broadcast or the last tick):
    /// joining is refused from here without touching Redis. A waitlist still takes joins.
    pub fn is_sold_out(&self, sale: &SaleId) -> bool {
        let map = self.sales.read().expect("hub lock");
        map.get(sale)
            .is_some_and(|c| c.progress.borrow().sold_out_for_good())
    }

    /// The checkout herd after the last unit: true when this ticket's queue id (read from the
    /// token unverified) is not among the buyers, so it cannot have an order to return.
    /// Answered from memory, before any signature check or Redis call.
    pub fn refuses_as_sold_out(&self, sale: &SaleId, qid: Option<&str>) -> bool {
        let map = self.sales.read().expect("hub lock");
        let Some(c) = map.get(sale) else { return false };
        if !c.progress.borrow().sold_out {
            return false;
        }
        let buyers = c.buyers.read().expect("hub lock");
        buyers
            .as_ref()
            .is_some_and(|b| qid.is_none_or(|q| !b.contains(q)))
    }

    /// The sold-out generation to read a buyer list for, if this instance has none and is
    /// not reading one: the caller reads it and hands it to `set_buyers`. Until then, the
    /// herd takes the (constant-time) path through checkout.lua.
    pub fn buyers_wanted(&self, sale: &SaleId) -> Option<u64> {
        let c = self.channels(sale);
        if !c.progress.borrow().sold_out || c.buyers.read().expect("hub lock").is_some() {
            return None;
        }
        let gen = c.sold_out_gen.load(Ordering::SeqCst);
        c.loading_buyers
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| gen)
    }

    /// The sale has no units left: by its message (`at`, Redis time of the last unit), or a
    /// checkout Redis just refused (the hub then need not wait for the message). `held`:
    /// the units held for payment, when the news says.
    pub fn heard_sold_out(&self, sale: &SaleId, at: Option<i64>, held: Option<i64>) {
        self.update(
            sale,
            |p| {
                p.sold_out = true;
                p.remaining = 0;
                p.held = held.unwrap_or(p.held);
                // No units at all: none of any variant either.
                p.variants_left
                    .iter_mut()
                    .flat_map(|v| v.values_mut())
                    .for_each(|n| *n = 0);
            },
            false,
            at,
        );
    }

    /// Drops the buyer list (and any being read): until one is read again, every checkout of
    /// the sold-out sale asks Redis.
    pub fn forget_buyers(&self, sale: &SaleId) {
        let c = self.channels(sale);
        c.sold_out_gen.fetch_add(1, Ordering::SeqCst);
        *c.buyers.write().expect("hub lock") = None;
    }

    /// Keeps the buyer list read from Redis if the sale is still in the sold-out state it was
    /// read for (`gen` taken before the read).
    /// None: the read failed; the next refusal asks again.
    pub fn set_buyers(&self, sale: &SaleId, gen: u64, buyers: Option<HashSet<String>>) {
        let c = self.channels(sale);
        let mut slot = c.buyers.write().expect("hub lock");
        if let Some(b) = buyers {
            if c.progress.borrow().sold_out && c.sold_out_gen.load(Ordering::SeqCst) == gen {
                *slot = Some(Arc::new(b));
            }
        }
        c.loading_buyers.store(false, Ordering::SeqCst);
    }

    /// Registers one more stream of a shopper, keeping at most `max` (`WAITROOM_STREAMS_PER_TOKEN`):
    /// the oldest lose their sender, which ends them (see `sse`), so a script re-opening
    /// streams with one token holds no more connections than a shopper with a few tabs.
    pub fn register(self: &Arc<Self>, sale: &SaleId, qid: &QueueId, max: usize) -> Registration {
        let (tx, rx) = mpsc::channel(4);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = (sale.clone(), qid.clone());
        let mut map = self.shoppers.lock().expect("hub lock");
        let list = map.entry(key.clone()).or_default();
        // Ids grow, so the list is oldest first.
        let over = (list.len() + 1).saturating_sub(max.max(1));
        list.drain(..over);
        list.push((id, tx));
        drop(map);
        Registration {
            hub: self.clone(),
            key,
            id,
            notices: rx,
        }
    }

    pub(super) fn deliver(&self, sale: &SaleId, qid: &QueueId, n: Notice) {
        let map = self.shoppers.lock().expect("hub lock");
        if let Some(list) = map.get(&(sale.clone(), qid.clone())) {
            for (_, tx) in list {
                let _ = tx.try_send(n);
            }
        }
    }

    /// Applies a change to a sale's progress and announces the flips it causes.
    /// Applies `change` to a sale's progress and announces the flips. `stock_at_us` is the
    /// Redis time of the stock reading in the change, if it carries one: an older reading
    /// than the newest applied leaves `remaining` and `sold_out` as they are.
    fn update(
        &self,
        sale: &SaleId,
        change: impl FnOnce(&mut Progress),
        from_tick: bool,
        stock_at_us: Option<i64>,
    ) {
        let c = self.channels(sale);
        let initial = from_tick && !c.primed.swap(true, Ordering::Relaxed);
        let mut flips = Vec::new();
        let mut stock_flipped = false;
        c.progress.send_if_modified(|frame| {
            let before = &frame.progress;
            let mut p = before.clone();
            change(&mut p);
            // The watch's lock serialises this closure, so the load and store cannot race.
            if let Some(at) = stock_at_us {
                let newest = c.stock_at_us.load(Ordering::Relaxed);
                // A stale tick trails the message by a round trip; a reading far older means
                // Redis's clock went back (a failover), and is taken as the new baseline.
                if at < newest && newest - at < STALE_WINDOW_US {
                    (p.remaining, p.sold_out, p.held) =
                        (before.remaining, before.sold_out, before.held);
                    p.variants_left.clone_from(&before.variants_left);
                } else {
                    c.stock_at_us.store(at, Ordering::Relaxed);
                }
            }
            if p == *before {
                return false;
            }
            if !initial {
                if p.open != before.open {
                    flips.push(if p.open {
                        SaleEvent::Opened
                    } else {
                        SaleEvent::Closed
                    });
                }
                if p.sold_out != before.sold_out {
                    stock_flipped = true;
                    flips.push(match (p.sold_out, p.held > 0) {
                        (true, true) => SaleEvent::Waitlisted,
                        (true, false) => SaleEvent::SoldOut,
                        (false, _) => SaleEvent::Restocked,
                    });
                } else if p.sold_out_for_good() && !before.sold_out_for_good() {
                    // The last hold settled: the waitlist hears it is over.
                    flips.push(SaleEvent::SoldOut);
                }
                // A size gone (the last ones with the sale): every stream greys it out.
                flips.extend(variants_gone(&before.variants_left, &p.variants_left));
            }
            *frame = Frame::new(p);
            true
        });
        if stock_flipped {
            self.forget_buyers(sale);
        }
        for e in flips {
            let _ = c.events.send(e);
        }
    }

    /// Every sale this instance has met (a stream, a tick, a message), finished ones included.
    pub fn known_sales(&self) -> Vec<SaleId> {
        self.sales
            .read()
            .expect("hub lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Seeds a sale's progress from a fresh Redis read if no tick has yet, so the first tick
    /// announces flips against real values instead of swallowing them as its baseline.
    pub fn seed(&self, sale: &SaleId, p: Progress) {
        let c = self.channels(sale);
        if !c.primed.swap(true, Ordering::Relaxed) {
            c.progress.send_replace(Frame::new(p));
        }
    }

    /// A tick's numbers become the sale's progress. Flag flips made outside the API (redis-cli
    /// `SET wr:{S}:open 1`) are noticed here, at the next tick that looks at the sale.
    /// Numbers read without an admission tick (an idle sale); the rate is cfg's, so a live
    /// change shows here too.
    pub fn on_live(&self, sale: &SaleId, l: &Live, at_us: i64) {
        // A sale Redis does not have (being created, or lost) reads as all zeros, its rate
        // included: that says nothing, least of all "sold out".
        if l.rate_per_sec <= 0 {
            return;
        }
        let rate_per_sec = l.rate_per_sec;
        self.on_tick(
            sale,
            &Tick {
                open: l.open,
                stock: l.remaining,
                active: l.admitted_active,
                queue_len: l.queue_len,
                admitted_total: l.admitted_total,
                rate_per_sec,
                held: l.held,
                admitted: Vec::new(),
                at_us,
                variants_left: l.variants_left.clone(),
            },
        );
    }

    pub fn on_tick(&self, sale: &SaleId, t: &Tick) {
        self.update(
            sale,
            |p| {
                *p = Progress {
                    admitted_total: t.admitted_total,
                    queue_len: t.queue_len,
                    remaining: t.stock.max(0),
                    rate_per_sec: t.rate_per_sec,
                    open: t.open,
                    sold_out: t.stock <= 0,
                    held: t.held,
                    variants_left: t.variants_left.clone(),
                }
            },
            true,
            Some(t.at_us),
        );
    }
}

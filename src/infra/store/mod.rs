//! Redis: the only module that knows key names and scripts (declared in `scripts`).
//!
//! Every key of a sale carries the hash tag `{<sale>}`, so each script touches one Redis
//! Cluster slot. Scripts are sent by SHA (`EVALSHA`); on `NOSCRIPT`, which is what a restart,
//! a failover or `SCRIPT FLUSH` leaves behind, `scripts::Call` marks the sales unsettled and
//! reloads them (see `scripts.rs`).
//!
//! Commands go over a few multiplexed connections that reconnect by themselves, shared by all
//! requests (each request's commands are pipelined with everyone else's). Not a checkout
//! pool: deadpool-redis pings a connection on every checkout, which halved join throughput.
//! On Redis Cluster one cluster connection (`conn::Conn`) does the same for every node; the
//! global `wr:sales` set is never written in the same transaction as a sale's keys.
//!
//! By flow: `queue` (join, admit, where one stands), `orders` (checkout, the ledger sync,
//! releases), `recovery` (rebuilding and settling a sale Redis lost); `live` (a sale's live
//! numbers and its variants' units left).

mod batch;
mod conn;
mod console;
mod door;
mod draw;
mod live;
mod orders;
mod queue;
mod reads;
mod recovery;
mod report;
mod sales;
mod scripts;

pub use conn::{Subscriber, Target};
pub use console::{ConsoleRead, Reading};
pub use door::Claim;
pub use draw::{DrawState, DRAWS_KEY};
pub use live::Live;
pub use orders::Take;
pub use queue::{Joined, NewPlace, Place, Snapshot, Tick};
pub use recovery::{Held, Settlement, SweepWork, Verdict};
pub use sales::Fired;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use conn::Conn;
use live::{
    live_and_variants, live_commands, live_of, variants_of, vunits, LiveReply, LIVE_REPLIES,
};

use crate::core::domain::{QueueId, SaleId, SaleSpec};
use crate::core::fault::Fault;

/// The set of sales the ticker looks at.
pub const SALES_KEY: &str = "wr:sales";

/// Every key a sale may have (`key(sale, name)`), but the proof-of-work marks, which expire by
/// themselves: what a finished sale's expiry covers. A unit test checks the scripts name no
/// other.
const SALE_KEYS: [&str; 20] = [
    "cfg",
    "stock",
    "queue",
    "admitted",
    "used",
    "bucket",
    "seq",
    "expired",
    "released",
    "paid",
    "failed",
    "pending",
    "held",
    "open",
    "admits",
    "unsettled",
    "places",
    "refunds",
    "vstock",
    "vunits",
];

/// How long a finished sale's keys outlive its end (`unlist_sale`): long enough that its
/// shoppers' pages and the dashboard read it from Redis; the ledger keeps it for good.
pub const FINISHED_KEEP: Duration = Duration::from_secs(24 * 3600);
/// A sale's sharded pub/sub channel (`SPUBLISH` by the scripts and `set_open`).
pub fn events_channel(sale: &SaleId) -> String {
    key(sale, "events")
}

/// Redis `TIME` (seconds, microseconds) in milliseconds, the unit every stored time uses.
fn time_ms(secs: i64, micros: i64) -> i64 {
    secs * 1000 + micros / 1000
}

/// Key of one sale: `wr:{<sale>}:<name>`.
fn key(sale: &SaleId, name: &str) -> String {
    format!("wr:{{{sale}}}:{name}")
}

/// The sale a channel such as `wr:{demo}:events` belongs to.
pub fn sale_of_channel(channel: &str) -> Option<SaleId> {
    SaleId::parse(channel.strip_prefix("wr:{")?.strip_suffix("}:events")?).ok()
}

/// A sale id goes to Redis as its text.
impl redis::ToRedisArgs for SaleId {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        out.write_arg(self.as_str().as_bytes())
    }
}

/// A queue id too.
impl redis::ToRedisArgs for QueueId {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        out.write_arg(self.as_str().as_bytes())
    }
}

impl redis::ToSingleRedisArg for SaleId {}
impl redis::ToSingleRedisArg for QueueId {}

/// Sale ids as Redis lists them (`wr:sales`): one that is not a valid id was not written by
/// us (a hand-typed `SADD`) and is left out, with a warning, rather than failing every sale.
fn sale_ids_of(raw: Vec<String>) -> Vec<SaleId> {
    raw.into_iter()
        .filter_map(|s| match SaleId::parse(&s) {
            Ok(id) => Some(id),
            Err(_) => {
                tracing::warn!(id = %s.escape_debug(), "not a sale id in {SALES_KEY}; ignored");
                None
            }
        })
        .collect()
}

/// A reply our own scripts never give.
fn unexpected(what: &str) -> Fault {
    Fault::bug(format!("unexpected reply from {what}"))
}

#[derive(Clone)]
pub struct Store {
    conns: Arc<[Conn]>,
    next: Arc<AtomicUsize>,
    batches: Arc<batch::Batches<batch::Entry>>,
    reads: Arc<batch::Batches<reads::Read>>,
}

/// The fields of a sale's `cfg` hash, which the scripts read (`Settings::cfg`).
fn cfg_fields(spec: &SaleSpec) -> Vec<(String, i64)> {
    let fields = spec.settings.cfg().into_iter();
    fields.filter_map(|(k, v)| Some((k, v?))).collect()
}

impl Store {
    /// Opens `n` connections; fails if Redis cannot be reached now (later outages are
    /// survived: each connection reconnects on its own and commands fail fast meanwhile).
    pub async fn connect(url: &str, n: usize) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut conns = Vec::with_capacity(n.max(1));
        for _ in 0..n.max(1) {
            let manager =
                ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
            conns.push(Conn::Single(manager));
        }
        Ok(Self::over(conns.into()))
    }

    /// One cluster connection: it keeps a multiplexed connection per node and follows the
    /// cluster's topology (MOVED, a restarted node) by itself.
    pub async fn connect_cluster(nodes: &[String]) -> Result<Self, redis::RedisError> {
        Ok(Self::over(vec![Conn::cluster(nodes).await?].into()))
    }

    fn over(conns: Arc<[Conn]>) -> Self {
        Self {
            conns,
            next: Arc::new(AtomicUsize::new(0)),
            batches: Default::default(),
            reads: Default::default(),
        }
    }

    /// `connect` or `connect_cluster`, whichever `target` names.
    pub async fn open(target: &Target, n: usize) -> Result<Self, redis::RedisError> {
        match target {
            Target::Single(url) => Self::connect(url, n).await,
            Target::Cluster(nodes) => Self::connect_cluster(nodes).await,
        }
    }

    fn conn(&self) -> Conn {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }

    /// Ready when Redis answers and holds every script: one `SCRIPT EXISTS` round trip per
    /// probe. Scripts missing mean a restart or failover (see `scripts_lost`). On a cluster the
    /// client sends `SCRIPT EXISTS` to every primary (true only if all have it) and
    /// `SCRIPT LOAD` to every node.
    pub async fn ready(&self) -> Result<(), Fault> {
        let mut exists = redis::cmd("SCRIPT");
        exists.arg("EXISTS");
        for lua in scripts::ALL {
            exists.arg(lua.hash());
        }
        let loaded: Vec<bool> = exists.query_async(&mut self.conn()).await?;
        if loaded.iter().all(|&l| l) {
            return Ok(());
        }
        self.scripts_lost().await
    }

    /// Loads every script into Redis's cache.
    async fn load_scripts(&self) -> Result<(), Fault> {
        let mut c = self.conn();
        for lua in scripts::ALL {
            let _: String = lua.source().load_async(&mut c).await?;
        }
        Ok(())
    }

    pub async fn sale_ids(&self) -> Result<Vec<SaleId>, Fault> {
        Ok(sale_ids_of(self.conn().smembers(SALES_KEY).await?))
    }

    pub async fn has_sale(&self, sale: &SaleId) -> Result<bool, Fault> {
        Ok(self.conn().exists(key(sale, "cfg")).await?)
    }

    /// Of these sales, the ones Redis does not have (one round trip; none for no sales, as
    /// Redis refuses an empty pipeline).
    pub async fn missing(&self, sales: &[SaleId]) -> Result<Vec<SaleId>, Fault> {
        if sales.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for sale in sales {
            pipe.exists(key(sale, "cfg"));
        }
        let there: Vec<bool> = pipe.query_async(&mut self.conn()).await?;
        Ok(sales
            .iter()
            .zip(there)
            .filter(|(_, there)| !there)
            .map(|(sale, _)| sale.clone())
            .collect())
    }

    /// Of these sales, the ones Redis has but does not list in `wr:sales` (a create whose
    /// `SADD` failed after its keys were written): the ticker and sweeper would never see them.
    pub async fn unlisted(&self, sales: &[SaleId]) -> Result<Vec<SaleId>, Fault> {
        if sales.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for sale in sales {
            pipe.exists(key(sale, "cfg"));
        }
        pipe.cmd("SMISMEMBER").arg(SALES_KEY).arg(sales);
        let mut replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let listed: Vec<bool> =
            redis::from_redis_value(replies.pop().ok_or_else(|| unexpected("SMISMEMBER"))?)
                .map_err(|_| unexpected("SMISMEMBER"))?;
        let there: Vec<bool> = redis::from_redis_value(redis::Value::Array(replies))
            .map_err(|_| unexpected("EXISTS"))?;
        Ok(sales
            .iter()
            .zip(there.into_iter().zip(listed))
            .filter(|(_, (there, listed))| *there && !listed)
            .map(|(sale, _)| sale.clone())
            .collect())
    }

    /// Writes a new sale's settings and stock and registers it with the ticker. It starts
    /// closed: the admin (or `SET wr:{id}:open 1`) opens it. `wr:sales` lives in another
    /// slot than the sale's keys, so it is its own write, made first as in `rebuild_sale`: a
    /// listed sale whose keys never came is one the rebuilder restores from the ledger.
    pub async fn put_sale(&self, spec: &SaleSpec, stock: i64) -> Result<(), Fault> {
        let sale = &spec.id;
        let mut c = self.conn();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(key(sale, "cfg"), &cfg_fields(spec))
            .ignore()
            .set(key(sale, "stock"), stock)
            .ignore();
        let units: Vec<(&str, i32)> = vunits(&spec.settings.variants).into_iter().collect();
        if !units.is_empty() {
            // A new sale: each variant's stock is its units.
            pipe.hset_multiple(key(sale, "vunits"), &units)
                .ignore()
                .hset_multiple(key(sale, "vstock"), &units)
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        // Listed only once it exists: a ticker that met it listed but empty would take it
        // for sold out.
        let _: () = c.sadd(SALES_KEY, sale).await?;
        Ok(())
    }

    /// Takes a finished sale out of the set the ticker and sweeper go through. Its keys stay
    /// for `FINISHED_KEEP`, so every read of it still answers from Redis meanwhile; after that
    /// Redis no longer holds it (a read rebuilds it from the ledger, which keeps the truth).
    /// `set_open` or `list_sale` make it live again, its keys kept for good.
    pub async fn unlist_sale(&self, sale: &SaleId) -> Result<(), Fault> {
        let _: () = self.conn().srem(SALES_KEY, sale).await?;
        let mut pipe = redis::pipe();
        for name in SALE_KEYS {
            pipe.expire(key(sale, name), FINISHED_KEEP.as_secs() as i64)
                .ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// A sale live again (reopened, restocked): its keys lose the expiry `unlist_sale` gave.
    async fn keep_sale(&self, sale: &SaleId) -> Result<(), Fault> {
        let mut pipe = redis::pipe();
        for name in SALE_KEYS {
            pipe.persist(key(sale, name)).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    pub async fn set_open(&self, sale: &SaleId, open: bool) -> Result<(), Fault> {
        let mut c = self.conn();
        if open {
            // Listed again: a finished sale reopened is looked at until it finishes again.
            let _: () = c.sadd(SALES_KEY, sale).await?;
            self.keep_sale(sale).await?;
            // Opened again after its closing time: not ended any more.
            let _: () = c.hdel(key(sale, "cfg"), "ended").await?;
            let _: () = c.set(key(sale, "open"), "1").await?;
        } else {
            let _: () = c.del(key(sale, "open")).await?;
        }
        let kind = if open { "opened" } else { "closed" };
        let _: () = redis::cmd("SPUBLISH")
            .arg(events_channel(sale))
            .arg(format!(r#"{{"type":"{kind}"}}"#))
            .query_async(&mut c)
            .await?;
        Ok(())
    }
}

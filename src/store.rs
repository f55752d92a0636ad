//! Redis: the only module that knows key names and scripts.
//!
//! Every key of a sale carries the hash tag `{<sale>}`, so each script touches one Redis
//! Cluster slot. Scripts are sent by SHA (`EVALSHA`); the redis crate reloads one on
//! `NOSCRIPT`, which is what a failover or `SCRIPT FLUSH` leaves behind.
//!
//! Commands go over a few multiplexed connections that reconnect by themselves, shared by all
//! requests (each request's commands are pipelined with everyone else's). Not a checkout
//! pool: deadpool-redis pings a connection on every checkout, which doubled the round trips
//! of every join and halved throughput in the bench.

use std::collections::HashMap;
use std::sync::LazyLock;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use crate::domain::SaleSpec;
use crate::error::AppError;
use crate::ledger::Released;

/// The set of sales the ticker looks at.
pub const SALES_KEY: &str = "wr:sales";
/// Pattern matching every sale's event channel.
pub const EVENTS_PATTERN: &str = "wr:{*}:events";

static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/enqueue.lua")));
static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/admit.lua")));
static CHECKOUT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/checkout.lua")));
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/release.lua")));
static AMEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/amend.lua")));
static RECONCILE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/reconcile.lua")));
static RESTORE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/restore.lua")));

/// Redis `TIME` (seconds, microseconds) in milliseconds, the unit every stored time uses.
fn time_ms(secs: i64, micros: i64) -> i64 {
    secs * 1000 + micros / 1000
}

/// Key of one sale: `wr:{<sale>}:<name>`.
pub fn key(sale: &str, name: &str) -> String {
    format!("wr:{{{sale}}}:{name}")
}

/// The sale a channel such as `wr:{demo}:events` belongs to.
pub fn sale_of_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("wr:{")?.strip_suffix("}:events")
}

#[derive(Clone)]
pub struct Store {
    conns: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// No such sale in Redis.
    Unknown,
    /// The sale exists but this shopper is in none of its sets: the queue was lost (Redis
    /// flushed or failed over) and the place can be restored from the shopper's token.
    Lost,
    SoldOut,
    Waiting {
        position: i64,
    },
    Admitted {
        expires_at_ms: i64,
    },
    Expired,
    Purchased {
        record: String,
    },
}

#[derive(Debug, Clone)]
pub struct Joined {
    pub place: Place,
    /// The sale is admitting (meaningful when waiting).
    pub open: bool,
    pub score: i64,
    pub seq: i64,
}

/// One admission tick's outcome: the sale's progress plus who was let in.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    pub open: bool,
    pub stock: i64,
    pub active: i64,
    pub queue_len: i64,
    pub admitted_total: i64,
    pub rate_per_sec: i64,
    pub admitted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Take {
    /// Units taken now; the record is `<order id>:<qty>:<ms>`.
    Taken(String),
    /// The ticket bought before: the same record again.
    Again(String),
    Expired,
    NotAdmitted,
    SoldOut,
    Insufficient(i64),
    TooMany(i64),
    /// Redis does not have the sale.
    Unknown,
}

/// The fields of a sale's `cfg` hash, which the scripts read.
fn cfg_fields(spec: &SaleSpec) -> [(&'static str, i64); 6] {
    [
        ("units", spec.units as i64),
        ("price_cents", spec.price_cents),
        ("rate_per_sec", spec.rate_per_sec as i64),
        ("ticket_ttl_secs", spec.ticket_ttl_secs as i64),
        ("max_per_order", spec.max_per_order as i64),
        ("max_active", spec.max_active as i64),
    ]
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Live {
    pub open: bool,
    pub remaining: i64,
    pub queue_len: i64,
    pub admitted_active: i64,
    pub admitted_total: i64,
}

/// A shopper's place, read atomically with the sale's progress so the page can derive later
/// positions from `admitted_total` alone.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub place: Place,
    pub live: Live,
}

/// open, stock, queue length, admitted now, admitted ever.
type LiveReply = (Option<String>, Option<i64>, i64, i64, Option<i64>);

fn live_commands<'a>(pipe: &'a mut redis::Pipeline, sale: &str) -> &'a mut redis::Pipeline {
    pipe.get(key(sale, "open"))
        .get(key(sale, "stock"))
        .zcard(key(sale, "queue"))
        .zcard(key(sale, "admitted"))
        .get(key(sale, "admits"))
}

impl From<LiveReply> for Live {
    fn from((open, stock, queue_len, active, total): LiveReply) -> Self {
        Self {
            open: open.as_deref() == Some("1"),
            remaining: stock.unwrap_or(0),
            queue_len,
            admitted_active: active,
            admitted_total: total.unwrap_or(0),
        }
    }
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
            conns.push(ConnectionManager::new_with_config(client.clone(), config.clone()).await?);
        }
        Ok(Self {
            conns: conns.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }

    /// Loads every script into Redis's cache (readiness checks this).
    pub async fn load_scripts(&self) -> Result<(), AppError> {
        let mut c = self.conn();
        for s in [
            &*ENQUEUE,
            &*ADMIT,
            &*CHECKOUT,
            &*RELEASE,
            &*AMEND,
            &*RECONCILE,
            &*RESTORE,
        ] {
            let _: String = s.prepare_invoke().load_async(&mut c).await?;
        }
        Ok(())
    }

    pub async fn sale_ids(&self) -> Result<Vec<String>, AppError> {
        Ok(self.conn().smembers(SALES_KEY).await?)
    }

    pub async fn has_sale(&self, sale: &str) -> Result<bool, AppError> {
        Ok(self.conn().exists(key(sale, "cfg")).await?)
    }

    /// Of these sales, the ones Redis does not have (one round trip).
    pub async fn missing(&self, sales: &[String]) -> Result<Vec<String>, AppError> {
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

    /// Writes a sale's settings and stock and registers it with the ticker. The open flag is
    /// left alone: a rebuilt sale stays as the admin left it, a lost flag means closed.
    pub async fn put_sale(&self, spec: &SaleSpec, stock: i64) -> Result<(), AppError> {
        let mut c = self.conn();
        let sale = spec.id.as_str();
        redis::pipe()
            .atomic()
            .hset_multiple(key(sale, "cfg"), &cfg_fields(spec))
            .ignore()
            .set(key(sale, "stock"), stock)
            .ignore()
            .sadd(SALES_KEY, sale)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Rebuilds a lost sale (see lua/restore.lua): `used` maps the queue ids that bought to
    /// their order records, `expired` lists those whose orders lapsed. False if the sale was
    /// there already.
    pub async fn restore_sale(
        &self,
        spec: &SaleSpec,
        stock: i64,
        used: &std::collections::HashMap<String, String>,
        expired: &[String],
    ) -> Result<bool, AppError> {
        let sale = spec.id.as_str();
        let state = serde_json::json!({
            "cfg": cfg_fields(spec).into_iter().collect::<std::collections::HashMap<_, _>>(),
            "stock": stock,
            "used": used,
            "expired": expired,
        });
        let mut c = self.conn();
        // Listed first: were this to fail after the rebuild, no later call would list it
        // (they all find the sale present), and the ticker and ledger sync would skip it.
        let _: () = c.sadd(SALES_KEY, sale).await?;
        let rebuilt: bool = RESTORE
            .key(key(sale, "cfg"))
            .key(key(sale, "stock"))
            .key(key(sale, "used"))
            .key(key(sale, "expired"))
            .key(key(sale, "released"))
            .key(key(sale, "unsettled"))
            .arg(state.to_string())
            .invoke_async(&mut c)
            .await?;
        Ok(rebuilt)
    }

    pub async fn set_open(&self, sale: &str, open: bool) -> Result<(), AppError> {
        let mut c = self.conn();
        if open {
            let _: () = c.set(key(sale, "open"), "1").await?;
        } else {
            let _: () = c.del(key(sale, "open")).await?;
        }
        let kind = if open { "opened" } else { "closed" };
        let _: () = c
            .publish(key(sale, "events"), format!(r#"{{"type":"{kind}"}}"#))
            .await?;
        Ok(())
    }

    /// Joins the line (`score` = None) or re-presents a queue token's place: `Place::Lost` if
    /// Redis no longer has it (see `restore_place`).
    pub async fn enqueue(
        &self,
        sale: &str,
        qid: &str,
        score: Option<i64>,
    ) -> Result<Joined, AppError> {
        self.run_enqueue(sale, qid, score, "").await
    }

    /// Puts a lost place back in line at the score its token records.
    pub async fn restore_place(&self, sale: &str, qid: &str, score: i64) -> Result<(), AppError> {
        self.run_enqueue(sale, qid, Some(score), "restore")
            .await
            .map(drop)
    }

    async fn run_enqueue(
        &self,
        sale: &str,
        qid: &str,
        score: Option<i64>,
        mode: &str,
    ) -> Result<Joined, AppError> {
        let mut c = self.conn();
        let (status, score, seq, position, open): (String, String, i64, i64, i64) = ENQUEUE
            .key(key(sale, "cfg"))
            .key(key(sale, "queue"))
            .key(key(sale, "admitted"))
            .key(key(sale, "expired"))
            .key(key(sale, "used"))
            .key(key(sale, "stock"))
            .key(key(sale, "seq"))
            .key(key(sale, "open"))
            .arg(qid)
            .arg(score.map(|s| s.to_string()).unwrap_or_default())
            .arg(mode)
            .invoke_async(&mut c)
            .await?;
        let place = match status.as_str() {
            "waiting" => Place::Waiting { position },
            "sold_out" => Place::SoldOut,
            "admitted" => Place::Admitted { expires_at_ms: 0 },
            "expired" => Place::Expired,
            "purchased" => Place::Purchased {
                record: String::new(),
            },
            "lost" => Place::Lost,
            _ => Place::Unknown,
        };
        Ok(Joined {
            place,
            open: open == 1,
            score: score.parse().unwrap_or(0),
            seq,
        })
    }

    pub async fn admit(&self, sale: &str) -> Result<Tick, AppError> {
        let mut c = self.conn();
        let mut v: Vec<redis::Value> = ADMIT
            .key(key(sale, "open"))
            .key(key(sale, "cfg"))
            .key(key(sale, "stock"))
            .key(key(sale, "queue"))
            .key(key(sale, "admitted"))
            .key(key(sale, "bucket"))
            .key(key(sale, "expired"))
            .key(key(sale, "events"))
            .key(key(sale, "admits"))
            .invoke_async(&mut c)
            .await?;
        let bad = |_| AppError::unavailable("unexpected reply from admit.lua");
        let ids: Vec<String> =
            redis::from_redis_value(redis::Value::Array(v.split_off(7.min(v.len()))))
                .map_err(bad)?;
        let n: Vec<i64> = redis::from_redis_value(redis::Value::Array(v)).map_err(bad)?;
        let [open, stock, active, queue_len, admitted_total, _expired_now, rate] = n[..] else {
            return Err(AppError::unavailable("unexpected reply from admit.lua"));
        };
        Ok(Tick {
            open: open == 1,
            stock,
            active,
            queue_len,
            admitted_total,
            rate_per_sec: rate,
            admitted: ids,
        })
    }

    pub async fn take(
        &self,
        sale: &str,
        qid: &str,
        qty: i32,
        order_id: &str,
    ) -> Result<Take, AppError> {
        let mut c = self.conn();
        let (outcome, detail): (String, String) = CHECKOUT
            .key(key(sale, "admitted"))
            .key(key(sale, "used"))
            .key(key(sale, "stock"))
            .key(key(sale, "expired"))
            .key(key(sale, "pending"))
            .key(key(sale, "events"))
            .key(key(sale, "cfg"))
            .arg(qid)
            .arg(qty)
            .arg(order_id)
            .invoke_async(&mut c)
            .await?;
        Ok(match outcome.as_str() {
            "ok" => Take::Taken(detail),
            "dup" => Take::Again(detail),
            "expired" => Take::Expired,
            "sold_out" => Take::SoldOut,
            "insufficient" => Take::Insufficient(detail.parse().unwrap_or(0)),
            "too_many" => Take::TooMany(detail.parse().unwrap_or(1)),
            "unknown" => Take::Unknown,
            _ => Take::NotAdmitted,
        })
    }

    /// Gives back the units of orders the ledger released and marks their tickets spent.
    /// Idempotent per ticket (see lua/release.lua). Returns the stock now.
    pub async fn release(&self, sale: &str, orders: &[Released]) -> Result<i64, AppError> {
        let mut call = RELEASE.prepare_invoke();
        call.key(key(sale, "cfg"))
            .key(key(sale, "stock"))
            .key(key(sale, "events"))
            .key(key(sale, "used"))
            .key(key(sale, "expired"))
            .key(key(sale, "released"))
            .key(key(sale, "unsettled"));
        for o in orders {
            call.arg(&o.ticket)
                .arg(o.quantity)
                .arg(o.order_id.to_string());
        }
        match call.invoke_async(&mut self.conn()).await? {
            -1 => Err(AppError::unavailable(
                "the sale is missing from redis; released once it is rebuilt",
            )),
            left => Ok(left),
        }
    }

    /// The ledger already holds `record` for this ticket (Redis had forgotten it): gives back
    /// whatever Redis took for it since, and keeps the ledger's record.
    pub async fn amend(&self, sale: &str, qid: &str, record: &str) -> Result<i64, AppError> {
        Ok(AMEND
            .key(key(sale, "stock"))
            .key(key(sale, "events"))
            .key(key(sale, "used"))
            .arg(qid)
            .arg(record)
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// The ledger refused an order Redis accepted (Redis's stock was ahead of Postgres): the
    /// ticket is spent, nothing was sold, and the units it took never existed.
    pub async fn void(&self, sale: &str, qid: &str) -> Result<(), AppError> {
        redis::pipe()
            .atomic()
            .hdel(key(sale, "used"), qid)
            .sadd(key(sale, "expired"), qid)
            .srem(key(sale, "pending"), qid)
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Sets stock from the ledger's `units` and `sold`, read under the sale's row lock, with
    /// the orders it released that Redis has not confirmed and, of the tickets in `pending`,
    /// those Postgres has recorded: ticket → order id (see lua/reconcile.lua).
    pub async fn reconcile(
        &self,
        sale: &str,
        units: i64,
        sold: i64,
        released: &[Released],
        recorded: &HashMap<String, Uuid>,
        settle_after: Duration,
    ) -> Result<i64, AppError> {
        let released: Vec<[String; 2]> = released
            .iter()
            .map(|o| [o.ticket.clone(), o.order_id.to_string()])
            .collect();
        let args = serde_json::json!({
            "units": units, "sold": sold, "released": released, "recorded": recorded,
            "settle_after_ms": settle_after.as_millis() as u64,
        });
        Ok(RECONCILE
            .key(key(sale, "stock"))
            .key(key(sale, "pending"))
            .key(key(sale, "used"))
            .key(key(sale, "events"))
            .key(key(sale, "expired"))
            .key(key(sale, "released"))
            .key(key(sale, "unsettled"))
            .arg(args.to_string())
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Whether this sale was rebuilt (see lua/restore.lua) at least `after` ago, by Redis's
    /// clock, and not reconciled since.
    pub async fn unsettled_for(&self, sale: &str, after: Duration) -> Result<bool, AppError> {
        let ((secs, micros), since): ((i64, i64), Option<i64>) = redis::pipe()
            .cmd("TIME")
            .get(key(sale, "unsettled"))
            .query_async(&mut self.conn())
            .await?;
        let now_ms = time_ms(secs, micros);
        Ok(since.is_some_and(|t| now_ms - t >= after.as_millis() as i64))
    }

    /// Queue ids whose tickets bought (the `used` hash's keys).
    pub async fn buyers(&self, sale: &str) -> Result<std::collections::HashSet<String>, AppError> {
        Ok(self.conn().hkeys(key(sale, "used")).await?)
    }

    /// Orders Redis accepted that Postgres has not confirmed: (queue id, record).
    pub async fn pending(&self, sale: &str) -> Result<Vec<(String, String)>, AppError> {
        let mut c = self.conn();
        let qids: Vec<String> = c.smembers(key(sale, "pending")).await?;
        if qids.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(key(sale, "used"))
            .arg(&qids)
            .query_async(&mut c)
            .await?;
        Ok(qids
            .into_iter()
            .zip(records)
            .filter_map(|(q, r)| r.map(|r| (q, r)))
            .collect())
    }

    pub async fn clear_pending(&self, sale: &str, qids: &[&str]) -> Result<(), AppError> {
        if qids.is_empty() {
            return Ok(());
        }
        let _: () = self.conn().srem(key(sale, "pending"), qids).await?;
        Ok(())
    }

    pub async fn live(&self, sale: &str) -> Result<Live, AppError> {
        let mut c = self.conn();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let reply: LiveReply = live_commands(&mut pipe, sale).query_async(&mut c).await?;
        Ok(Live::from(reply))
    }

    /// Where one shopper stands, in one atomic round trip.
    pub async fn snapshot(&self, sale: &str, qid: &str) -> Result<Snapshot, AppError> {
        let mut c = self.conn();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .exists(key(sale, "cfg"))
            .zrank(key(sale, "queue"), qid)
            .zscore(key(sale, "admitted"), qid)
            .hget(key(sale, "used"), qid)
            .sismember(key(sale, "expired"), qid)
            .cmd("TIME");
        let mut values: Vec<redis::Value> =
            live_commands(&mut pipe, sale).query_async(&mut c).await?;
        let bad = |_| AppError::unavailable("unexpected reply from redis");
        let live_part = redis::Value::Array(values.split_off(6.min(values.len())));
        let live = Live::from(redis::from_redis_value::<LiveReply>(live_part).map_err(bad)?);
        #[allow(clippy::type_complexity)]
        let (exists, rank, expires, record, expired, (secs, micros)): (
            bool,
            Option<i64>,
            Option<f64>,
            Option<String>,
            bool,
            (i64, i64),
        ) = redis::from_redis_value(redis::Value::Array(values)).map_err(bad)?;
        let now_ms = time_ms(secs, micros);
        let place = if !exists {
            Place::Unknown
        } else if let Some(record) = record {
            Place::Purchased { record }
        } else if let Some(exp) = expires.filter(|&e| e as i64 > now_ms) {
            Place::Admitted {
                expires_at_ms: exp as i64,
            }
        } else if expired || expires.is_some() {
            // An admission past its expiry is lapsed, even before the next tick sweeps it.
            Place::Expired
        } else if let Some(rank) = rank {
            if live.remaining <= 0 {
                Place::SoldOut
            } else {
                Place::Waiting { position: rank + 1 }
            }
        } else {
            // Lost even when sold out: the ledger is asked, as this may be a buyer Redis forgot.
            Place::Lost
        };
        Ok(Snapshot { place, live })
    }
}

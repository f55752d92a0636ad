//! The one connection type of the store: a `ConnectionManager` on a single Redis, or the redis
//! crate's async cluster client on Redis Cluster. Both implement `ConnectionLike`, so scripts,
//! commands and pipelines are written once.
//!
//! The async cluster client sends a pipeline to the slot of its first keyed command and fails
//! one that spans slots (`CROSSSLOT`). Our non-atomic pipelines read many sales at once, so here
//! they are split by hash tag into one pipeline per sale, sent concurrently, and the replies put
//! back in order. A transaction (`MULTI`) is never split: each of ours touches one sale.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::{join_all, FutureExt};
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo,
    RedisFuture, RedisResult, Value,
};
use tokio::sync::mpsc::UnboundedSender;

/// Where Redis is: one server (`WAITROOM_REDIS_URL`) or a cluster
/// (`WAITROOM_REDIS_CLUSTER_NODES`, any of whose nodes lead to the rest).
#[derive(Debug, Clone)]
pub enum Target {
    Single(String),
    Cluster(Vec<String>),
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

impl Target {
    /// The Redis a configuration names: its cluster nodes if any, else its one server.
    pub fn of(config: &crate::core::config::Config) -> Self {
        match config.redis.cluster_nodes.is_empty() {
            true => Self::Single(config.redis.url.clone()),
            false => Self::Cluster(config.redis.cluster_nodes.clone()),
        }
    }

    fn cluster_builder(nodes: &[String]) -> ClusterClientBuilder {
        ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            // Fail fast like the single connection: callers answer 503 and retry.
            .retries(3)
            .max_retry_wait(500)
    }

    /// A connection that receives sharded pub/sub messages on `pushes` (RESP3). On a cluster
    /// the client resubscribes by itself after a node reconnects; on one Redis the caller
    /// reconnects when it sees `PushKind::Disconnection`.
    pub async fn subscriber(&self, pushes: UnboundedSender<PushInfo>) -> RedisResult<Subscriber> {
        match self {
            Target::Single(url) => {
                let info = url.as_str().into_connection_info()?;
                let resp3 = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                let client = redis::Client::open(info.set_redis_settings(resp3))?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_push_sender(pushes);
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Subscriber::Single(conn))
            }
            Target::Cluster(nodes) => {
                let client = Self::cluster_builder(nodes)
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(pushes)
                    .build()?;
                Ok(Subscriber::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

/// A connection to one Redis or to a cluster; cheap to clone (both multiplex).
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    pub async fn cluster(nodes: &[String]) -> RedisResult<Self> {
        let client = Target::cluster_builder(nodes).build()?;
        Ok(Self::Cluster(client.get_async_connection().await?))
    }
}

/// What decides a command's slot: the hash tag of its first key (`wr:{S}:x` → `S`), or nothing
/// for a keyless command such as `TIME`.
fn slot_group(cmd: &Cmd) -> Option<Vec<u8>> {
    let mut args = cmd.args_iter();
    let name = match args.next()? {
        redis::Arg::Simple(a) => a,
        _ => return None,
    };
    if name.eq_ignore_ascii_case(b"TIME") {
        return None;
    }
    let key = match args.next()? {
        redis::Arg::Simple(k) => k,
        _ => return None,
    };
    let tag = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    Some(tag.to_vec())
}

/// Sends a non-atomic pipeline as one pipeline per slot group, concurrently.
async fn split_pipeline(
    conn: &ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let mut groups: HashMap<Option<Vec<u8>>, Vec<usize>> = HashMap::new();
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        groups.entry(slot_group(cmd)).or_default().push(i);
    }
    if groups.len() <= 1 {
        return conn
            .clone()
            .req_packed_commands(pipeline, offset, count)
            .await;
    }
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let sends = groups.into_values().map(|indices| {
        let mut part = redis::pipe();
        for &i in &indices {
            part.add_command(cmds[i].clone());
        }
        let mut conn = conn.clone();
        async move {
            let n = part.len();
            let values = conn.req_packed_commands(&part, 0, n).await?;
            Ok::<_, redis::RedisError>((indices, values))
        }
    });
    let mut out = vec![Value::Nil; pipeline.len()];
    for part in join_all(sends).await {
        let (indices, values) = part?;
        for (i, v) in indices.into_iter().zip(values) {
            out[i] = v;
        }
    }
    Ok(out.into_iter().skip(offset).take(count).collect())
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => match pipeline.is_transaction() {
                true => c.req_packed_commands(pipeline, offset, count),
                false => split_pipeline(c, pipeline, offset, count).boxed(),
            },
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The instance's pub/sub connection (see `Target::subscriber`).
pub enum Subscriber {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Subscriber {
    /// `SSUBSCRIBE`s these channels. One channel per command: a cluster routes each to its
    /// slot's node, and on one Redis each command then has exactly one confirmation to wait for.
    pub async fn ssubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriber::Single(c) => {
                let mut pipe = redis::pipe();
                for ch in channels {
                    pipe.cmd("SSUBSCRIBE").arg(ch).ignore();
                }
                pipe.query_async(c).await
            }
            Subscriber::Cluster(c) => {
                let subs = channels.iter().map(|ch| {
                    let mut c = c.clone();
                    async move { c.ssubscribe(ch).await }
                });
                join_all(subs).await.into_iter().collect()
            }
        }
    }

    /// Whether this connection reconnects by itself (a cluster) or must be replaced.
    pub fn reconnects(&self) -> bool {
        matches!(self, Subscriber::Cluster(_))
    }
}

#[cfg(test)]
mod tests {
    use super::slot_group;

    #[test]
    fn commands_group_by_their_first_keys_hash_tag() {
        let tag = |c: &redis::Cmd| slot_group(c).map(|g| String::from_utf8(g).unwrap());
        assert_eq!(tag(redis::cmd("GET").arg("wr:{a}:stock")), Some("a".into()));
        assert_eq!(
            tag(redis::cmd("ZCARD").arg("wr:{a}:queue")),
            Some("a".into())
        );
        assert_eq!(
            tag(redis::cmd("SMEMBERS").arg("wr:sales")),
            Some("wr:sales".into())
        );
        assert_eq!(tag(redis::cmd("GET").arg("x{}y")), Some("x{}y".into()));
        assert_eq!(tag(&redis::cmd("TIME")), None);
    }
}

//! Configuration from `WAITROOM_*` environment variables, validated once at start so a bad
//! value stops the process with a message naming the variable, never later at request time.
//!
//! In sections, one per part of the instance that reads them (`http`, `redis`, `postgres`,
//! `tokens`, `door`, `loops`, `streams`, `webhooks`, `log`); each section parses its own variables from
//! one lookup (`from_lookup`: the process env, or a map in tests). This file is the only place
//! a `WAITROOM_*` variable is read; README's "Configuration" table lists every one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::core::client::ClientIdentity;

mod limits;
#[cfg(test)]
mod tests;
mod webhooks;

pub use limits::{Class, RateLimits, WideLimits};
pub use webhooks::Webhooks;

/// How long after a rebuild a sale is settled by default: by then every order Redis accepted
/// before it lost the sale has committed or given up (`infra::ledger` checks at compile time
/// that its latest commit comes sooner).
pub const SETTLE_AFTER: Duration = Duration::from_secs(15);

/// Secrets are `SecretString`s: `Debug` prints them redacted, so a logged `Config` shows none.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: Http,
    pub redis: Redis,
    pub postgres: Postgres,
    pub tokens: Tokens,
    pub door: Door,
    pub loops: Loops,
    pub streams: Streams,
    pub webhooks: Webhooks,
    pub log: Log,
}

/// The HTTP server.
#[derive(Debug, Clone)]
pub struct Http {
    /// `WAITROOM_BIND`.
    pub bind: SocketAddr,
    /// `WAITROOM_WORKERS`: actix workers (threads).
    pub workers: usize,
    /// `WAITROOM_MAX_CONNECTIONS`: per worker; each SSE stream holds one.
    pub max_connections_per_worker: usize,
}

/// Where Redis is and how many connections to share.
#[derive(Debug, Clone)]
pub struct Redis {
    /// `WAITROOM_REDIS_URL`.
    pub url: String,
    /// `WAITROOM_REDIS_CLUSTER_NODES`; when set, `url` is unused.
    pub cluster_nodes: Vec<String>,
    /// `WAITROOM_REDIS_CONNECTIONS`: multiplexed connections shared by all requests.
    pub connections: usize,
}

/// The ledger.
#[derive(Debug, Clone)]
pub struct Postgres {
    /// `WAITROOM_DATABASE_URL`.
    pub url: SecretString,
    /// `WAITROOM_PG_POOL`.
    pub pool_size: u32,
}

/// Every key and secret waitroom signs or checks with.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// `WAITROOM_SIGNING_KEYS`: Ed25519 private keys (PKCS#8 PEM text). The first signs; all
    /// verify, so a key can be rotated in without logging anyone out. Empty: a development key
    /// is generated.
    pub signing_keys_pem: Vec<SecretString>,
    /// `WAITROOM_ISSUER`: the tokens' `iss`.
    pub issuer: String,
    /// `WAITROOM_QUEUE_TOKEN_TTL_SECS`: a queue token's life, and its cookies'.
    pub queue_token_ttl: Duration,
    /// `WAITROOM_ADMIN_TOKEN`: bearer token for `/api/admin`; empty disables the admin API.
    pub admin: SecretString,
    /// `WAITROOM_PAYMENT_SECRET`: HMAC-SHA256 secret of the payment webhook; empty refuses it.
    pub payment_secret: SecretString,
}

/// Who is asking and how often they may (`flows::door`).
#[derive(Debug, Clone)]
pub struct Door {
    /// `WAITROOM_TRUSTED_PROXIES`, `WAITROOM_CLIENT_IP_HEADER` (`core::client`).
    pub clients: ClientIdentity,
    /// `WAITROOM_IP_RATE_PER_SEC`, `WAITROOM_IP_BURST`, `WAITROOM_IP_READ_RATE_PER_SEC`,
    /// `WAITROOM_IPV6_AGGREGATE_PREFIX`, `WAITROOM_IPV6_AGGREGATE_SHARE`.
    pub limits: RateLimits,
    /// `WAITROOM_BIND_TOKENS`: tokens are refused without the browser's session cookie.
    pub bind_tokens: bool,
}

/// The background loops' periods (`tasks`).
#[derive(Debug, Clone)]
pub struct Loops {
    /// `WAITROOM_TICK_MS`: the admission tick.
    pub tick: Duration,
    /// `WAITROOM_SWEEP_MS`: holds expire, Redis-accepted orders reach Postgres, readiness is
    /// checked; lost sales are looked for every ten sweeps.
    pub sweep: Duration,
    /// `WAITROOM_SETTLE_AFTER_MS`, for tests only: how long a sale marked `unsettled` waits
    /// before a settle reconciles it (`SETTLE_AFTER`; shorter risks the ledger refusing an
    /// order Redis accepted).
    pub settle_after: Duration,
    /// How often the dashboard's sampler reads every sale. Not a variable: None only in test
    /// instances that no dashboard watches.
    pub console_sample: Option<Duration>,
}

/// The event streams.
#[derive(Debug, Clone)]
pub struct Streams {
    /// `WAITROOM_STREAMS_PER_TOKEN`: open streams per queue id on one instance; one more
    /// closes the oldest.
    pub per_token: usize,
    /// `WAITROOM_STREAMS_PER_CLIENT`: open streams per client on one instance, whatever their
    /// tokens; one more is 429 `too_many_streams` (a household's tabs fit many times over).
    pub per_client: usize,
}

/// Logging (`infra::telemetry`); `RUST_LOG` filters, read by tracing itself.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// `WAITROOM_LOG_FORMAT=json`: one JSON object a line.
    pub json: bool,
}

/// One variable's value, blank counted as unset.
type Var<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Config {
    /// Defaults for everything but the two store URLs.
    pub fn new(redis_url: impl Into<String>, database_url: impl Into<String>) -> Self {
        let database_url: String = database_url.into();
        Self {
            http: Http {
                bind: "127.0.0.1:8080".parse().expect("valid default address"),
                workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
                max_connections_per_worker: 100_000,
            },
            redis: Redis {
                url: redis_url.into(),
                cluster_nodes: Vec::new(),
                connections: 4,
            },
            postgres: Postgres {
                url: database_url.into(),
                pool_size: 16,
            },
            tokens: Tokens {
                signing_keys_pem: Vec::new(),
                issuer: "waitroom".into(),
                queue_token_ttl: Duration::from_secs(24 * 3600),
                admin: SecretString::default(),
                payment_secret: SecretString::default(),
            },
            door: Door {
                clients: ClientIdentity::default(),
                limits: RateLimits::default(),
                bind_tokens: true,
            },
            loops: Loops {
                tick: Duration::from_millis(200),
                sweep: Duration::from_millis(1000),
                settle_after: SETTLE_AFTER,
                console_sample: Some(Duration::from_secs(1)),
            },
            streams: Streams {
                per_token: 3,
                per_client: 40,
            },
            webhooks: Webhooks::default(),
            log: Log::default(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get`, so tests can feed a map instead of the process env.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut c = Self::new(
            var("WAITROOM_REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379/".into()),
            var("WAITROOM_DATABASE_URL")
                .unwrap_or_else(|| "postgres://waitroom@127.0.0.1:5432/waitroom".into()),
        );
        c.http.read(&var)?;
        c.redis.read(&var)?;
        c.postgres.read(&var)?;
        c.tokens.read(&var)?;
        c.door.read(&var)?;
        c.loops.read(&var)?;
        c.streams.read(&var)?;
        c.webhooks.read(&var)?;
        c.log.json = var("WAITROOM_LOG_FORMAT").as_deref() == Some("json");
        Ok(c)
    }
}

impl Http {
    fn read(&mut self, var: Var) -> Result<(), ConfigError> {
        if let Some(v) = var("WAITROOM_BIND") {
            self.bind = parse("WAITROOM_BIND", &v)?;
        }
        if let Some(v) = var("WAITROOM_WORKERS") {
            self.workers = bounded("WAITROOM_WORKERS", &v, 1, 256)? as usize;
        }
        if let Some(v) = var("WAITROOM_MAX_CONNECTIONS") {
            self.max_connections_per_worker =
                bounded("WAITROOM_MAX_CONNECTIONS", &v, 16, 1_000_000)? as usize;
        }
        Ok(())
    }
}

impl Redis {
    fn read(&mut self, var: Var) -> Result<(), ConfigError> {
        let url = |n: &str| n.starts_with("redis://") || n.starts_with("rediss://");
        if !url(&self.url) {
            return Err(ConfigError::new(
                "WAITROOM_REDIS_URL",
                "must start with redis://",
            ));
        }
        if let Some(v) = var("WAITROOM_REDIS_CLUSTER_NODES") {
            self.cluster_nodes = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            if !self.cluster_nodes.iter().all(|n| url(n)) {
                return Err(ConfigError::new(
                    "WAITROOM_REDIS_CLUSTER_NODES",
                    "comma-separated redis:// URLs",
                ));
            }
        }
        if let Some(v) = var("WAITROOM_REDIS_CONNECTIONS") {
            self.connections = bounded("WAITROOM_REDIS_CONNECTIONS", &v, 1, 64)? as usize;
        }
        Ok(())
    }
}

impl Postgres {
    fn read(&mut self, var: Var) -> Result<(), ConfigError> {
        if !self.url.expose_secret().starts_with("postgres") {
            return Err(ConfigError::new(
                "WAITROOM_DATABASE_URL",
                "must start with postgres://",
            ));
        }
        if let Some(v) = var("WAITROOM_PG_POOL") {
            self.pool_size = bounded("WAITROOM_PG_POOL", &v, 1, 1000)? as u32;
        }
        Ok(())
    }
}

impl Tokens {
    fn read(&mut self, var: Var) -> Result<(), ConfigError> {
        self.admin = var("WAITROOM_ADMIN_TOKEN").unwrap_or_default().into();
        let admin_len = self.admin.expose_secret().len();
        if admin_len > 0 && admin_len < 12 {
            return Err(ConfigError::new(
                "WAITROOM_ADMIN_TOKEN",
                "must be at least 12 characters",
            ));
        }
        self.payment_secret = var("WAITROOM_PAYMENT_SECRET").unwrap_or_default().into();
        if let Some(v) = var("WAITROOM_SIGNING_KEYS") {
            for path in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new("WAITROOM_SIGNING_KEYS", format!("cannot read {path}: {e}"))
                })?;
                self.signing_keys_pem.push(pem.into());
            }
        }
        if let Some(v) = var("WAITROOM_ISSUER") {
            self.issuer = v;
        }
        if let Some(v) = var("WAITROOM_QUEUE_TOKEN_TTL_SECS") {
            let (var, day) = ("WAITROOM_QUEUE_TOKEN_TTL_SECS", 86_400);
            self.queue_token_ttl = Duration::from_secs(bounded(var, &v, 60, 30 * day)?);
        }
        Ok(())
    }
}

impl Door {
    fn read(&mut self, var: Var) -> Result<(), ConfigError> {
        if let Some(v) = var("WAITROOM_TRUSTED_PROXIES") {
            // CIDRs; a bare address is a /32 (or /128).
            self.clients.trusted = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| match p.parse::<IpAddr>() {
                    Ok(ip) => Ok(ip.into()),
                    Err(_) => parse("WAITROOM_TRUSTED_PROXIES", p),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = var("WAITROOM_CLIENT_IP_HEADER") {
            let name = v.trim().to_ascii_lowercase();
            actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::new("WAITROOM_CLIENT_IP_HEADER", "not a valid header name")
            })?;
            self.clients.header = Some(name);
        }
        let limits = &mut self.limits;
        if let Some(v) = var("WAITROOM_IP_RATE_PER_SEC") {
            limits.write_per_sec = rate("WAITROOM_IP_RATE_PER_SEC", &v)?;
        }
        if let Some(v) = var("WAITROOM_IP_BURST") {
            limits.write_burst = bounded("WAITROOM_IP_BURST", &v, 1, 1_000_000)? as u32;
        }
        if let Some(v) = var("WAITROOM_IP_READ_RATE_PER_SEC") {
            limits.read_per_sec = rate("WAITROOM_IP_READ_RATE_PER_SEC", &v)?;
            limits.read_burst = RateLimits::read_burst_for(limits.read_per_sec);
        }
        if let Some(v) = var("WAITROOM_IPV6_AGGREGATE_PREFIX") {
            limits.wide.prefix = bounded("WAITROOM_IPV6_AGGREGATE_PREFIX", &v, 0, 63)? as u8;
        }
        if let Some(v) = var("WAITROOM_IPV6_AGGREGATE_SHARE") {
            limits.wide.share = bounded("WAITROOM_IPV6_AGGREGATE_SHARE", &v, 1, 1_000_000)? as u32;
        }
        if let Some(v) = var("WAITROOM_BIND_TOKENS") {
            self.bind_tokens = boolean("WAITROOM_BIND_TOKENS", &v)?;
        }
        Ok(())
    }
}

impl Loops {
    fn read(&mut self, var: Var) -> Result<(), ConfigError> {
        let ms = |name: &'static str, v: &str, min, max| {
            bounded(name, v, min, max).map(Duration::from_millis)
        };
        if let Some(v) = var("WAITROOM_TICK_MS") {
            self.tick = ms("WAITROOM_TICK_MS", &v, 10, 5_000)?;
        }
        if let Some(v) = var("WAITROOM_SWEEP_MS") {
            self.sweep = ms("WAITROOM_SWEEP_MS", &v, 50, 60_000)?;
        }
        if let Some(v) = var("WAITROOM_SETTLE_AFTER_MS") {
            self.settle_after = ms("WAITROOM_SETTLE_AFTER_MS", &v, 100, 600_000)?;
        }
        Ok(())
    }
}

impl Streams {
    fn read(&mut self, var: Var) -> Result<(), ConfigError> {
        if let Some(v) = var("WAITROOM_STREAMS_PER_TOKEN") {
            self.per_token = bounded("WAITROOM_STREAMS_PER_TOKEN", &v, 1, 100)? as usize;
        }
        if let Some(v) = var("WAITROOM_STREAMS_PER_CLIENT") {
            self.per_client = bounded("WAITROOM_STREAMS_PER_CLIENT", &v, 1, 1_000_000)? as usize;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(var: &'static str, reason: impl Into<String>) -> Self {
        Self {
            var,
            reason: reason.into(),
        }
    }
}

fn parse<T: std::str::FromStr>(var: &'static str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.parse()
        .map_err(|e: T::Err| ConfigError::new(var, format!("{v:?}: {e}")))
}

fn bounded(var: &'static str, v: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    let n: u64 = parse(var, v)?;
    if !(min..=max).contains(&n) {
        return Err(ConfigError::new(
            var,
            format!("{n} is outside {min}..={max}"),
        ));
    }
    Ok(n)
}

fn boolean(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(var, "true or false")),
    }
}

/// Requests per second: fractions allowed (0.5 is one every two seconds), 0 means off.
fn rate(var: &'static str, v: &str) -> Result<f64, ConfigError> {
    let r: f64 = parse(var, v)?;
    if !(0.0..=1_000_000.0).contains(&r) {
        return Err(ConfigError::new(var, format!("{r} is outside 0..=1000000")));
    }
    Ok(r)
}

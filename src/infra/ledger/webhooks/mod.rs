//! Outbound webhooks in Postgres: the endpoints (`endpoints`), and the deliveries the relay
//! makes from `outbox` and works through (`deliveries`). A pool of its own (a few
//! connections, `WAITROOM_WEBHOOK_PG_POOL`), so a relay busy with a backlog never holds the
//! connections checkout writes with.

mod deliveries;
mod endpoints;

pub use deliveries::{Backlog, Claimed, DeliveryRow};
pub use endpoints::{Endpoint, EndpointView, Health, NewEndpoint};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The webhook tables' statements, on their own pool.
#[derive(Clone)]
pub struct Webhooks {
    pool: PgPool,
}

impl Webhooks {
    /// Lazy, like the ledger's pool: the app starts while Postgres is down. Statements give
    /// up after 5 s; a connection is waited for longer than checkout does (10 s), since the
    /// relay's attempts queue for a few connections by design.
    pub fn connect_lazy(url: &str, size: u32) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", "5s")]);
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }
}

/// Seconds as Postgres takes them in `$n * interval '1 second'`.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

//! What a failing store looks like to the flows: the one error type of the `store` and
//! `ledger` boundaries. Redis or Postgres down or slow is worth a retry (503); a reply that
//! cannot happen unless our code is wrong is a bug (500), logged where it is mapped.

#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error("postgres: {0}")]
    Postgres(sqlx::Error),
    /// Nothing is broken, but the answer is not ready yet (a sale being rebuilt, a slow
    /// ledger): the client retries.
    #[error("{0}")]
    Busy(&'static str),
    /// Redis or Postgres answered something our own scripts and schema never produce.
    #[error("bug: {0}")]
    Bug(String),
}

/// Who hears of every store failure: `infra::metrics` counts them by kind. A function set once
/// at start, so this bottom layer names no layer above it.
static OBSERVER: std::sync::OnceLock<fn(&Fault)> = std::sync::OnceLock::new();

/// Sets the observer of every store failure; the first call wins (one recorder per process).
pub fn observe_with(observer: fn(&Fault)) {
    let _ = OBSERVER.set(observer);
}

fn observed(fault: Fault) -> Fault {
    if let Some(observe) = OBSERVER.get() {
        observe(&fault);
    }
    fault
}

// Every store failure becomes a `Fault` here, in requests and background loops alike: the
// one place to count them by kind.
impl From<redis::RedisError> for Fault {
    fn from(e: redis::RedisError) -> Self {
        observed(Self::Redis(e))
    }
}

impl From<sqlx::Error> for Fault {
    fn from(e: sqlx::Error) -> Self {
        observed(Self::Postgres(e))
    }
}

impl Fault {
    pub fn bug(what: impl Into<String>) -> Self {
        Self::Bug(what.into())
    }
}

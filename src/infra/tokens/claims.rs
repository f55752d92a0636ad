//! What each kind of token says, and which algorithm each kind is signed with.

use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::core::domain::QueueId;

pub const QUEUE_TYP: &str = "wr-queue";
pub const TICKET_TYP: &str = "wr-admission";

/// What a queue token proves: this shopper joined this sale's line at `t` (µs, Redis clock).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueClaims {
    pub iss: String,
    pub aud: String,
    pub typ: String,
    /// The queue id.
    pub sub: QueueId,
    /// Enqueue time in microseconds: the shopper's score in the queue, kept across restarts.
    pub t: i64,
    pub seq: i64,
    /// The browser session's hash (`door::session::hash`), when the token is bound to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

/// What an admission ticket proves: this shopper may check out until `exp`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketClaims {
    pub iss: String,
    pub aud: String,
    pub typ: String,
    pub sub: QueueId,
    /// Single use: consumed by checkout.lua. Equal to the queue id (one ticket per place).
    pub jti: QueueId,
    /// As the queue token's: checkout refuses the ticket without the browser's cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

/// The claims every kind carries that `jsonwebtoken` does not check for us: `typ` (which
/// kind) and `aud` (which sale, compared by the caller: see `Keys::verify_any_sale`).
pub trait Claims: DeserializeOwned {
    fn typ(&self) -> &str;
    fn aud(&self) -> &str;
}

macro_rules! impl_claims {
    ($($t:ty),*) => {$(
        impl Claims for $t {
            fn typ(&self) -> &str {
                &self.typ
            }
            fn aud(&self) -> &str {
                &self.aud
            }
        }
    )*};
}
impl_claims!(QueueClaims, TicketClaims, Common);

/// Enough of any token to prove it is ours and say which kind it is: what a token of the
/// other kind is verified as before it is refused as the wrong type.
#[derive(Deserialize)]
pub(super) struct Common {
    typ: String,
    aud: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Queue,
    Ticket,
}

impl Kind {
    pub(super) fn typ(self) -> &'static str {
        match self {
            Self::Queue => QUEUE_TYP,
            Self::Ticket => TICKET_TYP,
        }
    }

    /// The one algorithm each kind may use. Tickets are Ed25519 because third parties verify
    /// them from the JWKS; queue tokens are verified only by waitroom, and an HMAC is far
    /// cheaper than an Ed25519 signature on the join path.
    pub(super) fn alg(self) -> Algorithm {
        match self {
            Self::Queue => Algorithm::HS256,
            Self::Ticket => Algorithm::EdDSA,
        }
    }

    pub(super) fn from_typ(typ: &str) -> Option<Self> {
        [Self::Queue, Self::Ticket]
            .into_iter()
            .find(|k| k.typ() == typ)
    }

    pub(super) fn from_alg(alg: Algorithm) -> Option<Self> {
        [Self::Queue, Self::Ticket]
            .into_iter()
            .find(|k| k.alg() == alg)
    }
}

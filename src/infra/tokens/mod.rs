//! Queue tokens and admission tickets: compact JWTs, encoded and checked by `jsonwebtoken`.
//!
//! Admission tickets are signed with Ed25519 (`alg` = EdDSA) because third parties verify
//! them from the JWKS (the gate, a CDN edge). Queue tokens are verified only by waitroom, and
//! signing one was half the CPU of a join in the bench, so they are HS256 with a MAC key
//! derived from the same Ed25519 private key: every instance with the key file derives the
//! same MAC key, and rotating the signing key rotates it too.
//!
//! Keys are parsed once at start (`keys.rs`); nothing is re-parsed per request by us.
//!
//! What must hold: the algorithm is pinned per kind (a queue token must be HS256, a ticket
//! EdDSA; anything else is refused); `typ` separates the kinds and neither is accepted for
//! the other; `aud` is the sale and `iss` this service. Admin sessions (`admin.rs`) are a
//! third kind with a fixed `aud` of their own; hand-off tokens (`order.rs`) a fourth, for the
//! shop, with its origin as `aud`.

mod admin;
mod claims;
mod keys;
mod order;
#[cfg(test)]
mod tests;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use claims::{Common, Kind};

use crate::core::domain::{QueueId, SaleId};

pub use admin::{AdminClaims, ADMIN_AUD, ADMIN_TYP};
pub use claims::{Claims, QueueClaims, TicketClaims, QUEUE_TYP, TICKET_TYP};
pub use keys::{generate_pem, KeyError, Keys};
pub use order::{OrderClaims, OrderGrant, ORDER_TYP};

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    WrongType,
    WrongSale,
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            // A foreign issuer is as good as a foreign key.
            ErrorKind::InvalidSignature | ErrorKind::InvalidIssuer => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::InvalidAudience => Self::WrongSale,
            _ => Self::Malformed,
        }
    }
}

/// The `sub` of a token, read WITHOUT verifying it: only for deciding to refuse cheaply,
/// never to grant anything (one base64 decode and a JSON read; no header, no signature).
pub fn unverified_subject(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Sub {
        sub: String,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Sub>(token)
        .ok()
        .map(|s| s.sub)
}

/// The `sid` claim of a token, read WITHOUT verifying it (see `unverified_subject`): None if
/// the token does not decode, Some(None) if it is bound to no session.
pub fn unverified_sid(token: &str) -> Option<Option<String>> {
    #[derive(Deserialize)]
    struct Sid {
        sid: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Sid>(token)
        .ok()
        .map(|s| s.sid)
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Keys {
    fn signer(&self, kind: Kind) -> (&Header, &EncodingKey) {
        match kind {
            Kind::Queue => (&self.queue_header, &self.queue_signer),
            Kind::Ticket => (&self.ticket_header, &self.ticket_signer),
        }
    }

    fn sign<C: Serialize>(&self, kind: Kind, claims: &C) -> String {
        let (header, key) = self.signer(kind);
        jsonwebtoken::encode(header, claims, key).expect("our keys sign our claims")
    }

    pub fn queue_token(
        &self,
        sale: &SaleId,
        queue_id: &QueueId,
        t_us: i64,
        seq: i64,
        ttl_secs: i64,
        sid: Option<&str>,
    ) -> String {
        let iat = now_secs();
        self.sign(
            Kind::Queue,
            &QueueClaims {
                iss: self.issuer.clone(),
                aud: sale.to_string(),
                typ: QUEUE_TYP.into(),
                sub: queue_id.clone(),
                t: t_us,
                seq,
                sid: sid.map(str::to_string),
                iat,
                exp: iat + ttl_secs,
            },
        )
    }

    /// `expires_at_ms` is the admission's expiry from Redis; the JWT `exp` rounds it up.
    pub fn ticket(
        &self,
        sale: &SaleId,
        queue_id: &QueueId,
        sid: Option<&str>,
        expires_at_ms: i64,
    ) -> String {
        self.sign(
            Kind::Ticket,
            &TicketClaims {
                iss: self.issuer.clone(),
                aud: sale.to_string(),
                typ: TICKET_TYP.into(),
                sub: queue_id.clone(),
                jti: queue_id.clone(),
                sid: sid.map(str::to_string),
                iat: now_secs(),
                exp: (expires_at_ms + 999) / 1000,
            },
        )
    }

    pub fn verify_queue(&self, token: &str, sale: &SaleId) -> Result<QueueClaims, TokenError> {
        self.verify(token, sale, QUEUE_TYP)
    }

    pub fn verify_ticket(&self, token: &str, sale: &SaleId) -> Result<TicketClaims, TokenError> {
        self.verify(token, sale, TICKET_TYP)
    }

    fn verify<C: Claims>(&self, token: &str, sale: &SaleId, typ: &str) -> Result<C, TokenError> {
        let (claims, aud) = self.verify_any_sale::<C>(token, typ)?;
        if aud == sale.as_str() {
            Ok(claims)
        } else {
            Err(TokenError::WrongSale)
        }
    }

    /// Verifies everything but the sale, returning the claims and their `aud`.
    ///
    /// The header's `alg` says which kind the token claims to be; it is verified as that
    /// kind (that kind's key and `Validation`), so a genuine token of the other kind is
    /// answered `WrongType`, and a token whose `typ` does not match its algorithm `Malformed`.
    pub fn verify_any_sale<C: Claims>(
        &self,
        token: &str,
        typ: &str,
    ) -> Result<(C, String), TokenError> {
        let want = Kind::from_typ(typ).ok_or(TokenError::WrongType)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kind = Kind::from_alg(header.alg).ok_or(TokenError::Malformed)?;
        let verifiers = header
            .kid
            .and_then(|kid| self.ring.get(&kid))
            .ok_or(TokenError::BadSignature)?;
        let (key, validation) = match kind {
            Kind::Queue => (&verifiers.queue, &self.queue_validation),
            Kind::Ticket => (&verifiers.ticket, &self.ticket_validation),
        };
        if kind != want {
            decode::<Common>(token, kind, key, validation)?;
            return Err(TokenError::WrongType);
        }
        let claims = decode::<C>(token, kind, key, validation)?;
        let aud = claims.aud().to_string();
        Ok((claims, aud))
    }
}

/// Signature, `exp` and `iss` by `jsonwebtoken`; then `typ` must be the kind's own.
fn decode<C: Claims>(
    token: &str,
    kind: Kind,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<C, TokenError> {
    let claims = jsonwebtoken::decode::<C>(token, key, validation)?.claims;
    if claims.typ() != kind.typ() {
        // Each kind has exactly one algorithm: a `typ` under another one is not ours.
        return Err(TokenError::Malformed);
    }
    Ok(claims)
}

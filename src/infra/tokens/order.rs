//! Hand-off tokens (`typ` `wr-order`): what the queue page posts to the shop's payment page,
//! proving which order the buyer holds. The shop verifies them with the public keys from
//! `/.well-known/jwks.json`, like admission tickets, so they are EdDSA under the ticket key,
//! with its `kid`.
//!
//! A kind of its own: `typ` `wr-order`, `aud` the shop's origin (which no sale id can be: it
//! has a colon), no `sub`. A ticket's `Validation` requires `sub` and its `typ`, so a hand-off
//! token is never a ticket or queue token; an admin session needs the admin `aud`; and
//! `verify_order` below refuses every other kind by `typ`.

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{now_secs, Keys, TokenError};
use crate::core::domain::SaleId;

pub const ORDER_TYP: &str = "wr-order";

/// What a hand-off token says: order `jti` of `sale`, `quantity` units for `total_cents`,
/// for the shop at `aud`, until `exp` (never after the order's hold ends).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderClaims {
    pub iss: String,
    /// The shop's origin, `scheme://host[:port]`.
    pub aud: String,
    pub typ: String,
    /// The order id: the shop redeems it once.
    pub jti: Uuid,
    /// The sale's id.
    pub sale: String,
    pub quantity: i32,
    pub total_cents: i64,
    pub iat: i64,
    pub exp: i64,
}

/// What a hand-off token is made from.
pub struct OrderGrant<'a> {
    pub order_id: Uuid,
    pub sale: &'a SaleId,
    pub quantity: i32,
    pub total_cents: i64,
    pub shop_origin: &'a str,
    /// Unix seconds; the caller bounds it by the hold's end.
    pub exp: i64,
}

pub(super) fn validation(issuer: &str) -> Validation {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.leeway = 2;
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    // The shop's origin is the caller's to compare (`verify_order`).
    v.validate_aud = false;
    v
}

impl Keys {
    pub fn order_token(&self, g: &OrderGrant<'_>) -> String {
        let claims = OrderClaims {
            iss: self.issuer.clone(),
            aud: g.shop_origin.to_string(),
            typ: ORDER_TYP.into(),
            jti: g.order_id,
            sale: g.sale.to_string(),
            quantity: g.quantity,
            total_cents: g.total_cents,
            iat: now_secs(),
            exp: g.exp,
        };
        jsonwebtoken::encode(&self.ticket_header, &claims, &self.ticket_signer)
            .expect("our keys sign our claims")
    }

    /// A hand-off token for the shop at `origin`, as the shop checks one (waitroom itself
    /// never takes one; this is the reference and the tests' check).
    pub fn verify_order(&self, token: &str, origin: &str) -> Result<OrderClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::BadSignature)?;
        let key = &self.ring.get(&kid).ok_or(TokenError::BadSignature)?.ticket;
        #[derive(Deserialize)]
        struct Typ {
            typ: String,
        }
        let typ = jsonwebtoken::decode::<Typ>(token, key, &self.order_validation)?.claims;
        if typ.typ != ORDER_TYP {
            return Err(TokenError::WrongType);
        }
        let claims = jsonwebtoken::decode::<OrderClaims>(token, key, &self.order_validation)?;
        if claims.claims.aud != origin {
            return Err(TokenError::WrongSale);
        }
        Ok(claims.claims)
    }
}

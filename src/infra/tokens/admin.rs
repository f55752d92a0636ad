//! Admin sessions: what the dashboard's cookie holds instead of the admin token.
//!
//! An EdDSA JWT signed with the ticket key, so every instance behind a load balancer accepts
//! it, but with its own `typ` and a fixed `aud` that no sale can be confused with: a ticket
//! presented as a session fails `aud` and `typ`, a session presented as a ticket fails `typ`
//! (`decode` in mod.rs), and a queue token fails the pinned algorithm.
//!
//! `ath` binds the session to the admin token it was exchanged for (a MAC under a secret
//! derived from the signing key, so the claim says nothing about the token): changing
//! `WAITROOM_ADMIN_TOKEN` signs every dashboard out.

use hmac::{Hmac, Mac as _};
use jsonwebtoken::{Algorithm, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{now_secs, Keys, TokenError};

pub const ADMIN_TYP: &str = "wr-admin-session";
/// Not a sale: sale ids cannot contain a colon (`SaleId::parse`).
pub const ADMIN_AUD: &str = "waitroom:admin";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminClaims {
    pub iss: String,
    pub aud: String,
    pub typ: String,
    pub sub: String,
    /// The admin token's binding (see the module doc).
    pub ath: String,
    pub iat: i64,
    pub exp: i64,
}

pub(super) fn validation(issuer: &str) -> Validation {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.leeway = 2;
    v.set_issuer(&[issuer]);
    v.set_audience(&[ADMIN_AUD]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

impl Keys {
    fn binding(&self, kid: &str, admin_token: &[u8]) -> Option<[u8; 32]> {
        let secret = &self.ring.get(kid)?.admin_mac;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret()).expect("any length");
        mac.update(admin_token);
        Some(mac.finalize().into_bytes().into())
    }

    /// A session for whoever proved they hold `admin_token`, valid for `ttl_secs`.
    pub fn admin_session(&self, admin_token: &[u8], ttl_secs: i64) -> String {
        use base64::Engine as _;
        let ath = self
            .binding(&self.kid, admin_token)
            .expect("the signer is in the ring");
        let iat = now_secs();
        let claims = AdminClaims {
            iss: self.issuer.clone(),
            aud: ADMIN_AUD.into(),
            typ: ADMIN_TYP.into(),
            sub: "admin".into(),
            ath: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&ath[..16]),
            iat,
            exp: iat + ttl_secs,
        };
        jsonwebtoken::encode(&self.ticket_header, &claims, &self.ticket_signer)
            .expect("our keys sign our claims")
    }

    /// The session's claims if it is ours, unexpired, and bound to today's admin token.
    pub fn verify_admin_session(
        &self,
        token: &str,
        admin_token: &[u8],
    ) -> Result<AdminClaims, TokenError> {
        use base64::Engine as _;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::BadSignature)?;
        let key = &self.ring.get(&kid).ok_or(TokenError::BadSignature)?.ticket;
        let claims =
            jsonwebtoken::decode::<AdminClaims>(token, key, &self.admin_validation)?.claims;
        if claims.typ != ADMIN_TYP {
            return Err(TokenError::WrongType);
        }
        let want = self
            .binding(&kid, admin_token)
            .ok_or(TokenError::BadSignature)?;
        let got = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&claims.ath)
            .map_err(|_| TokenError::Malformed)?;
        if !bool::from(got.ct_eq(&want[..16])) {
            return Err(TokenError::BadSignature);
        }
        Ok(claims)
    }
}

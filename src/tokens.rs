//! Queue tokens and admission tickets: compact JWTs.
//!
//! Admission tickets are signed with Ed25519 (`alg` = EdDSA) because third parties verify
//! them from the JWKS (the gate, a CDN edge). Queue tokens are verified only by waitroom, and
//! signing one was half the CPU of a join in the bench, so they are HS256 with a MAC key
//! derived from the same Ed25519 private key: every instance with the key file derives the
//! same MAC key, and rotating the signing key rotates it too.
//!
//! Encoded here directly rather than through a JWT library because sign and verify sit on
//! the hottest paths: keys are parsed once at start, headers are pre-encoded per key, and
//! nothing is re-parsed per request. The format is plain RFC 7519/8037, so any JWT library
//! verifies tickets from the JWKS (the tests check that with `jsonwebtoken`).
//!
//! What must hold: the algorithm is pinned per kind (a queue token must be HS256, a ticket
//! EdDSA; anything else is refused before its signature is looked at); `typ` separates the
//! kinds and neither is accepted for the other; `aud` is the sale and `iss` this service.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::error::AppError;

pub const QUEUE_TYP: &str = "wr-queue";
pub const TICKET_TYP: &str = "wr-admission";

/// Clock skew tolerated between instances when checking `exp`.
const LEEWAY_SECS: i64 = 2;

/// What a queue token proves: this shopper joined this sale's line at `t` (µs, Redis clock).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueClaims {
    pub iss: String,
    pub aud: String,
    pub typ: String,
    /// The queue id.
    pub sub: String,
    /// Enqueue time in microseconds: the shopper's score in the queue, kept across restarts.
    pub t: i64,
    pub seq: i64,
    pub iat: i64,
    pub exp: i64,
}

/// What an admission ticket proves: this shopper may check out until `exp`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketClaims {
    pub iss: String,
    pub aud: String,
    pub typ: String,
    pub sub: String,
    /// Single use: consumed by checkout.lua. Equal to the queue id (one ticket per place).
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    WrongType,
    WrongSale,
}

impl TokenError {
    pub fn into_app_error(self, ticket: bool) -> AppError {
        match self {
            Self::Missing => AppError::unauthorized("missing_token", "a token is required"),
            Self::Malformed | Self::BadSignature => {
                AppError::unauthorized("invalid_token", "the token is not valid")
            }
            Self::Expired if ticket => AppError::ticket_expired(),
            Self::Expired => AppError::unauthorized("token_expired", "the token has expired"),
            Self::WrongType => AppError::forbidden(
                "wrong_token_type",
                if ticket {
                    "an admission ticket is required, not a queue token"
                } else {
                    "a queue token is required, not an admission ticket"
                },
            ),
            Self::WrongSale => AppError::forbidden("wrong_sale", "the token is for another sale"),
        }
    }
}

type Mac = Hmac<Sha256>;

/// One configured key: its Ed25519 public half and the queue-token MAC key derived from it.
struct KeyEntry {
    public: VerifyingKey,
    /// Keyed once; cloned per use (cheaper than keying per token).
    mac: Mac,
}

pub struct Keys {
    /// The first configured key signs both kinds.
    signer: SigningKey,
    signer_kid: String,
    /// base64url of the JWT headers, computed once.
    ticket_header: String,
    queue_header: String,
    keys: HashMap<String, KeyEntry>,
    issuer: String,
    jwks: serde_json::Value,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Alg {
    EdDSA,
    HS256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
        }
    }

    /// The one algorithm each kind of token may use.
    fn for_typ(typ: &str) -> Self {
        if typ == QUEUE_TYP {
            Self::HS256
        } else {
            Self::EdDSA
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 PKCS#8 PEM private key")]
    NotEd25519Pem,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    kid: Option<&'a str>,
}

#[derive(Deserialize)]
struct Common<'a> {
    iss: &'a str,
    aud: &'a str,
    typ: &'a str,
    exp: i64,
}

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410); the 32-byte seed follows it.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A new Ed25519 private key as PKCS#8 PEM (what `waitroom keygen` writes).
pub fn generate_pem() -> String {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random source is available");
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    let body = STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

fn parse_pem(pem: &str) -> Result<SigningKey, KeyError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).map_err(|_| KeyError::NotEd25519Pem)?;
    if der.len() != 48 || der[..16] != PKCS8_PREFIX {
        return Err(KeyError::NotEd25519Pem);
    }
    let seed: [u8; 32] = der[16..].try_into().expect("length checked");
    Ok(SigningKey::from_bytes(&seed))
}

/// The queue-token MAC key: HMAC-SHA256 of a fixed label under the Ed25519 seed, so it is as
/// secret as the private key and needs no configuration of its own.
fn queue_mac(key: &SigningKey) -> Mac {
    let mut kdf = Mac::new_from_slice(key.as_bytes()).expect("any key length");
    kdf.update(b"waitroom queue-token mac v1");
    Mac::new_from_slice(&kdf.finalize().into_bytes()).expect("any key length")
}

/// RFC 7638 thumbprint: a stable `kid` derived from the public key itself.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// The `sub` of a token, read WITHOUT verifying it: only for deciding to refuse cheaply,
/// never to grant anything.
pub fn unverified_subject(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Sub {
        sub: String,
    }
    let payload = token.split('.').nth(1)?;
    let json = B64.decode(payload).ok()?;
    serde_json::from_slice::<Sub>(&json).ok().map(|s| s.sub)
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Keys {
    /// The first key signs; every key verifies (rotation: add the new key second, deploy,
    /// then move it first, then drop the old one once its tokens have expired).
    pub fn from_pems(pems: &[Secret], issuer: &str) -> Result<Self, KeyError> {
        let signing = pems
            .iter()
            .map(|p| parse_pem(p.expose()))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = signing.first() else {
            return Err(KeyError::NotEd25519Pem);
        };
        let mut keys = HashMap::new();
        let mut jwk_list = Vec::new();
        for key in &signing {
            let public = key.verifying_key();
            let x = B64.encode(public.as_bytes());
            let kid = thumbprint(&x);
            jwk_list.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x
            }));
            keys.insert(
                kid,
                KeyEntry {
                    public,
                    mac: queue_mac(key),
                },
            );
        }
        let signer_kid = thumbprint(&B64.encode(first.verifying_key().as_bytes()));
        let header = |alg: Alg| {
            B64.encode(format!(
                r#"{{"alg":"{}","typ":"JWT","kid":"{signer_kid}"}}"#,
                alg.name()
            ))
        };
        Ok(Self {
            signer: first.clone(),
            ticket_header: header(Alg::EdDSA),
            queue_header: header(Alg::HS256),
            signer_kid,
            keys,
            issuer: issuer.to_string(),
            jwks: serde_json::json!({ "keys": jwk_list }),
        })
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    fn sign<C: Serialize>(&self, alg: Alg, claims: &C) -> String {
        let header = match alg {
            Alg::EdDSA => &self.ticket_header,
            Alg::HS256 => &self.queue_header,
        };
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let mut token = String::with_capacity(header.len() + payload.len() + 90);
        token.push_str(header);
        token.push('.');
        token.push_str(&payload);
        let sig = match alg {
            Alg::EdDSA => self.signer.sign(token.as_bytes()).to_bytes().to_vec(),
            Alg::HS256 => {
                let mut mac = self.keys[&self.signer_kid].mac.clone();
                mac.update(token.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
        };
        token.push('.');
        token.push_str(&B64.encode(sig));
        token
    }

    pub fn queue_token(
        &self,
        sale: &str,
        queue_id: &str,
        t_us: i64,
        seq: i64,
        ttl_secs: i64,
    ) -> String {
        let iat = now_secs();
        self.sign(
            Alg::HS256,
            &QueueClaims {
                iss: self.issuer.clone(),
                aud: sale.to_string(),
                typ: QUEUE_TYP.into(),
                sub: queue_id.to_string(),
                t: t_us,
                seq,
                iat,
                exp: iat + ttl_secs,
            },
        )
    }

    /// `expires_at_ms` is the admission's expiry from Redis; the JWT `exp` rounds it up.
    pub fn ticket(&self, sale: &str, queue_id: &str, expires_at_ms: i64) -> String {
        self.sign(
            Alg::EdDSA,
            &TicketClaims {
                iss: self.issuer.clone(),
                aud: sale.to_string(),
                typ: TICKET_TYP.into(),
                sub: queue_id.to_string(),
                jti: queue_id.to_string(),
                iat: now_secs(),
                exp: (expires_at_ms + 999) / 1000,
            },
        )
    }

    pub fn verify_queue(&self, token: &str, sale: &str) -> Result<QueueClaims, TokenError> {
        self.verify(token, sale, QUEUE_TYP)
    }

    pub fn verify_ticket(&self, token: &str, sale: &str) -> Result<TicketClaims, TokenError> {
        self.verify(token, sale, TICKET_TYP)
    }

    /// Signature first, then type, issuer, expiry and sale.
    fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        sale: &str,
        typ: &str,
    ) -> Result<C, TokenError> {
        self.verify_any_sale(token, typ).and_then(|(claims, aud)| {
            if aud == sale {
                Ok(claims)
            } else {
                Err(TokenError::WrongSale)
            }
        })
    }

    /// Verifies everything but the sale, returning the claims and their `aud`.
    pub fn verify_any_sale<C: DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
    ) -> Result<(C, String), TokenError> {
        let mut parts = token.splitn(3, '.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header_json = B64.decode(h).map_err(|_| TokenError::Malformed)?;
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        let alg = match header.alg {
            "EdDSA" => Alg::EdDSA,
            "HS256" => Alg::HS256,
            _ => return Err(TokenError::Malformed),
        };
        let key = header
            .kid
            .and_then(|kid| self.keys.get(kid))
            .ok_or(TokenError::BadSignature)?;
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let signed = &token[..h.len() + 1 + p.len()];
        let valid = match alg {
            Alg::EdDSA => {
                let sig: [u8; 64] = sig.try_into().map_err(|_| TokenError::Malformed)?;
                key.public
                    .verify_strict(signed.as_bytes(), &Signature::from_bytes(&sig))
                    .is_ok()
            }
            Alg::HS256 => {
                let mut mac = key.mac.clone();
                mac.update(signed.as_bytes());
                mac.verify_slice(&sig).is_ok() // constant time
            }
        };
        if !valid {
            return Err(TokenError::BadSignature);
        }

        let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
        let common: Common = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if Alg::for_typ(common.typ) != alg {
            // Each kind has exactly one algorithm: anything else is not ours.
            return Err(TokenError::Malformed);
        }
        if common.typ != typ {
            return Err(TokenError::WrongType);
        }
        if common.iss != self.issuer {
            return Err(TokenError::BadSignature);
        }
        if common.exp + LEEWAY_SECS < now_secs() {
            return Err(TokenError::Expired);
        }
        let aud = common.aud.to_string();
        let claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        Ok((claims, aud))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_pems(&[Secret::new(generate_pem())], "waitroom").unwrap()
    }

    #[test]
    fn round_trip_and_kinds_are_not_interchangeable() {
        let k = keys();
        let q = k.queue_token("s1", "qid", 42, 1, 60);
        assert_eq!(k.verify_queue(&q, "s1").unwrap().t, 42);
        assert_eq!(
            k.verify_ticket(&q, "s1").unwrap_err(),
            TokenError::WrongType
        );
        assert_eq!(k.verify_queue(&q, "s2").unwrap_err(), TokenError::WrongSale);
        let t = k.ticket("s1", "qid", (now_secs() + 60) * 1000);
        assert_eq!(k.verify_ticket(&t, "s1").unwrap().jti, "qid");
        assert_eq!(k.verify_queue(&t, "s1").unwrap_err(), TokenError::WrongType);
    }

    #[test]
    fn tampering_other_keys_and_expiry_are_refused() {
        let k = keys();
        let q = k.queue_token("s1", "qid", 42, 1, 60);
        let other = keys();
        assert_eq!(
            other.verify_queue(&q, "s1").unwrap_err(),
            TokenError::BadSignature
        );
        // Swap the payload for one claiming an earlier place: the signature no longer matches.
        let forged = k.queue_token("s1", "qid", 1, 1, 60);
        let parts: Vec<&str> = q.split('.').collect();
        let fparts: Vec<&str> = forged.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], fparts[1], parts[2]);
        assert_eq!(
            k.verify_queue(&spliced, "s1").unwrap_err(),
            TokenError::BadSignature
        );
        assert_eq!(
            k.verify_queue("garbage", "s1").unwrap_err(),
            TokenError::Malformed
        );
        assert_eq!(
            k.verify_queue("a.b.c", "s1").unwrap_err(),
            TokenError::Malformed
        );
        let expired = k.queue_token("s1", "qid", 42, 1, -60);
        assert_eq!(
            k.verify_queue(&expired, "s1").unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let k = keys();
        let q = k.queue_token("s1", "qid", 42, 1, 60);
        let body = q.split('.').nth(1).unwrap();
        let none = format!("{}.{body}.", B64.encode(r#"{"alg":"none"}"#));
        assert_eq!(
            k.verify_queue(&none, "s1").unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn each_kind_is_pinned_to_its_algorithm() {
        let k = keys();
        let q = k.queue_token("s1", "qid", 42, 1, 60);
        let t = k.ticket("s1", "qid", (now_secs() + 60) * 1000);
        let alg = |tok: &str| {
            let h = B64.decode(tok.split('.').next().unwrap()).unwrap();
            serde_json::from_slice::<serde_json::Value>(&h).unwrap()["alg"].clone()
        };
        assert_eq!((alg(&q), alg(&t)), ("HS256".into(), "EdDSA".into()));
        // Validly signed, but each kind under the other algorithm: refused.
        let claims = k.verify_queue(&q, "s1").unwrap();
        let q_as_eddsa = k.sign(Alg::EdDSA, &claims);
        assert_eq!(
            k.verify_queue(&q_as_eddsa, "s1").unwrap_err(),
            TokenError::Malformed
        );
        let claims = k.verify_ticket(&t, "s1").unwrap();
        let t_as_hs256 = k.sign(Alg::HS256, &claims);
        assert_eq!(
            k.verify_ticket(&t_as_hs256, "s1").unwrap_err(),
            TokenError::Malformed
        );
        // A header swapped onto another body breaks the signature.
        let t_parts: Vec<&str> = t.split('.').collect();
        let q_body = q.split('.').nth(1).unwrap();
        let mixed = format!("{}.{q_body}.{}", t_parts[0], t_parts[2]);
        assert_eq!(
            k.verify_queue(&mixed, "s1").unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn rotation_verifies_old_and_new() {
        let old = generate_pem();
        let new = generate_pem();
        let before = Keys::from_pems(&[Secret::new(old.clone())], "waitroom").unwrap();
        let after = Keys::from_pems(&[Secret::new(new), Secret::new(old)], "waitroom").unwrap();
        let q = before.queue_token("s1", "qid", 42, 1, 60);
        assert!(after.verify_queue(&q, "s1").is_ok());
        assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 2);
    }
}

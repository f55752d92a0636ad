//! Proof-of-work at the join: a sale's `pow_difficulty` makes a place cost some CPU seconds,
//! which a person's browser pays once and a script pays per place.
//!
//! A challenge is stateless: `v1.<difficulty>.<expires_at_ms>.<id>.<mac>`, the MAC (HMAC-SHA256
//! under a key derived from the first signing key) covering the sale and the client too, so a
//! challenge solved for one sale or one client is refused for another. Nothing is stored when
//! it is issued; at the join, its `id` is marked used in Redis (`SET NX`, until it expires) so
//! it buys one place only. A solution is a `nonce` (at most 64 characters) such that
//! SHA-256(`challenge` + ":" + `nonce`) starts with `difficulty` zero bits.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ClientKey;
use crate::core::config::Config;
use crate::core::domain::SaleId;

/// Long enough to solve on a slow phone, short enough that a hoard of solved challenges
/// goes stale before it can be spent.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(120);
pub const MAX_NONCE_CHARS: usize = 64;
const MAX_CHALLENGE_LEN: usize = 200;
const MAC_BYTES: usize = 16;

/// What `GET /api/sales/{id}/challenge` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    pub challenge: String,
    pub difficulty: u32,
    /// Milliseconds since the epoch, like every other time the API gives.
    pub expires_at: i64,
}

/// A solved challenge as a join sends it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Proof {
    pub challenge: Option<String>,
    pub nonce: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    #[error("this sale asks for a proof-of-work")]
    Required,
    #[error("the proof-of-work is not valid here")]
    Invalid,
    #[error("the challenge has expired")]
    Expired,
    #[error("the challenge was used before")]
    Reused,
}

/// A proof that checked out: mark `id` used until `expires_at_ms`, then join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub id: String,
    pub difficulty: u32,
    pub expires_at_ms: i64,
}

/// The challenge MAC key.
#[derive(Clone)]
pub struct PowKey(Hmac<Sha256>);

impl PowKey {
    /// Derived from `secret` under a fixed label, so it is as secret as `secret` and no
    /// other use of it can produce a valid challenge.
    pub fn new(secret: &[u8]) -> Self {
        let mut kdf = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
        kdf.update(b"waitroom pow challenge v1");
        Self(Hmac::new_from_slice(&kdf.finalize().into_bytes()).expect("any key length"))
    }

    /// From the first signing key, so every instance sharing the key file agrees (rotating
    /// it voids challenges in flight: they live two minutes). Without one, a throwaway key
    /// like the throwaway signing key: only this instance verifies its challenges.
    pub fn from_config(c: &Config) -> Self {
        match c.tokens.signing_keys_pem.first() {
            Some(pem) => Self::new(secrecy::ExposeSecret::expose_secret(pem).as_bytes()),
            None => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).expect("the OS random source is available");
                Self::new(&secret)
            }
        }
    }

    fn mac(&self, sale: &SaleId, client: &ClientKey, body: &str) -> [u8; MAC_BYTES] {
        let mut m = self.0.clone();
        m.update(format!("{sale}|{client}|{body}").as_bytes());
        m.finalize().into_bytes()[..MAC_BYTES]
            .try_into()
            .expect("a SHA-256 MAC is longer")
    }

    /// A new challenge for this sale and client, expiring at `expires_at_ms` (a test may
    /// pass a time already past).
    pub fn issue(
        &self,
        sale: &SaleId,
        client: &ClientKey,
        difficulty: u32,
        expires_at_ms: i64,
    ) -> Challenge {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("the OS random source is available");
        let body = format!("v1.{difficulty}.{expires_at_ms}.{}", B64.encode(id));
        let mac = B64.encode(self.mac(sale, client, &body));
        Challenge {
            challenge: format!("{body}.{mac}"),
            difficulty,
            expires_at: expires_at_ms,
        }
    }

    /// Checks a proof for this sale and client at `now_ms`: the MAC first (foreign or forged
    /// is `Invalid`), then expiry, then the work. Single use is the caller's, in Redis.
    pub fn verify(
        &self,
        sale: &SaleId,
        client: &ClientKey,
        proof: &Proof,
        now_ms: i64,
    ) -> Result<Verified, PowError> {
        let given = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let (Some(challenge), Some(nonce)) = (given(&proof.challenge), given(&proof.nonce)) else {
            return Err(PowError::Required);
        };
        if challenge.len() > MAX_CHALLENGE_LEN || nonce.chars().count() > MAX_NONCE_CHARS {
            return Err(PowError::Invalid);
        }
        let (body, mac) = challenge.rsplit_once('.').ok_or(PowError::Invalid)?;
        let mac = B64.decode(mac).map_err(|_| PowError::Invalid)?;
        if !bool::from(mac.ct_eq(&self.mac(sale, client, body))) {
            return Err(PowError::Invalid);
        }
        // Signed by us, so well formed; parsed defensively all the same.
        let mut parts = body.split('.');
        let (Some("v1"), Some(difficulty), Some(expires), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(PowError::Invalid);
        };
        let difficulty: u32 = difficulty.parse().map_err(|_| PowError::Invalid)?;
        let expires_at_ms: i64 = expires.parse().map_err(|_| PowError::Invalid)?;
        if now_ms >= expires_at_ms {
            return Err(PowError::Expired);
        }
        if !solves(&challenge, &nonce, difficulty) {
            return Err(PowError::Invalid);
        }
        Ok(Verified {
            id: id.to_string(),
            difficulty,
            expires_at_ms,
        })
    }
}

/// Leading zero bits of a hash.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for b in hash {
        if *b != 0 {
            return bits + b.leading_zeros();
        }
        bits += 8;
    }
    bits
}

/// Whether `nonce` solves `challenge` at `difficulty` bits.
pub fn solves(challenge: &str, nonce: &str, difficulty: u32) -> bool {
    let hash = Sha256::digest(format!("{challenge}:{nonce}").as_bytes());
    leading_zero_bits(&hash) >= difficulty
}

/// A solution found the way the page's worker finds one: counting up from 0.
pub fn solve(challenge: &str, difficulty: u32) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|n| solves(challenge, n, difficulty))
        .expect("some nonce solves it")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> crate::core::domain::SaleId {
        crate::core::domain::SaleId::parse(s).unwrap()
    }

    const NOW: i64 = 1_800_000_000_000;

    fn client(ip: &str) -> ClientKey {
        ClientKey::of(ip.parse().unwrap())
    }

    fn proof(c: &Challenge, nonce: &str) -> Proof {
        Proof {
            challenge: Some(c.challenge.clone()),
            nonce: Some(nonce.to_string()),
        }
    }

    #[test]
    fn zero_bits() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x80]), 16);
        assert_eq!(leading_zero_bits(&[0, 0x0f]), 12);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn a_solution_verifies_once_per_sale_and_client() {
        let key = PowKey::new(b"secret");
        let me = client("198.51.100.1");
        let c = key.issue(&id("drop"), &me, 10, NOW + 60_000);
        let nonce = solve(&c.challenge, 10);
        let ok = key
            .verify(&id("drop"), &me, &proof(&c, &nonce), NOW)
            .unwrap();
        assert_eq!((ok.difficulty, ok.expires_at_ms), (10, NOW + 60_000));
        let foreign = [
            key.verify(&id("other"), &me, &proof(&c, &nonce), NOW),
            key.verify(
                &id("drop"),
                &client("198.51.100.2"),
                &proof(&c, &nonce),
                NOW,
            ),
            PowKey::new(b"other").verify(&id("drop"), &me, &proof(&c, &nonce), NOW),
        ];
        assert!(foreign.iter().all(|r| *r == Err(PowError::Invalid)));
    }

    #[test]
    fn each_way_a_proof_fails() {
        let key = PowKey::new(b"secret");
        let me = client("198.51.100.1");
        let c = key.issue(&id("drop"), &me, 16, NOW + 60_000);
        let nonce = solve(&c.challenge, 16);
        let verify = |p: Proof, now| key.verify(&id("drop"), &me, &p, now);
        assert_eq!(verify(Proof::default(), NOW), Err(PowError::Required));
        let no_nonce = Proof {
            nonce: Some(String::new()),
            ..proof(&c, "")
        };
        assert_eq!(verify(no_nonce, NOW), Err(PowError::Required));
        assert_eq!(
            verify(proof(&c, &nonce), NOW + 60_000),
            Err(PowError::Expired)
        );
        let wrong = (0..)
            .map(|n: u32| n.to_string())
            .find(|n| !solves(&c.challenge, n, 16))
            .unwrap();
        assert_eq!(verify(proof(&c, &wrong), NOW), Err(PowError::Invalid));
        assert_eq!(
            verify(proof(&c, &"x".repeat(65)), NOW),
            Err(PowError::Invalid)
        );
        // Lowering the difficulty in the text breaks the MAC.
        let tampered = Challenge {
            challenge: c.challenge.replacen("v1.16.", "v1.1.", 1),
            ..c.clone()
        };
        assert_eq!(verify(proof(&tampered, "0"), NOW), Err(PowError::Invalid));
        assert!(verify(proof(&c, &nonce), NOW).is_ok());
    }
}

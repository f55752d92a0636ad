//! The key ring: every configured Ed25519 key, parsed once at start into what `jsonwebtoken`
//! signs and verifies with, and the JWKS that publishes the public halves.

use std::collections::HashMap;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac as _};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

use super::claims::Kind;

/// Clock skew tolerated between instances when checking `exp`. Deliberately not
/// `jsonwebtoken`'s 60 s default: a ticket's `exp` is the admission's own expiry (rounded up
/// to the second) and should not outlive it by a minute.
const LEEWAY_SECS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 PKCS#8 PEM private key")]
    NotEd25519Pem,
}

/// What one configured key verifies: tickets with its public half, queue tokens with the MAC
/// key derived from its private half.
pub(super) struct Verifiers {
    pub(super) ticket: DecodingKey,
    pub(super) queue: DecodingKey,
    /// Binds admin sessions to the admin token (`admin.rs`), per key so rotation keeps them.
    pub(super) admin_mac: SecretBox<[u8; 32]>,
}

pub struct Keys {
    /// The first configured key signs both kinds.
    pub(super) ticket_signer: EncodingKey,
    pub(super) queue_signer: EncodingKey,
    /// Headers carry the signer's `kid`, so they are built once.
    pub(super) ticket_header: Header,
    pub(super) queue_header: Header,
    /// Every configured key by `kid`: all verify, so a key can be rotated in.
    pub(super) ring: HashMap<String, Verifiers>,
    pub(super) ticket_validation: Validation,
    pub(super) queue_validation: Validation,
    pub(super) admin_validation: Validation,
    pub(super) order_validation: Validation,
    /// The `kid` of the signing key, to find its `admin_mac` in the ring.
    pub(super) kid: String,
    pub(super) issuer: String,
    jwks: serde_json::Value,
}

/// A new Ed25519 private key as PKCS#8 PEM (what `waitroom keygen` writes).
pub fn generate_pem() -> String {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random source is available");
    let key = SigningKey::from_bytes(&seed);
    seed.zeroize();
    key.to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key encodes")
        .to_string()
}

/// The queue-token MAC key: HMAC-SHA256 of a fixed label under the Ed25519 seed, so it is as
/// secret as the private key and needs no configuration of its own. Unchanged from the
/// hand-written codec, so queue tokens issued before an upgrade still verify.
fn queue_secret(key: &SigningKey) -> SecretBox<[u8; 32]> {
    derived(key, b"waitroom queue-token mac v1")
}

/// A secret derived from the Ed25519 seed under `label`: as secret as the key itself.
fn derived(key: &SigningKey, label: &'static [u8]) -> SecretBox<[u8; 32]> {
    SecretBox::init_with(|| {
        let mut kdf = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
        kdf.update(label);
        kdf.finalize().into_bytes().into()
    })
}

/// The PKCS#8 DER `jsonwebtoken` signs with, in its v1 form (no public key): its signer
/// re-reads the DER on every signature, and v2 would make it re-check the public key too.
fn ed_der(key: &SigningKey) -> EncodingKey {
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let der = v1.to_pkcs8_der().expect("an Ed25519 key encodes");
    EncodingKey::from_ed_der(der.as_bytes())
}

/// The JWK of a key's public half, with its RFC 7638 thumbprint as `kid`.
fn jwk(signer: &EncodingKey) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(signer, Algorithm::EdDSA).expect("an Ed25519 key");
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_id = Some(
        jwk.thumbprint(ThumbprintHash::SHA256)
            .expect("OKP thumbprint"),
    );
    jwk
}

/// One per kind, built once: the algorithm pinned, `iss` checked, the claims we rely on
/// required. `aud` is the sale of each request, so it is compared after verification rather
/// than cloned into a `Validation` per request; `typ` is not a claim the crate knows.
fn validation(kind: Kind, issuer: &str) -> Validation {
    let mut v = Validation::new(kind.alg());
    v.leeway = LEEWAY_SECS;
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.validate_aud = false;
    v
}

fn header(kind: Kind, kid: &str) -> Header {
    let mut h = Header::new(kind.alg());
    h.kid = Some(kid.to_string());
    h
}

impl Keys {
    /// The first key signs; every key verifies (rotation: add the new key second, deploy,
    /// then move it first, then drop the old one once its tokens have expired).
    pub fn from_pems(pems: &[SecretString], issuer: &str) -> Result<Self, KeyError> {
        let keys = pems
            .iter()
            .map(|pem| SigningKey::from_pkcs8_pem(pem.expose_secret()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| KeyError::NotEd25519Pem)?;
        let first = keys.first().ok_or(KeyError::NotEd25519Pem)?;
        let mut ring = HashMap::new();
        let mut jwks = JwkSet::default();
        for key in &keys {
            let jwk = jwk(&ed_der(key));
            let verifiers = Verifiers {
                ticket: DecodingKey::from_jwk(&jwk).expect("our own JWK"),
                queue: DecodingKey::from_secret(queue_secret(key).expose_secret()),
                admin_mac: derived(key, b"waitroom admin-session binding v1"),
            };
            ring.insert(jwk.common.key_id.clone().expect("kid set"), verifiers);
            jwks.keys.push(jwk);
        }
        let kid = jwks.keys[0].common.key_id.as_deref().expect("kid set");
        Ok(Self {
            ticket_signer: ed_der(first),
            queue_signer: EncodingKey::from_secret(queue_secret(first).expose_secret()),
            ticket_header: header(Kind::Ticket, kid),
            queue_header: header(Kind::Queue, kid),
            ring,
            ticket_validation: validation(Kind::Ticket, issuer),
            queue_validation: validation(Kind::Queue, issuer),
            admin_validation: super::admin::validation(issuer),
            order_validation: super::order::validation(issuer),
            kid: kid.to_string(),
            issuer: issuer.to_string(),
            jwks: serde_json::to_value(&jwks).expect("a JWKS serializes"),
        })
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

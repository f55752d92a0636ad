//! The draw (`draw-v1`): how the entries of a `prequeue: "draw"` sale are ranked at the
//! opening, and how anyone checks it from what is published. Pure: bytes in, bytes out; the
//! server, `waitroom verify-draw` and the page (static/js/draw.js) compute the same thing.
//! docs/draw.md gives the byte encodings and a test vector (the one `tests::vector` checks).
//!
//! - public id of an entry = the first 16 hex characters of SHA-256("wr-entry" ‖ queue id):
//!   the queue id carries its client's network tag, so it is never published itself.
//! - entries_root = hex SHA-256(the public ids, sorted ascending, joined by "\n").
//! - key = SHA-256(seed (32 bytes) ‖ root (32 bytes) ‖ beacon (UTF-8, empty without one)).
//! - rank: the entries sorted by HMAC-SHA256(key, public id) ascending, as bytes (ties, which
//!   need a SHA-256 collision, by public id): no modulo, so no bias.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::InvalidInput;

pub const ALGORITHM: &str = "draw-v1";
/// The seed's length in bytes.
pub const SEED_LEN: usize = 32;
/// A beacon is what a drand round or a newspaper headline fits in.
pub const BEACON_MAX: usize = 256;

/// How the line forms before the opening: in arrival order, or as entries of a draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prequeue {
    #[default]
    Fifo,
    Draw,
}

/// Read from the ledger's text column (written by name as JSON, like every setting).
impl sqlx::Type<sqlx::Postgres> for Prequeue {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Prequeue {
    fn decode(v: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        match <&str as sqlx::Decode<sqlx::Postgres>>::decode(v)? {
            "fifo" => Ok(Self::Fifo),
            "draw" => Ok(Self::Draw),
            other => Err(format!("prequeue {other:?}").into()),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Lowercase or uppercase hex to bytes; None if it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// hex SHA-256(seed): published from the moment the draw is set.
pub fn commitment(seed: &[u8]) -> String {
    hex(&Sha256::digest(seed))
}

/// The id an entry is published under: reveals neither the queue id (whose tag names the
/// client's network), nor a token, nor a session.
pub fn public_id(queue_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"wr-entry");
    h.update(queue_id.as_bytes());
    hex(&h.finalize()[..8])
}

/// hex SHA-256 over the public ids, sorted, joined by "\n" (no trailing newline).
pub fn entries_root(public_ids: &[String]) -> String {
    let mut sorted: Vec<&str> = public_ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    hex(&Sha256::digest(sorted.join("\n").as_bytes()))
}

fn key(seed: &[u8], root_hex: &str, beacon: Option<&str>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(unhex(root_hex).unwrap_or_default());
    h.update(beacon.unwrap_or("").as_bytes());
    h.finalize().into()
}

/// The public ids in rank order (first = front of the line).
pub fn ranked(seed: &[u8], public_ids: &[String], beacon: Option<&str>) -> Vec<String> {
    let root = entries_root(public_ids);
    let key = key(seed, &root, beacon);
    let mut tagged: Vec<([u8; 32], &String)> = public_ids
        .iter()
        .map(|id| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
            mac.update(id.as_bytes());
            (mac.finalize().into_bytes().into(), id)
        })
        .collect();
    tagged.sort_unstable();
    tagged.into_iter().map(|(_, id)| id.clone()).collect()
}

/// A beacon as an operator gives it: plain text, at most `BEACON_MAX` bytes.
pub fn check_beacon(b: &str) -> Result<(), InvalidInput> {
    if b.is_empty() || b.len() > BEACON_MAX || b.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            "invalid_sale",
            format!("draw_beacon must be 1 to {BEACON_MAX} bytes, none of them control characters"),
        ));
    }
    Ok(())
}

/// What `GET /api/sales/{id}/draw` publishes. `seed`, `entries_root` and `drawn_at` only
/// once the draw ran; `entries` is the count (0 before).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub algorithm: String,
    pub commitment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries_root: Option<String>,
    pub entries: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beacon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drawn_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a check of a published draw found: every difference, in words (empty: it matches).
pub fn verify(p: &Published, ranked_ids: &[String]) -> Vec<String> {
    let mut wrong = Vec::new();
    if p.algorithm != ALGORITHM {
        wrong.push(format!("unknown algorithm {:?}", p.algorithm));
        return wrong;
    }
    let Some(seed) = p.seed.as_deref() else {
        wrong.push("the seed is not revealed yet: the draw has not run".into());
        return wrong;
    };
    let Some(seed) = unhex(seed).filter(|s| s.len() == SEED_LEN) else {
        wrong.push("the seed is not 32 bytes of hex".into());
        return wrong;
    };
    if commitment(&seed) != p.commitment {
        wrong.push("SHA-256(seed) differs from the commitment".into());
    }
    if ranked_ids.len() as i64 != p.entries {
        let n = ranked_ids.len();
        wrong.push(format!("{n} entries listed, {} published", p.entries));
    }
    let root = entries_root(ranked_ids);
    if p.entries_root.as_deref() != Some(root.as_str()) {
        wrong.push(format!(
            "the entries hash to root {root}, not the published one"
        ));
    }
    let expected = ranked(&seed, ranked_ids, p.beacon.as_deref());
    let misplaced = expected
        .iter()
        .zip(ranked_ids)
        .filter(|(a, b)| a != b)
        .count();
    if misplaced > 0 {
        wrong.push(format!(
            "{misplaced} entries are not at their computed rank"
        ));
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| public_id(&format!("{i:018x}.t{i}")))
            .collect()
    }

    /// The test vector printed in docs/draw.md: change one and change the other.
    #[test]
    fn vector() {
        let seed = [7u8; 32];
        // Computed independently (Python's hashlib and hmac), not by this code.
        assert_eq!(
            commitment(&seed),
            "4bb06f8e4e3a7715d201d573d0aa423762e55dabd61a2c02278fa56cc6d294e0"
        );
        let entries: Vec<String> = ["a.x", "b.y", "c.z"].map(public_id).to_vec();
        assert_eq!(
            entries,
            ["5117b7629d00206b", "e2a9200d3abce832", "efea2090bc43a14d"]
        );
        let root = entries_root(&entries);
        assert_eq!(
            root,
            "e23dcabddb3222b633f912cb962a97ceb24e18c79233d8402685eddfa3001a73"
        );
        let order = ranked(&seed, &entries, Some("beacon"));
        assert_eq!(
            order,
            ["e2a9200d3abce832", "efea2090bc43a14d", "5117b7629d00206b"]
        );
        assert_eq!(root, entries_root(&order), "the root ignores order");
        let p = Published {
            algorithm: ALGORITHM.into(),
            commitment: commitment(&seed),
            seed: Some(hex(&seed)),
            entries_root: Some(root),
            entries: 3,
            beacon: Some("beacon".into()),
            drawn_at: None,
        };
        assert!(verify(&p, &order).is_empty());
    }

    #[test]
    fn ranks_are_a_permutation_and_depend_on_every_input() {
        let seed = [1u8; 32];
        let e = ids(1000);
        let r = ranked(&seed, &e, None);
        let mut sorted = r.clone();
        sorted.sort();
        let mut all = e.clone();
        all.sort();
        assert_eq!(sorted, all);
        assert_ne!(r, ranked(&[2u8; 32], &e, None), "the seed");
        assert_ne!(r, ranked(&seed, &e, Some("x")), "the beacon");
        assert_ne!(
            r[..10],
            ranked(&seed, &ids(1001), None)[..10],
            "the entries"
        );
    }

    #[test]
    fn verify_names_each_change() {
        let seed = [3u8; 32];
        let e = ids(50);
        let order = ranked(&seed, &e, None);
        let good = Published {
            algorithm: ALGORITHM.into(),
            commitment: commitment(&seed),
            seed: Some(hex(&seed)),
            entries_root: Some(entries_root(&e)),
            entries: 50,
            beacon: None,
            drawn_at: None,
        };
        assert!(verify(&good, &order).is_empty());
        let mut seed2 = good.clone();
        seed2.seed = Some(hex(&[4u8; 32]));
        assert!(!verify(&seed2, &order).is_empty());
        let mut swapped = order.clone();
        swapped.swap(0, 1);
        assert!(!verify(&good, &swapped).is_empty());
        let mut other = order.clone();
        other[7] = public_id("someone else");
        assert!(!verify(&good, &other).is_empty());
        assert_eq!(unhex("0aFf"), Some(vec![10, 255]));
        assert_eq!(unhex("0g"), None);
    }
}

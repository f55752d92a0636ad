//! Places per client: a sale's `max_places_per_client` caps the places one client holds
//! waiting in its line, counted in Redis so every instance agrees.
//!
//! A place is live while it waits in the queue: from the join that made it until admit.lua
//! pops it. Admitted, expired, bought or not, it no longer counts; the cap bounds how much
//! of the line one client can hoard, while tickets are bounded by their TTL and the sale's
//! admission rate. Re-presenting a queue token keeps a place and never counts it again.
//!
//! Memory: with the cap off nothing per shopper is stored. With it on, enqueue.lua counts the
//! place in the sale's `places` hash (client tag → live places, one field per client that
//! holds any) and appends the tag to the new queue id (`<id>.<tag>`), so the place itself
//! says whose count to free and no per-shopper record exists. The 28-character id grows to
//! 37, from jemalloc's 32-byte class to its 48-byte one: 16 B more per queued shopper.

use sha2::{Digest, Sha256};

use super::ClientKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

/// A client's short name in Redis: 48 bits of SHA-256 of its key, 8 base64url characters.
/// A collision only makes two clients share one cap (a million clients: a 0.2% chance of any).
pub fn tag(client: &ClientKey) -> String {
    let digest = Sha256::digest(client.to_string().as_bytes());
    B64.encode(&digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_short_stable_and_dot_free() {
        let a = ClientKey::of("203.0.113.7".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2::9".parse().unwrap());
        assert_eq!(tag(&a), tag(&a));
        assert_ne!(tag(&a), tag(&b));
        for t in [tag(&a), tag(&b)] {
            assert_eq!(t.len(), 8);
            assert!(!t.contains('.'), "admit.lua splits the queue id at the dot");
        }
    }
}

//! Places per client: a sale's `max_places_per_client` caps the places one client holds
//! waiting in its line, counted in Redis so every instance agrees.
//!
//! A place is live while it waits in the queue: from the join that made it until admit.lua
//! pops it. Admitted, expired, bought or not, it no longer counts; the cap bounds how much
//! of the line one client can hoard, while tickets are bounded by their TTL and the sale's
//! admission rate. Re-presenting a queue token keeps a place and never counts it again.
//!
//! Every queue id ends in its client's tag (`<id>.<tag>`, at most 28 characters in all, the
//! same 32-byte jemalloc class as an untagged 28-character id), so the place itself says whose
//! count to free and no per-shopper record exists, and the id does not depend on the cap. The
//! sale's `places` hash (client tag → live places, one field per client that holds any) is
//! kept only while the cap is on; setting a cap counts the line afresh (change.lua), so places
//! taken before it count too. An IPv6 client's tag names its wider network as well
//! (`WideLimits`): the network's /64s together hold at most `share` times the cap.

use sha2::{Digest, Sha256};

use super::ClientKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

/// A client's short name in Redis: 48 bits of SHA-256 of its key, 8 base64url characters.
/// A collision only makes two clients share one cap (a million clients: a 0.2% chance of any).
/// A client counted in a wider IPv6 network too (`ClientKey::widen`) is named
/// `<network>.<client>`, 4 characters each (48 bits together): enqueue.lua counts both, the
/// network against `share` times the cap.
pub fn tag(client: &ClientKey, wide: Option<&ClientKey>) -> String {
    match wide {
        None => short(client, 6),
        Some(net) => format!("{}.{}", short(net, 3), short(client, 3)),
    }
}

fn short(key: &ClientKey, bytes: usize) -> String {
    let digest = Sha256::digest(key.to_string().as_bytes());
    B64.encode(&digest[..bytes])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_short_stable_and_name_the_wider_network() {
        let a = ClientKey::of("203.0.113.7".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2::9".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::9".parse().unwrap());
        assert_eq!(tag(&a, None), tag(&a, None));
        assert_ne!(tag(&a, None), tag(&b, None));
        for t in [tag(&a, None), tag(&b, None)] {
            assert_eq!(t.len(), 8);
            assert!(
                !t.contains('.'),
                "enqueue.lua splits the queue id at its dots"
            );
        }
        let (tb, tc) = (tag(&b, b.widen(48).as_ref()), tag(&c, c.widen(48).as_ref()));
        assert_eq!(tb.len(), 9);
        assert_ne!(tb, tc);
        assert_eq!(
            tb.split_once('.').unwrap().0,
            tc.split_once('.').unwrap().0,
            "one /48"
        );
    }
}

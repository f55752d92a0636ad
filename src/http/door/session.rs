//! One place per browser, and tokens bound to the browser that got them.
//!
//! A join gives the browser a random session id in the HttpOnly, SameSite=Strict cookie
//! `wr_sid` (`__Host-wr_sid`, Secure, over HTTPS). Its tokens carry `sid`, a hash of it, never
//! the value: a token read from a log, a screenshot or another device is refused without the
//! cookie (403 `token_not_bound`). `WAITROOM_BIND_TOKENS=false` skips the check for API
//! clients that keep no cookies; the cookie is still set, so browsers keep one place.
//!
//! One place per browser needs no record per shopper: a new place's queue id is derived from
//! the session and the sale, so a second join from the same browser names the same id and
//! enqueue.lua finds the place the first one made (or, once it is finished, the next id of
//! the browser's sequence). A Redis map sid → queue id would cost ~100 B per shopper in a
//! line whose budget is 120 B; the derivation costs nothing and cannot drift from the line.
//! Its limit: the client's tag is part of the id (`door::places`), so a browser that changes
//! address mid-sale can take a second place (counted against its new address). A cap set or
//! lifted mid-sale changes no id.
//!
//! The admission ticket carries the same `sid`: checkout refuses a ticket without its cookie.
//! The gate does not check it, since the shop's origin may not see the waitroom's cookie; a
//! third party that does can compare `sid` with `hash` of the cookie.

use std::fmt::Write;

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::core::domain::{QueueId, SaleId};
use crate::flows::queue::Seat;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::infra::tokens;

pub const SID_COOKIE: &str = "wr_sid";
/// Over HTTPS: the `__Host-` prefix makes the browser refuse it from a sibling subdomain.
pub const SID_COOKIE_HTTPS: &str = "__Host-wr_sid";
/// The queue token for the page's EventSource, which cannot send an Authorization header.
pub const QUEUE_COOKIE: &str = "wr_queue";

/// 16 random bytes, base64url: what a session id must look like to be believed.
const SID_BYTES: usize = 16;
const SID_CHARS: usize = 22;
/// A queue id's length in hex characters before its client's tag (lua/enqueue.lua takes the
/// same from `sha1hex`).
const QUEUE_ID_CHARS: usize = 18;

/// A browser's session: its id from the cookie, or a new one this response sets.
pub struct Session {
    sid: String,
    https: bool,
}

impl Session {
    /// The session the request's cookie names, or a fresh one.
    pub fn of(s: &AppState, req: &HttpRequest) -> Self {
        let https = is_https(s, req);
        let sid = sid_cookie(req, https).unwrap_or_else(|| {
            // ThreadRng is a CSPRNG seeded from the OS: no getrandom syscall per join.
            let mut raw = [0u8; SID_BYTES];
            rand::fill(&mut raw);
            B64.encode(raw)
        });
        Self { sid, https }
    }

    pub fn seat(&self, sale: &SaleId) -> Seat {
        Seat {
            queue_id: queue_id(&self.sid, sale),
            sid: hash(&self.sid),
        }
    }

    /// The cookies a join answers with: the session (its expiry renewed) and the queue token
    /// for the page's stream, scoped to this sale's API.
    pub fn cookies(&self, sale: &SaleId, token: &str, ttl_secs: i64) -> [Cookie<'static>; 2] {
        let name = if self.https {
            SID_COOKIE_HTTPS
        } else {
            SID_COOKIE
        };
        let sid = self.cookie(name, self.sid.clone(), "/".into(), ttl_secs);
        let path = format!("/api/sales/{sale}/");
        [sid, self.cookie(QUEUE_COOKIE, token.into(), path, ttl_secs)]
    }

    fn cookie(&self, name: &'static str, value: String, path: String, ttl: i64) -> Cookie<'static> {
        Cookie::build(name, value)
            .path(path)
            .http_only(true)
            .secure(self.https)
            .same_site(SameSite::Strict)
            .max_age(time::Duration::seconds(ttl))
            .finish()
    }
}

/// The `sid` claim for a session id: 96 bits of SHA-256, base64url. Not reversible, so a
/// token (which anyone holding it can read) never reveals the cookie it is bound to.
pub fn hash(sid: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"waitroom sid v1|")
        .chain_update(sid.as_bytes())
        .finalize();
    B64.encode(&digest[..12])
}

/// A session's first queue id in a sale, before enqueue.lua appends `.<client tag>`: 72 bits
/// of SHA-256 under another label than `hash`, so neither the id nor the claim says anything
/// about the other or the cookie (a collision among a million places: about 1 in 10^10). 18 hex
/// characters, so the tagged member (at most 28) with Redis's 3-byte header and NUL fits jemalloc's
/// 32-byte class instead of the 48-byte one, 16 B less per queued shopper (lua/enqueue.lua's
/// later ids have the same length).
fn queue_id(sid: &str, sale: &SaleId) -> QueueId {
    let digest = Sha256::new()
        .chain_update(b"waitroom place v1|")
        .chain_update(sale.as_str().as_bytes())
        .chain_update(b"|")
        .chain_update(sid.as_bytes())
        .finalize();
    let mut id = String::with_capacity(QUEUE_ID_CHARS + 1);
    for b in &digest[..QUEUE_ID_CHARS.div_ceil(2)] {
        let _ = write!(id, "{b:02x}");
    }
    id.truncate(QUEUE_ID_CHARS);
    QueueId::parse(&id).expect("18 hex characters are a queue id")
}

/// The session id from the cookie, if it has the shape we issue. Over HTTPS only the
/// `__Host-` cookie counts: a plain one could have been planted by a sibling subdomain.
fn sid_cookie(req: &HttpRequest, https: bool) -> Option<String> {
    let names: &[&str] = if https {
        &[SID_COOKIE_HTTPS]
    } else {
        &[SID_COOKIE_HTTPS, SID_COOKIE]
    };
    names
        .iter()
        .filter_map(|n| req.cookie(n))
        .map(|c| c.value().to_string())
        .find(|v| v.len() == SID_CHARS && B64.decode(v).is_ok())
}

/// Whether the browser reached us over HTTPS: our own TLS listener, or a trusted proxy's
/// `X-Forwarded-Proto` (`door::client`'s trust model: nobody else may claim it).
pub(crate) fn is_https(s: &AppState, req: &HttpRequest) -> bool {
    if req.app_config().secure() {
        return true;
    }
    let trusted = req
        .peer_addr()
        .is_some_and(|a| s.config.door.clients.is_trusted(a.ip()));
    trusted
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Refuses a queue token or ticket that is not bound to this request's browser.
///
/// The claim is read without verifying the token: this can only refuse, and the caller
/// verifies the token as before. A token that does not decode is left to that verification,
/// so garbage is still answered 401, not 403.
pub fn check_bound(s: &AppState, req: &HttpRequest, token: &str) -> Result<(), AppError> {
    if !s.config.door.bind_tokens {
        return Ok(());
    }
    let Some(claim) = tokens::unverified_sid(token) else {
        return Ok(());
    };
    let cookie = sid_cookie(req, is_https(s, req)).map(|sid| hash(&sid));
    match (claim, cookie) {
        (Some(want), Some(got)) if want == got => Ok(()),
        _ => Err(AppError::forbidden(
            "token_not_bound",
            "this token belongs to another browser session (its cookie is missing)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> crate::core::domain::SaleId {
        crate::core::domain::SaleId::parse(s).unwrap()
    }

    #[test]
    fn hashes_and_ids_are_short_distinct_and_stable() {
        let sid = B64.encode([7u8; SID_BYTES]);
        assert_eq!(sid.len(), SID_CHARS);
        assert_eq!(hash(&sid), hash(&sid));
        assert_eq!(hash(&sid).len(), 16);
        assert_ne!(hash(&sid), hash(&B64.encode([8u8; SID_BYTES])));
        let qid = queue_id(&sid, &id("drop")).to_string();
        assert_eq!(qid.len(), QUEUE_ID_CHARS);
        assert!(
            !qid.contains('.'),
            "admit.lua splits the queue id at the dot"
        );
        assert_ne!(qid, queue_id(&sid, &id("other")).to_string());
        assert!(!qid.contains(&hash(&sid)));
    }
}

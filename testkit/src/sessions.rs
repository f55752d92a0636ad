//! The test client's stand-in for browsers' cookie jars: tokens are bound to the session
//! cookie of the join that issued them (`door::session`).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// Every browser session a join handed out, by the `sid` hash its tokens carry: a test's
/// requests with a token send that token's cookie, as the browser that joined would. Keyed by
/// hash, so a ticket (from `/status`, a stream, any instance) finds its cookie too.
static SESSIONS: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);

/// Remembers the session cookie a response sets.
pub fn remember_session(res: &reqwest::Response) {
    for v in res.headers().get_all("set-cookie") {
        let Some(pair) = v.to_str().ok().and_then(|v| v.split(';').next()) else {
            continue;
        };
        if let Some(sid) = pair.strip_prefix("wr_sid=") {
            remember_sid(sid);
        }
    }
}

/// Remembers a session id seen elsewhere (a real browser's cookie jar).
pub fn remember_sid(sid: &str) {
    let hash = waitroom::http::door::session::hash(sid);
    SESSIONS.lock().unwrap().insert(hash, sid.to_string());
}

/// The `Cookie` header of the browser a token (queue token or ticket) was issued to.
pub fn session_cookie(token: &str) -> Option<String> {
    let hash = waitroom::infra::tokens::unverified_sid(token)??;
    let sid = SESSIONS.lock().unwrap().get(&hash)?.clone();
    Some(format!("wr_sid={sid}"))
}

/// `req` as sent by the browser holding `token`: with its session cookie, if one is known.
pub fn as_browser(req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    match session_cookie(token) {
        Some(c) => req.header("cookie", c),
        None => req,
    }
}

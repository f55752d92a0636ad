//! The dashboard's session: the admin token is exchanged once (`POST /api/admin/session`) for
//! a short-lived signed JWT (`tokens::admin`) in an HttpOnly, SameSite=Strict cookie, so the
//! token itself is never kept by the browser, and any instance accepts the cookie.
//!
//! With the cookie, a state-changing request must also carry `X-Waitroom-Admin: 1`: a form or
//! link from another site cannot set a custom header, and a script from another origin cannot
//! send one without a CORS preflight we never grant. Bearer requests (curl) need no header.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::Method;
use actix_web::HttpRequest;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::http::door::session::is_https;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::infra::tokens::now_secs;

pub const COOKIE: &str = "wr_admin";
/// Over HTTPS: `__Host-` makes the browser refuse it from a sibling subdomain.
pub const COOKIE_HTTPS: &str = "__Host-wr_admin";
pub const CSRF_HEADER: &str = "x-waitroom-admin";
/// An hour, renewed by any request in its second half (the page asks every few minutes).
pub const TTL_SECS: i64 = 3600;

/// How a request proved it is the admin; a session past half its life brings a fresh cookie.
pub enum Admin {
    Bearer,
    Session {
        /// When the session presented ends (unix seconds).
        exp: i64,
        renewal: Option<Cookie<'static>>,
    },
}

/// The admin token as given in the configuration; empty means admin routes are off.
fn admin_token(s: &AppState) -> &[u8] {
    s.config.tokens.admin.expose_secret().as_bytes()
}

/// The given token is the admin token (compared in constant time).
pub fn is_admin_token(s: &AppState, given: &str) -> bool {
    let expected = admin_token(s);
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected))
}

fn invalid_token() -> AppError {
    AppError::unauthorized(
        "invalid_admin_token",
        "a valid admin bearer token or dashboard session is required",
    )
}

/// The bearer token, else the session cookie; a cookie on a state-changing request also
/// needs the CSRF header.
pub fn authorize(s: &AppState, req: &HttpRequest) -> Result<Admin, AppError> {
    if let Some(given) = crate::http::credentials::bearer(req) {
        return match is_admin_token(s, given) {
            true => Ok(Admin::Bearer),
            false => Err(invalid_token()),
        };
    }
    let https = is_https(s, req);
    let cookie = cookie_value(req, https).ok_or_else(invalid_token)?;
    let claims = s
        .keys
        .verify_admin_session(&cookie, admin_token(s))
        .map_err(|_| {
            AppError::unauthorized("admin_session_expired", "sign in to the dashboard again")
        })?;
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let marked = req.headers().get(CSRF_HEADER).is_some_and(|v| v == "1");
    if !safe && !marked {
        return Err(AppError::forbidden(
            "admin_header_required",
            "with the session cookie, send the X-Waitroom-Admin: 1 header",
        ));
    }
    let renewal = (claims.exp - now_secs() < TTL_SECS / 2).then(|| issue(s, https));
    Ok(Admin::Session {
        exp: claims.exp,
        renewal,
    })
}

/// Over HTTPS only the `__Host-` cookie counts: a plain one could be planted by a sibling.
fn cookie_value(req: &HttpRequest, https: bool) -> Option<String> {
    let names: &[&str] = if https {
        &[COOKIE_HTTPS]
    } else {
        &[COOKIE_HTTPS, COOKIE]
    };
    names
        .iter()
        .find_map(|n| req.cookie(n))
        .map(|c| c.value().to_string())
}

fn cookie(https: bool, value: String, max_age: i64) -> Cookie<'static> {
    let name = if https { COOKIE_HTTPS } else { COOKIE };
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(max_age))
        .finish()
}

/// A fresh session cookie.
pub fn issue(s: &AppState, https: bool) -> Cookie<'static> {
    let jwt = s.keys.admin_session(admin_token(s), TTL_SECS);
    cookie(https, jwt, TTL_SECS)
}

/// The sign-in: the admin token for a session cookie.
pub fn sign_in(s: &AppState, req: &HttpRequest, token: &str) -> Result<Cookie<'static>, AppError> {
    if !is_admin_token(s, token) {
        tracing::info!("dashboard sign-in refused: wrong admin token");
        return Err(invalid_token());
    }
    tracing::info!("dashboard signed in");
    Ok(issue(s, is_https(s, req)))
}

/// The cookie that makes the browser forget the session. The JWT itself stays valid until
/// it expires (nothing is stored per session); changing the admin token ends every session.
pub fn sign_out(s: &AppState, req: &HttpRequest) -> Cookie<'static> {
    cookie(is_https(s, req), String::new(), 0)
}

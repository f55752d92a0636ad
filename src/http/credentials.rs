//! Credentials as a request presents them: a bearer token, or a cookie where a browser cannot
//! set a header (EventSource).

use actix_web::http::header;
use actix_web::HttpRequest;

/// The token after `Bearer `, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A token from the Authorization header, else from the named cookie.
pub fn token_from(req: &HttpRequest, cookie: &str) -> Option<String> {
    bearer(req)
        .map(str::to_string)
        .or_else(|| req.cookie(cookie).map(|c| c.value().to_string()))
}

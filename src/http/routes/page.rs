//! The queue page, embedded in the binary. Assets are served under `/static/{version}/…`, the
//! version being a hash of all of them: the HTML (revalidated every time) links the current
//! one, the ES modules' relative imports inherit it from the URL, so a CDN can keep every file
//! for a year and a deploy still takes effect at once.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};

use crate::http::error::AppError;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const ENTRY: &str = "js/main.js";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// An embedded file, named by its path under `static/`.
macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_str!(concat!("../../../static/", $path)),
        }
    };
}

/// Every file the page may load; anything else under `/static/` is a JSON 404.
const ASSETS: &[Asset] = &[
    asset!("style.css", CSS),
    asset!("js/main.js", JS),
    asset!("js/state.js", JS),
    asset!("js/api.js", JS),
    asset!("js/token.js", JS),
    asset!("js/sale.js", JS),
    asset!("js/stream.js", JS),
    asset!("js/ticket.js", JS),
    asset!("js/checkout.js", JS),
    asset!("js/payment.js", JS),
    asset!("js/outcome.js", JS),
    asset!("js/view.js", JS),
    asset!("js/announce.js", JS),
    asset!("js/derive.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/pow.js", JS),
    asset!("js/pow-worker.js", JS),
    asset!("js/opening.js", JS),
    asset!("js/sizes.js", JS),
    asset!("js/draw.js", JS),
];

const ADMIN_ENTRY: &str = "js/admin/main.js";

/// The operator's dashboard (`/admin`): its modules and the vendored chart library.
const ADMIN_ASSETS: &[Asset] = &[
    asset!("admin.css", CSS),
    asset!("vendor/uplot/uPlot.min.css", CSS),
    asset!("vendor/uplot/uPlot.iife.min.js", JS),
    asset!("js/admin/main.js", JS),
    asset!("js/admin/api.js", JS),
    asset!("js/admin/stream.js", JS),
    asset!("js/admin/charts.js", JS),
    asset!("js/admin/view.js", JS),
    asset!("js/admin/controls.js", JS),
    asset!("js/admin/panels.js", JS),
    asset!("js/admin/format.js", JS),
    asset!("js/admin/webhooks.js", JS),
];

fn all_assets() -> impl Iterator<Item = &'static Asset> {
    ASSETS.iter().chain(ADMIN_ASSETS)
}

/// A worker script runs in its own context: preloading it as a module would be wasted.
fn preloaded(a: &Asset) -> bool {
    a.content_type == JS && a.path != ENTRY && !a.path.ends_with("-worker.js")
}

static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for a in all_assets() {
        h.update(a.path.as_bytes());
        h.update(a.body.as_bytes());
    }
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
});

static INDEX: LazyLock<String> = LazyLock::new(|| {
    // Announcing every module up front spares a phone one round trip per level of imports.
    let preloads: Vec<String> = ASSETS
        .iter()
        .filter(|a| preloaded(a))
        .map(|a| {
            format!(
                r#"<link rel="modulepreload" href="/static/{}/{}">"#,
                *VERSION, a.path
            )
        })
        .collect();
    include_str!("../../../static/index.html")
        .replace("__MODULE_PRELOADS__", &preloads.join("\n  "))
        .replace("__ASSET_VERSION__", &VERSION)
});

static ADMIN: LazyLock<String> = LazyLock::new(|| {
    let preloads: Vec<String> = ADMIN_ASSETS
        .iter()
        .filter(|a| a.path.starts_with("js/admin/") && a.path != ADMIN_ENTRY)
        .map(|a| {
            format!(
                r#"<link rel="modulepreload" href="/static/{}/{}">"#,
                *VERSION, a.path
            )
        })
        .collect();
    include_str!("../../../static/admin.html")
        .replace("__MODULE_PRELOADS__", &preloads.join("\n  "))
        .replace("__ASSET_VERSION__", &VERSION)
});

fn html(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

pub async fn index() -> HttpResponse {
    html(INDEX.as_str())
}

/// `GET /admin`: the dashboard; it signs in and reads everything through `/api/admin`.
pub async fn admin() -> HttpResponse {
    html(ADMIN.as_str())
}

/// `GET /static/{version}/{path}`.
pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let (version, file) = path.split_once('/').unwrap_or_default();
    let asset = all_assets().find(|a| a.path == file);
    let asset = asset.ok_or_else(|| AppError::not_found("not_found", "no such file"))?;
    // Another version (a page from an instance on the other side of a deploy) still gets
    // today's file, but one that must not be kept under that version's name.
    let cache = match version == VERSION.as_str() {
        true => "public, max-age=31536000, immutable",
        false => "no-cache",
    };
    Ok(HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::CACHE_CONTROL, cache))
        .body(asset.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module missing from the table would 404 and stop the whole page: every relative
    /// import must name an embedded file.
    #[test]
    fn every_module_import_is_embedded() {
        for a in all_assets().filter(|a| a.path.starts_with("js/")) {
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            for spec in a.body.split("from './").skip(1) {
                let name = spec.split('\'').next().unwrap();
                let path = format!("{dir}/{name}");
                let found = all_assets().any(|b| b.path == path);
                assert!(found, "{} imports {path}, not in ASSETS", a.path);
            }
        }
    }

    #[test]
    fn the_page_links_the_current_version_only() {
        assert!(!INDEX.contains("__"), "a placeholder is left in the page");
        let linked = format!("/static/{}/{ENTRY}", *VERSION);
        assert!(INDEX.contains(&linked));
        let preloads = INDEX.matches("modulepreload").count();
        assert_eq!(preloads, ASSETS.iter().filter(|a| preloaded(a)).count());
        assert!(
            !ADMIN.contains("__"),
            "a placeholder is left in the dashboard"
        );
        assert!(ADMIN.contains(&format!("/static/{}/{ADMIN_ENTRY}", *VERSION)));
    }
}

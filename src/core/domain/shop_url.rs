//! The shop's payment page (`checkout_url`): where the queue page sends a buyer, with the
//! hand-off token in a form field. Checked once, when an admin sets it, so the page never
//! posts a token to something that is not a plain absolute web address.

use std::net::Ipv6Addr;

use url::{Host, Url};

use super::InvalidInput;

/// Longer than any real payment page's address; short enough for every browser and proxy.
pub const MAX_LEN: usize = 2_000;

fn invalid(why: &str) -> InvalidInput {
    InvalidInput::new("invalid_sale", format!("checkout_url {why}"))
}

/// Accepts an absolute `https://` URL without credentials or fragment, at most 2,000
/// characters. Plain `http://` only to this machine (`localhost`, 127.0.0.0/8, `::1`):
/// development, where the shop runs beside waitroom without TLS. The URL is kept as given.
pub fn check(raw: &str) -> Result<(), InvalidInput> {
    if raw.len() > MAX_LEN {
        return Err(invalid(&format!("must be at most {MAX_LEN} characters")));
    }
    // The parser would quietly strip these; an admin's typo should not turn into another URL.
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain spaces or control characters"));
    }
    let url = Url::parse(raw).map_err(|e| invalid(&format!("is not an absolute URL ({e})")))?;
    let host = url.host().ok_or_else(|| invalid("must name a host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_local(&host) => {}
        "http" => {
            return Err(invalid(
                "must use https (plain http only to localhost, for development)",
            ))
        }
        _ => return Err(invalid("must be an https:// URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a #fragment"));
    }
    Ok(())
}

fn is_local(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => *ip == Ipv6Addr::LOCALHOST,
    }
}

/// The shop's origin, `scheme://host[:port]` (the default port left out): the hand-off
/// token's audience. None for a URL `check` would refuse.
pub fn origin(raw: &str) -> Option<String> {
    let url = Url::parse(raw).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_pages_and_local_http_pass() {
        for ok in [
            "https://shop.example/pay",
            "https://shop.example:8443/checkout?from=waitroom",
            "http://localhost:3000/pay",
            "http://127.0.0.1:9000/pay",
            "http://[::1]:9000/pay",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        let long = format!("https://shop.example/{}", "a".repeat(MAX_LEN));
        for bad in [
            "",
            "shop.example/pay",
            "/pay",
            "ftp://shop.example/pay",
            "javascript:alert(1)",
            "http://shop.example/pay",
            "http://10.0.0.1/pay",
            "https://user:pw@shop.example/pay",
            "https://user@shop.example/pay",
            "https://shop.example/pay#x",
            "https://shop.example/pay now",
            " https://shop.example/pay",
            "https://shop.example/\npay",
            long.as_str(),
        ] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.code, "invalid_sale", "{bad}");
            assert!(e.message.starts_with("checkout_url "), "{}", e.message);
        }
    }

    #[test]
    fn the_origin_is_scheme_host_and_port() {
        assert_eq!(
            origin("https://Shop.Example/pay?x=1").as_deref(),
            Some("https://shop.example")
        );
        assert_eq!(
            origin("https://shop.example:443/pay").as_deref(),
            Some("https://shop.example")
        );
        assert_eq!(
            origin("http://127.0.0.1:9000/pay").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(origin("not a url"), None);
    }
}

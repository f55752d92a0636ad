//! Where a webhook may go. A URL is checked when the endpoint is made (scheme, host, and the
//! addresses its host resolves to: `infra::outbound`) and again when each attempt connects, so
//! a name that later resolves to a private address (DNS rebinding) reaches nothing inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::core::domain::InvalidInput;

/// A parsed, shape-checked webhook URL (its addresses are checked where they are resolved).
#[derive(Debug, Clone)]
pub struct Destination {
    url: url::Url,
}

/// Longest URL an endpoint may have.
const MAX_URL: usize = 2048;

impl Destination {
    /// `https://` (or `http://` where private destinations are allowed: development and
    /// tests), a host, no credentials, no fragment. A host that is an IP address must not be
    /// private unless allowed; names are resolved and checked by the caller.
    pub fn parse(raw: &str, allow_private: bool) -> Result<Self, InvalidInput> {
        let bad = |why: &str| InvalidInput::new("invalid_url", why.to_string());
        if raw.len() > MAX_URL {
            return Err(bad("the URL is longer than 2048 characters"));
        }
        let url = url::Url::parse(raw.trim()).map_err(|e| bad(&format!("not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_private => {}
            "http" => {
                return Err(InvalidInput::new(
                    "insecure_url",
                    "webhooks go over https:// only (http:// is allowed with WAITROOM_WEBHOOK_ALLOW_PRIVATE)",
                ))
            }
            _ => return Err(bad("the URL must start with https://")),
        }
        if url.host().is_none() {
            return Err(bad("the URL has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not go in the URL; verify the signature instead",
            ));
        }
        if url.fragment().is_some() {
            return Err(bad("the URL must not have a #fragment"));
        }
        let d = Self { url };
        if let Some(ip) = d.ip() {
            if is_private(ip) && !allow_private {
                return Err(private_destination());
            }
        }
        Ok(d)
    }

    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The host when it is an IP address literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.url.host()? {
            url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
            url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
            url::Host::Domain(_) => None,
        }
    }

    /// The host name to resolve and the port to connect to.
    pub fn host_port(&self) -> (&str, u16) {
        let host = self.url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (host, self.url.port_or_known_default().unwrap_or(443))
    }
}

pub fn private_destination() -> InvalidInput {
    InvalidInput::new(
        "private_destination",
        "the URL's host is or resolves to a private, loopback or link-local address",
    )
}

/// Addresses a webhook must not reach from the server's network unless the operator allows
/// it: loopback, private (RFC 1918, unique-local), link-local (the cloud metadata service),
/// carrier-grade NAT, unspecified, broadcast, multicast, documentation and benchmarking
/// ranges, and IPv4 written inside IPv6.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => private_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(a),
        },
    }
}

fn private_v4(a: Ipv4Addr) -> bool {
    let [o0, o1, ..] = a.octets();
    a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o0 == 0
        || (o0 == 100 && (64..128).contains(&o1)) // carrier-grade NAT
        || (o0 == 198 && (o1 == 18 || o1 == 19)) // benchmarking
        || o0 >= 240 // reserved
}

fn private_v6(a: Ipv6Addr) -> bool {
    let first = a.segments()[0];
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || (first & 0xffc0) == 0xfec0 // site local (deprecated)
        || first == 0x2001 && a.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && a.segments()[1] == 0xff9b // NAT64: an IPv4 inside
        || first == 0x2002 // 6to4: an IPv4 inside
        || a.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(url: &str, allow: bool) -> &'static str {
        Destination::parse(url, allow).map_or_else(|e| e.code, |_| "ok")
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(code("https://shop.example/hooks?x=1", false), "ok");
        assert_eq!(code("http://shop.example/hooks", false), "insecure_url");
        assert_eq!(code("http://127.0.0.1:9/h", true), "ok");
        assert_eq!(code("not a url", false), "invalid_url");
        assert_eq!(code("ftp://shop.example/", false), "invalid_url");
        assert_eq!(code("https://u:p@shop.example/", false), "invalid_url");
        assert_eq!(code("https://shop.example/#x", false), "invalid_url");
        for private in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://172.16.0.1/",
            "https://169.254.169.254/latest",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
        ] {
            assert_eq!(code(private, false), "private_destination", "{private}");
        }
        assert_eq!(code("https://93.184.216.34/", false), "ok");
        assert_eq!(code("https://[2606:4700::1111]/", false), "ok");
    }

    #[test]
    fn host_and_port() {
        let d = Destination::parse("https://[::1]:8443/x", true).unwrap();
        assert_eq!(d.host_port(), ("::1", 8443));
        let d = Destination::parse("https://shop.example/x", true).unwrap();
        assert_eq!(d.host_port(), ("shop.example", 443));
    }
}

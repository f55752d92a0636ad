//! Who is asking: the one client identity every limit at the door counts by.
//!
//! The socket peer, unless the peer is a trusted proxy (`WAITROOM_TRUSTED_PROXIES`): only
//! then is the forwarding header believed, and only up to the right-most address that no
//! trusted proxy added, since anything left of it was written by the client itself. IPv6
//! clients count by their /64, which is what one household or one host usually holds; the
//! aggregate limits also count the wider network around it (`widen`).

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// A client as the door counts it: an IPv4 address or an IPv6 /64 (or, widened, the IPv6
/// network around it that the aggregate limits count by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    net: IpAddr,
    prefix: u8,
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4)),
                None => Self::v6(v6, 64),
            },
            v4 => Self {
                net: v4,
                prefix: 32,
            },
        }
    }

    fn v6(ip: Ipv6Addr, prefix: u8) -> Self {
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        let net = Ipv6Addr::from(u128::from(ip) & mask);
        Self {
            net: IpAddr::V6(net),
            prefix,
        }
    }

    /// The wider IPv6 network this client sits in, counted as one for the aggregate limits
    /// (a host given a /56 or /48 holds 256 or 65,536 /64s). None for IPv4, or when `prefix`
    /// is 0 (off) or not wider than the client itself.
    pub fn widen(&self, prefix: u8) -> Option<Self> {
        match self.net {
            IpAddr::V6(v6) if prefix > 0 && prefix < self.prefix => Some(Self::v6(v6, prefix)),
            _ => None,
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.net {
            IpAddr::V6(net) => write!(f, "{net}/{}", self.prefix),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// Where client addresses come from: the trusted proxies and the header they set.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity {
    pub trusted: Vec<IpNet>,
    /// A single-address header such as `CF-Connecting-IP`; None means `X-Forwarded-For`.
    pub header: Option<String>,
}

impl ClientIdentity {
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a request that arrived from `peer` with these headers.
    pub fn identify(
        &self,
        peer: IpAddr,
        headers: &actix_web::http::header::HeaderMap,
    ) -> ClientKey {
        if !self.is_trusted(peer) {
            return ClientKey::of(peer);
        }
        let name = self.header.as_deref().unwrap_or("x-forwarded-for");
        // Every hop appends; several headers of the same name are one list in order. Walking
        // from the right, the first hop no trusted proxy added is the client; a hop that cannot
        // be read ends the walk at the last trusted one (never skip to what the client wrote).
        let hops: Vec<&str> = headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop_address(hop) {
                Some(ip) if self.is_trusted(ip) => client = ip,
                Some(ip) => return ClientKey::of(ip),
                None => break,
            }
        }
        ClientKey::of(client)
    }
}

/// An address as proxies write it: bare, `a.b.c.d:port` or `[v6]:port`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_may_name_the_client() {
        let id = ClientIdentity {
            trusted: vec!["10.0.0.0/8".parse().unwrap()],
            header: None,
        };
        let spoof = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(id.identify(ip("9.9.9.9"), &spoof).to_string(), "9.9.9.9");
        // The right-most untrusted hop: the client wrote "1.1.1.1" itself.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 8.8.8.8, 10.0.0.2")]);
        assert_eq!(id.identify(ip("10.0.0.1"), &chain).to_string(), "8.8.8.8");
        let split = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "8.8.4.4"),
        ]);
        assert_eq!(id.identify(ip("10.0.0.1"), &split).to_string(), "8.8.4.4");
        let garbage = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            id.identify(ip("10.0.0.1"), &garbage).to_string(),
            "10.0.0.1"
        );
        // Ports are read, and an unreadable hop never lets the client's own entry through.
        let ports = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5:41234")]);
        assert_eq!(
            id.identify(ip("10.0.0.1"), &ports).to_string(),
            "203.0.113.5"
        );
        let v6 = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(
            id.identify(ip("10.0.0.1"), &v6).to_string(),
            "2001:db8::/64"
        );
        let hidden = headers(&[("x-forwarded-for", "6.6.6.6, bogus")]);
        assert_eq!(id.identify(ip("10.0.0.1"), &hidden).to_string(), "10.0.0.1");
    }

    #[test]
    fn a_named_header_and_ipv6_prefixes() {
        let id = ClientIdentity {
            trusted: vec!["127.0.0.1/32".parse().unwrap()],
            header: Some("cf-connecting-ip".into()),
        };
        let h = headers(&[
            ("cf-connecting-ip", "2001:db8:1:2:3:4:5:6"),
            ("x-forwarded-for", "7.7.7.7"),
        ]);
        assert_eq!(
            id.identify(ip("127.0.0.1"), &h).to_string(),
            "2001:db8:1:2::/64"
        );
        let mapped = ClientKey::of(ip("::ffff:1.2.3.4"));
        assert_eq!(mapped.to_string(), "1.2.3.4");
    }

    #[test]
    fn widening_names_the_network_around_a_v6_client() {
        let a = ClientKey::of(ip("2001:db8:1:2:3:4:5:6"));
        let b = ClientKey::of(ip("2001:db8:1:ff02::9"));
        let wide = a.widen(48).unwrap();
        assert_eq!(wide.to_string(), "2001:db8:1::/48");
        assert_eq!(b.widen(48), Some(wide), "two /64s of one /48");
        assert_ne!(a, b);
        assert_eq!(a.widen(56).unwrap().to_string(), "2001:db8:1::/56");
        assert_eq!(a.widen(0), None, "off");
        assert_eq!(a.widen(64), None, "not wider");
        assert_eq!(ClientKey::of(ip("1.2.3.4")).widen(48), None, "IPv4");
    }
}

//! Name resolution for webhooks: the addresses a name resolves to are checked where they are
//! used, at connect time, so a name that resolved to a public address when the endpoint was
//! made cannot later point the relay inside the network.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::Name;

use crate::core::webhooks::is_private;

/// How long a lookup may take before the host counts as unresolvable.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The connector's resolver: the system's, minus private addresses unless allowed.
#[derive(Clone)]
pub struct Guarded {
    pub allow_private: bool,
}

impl tower_service::Service<Name> for Guarded {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = lookup(name.as_str(), 0).await?;
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if usable.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the host resolves only to private addresses",
                ));
            }
            Ok(usable.into_iter())
        })
    }
}

async fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(found) => Ok(found?.collect()),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the host name did not resolve in time",
        )),
    }
}

/// What a host name resolves to, for the check when an endpoint is made.
#[derive(Debug, PartialEq, Eq)]
pub enum HostCheck {
    Public,
    /// At least one of its addresses is private.
    Private,
    Unresolvable,
}

pub async fn check_host(host: &str, port: u16) -> HostCheck {
    match lookup(host, port).await {
        Ok(addrs) if addrs.is_empty() => HostCheck::Unresolvable,
        Ok(addrs) if addrs.iter().any(|a| is_private(a.ip())) => HostCheck::Private,
        Ok(_) => HostCheck::Public,
        Err(_) => HostCheck::Unresolvable,
    }
}

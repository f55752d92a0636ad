//! A cuttable TCP proxy in front of the shared Redis or Postgres (their addresses, and URLs
//! through a proxy, are in `services`).

use std::sync::Arc;

use crate::wait::{eventually, WAIT};

/// A TCP proxy in front of a real service that a test can cut and restore, to see the app
/// through an outage without stopping the service other tests share.
pub struct ChaosProxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    frozen: tokio::sync::watch::Sender<bool>,
    live: Arc<std::sync::atomic::AtomicUsize>,
}

impl ChaosProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (frozen, _) = tokio::sync::watch::channel(false);
        let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (up2, cut2, live2) = (up.clone(), cut.clone(), live.clone());
        let frozen2 = frozen.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                // Subscribed before the check, so a cut racing this accept still ends it.
                let mut cut_rx = cut2.subscribe();
                let mut frozen_rx = frozen2.subscribe();
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused by closing it at once
                }
                live2.fetch_add(1, Ordering::SeqCst);
                let live = live2.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let frozen = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
                            _ = cut_rx.changed() => false,
                            f = frozen_rx.wait_for(|f| *f) => f.is_ok(),
                        };
                        if frozen {
                            // Open and silent until cut (or the proxy is dropped).
                            let _ = cut_rx.changed().await;
                        }
                    }
                    live.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            port,
            up,
            cut,
            frozen,
            live,
        }
    }

    pub fn break_all(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Waits until every connection through the proxy is closed: after `break_all`, nothing
    /// the app had open (its pub/sub subscription too) can still hear Redis.
    pub async fn all_closed(&self) {
        let closed = eventually(WAIT, || async {
            (self.live.load(std::sync::atomic::Ordering::SeqCst) == 0).then_some(())
        })
        .await;
        assert!(closed.is_some(), "connections through the proxy stay open");
    }

    /// Nothing passes any more, and nothing is closed: a server that hangs.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

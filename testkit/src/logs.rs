//! Every log line the app writes in this process, kept in memory, so a test can assert what
//! never appears in them (tokens, session cookies). The subscriber is global: a test that
//! asserts on everything captured runs in a process of its own (`alone!`), where the lines
//! are its instances' only.

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

static LOGS: LazyLock<Buf> = LazyLock::new(|| Buf(Arc::default()));

#[derive(Clone)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

/// Installs the capturing subscriber for the whole process (once): debug and up, every span
/// written with its fields when it closes, so request spans are in the text too. Levels are
/// the app's own: client faults are demoted as `telemetry::init` does.
pub fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("debug,sqlx=info,h2=info,hyper=info"))
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(LOGS.clone())
        .finish()
        .with(waitroom::infra::telemetry::ClientFaultsAtDebug)
        .try_init();
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.0.lock().unwrap()).into_owned()
}

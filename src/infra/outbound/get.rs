//! A plain GET over the relay's client, for `waitroom verify-draw`: the operator names the
//! URL, so whatever `Sender::new` allows is fetched; the body is read up to `cap`.

use http_body_util::Full;
use hyper::body::Bytes;

use super::{SendError, Sender};

impl Sender {
    /// GETs `url`: its status and body, within the timeout and `cap` bytes.
    pub async fn get(&self, url: &str, cap: usize) -> Result<(u16, Bytes), SendError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| SendError::Failed(format!("not a URL: {e}")))?;
        let request = hyper::Request::get(uri)
            .header("accept", "application/json")
            .header(
                "user-agent",
                concat!("waitroom/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| SendError::Failed(format!("cannot build the request: {e}")))?;
        let (parts, body) = self.round_trip(request, cap).await?;
        Ok((parts.status.as_u16(), body))
    }
}

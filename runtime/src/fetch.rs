//! GETs of the identity provider's JSON documents (its key set and metadata)
//! over HTTPS, on hyper's client with rustls, ring and the platform's roots.
//!
//! Not reqwest: these documents need one GET with a deadline, a size cap and a
//! few checked redirects, and reqwest's general client (with the `url` crate
//! and its IDNA tables) cost a server without downstreams about a fifth of
//! its clean build. Downstream calls (feature `egress`) still use reqwest.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

/// Redirects followed at most before a document is given up on.
const MAX_REDIRECTS: usize = 3;

/// Fetches small JSON documents from URLs `check` accepts, redirects included.
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
    max_bytes: usize,
    check: fn(&str, &str) -> Result<Uri, String>,
}

impl Fetcher {
    /// A client whose every fetch, redirects and body included, ends within
    /// `timeout`, reads at most `max_bytes`, and goes only where `check`
    /// (given what is fetched and the URL) allows.
    pub fn new(
        timeout: Duration,
        max_bytes: usize,
        check: fn(&str, &str) -> Result<Uri, String>,
    ) -> Result<Fetcher, String> {
        super::tls::install_default();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| format!("cannot load the system's root certificates for the identity provider: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(Fetcher {
            client,
            timeout,
            max_bytes,
            check,
        })
    }

    /// GETs `url` and parses its body as JSON.
    pub async fn get_json(&self, url: &Uri) -> Result<Value, String> {
        match tokio::time::timeout(self.timeout, self.get_following(url)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "cannot fetch {url}: no complete answer within {} s",
                self.timeout.as_secs()
            )),
        }
    }

    async fn get_following(&self, url: &Uri) -> Result<Value, String> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let request = Request::get(url.clone())
                .header(header::ACCEPT, "application/json")
                .header(
                    header::USER_AGENT,
                    concat!("charter-runtime/", env!("CARGO_PKG_VERSION")),
                )
                .body(Empty::new())
                .map_err(|e| format!("cannot fetch {url}: {e}"))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("cannot fetch {url}: {}", chain(&e)))?;
            let status = response.status();
            if is_redirect(status) {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("{url} answered HTTP {status} without a usable Location"))?;
                let next = resolve(&url, location);
                url = (self.check)("the redirect", &next)
                    .map_err(|e| format!("{url} redirected to a URL that is neither https nor loopback: {e}"))?;
                continue;
            }
            if !status.is_success() {
                return Err(format!("{url} answered HTTP {status}"));
            }
            let too_large = || format!("{url} answered more than {} bytes", self.max_bytes);
            let declared = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|length| length > self.max_bytes as u64) {
                return Err(too_large());
            }
            let body = Limited::new(response.into_body(), self.max_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        too_large()
                    } else {
                        format!("cannot read {url}: {}", chain(e.as_ref()))
                    }
                })?
                .to_bytes();
            return serde_json::from_slice(&body).map_err(|e| format!("{url} did not answer JSON: {e}"));
        }
        Err(format!("cannot fetch {url}: more than {MAX_REDIRECTS} redirects"))
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// A `Location` as an absolute URL: as given, or against `base`'s origin when
/// it is an absolute path (the form identity providers use).
fn resolve(base: &Uri, location: &str) -> String {
    if location.starts_with('/') && !location.starts_with("//") {
        let scheme = base.scheme_str().unwrap_or("https");
        let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
        format!("{scheme}://{authority}{location}")
    } else {
        location.to_string()
    }
}

/// An error with its causes, which hyper keeps out of its own message.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_origin() {
        let base: Uri = "https://id.example.com:8443/a/b?x=1".parse().unwrap();
        assert_eq!(resolve(&base, "/keys"), "https://id.example.com:8443/keys");
        assert_eq!(
            resolve(&base, "https://other.example.com/k"),
            "https://other.example.com/k"
        );
        // A scheme-relative or relative Location is not resolved: check_url refuses it.
        assert_eq!(resolve(&base, "//evil.example.com/k"), "//evil.example.com/k");
        assert_eq!(resolve(&base, "keys"), "keys");
    }
}

//! Calls to the downstream systems a contract declares, and nothing else.
//!
//! Handlers reach a downstream through
//! [`Context::downstream`](super::dispatch::Context::downstream), which hands
//! out a [`Downstream`]: an HTTP client bound to that downstream's base URL, its
//! declared egress hosts and its own credential. What holds whatever a
//! handler does:
//!
//! - **Paths only.** Requests take a path relative to the base URL; a path
//!   that would leave it (`//host`, an absolute URL, `..` above the base
//!   path) is refused.
//! - **Declared hosts only.** Every URL, including each redirect, must name a
//!   `host:port` from the downstream's `egress` list, its base URL or its
//!   token URL. Names are resolved by this module's resolver, which refuses
//!   undeclared names; redirects go only to declared hosts, at most
//!   [`MAX_REDIRECTS`]; no proxy from the environment is used. The
//!   configuration may replace a base URL per environment
//!   (`[downstreams.NAME] base_url`): in `production` (the default
//!   `environment`) only with a `host:port` the contract declares for that
//!   downstream; elsewhere also with a stand-in (say, a loopback server
//!   replaying recorded answers), whose host becomes reachable and which is
//!   logged as a warning at start-up.
//! - **No internal addresses by surprise.** Addresses in special ranges are
//!   refused unless the host was declared as exactly that address:
//!
//!   | address                                              | reachable when                                                                 |
//!   |------------------------------------------------------|--------------------------------------------------------------------------------|
//!   | loopback (`127/8`, `::1`)                            | the host is declared as that IP literal, or is `localhost`                     |
//!   | private (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`), CGNAT `100.64/10`, benchmarking `198.18/15` | the host is declared as that IP literal, or the downstream sets `private_network` |
//!   | link-local (`169.254/16` with the cloud metadata address, `fe80::/10`) | the IP literal is listed in the contract's `egress` or base URL |
//!   | unspecified, broadcast, multicast, reserved          | never                                                                          |
//!
//!   IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 addresses are judged
//!   by the IPv4 address they carry. A declared *name* that resolves into a
//!   special range is refused (a DNS answer cannot open the internal
//!   network); literal IPs in URLs are checked before any connection.
//! - **TLS.** `https` is required, except to a declared loopback host.
//!   Certificates are verified against the platform's roots (rustls with the
//!   `ring` provider).
//! - **Limits.** The downstream's timeout covers connecting, sending and
//!   reading the whole body; bodies over [`DEFAULT_MAX_RESPONSE_BYTES`] (or
//!   the configured cap) are refused.
//! - **Credentials.** The server's own credential for the downstream goes
//!   out as `Authorization: Bearer`; reqwest drops it on a redirect to
//!   another host, port or scheme, and it never appears in an error.
//!   Handlers cannot set `Authorization`, `Cookie` or `Proxy-Authorization`
//!   themselves, and the caller's own token is never sent to a downstream.
//!   - *Service token*: read from its file or environment variable at each
//!     use, so a rotated token is picked up without a restart.
//!   - *Client credentials* (RFC 6749 section 4.4): fetched from the token
//!     endpoint with HTTP Basic client authentication and cached until
//!     shortly before `expires_in`; concurrent calls wait for one fetch.
//!   - *Token exchange* (RFC 8693): the HTTP caller's verified bearer token
//!     (crate-private, stamped by [`Context::downstream`](super::dispatch::Context::downstream)
//!     on the client it hands out, never readable by a handler) is sent to
//!     the token endpoint only, as `subject_token`, for a token issued to the
//!     declared `audience` and `scope`. Exchanged tokens are cached per
//!     caller under the SHA-256 of the caller's token (at most
//!     1024 callers, least recently used out first), until shortly before
//!     `expires_in` and never past the caller token's `exp`; concurrent calls
//!     of one caller cause one exchange. Without an authenticated caller
//!     (stdio, `--dev-no-auth`) such a call fails and says so.
//!
//!   Token requests follow no redirect, and their errors repeat only the
//!   endpoint's OAuth error code, never its body. A 401 from the downstream
//!   drops the cached token it was sent with.
//!
//! Errors are [`ToolError`]s naming the downstream and, for a refusal, the
//! refused host: policy refusals are `internal` (retrying will not help),
//! timeouts, connection failures and 5xx/429 answers are `unavailable`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Url;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, HeaderMap, HeaderName, HeaderValue,
    PROXY_AUTHORIZATION,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::config::Environment;
use super::error::ToolError;
pub use super::surface::{CredentialSpec, DownstreamSpec, SecretRef};

pub use reqwest::{Method, StatusCode};

/// The timeout of a downstream whose contract sets none.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The largest response body read from a downstream, unless configured otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
/// Redirects followed per request.
pub const MAX_REDIRECTS: usize = 5;
/// The largest token endpoint answer read.
const MAX_TOKEN_RESPONSE_BYTES: u64 = 64 * 1024;
/// A cached access token is renewed this long before it expires.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// How long a token without `expires_in` is reused.
const TOKEN_DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// Every declared downstream's client. Cheap to clone; build it once at start-up.
#[derive(Clone, Default)]
pub struct Egress {
    downstreams: BTreeMap<String, Downstream>,
}

impl fmt::Debug for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.downstreams.values()).finish()
    }
}

impl Egress {
    /// Builds a client per downstream under production's rules (see
    /// [`Egress::in_environment`]).
    #[cfg(test)]
    pub(crate) fn new(
        specs: Vec<DownstreamSpec>,
        base_url_overrides: BTreeMap<String, String>,
    ) -> Result<Egress, String> {
        Egress::in_environment(specs, base_url_overrides, &Environment::default())
    }

    /// Builds a client per downstream. `base_url_overrides` (from the
    /// environment's configuration, by downstream name) replace the
    /// contract's base URLs. In production an override must name a
    /// `host:port` the contract declares for that downstream; in any other
    /// environment it may name a stand-in, whose host becomes reachable, and
    /// a warning naming the downstream and the stand-in is logged. Fails on a
    /// malformed spec, an override for an undeclared downstream or (in
    /// production) an undeclared host, or a base or token URL this policy
    /// would refuse.
    pub(crate) fn in_environment(
        specs: Vec<DownstreamSpec>,
        base_url_overrides: BTreeMap<String, String>,
        environment: &Environment,
    ) -> Result<Egress, String> {
        super::tls::install_default();
        for name in base_url_overrides.keys() {
            if !specs.iter().any(|s| &s.name == name) {
                return Err(format!(
                    "the configuration sets a base URL for downstream `{name}`, which the contract does not declare"
                ));
            }
        }
        let mut downstreams = BTreeMap::new();
        for spec in specs {
            let name = spec.name.clone();
            let base_url = base_url_overrides.get(&name).cloned();
            let (downstream, stand_in) =
                Downstream::build(spec, base_url, environment).map_err(|e| format!("downstream `{name}`: {e}"))?;
            if stand_in {
                tracing::warn!(
                    downstream = %name,
                    stand_in = %downstream.base_url(),
                    environment = %environment,
                    "downstream `{name}` is served by a stand-in at {}, a host the contract does not declare: \
                     allowed because the environment is `{environment}`, refused in production",
                    downstream.base_url()
                );
            }
            if downstreams.insert(name.clone(), downstream).is_some() {
                return Err(format!("downstream `{name}` is declared twice"));
            }
        }
        Ok(Egress { downstreams })
    }

    /// The clients for the contract's downstreams with this environment's
    /// base URLs (`[downstreams.NAME] base_url` in the configuration) under
    /// its rules (`environment`). The runtime builds them once at start-up
    /// and hands each tool only its own.
    pub(crate) fn from_config(specs: &[DownstreamSpec], config: &super::config::Config) -> Result<Egress, String> {
        let overrides = config
            .downstreams
            .iter()
            .map(|(name, d)| (name.clone(), d.base_url.clone()))
            .collect();
        Egress::in_environment(specs.to_vec(), overrides, &config.environment)
    }

    /// The clients `owner` (a tool or resource) may use: exactly the
    /// downstreams its contract lists. A listed name that is not declared
    /// is an error at start-up.
    pub(crate) fn bind(&self, owner: &str, declared: &[String]) -> Result<BoundDownstreams, String> {
        let clients = declared
            .iter()
            .map(|name| match self.downstreams.get(name) {
                Some(client) => Ok((name.clone(), client.clone())),
                None => Err(format!(
                    "`{owner}` lists downstream `{name}`, which the surface does not declare"
                )),
            })
            .collect::<Result<_, String>>()?;
        Ok(BoundDownstreams {
            owner: owner.into(),
            clients: Arc::new(clients),
        })
    }

    /// The same clients with a different response body cap.
    pub fn with_max_response_bytes(mut self, bytes: u64) -> Egress {
        for downstream in self.downstreams.values_mut() {
            downstream.max_response_bytes = bytes;
        }
        self
    }

    /// The client for the downstream `name`, whoever asks (tests only: handlers get [`BoundDownstreams`]).
    #[cfg(test)]
    pub(crate) fn client(&self, name: &str) -> Result<Downstream, ToolError> {
        self.downstreams.get(name).cloned().ok_or_else(|| {
            ToolError::internal(format!(
                "no downstream named `{name}` is declared: declare it under `downstreams` in the contract and list it in the tool's `downstreams`"
            ))
        })
    }

    /// The declared downstreams' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.downstreams.keys().map(String::as_str)
    }
}

/// The downstream clients one tool or resource may use: those its contract
/// lists, and no others. Handlers reach it through
/// [`Context::downstream`](super::dispatch::Context::downstream).
#[derive(Clone, Default)]
pub struct BoundDownstreams {
    owner: Arc<str>,
    clients: Arc<BTreeMap<String, Downstream>>,
}

impl fmt::Debug for BoundDownstreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundDownstreams")
            .field("owner", &self.owner)
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl BoundDownstreams {
    /// The client for `name`, if the contract lets this tool call it.
    pub fn get(&self, name: &str) -> Result<Downstream, ToolError> {
        self.clients.get(name).cloned().ok_or_else(|| {
            let owner = if self.owner.is_empty() {
                "this call"
            } else {
                &self.owner
            };
            ToolError::internal(format!(
                "`{owner}` may not call downstream `{name}`: the contract does not list it in `{owner}`'s \
                 `downstreams`; add it there (a change reviewers see) and regenerate"
            ))
        })
    }

    /// The names this tool may call.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }
}

/// An HTTP client held to `policy`: names resolved by its [`Resolver`], no
/// proxy, no `Referer`, and redirects (when followed) only to declared hosts.
fn http_client(policy: &Arc<Policy>, timeout: Duration, follow_redirects: bool) -> Result<reqwest::Client, String> {
    let redirect = if follow_redirects {
        let redirect_policy = Arc::clone(policy);
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                let refused = Refused(format!("more than {MAX_REDIRECTS} redirects"));
                return attempt.error(refused);
            }
            match redirect_policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(Refused(format!("via a redirect, {refused}"))),
            }
        })
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Resolver {
            policy: Arc::clone(policy),
        })
        .redirect(redirect)
        .referer(false)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent("charter-mcp-server")
        .build()
        .map_err(|e| format!("cannot build its HTTP client: {}", chain(&e)))
}

/// One downstream's client. Cheap to clone.
#[derive(Clone)]
pub struct Downstream {
    inner: Arc<Inner>,
    max_response_bytes: u64,
    /// The caller of the request this client serves, stamped by
    /// [`Context::downstream`](super::dispatch::Context::downstream); only a
    /// token-exchange credential uses it.
    caller: Option<CallerToken>,
}

struct Inner {
    name: String,
    /// The base URL, its path ending in `/`.
    base: Url,
    client: reqwest::Client,
    /// The client for the credential's token endpoint, which follows no redirects.
    token_client: Option<reqwest::Client>,
    policy: Arc<Policy>,
    timeout: Duration,
    credentials: Credential,
}

impl fmt::Debug for Downstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Downstream")
            .field("name", &self.inner.name)
            .field("base_url", &self.inner.base.as_str())
            .field("egress", &self.inner.policy.allowed)
            .field("timeout", &self.inner.timeout)
            .field("credentials", &self.inner.credentials.kind())
            .field("caller", &self.caller)
            .finish()
    }
}

impl Downstream {
    /// The client for `spec`, and whether its base URL is a stand-in (an
    /// override naming a host the contract does not declare, which only a
    /// non-production `environment` allows).
    fn build(
        spec: DownstreamSpec,
        base_override: Option<String>,
        environment: &Environment,
    ) -> Result<(Downstream, bool), String> {
        let contract_base = parse_base(&spec.base_url)?;
        let base = match &base_override {
            Some(url) => parse_base(url).map_err(|e| format!("the configured {e}"))?,
            None => contract_base.clone(),
        };
        let mut allowed = BTreeSet::new();
        let mut contract_literals = BTreeSet::new();
        for entry in &spec.egress {
            let (host, port) = parse_egress(entry)?;
            if let Some(ip) = literal_ip(&host) {
                contract_literals.insert(ip);
            }
            allowed.insert((host, port));
        }
        let contract_key = host_key(&contract_base).ok_or("the base URL has no host")?;
        if let Some(ip) = literal_ip(&contract_key.0) {
            contract_literals.insert(ip);
        }
        allowed.insert(contract_key);
        let base_key = host_key(&base).ok_or("the base URL has no host")?;
        // An override naming a host the contract does not declare opens egress
        // reviewers never saw: a stand-in is for environments other than production.
        let stand_in = !allowed.contains(&base_key);
        if stand_in && environment.is_production() {
            let (host, port) = &base_key;
            let declared: Vec<String> = allowed.iter().map(|(h, p)| format!("{h}:{p}")).collect();
            return Err(format!(
                "the configured base URL (`[downstreams.{name}] base_url`) names {host}:{port}, which the contract \
                 does not declare for this downstream (it declares {declared}); in the `production` environment \
                 a base URL may only name a declared host: point it at one of those, declare {host}:{port} in the \
                 downstream's `egress` in the contract, or, for a stand-in outside production, set `environment` \
                 (e.g. `environment = \"staging\"`) in the configuration",
                name = spec.name,
                declared = declared.join(", "),
            ));
        }
        allowed.insert(base_key);
        let credentials = match spec.credentials {
            CredentialSpec::None => Credential::None,
            CredentialSpec::ServiceToken { secret } => Credential::ServiceToken(Secret(secret)),
            CredentialSpec::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
            } => {
                let token_url =
                    Url::parse(&token_url).map_err(|e| format!("the token URL `{token_url}` is invalid: {e}"))?;
                allowed.insert(host_key(&token_url).ok_or("the token URL has no host")?);
                Credential::ClientCredentials(Box::new(ClientCredentials {
                    endpoint: TokenEndpoint {
                        url: token_url,
                        client_id,
                        secret: Secret(client_secret),
                    },
                    scopes,
                    cache: tokio::sync::Mutex::new(None),
                }))
            }
            CredentialSpec::TokenExchange {
                token_url,
                client_id,
                client_secret,
                audience,
                scopes,
            } => {
                let token_url =
                    Url::parse(&token_url).map_err(|e| format!("the token URL `{token_url}` is invalid: {e}"))?;
                allowed.insert(host_key(&token_url).ok_or("the token URL has no host")?);
                Credential::TokenExchange(Box::new(TokenExchange {
                    endpoint: TokenEndpoint {
                        url: token_url,
                        client_id,
                        secret: Secret(client_secret),
                    },
                    audience,
                    scopes,
                    cache: ExchangedTokens::new(EXCHANGED_TOKENS_CAPACITY),
                }))
            }
        };
        let policy = Arc::new(Policy {
            allowed,
            contract_literals,
            private_network: spec.private_network,
        });
        policy
            .check_url(&base)
            .map_err(|e| format!("the base URL is refused: {e}"))?;
        if let Some(endpoint) = credentials.endpoint() {
            policy
                .check_url(&endpoint.url)
                .map_err(|e| format!("the token URL is refused: {e}"))?;
        }
        let timeout = Duration::from_millis(spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).max(1));
        let client = http_client(&policy, timeout, true)?;
        // Token requests follow no redirect: a 307 would resend the client
        // secret and the caller's token to wherever it points.
        let token_client = match credentials.endpoint() {
            Some(_) => Some(http_client(&policy, timeout, false)?),
            None => None,
        };
        Ok((
            Downstream {
                inner: Arc::new(Inner {
                    name: spec.name,
                    base,
                    client,
                    token_client,
                    policy,
                    timeout,
                    credentials,
                }),
                max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
                caller: None,
            },
            stand_in,
        ))
    }

    /// This client acting for `caller` (the authenticated HTTP caller, or
    /// nobody on stdio): a token-exchange credential exchanges their token.
    pub(crate) fn for_caller(mut self, caller: Option<CallerToken>) -> Downstream {
        self.caller = caller;
        self
    }

    /// The downstream's contract name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The base URL requests are relative to.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// A request to `path`, relative to the base URL (a leading `/` is
    /// optional: `/tickets/42` and `tickets/42` both mean `<base>/tickets/42`).
    /// Errors (a path leaving the base URL, a refused header) surface from
    /// [`DownstreamRequest::send`].
    pub fn request(&self, method: Method, path: &str) -> DownstreamRequest {
        let url = join(&self.inner.base, path).map_err(|e| {
            ToolError::invalid(format!(
                "downstream `{}`: the path `{path}` is refused: {e}",
                self.inner.name
            ))
        });
        DownstreamRequest {
            downstream: self.clone(),
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout: self.inner.timeout,
            max_response_bytes: self.max_response_bytes,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<DownstreamResponse, ToolError> {
        self.request(Method::GET, path).send().await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post_json<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<DownstreamResponse, ToolError> {
        self.request(Method::POST, path).json(body).send().await
    }

    fn error(&self, kind: fn(String) -> ToolError, message: impl fmt::Display) -> ToolError {
        kind(format!("downstream `{}`: {message}", self.inner.name))
    }
}

/// A request being built; nothing is sent before [`DownstreamRequest::send`].
pub struct DownstreamRequest {
    downstream: Downstream,
    method: Method,
    url: Result<Url, ToolError>,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Duration,
    max_response_bytes: u64,
}

impl fmt::Debug for DownstreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownstreamRequest")
            .field("downstream", &self.downstream.inner.name)
            .field("method", &self.method)
            .field("url", &self.url.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

impl DownstreamRequest {
    /// Adds a header. `Authorization`, `Proxy-Authorization`, `Cookie` and
    /// `Host` are refused: the downstream's credential is the only one sent.
    pub fn header(mut self, name: &str, value: &str) -> DownstreamRequest {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))
            .and_then(|header| {
                if [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE, HOST].contains(&header) {
                    return Err(format!(
                        "handlers cannot set the `{header}` header: the downstream's declared credential is sent instead"
                    ));
                }
                let value = HeaderValue::from_str(value).map_err(|_| format!("the value of header `{header}` is not valid"))?;
                Ok((header, value))
            });
        match parsed {
            Ok((header, value)) => {
                self.headers.append(header, value);
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Sets the `Cookie` header: only bound tools do, with values the binding
    /// encoded (handlers cannot set it through [`DownstreamRequest::header`]).
    pub(crate) fn cookie(mut self, cookie: &str) -> DownstreamRequest {
        match HeaderValue::from_str(cookie) {
            Ok(value) => {
                self.headers.insert(COOKIE, value);
            }
            Err(_) => self.fail("a cookie value cannot be carried in a header".to_string()),
        }
        self
    }

    /// Appends query parameters (percent-encoded).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> DownstreamRequest {
        if let Ok(url) = &mut self.url {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        self
    }

    /// Sends `body` as JSON.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> DownstreamRequest {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.body = Some(bytes);
            }
            Err(e) => self.fail(format!("the request body cannot be encoded as JSON: {e}")),
        }
        self
    }

    /// Sends `body` with the given content type.
    pub fn body(mut self, body: impl Into<Vec<u8>>, content_type: &str) -> DownstreamRequest {
        match HeaderValue::from_str(content_type) {
            Ok(value) => {
                self.headers.insert(CONTENT_TYPE, value);
                self.body = Some(body.into());
            }
            Err(_) => self.fail(format!("`{content_type}` is not a valid content type")),
        }
        self
    }

    /// A shorter timeout for this request (the downstream's own is the longest allowed).
    pub fn timeout(mut self, timeout: Duration) -> DownstreamRequest {
        self.timeout = self.timeout.min(timeout);
        self
    }

    /// A different response body cap for this request.
    pub fn max_response_bytes(mut self, bytes: u64) -> DownstreamRequest {
        self.max_response_bytes = bytes;
        self
    }

    fn fail(&mut self, message: String) {
        if self.url.is_ok() {
            self.url = Err(self.downstream.error(ToolError::internal, message));
        }
    }

    /// Sends the request and reads the whole response (within the timeout and size cap).
    pub async fn send(self) -> Result<DownstreamResponse, ToolError> {
        let DownstreamRequest {
            downstream,
            method,
            url,
            mut headers,
            body,
            timeout,
            max_response_bytes,
        } = self;
        let url = url?;
        let inner = &downstream.inner;
        let what = format!("{method} {}", url.path());
        inner
            .policy
            .check_url(&url)
            .map_err(|refused| downstream.error(ToolError::internal, refused))?;
        // The earlier of the timeout and the running call's deadline; the
        // time left until then is what the error and reqwest's own timer are
        // given.
        let now = Instant::now();
        let deadline = super::deadline::for_requests().map_or(now + timeout, |call| call.min(now + timeout));
        let timeout = deadline.saturating_duration_since(now);
        let credential = tokio::time::timeout_at(deadline.into(), inner.credentials.header(&downstream))
            .await
            .map_err(|_| {
                downstream.error(
                    ToolError::unavailable,
                    format_args!("no access token for {what} within {} ms", timeout.as_millis()),
                )
            })??;
        if let Some(value) = &credential {
            headers.insert(AUTHORIZATION, value.clone());
        }
        let mut request = inner.client.request(method, url).headers(headers).timeout(timeout);
        if let Some(body) = body {
            request = request.body(body);
        }
        let exchange = async {
            let response = request
                .send()
                .await
                .map_err(|e| map_error(&downstream, &what, &e, timeout))?;
            read_response(&downstream, &what, response, max_response_bytes, timeout).await
        };
        let response = tokio::time::timeout_at(deadline.into(), exchange)
            .await
            .map_err(|_| timed_out(&downstream, &what, timeout))??;
        if response.status == StatusCode::UNAUTHORIZED
            && let Some(sent) = &credential
        {
            inner.credentials.forget(&downstream, sent).await;
        }
        Ok(response)
    }
}

async fn read_response(
    downstream: &Downstream,
    what: &str,
    mut response: reqwest::Response,
    max_bytes: u64,
    timeout: Duration,
) -> Result<DownstreamResponse, ToolError> {
    let too_large = || {
        downstream.error(
            ToolError::unavailable,
            format_args!("the answer to {what} is larger than {max_bytes} bytes, the most this server reads"),
        )
    };
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(max_bytes) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| map_error(downstream, what, &e, timeout))?
    {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(DownstreamResponse {
        downstream: downstream.inner.name.clone(),
        what: what.to_owned(),
        status: response.status(),
        headers: response.headers().clone(),
        body,
    })
}

fn timed_out(downstream: &Downstream, what: &str, timeout: Duration) -> ToolError {
    downstream.error(
        ToolError::unavailable,
        format_args!("no complete answer to {what} within {} ms", timeout.as_millis()),
    )
}

fn map_error(downstream: &Downstream, what: &str, error: &reqwest::Error, timeout: Duration) -> ToolError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return downstream.error(ToolError::internal, format_args!("{what} was refused: {refused}"));
        }
        source = e.source();
    }
    if error.is_timeout() {
        return timed_out(downstream, what, timeout);
    }
    let stage = if error.is_connect() {
        "cannot connect"
    } else if error.is_redirect() {
        "redirect failed"
    } else {
        "failed"
    };
    downstream.error(
        ToolError::unavailable,
        format_args!("{what}: {stage}: {}", cause(error)),
    )
}

/// The innermost two messages of an error's chain: the cause without reqwest's wrapping.
fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let full = chain(error);
    let parts: Vec<&str> = full.split(": ").collect();
    parts[parts.len().saturating_sub(2)..].join(": ")
}

/// An error's message with its causes, without the URL reqwest adds.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(error);
    while let Some(e) = source {
        let text = match e.downcast_ref::<reqwest::Error>() {
            Some(r) => {
                let mut text = r.to_string();
                if let Some(url) = r.url()
                    && let Some(cut) = text.find(&format!(" ({url})"))
                {
                    text.truncate(cut);
                }
                text
            }
            None => e.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// A downstream's answer, read whole.
#[derive(Debug, Clone)]
pub struct DownstreamResponse {
    downstream: String,
    what: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl DownstreamResponse {
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, ToolError> {
        std::str::from_utf8(&self.body).map_err(|_| {
            ToolError::unavailable(format!(
                "downstream `{}`: the answer to {} is not UTF-8 text",
                self.downstream, self.what
            ))
        })
    }

    /// The body decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ToolError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ToolError::unavailable(format!(
                "downstream `{}`: the answer to {} is not the JSON expected: {e}",
                self.downstream, self.what
            ))
        })
    }

    /// The response if its status is 2xx; otherwise an error: 404 is
    /// `not_found`, 408, 429 and 5xx are `unavailable`, the rest `internal`.
    pub fn error_for_status(self) -> Result<DownstreamResponse, ToolError> {
        let status = self.status;
        if status.is_success() {
            return Ok(self);
        }
        let message = format!("downstream `{}` answered {status} to {}", self.downstream, self.what);
        Err(match status.as_u16() {
            404 => ToolError::not_found(message),
            408 | 429 | 500..=599 => ToolError::unavailable(message),
            _ => ToolError::internal(message),
        })
    }
}

// ---------------------------------------------------------------------------
// Credentials

enum Credential {
    None,
    ServiceToken(Secret),
    ClientCredentials(Box<ClientCredentials>),
    TokenExchange(Box<TokenExchange>),
}

/// Where a credential's access tokens come from, and how the server
/// authenticates there (HTTP Basic, RFC 6749 section 2.3.1).
struct TokenEndpoint {
    url: Url,
    client_id: String,
    secret: Secret,
}

struct ClientCredentials {
    endpoint: TokenEndpoint,
    scopes: Vec<String>,
    /// Held across a fetch: concurrent calls wait for one token request.
    cache: tokio::sync::Mutex<Option<CachedToken>>,
}

/// RFC 8693 token exchange: each caller's token is traded at the token
/// endpoint for one issued to the downstream's `audience`.
struct TokenExchange {
    endpoint: TokenEndpoint,
    audience: String,
    scopes: Vec<String>,
    cache: ExchangedTokens,
}

struct CachedToken {
    header: HeaderValue,
    renew_at: Instant,
}

/// Exchanged tokens remembered at once, one per caller token.
const EXCHANGED_TOKENS_CAPACITY: usize = 1024;

/// The token-exchange credential's cache: a slot per caller, keyed by the
/// SHA-256 of the caller's token (never the token itself). A slot's mutex is
/// held across its exchange, so concurrent calls of one caller cause one
/// exchange while other callers proceed. Bounded: when full, idle slots
/// without a live token go first, then the least recently used.
struct ExchangedTokens {
    slots: std::sync::Mutex<ExchangeSlots>,
    capacity: usize,
}

#[derive(Default)]
struct ExchangeSlots {
    by_caller: std::collections::HashMap<[u8; 32], ExchangeSlot>,
    /// A counter standing in for time of last use, for eviction.
    clock: u64,
}

struct ExchangeSlot {
    token: Arc<tokio::sync::Mutex<Option<CachedToken>>>,
    used: u64,
}

impl ExchangedTokens {
    fn new(capacity: usize) -> ExchangedTokens {
        ExchangedTokens {
            slots: Default::default(),
            capacity: capacity.max(1),
        }
    }

    /// The slot of the caller whose token hashes to `key`, made if new.
    fn slot(&self, key: &[u8; 32]) -> Arc<tokio::sync::Mutex<Option<CachedToken>>> {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.clock += 1;
        let now = slots.clock;
        if let Some(slot) = slots.by_caller.get_mut(key) {
            slot.used = now;
            return Arc::clone(&slot.token);
        }
        if slots.by_caller.len() >= self.capacity {
            let instant = Instant::now();
            // A slot someone holds (an exchange under way) stays; so does a live token.
            slots.by_caller.retain(|_, slot| {
                Arc::strong_count(&slot.token) > 1
                    || slot
                        .token
                        .try_lock()
                        .is_ok_and(|cached| cached.as_ref().is_some_and(|c| instant < c.renew_at))
            });
            while slots.by_caller.len() >= self.capacity {
                let Some(oldest) = slots.by_caller.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k) else {
                    break;
                };
                slots.by_caller.remove(&oldest);
            }
        }
        let token = Arc::new(tokio::sync::Mutex::new(None));
        slots.by_caller.insert(
            *key,
            ExchangeSlot {
                token: Arc::clone(&token),
                used: now,
            },
        );
        token
    }

    /// The slot of `key` if there is one (without making it).
    fn existing(&self, key: &[u8; 32]) -> Option<Arc<tokio::sync::Mutex<Option<CachedToken>>>> {
        let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.by_caller.get(key).map(|slot| Arc::clone(&slot.token))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().unwrap().by_caller.len()
    }
}

/// The authenticated HTTP caller's bearer token, kept only to exchange it at
/// a token-exchange downstream's token endpoint. Crate-private, with no way
/// to read it from outside the runtime, so a handler can neither see it nor
/// send it anywhere; its `Debug` shows nothing of it.
#[derive(Clone)]
pub(crate) struct CallerToken(Arc<CallerTokenInner>);

struct CallerTokenInner {
    token: String,
    /// SHA-256 of the token: the exchanged-token cache's key.
    digest: [u8; 32],
    /// The token's `exp`, seconds since the Unix epoch: no token exchanged
    /// for it is reused past this.
    expires_at: u64,
}

impl CallerToken {
    /// `token` as verified by the HTTP gate, with its `exp`. Without the
    /// `oauth` feature no caller is verified, so none is ever made.
    #[cfg(any(feature = "oauth", test))]
    pub(crate) fn new(token: &str, expires_at: u64) -> CallerToken {
        use sha2::Digest as _;
        CallerToken(Arc::new(CallerTokenInner {
            token: token.to_owned(),
            digest: sha2::Sha256::digest(token.as_bytes()).into(),
            expires_at,
        }))
    }

    /// When the caller's token expires, as an instant of this process's clock.
    fn deadline(&self) -> Instant {
        let expires = std::time::UNIX_EPOCH + Duration::from_secs(self.0.expires_at);
        let left = expires.duration_since(std::time::SystemTime::now()).unwrap_or_default();
        Instant::now() + left
    }
}

impl fmt::Debug for CallerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallerToken(<redacted>)")
    }
}

impl Credential {
    fn kind(&self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::ServiceToken(_) => "service_token",
            Credential::ClientCredentials(_) => "client_credentials",
            Credential::TokenExchange(_) => "token_exchange",
        }
    }

    /// The token endpoint this credential uses, if any.
    fn endpoint(&self) -> Option<&TokenEndpoint> {
        match self {
            Credential::None | Credential::ServiceToken(_) => None,
            Credential::ClientCredentials(cc) => Some(&cc.endpoint),
            Credential::TokenExchange(te) => Some(&te.endpoint),
        }
    }

    /// The `Authorization` value to send, read or fetched now.
    async fn header(&self, downstream: &Downstream) -> Result<Option<HeaderValue>, ToolError> {
        match self {
            Credential::None => Ok(None),
            Credential::ServiceToken(secret) => {
                let token = secret.read().map_err(|e| downstream.error(ToolError::internal, e))?;
                bearer(&token)
                    .map(Some)
                    .map_err(|e| downstream.error(ToolError::internal, format_args!("the service token {e}")))
            }
            Credential::ClientCredentials(cc) => {
                let mut cache = cc.cache.lock().await;
                if let Some(cached) = cache.as_ref()
                    && Instant::now() < cached.renew_at
                {
                    return Ok(Some(cached.header.clone()));
                }
                *cache = None;
                let mut form = String::from("grant_type=client_credentials");
                if !cc.scopes.is_empty() {
                    form.push_str("&scope=");
                    form.push_str(&form_encode(&cc.scopes.join(" ")));
                }
                let fetched = cc.endpoint.request(downstream, form).await?;
                let header = fetched.header.clone();
                *cache = Some(fetched);
                Ok(Some(header))
            }
            Credential::TokenExchange(te) => {
                let Some(caller) = &downstream.caller else {
                    return Err(ToolError::internal(format!(
                        "downstream `{}` uses token exchange, which needs an authenticated HTTP caller whose \
                         token is exchanged; over stdio or with --dev-no-auth there is none: serve over HTTP \
                         with OAuth, or give this downstream client_credentials or a service token in the contract",
                        downstream.inner.name
                    )));
                };
                let slot = te.cache.slot(&caller.0.digest);
                let mut cache = slot.lock().await;
                if let Some(cached) = cache.as_ref()
                    && Instant::now() < cached.renew_at
                {
                    return Ok(Some(cached.header.clone()));
                }
                *cache = None;
                let mut form = format!(
                    "grant_type={}&subject_token={}&subject_token_type={access}&requested_token_type={access}",
                    form_encode(TOKEN_EXCHANGE_GRANT),
                    form_encode(&caller.0.token),
                    access = form_encode(ACCESS_TOKEN_TYPE),
                );
                if !te.audience.is_empty() {
                    form.push_str("&audience=");
                    form.push_str(&form_encode(&te.audience));
                }
                if !te.scopes.is_empty() {
                    form.push_str("&scope=");
                    form.push_str(&form_encode(&te.scopes.join(" ")));
                }
                let mut fetched = te.endpoint.request(downstream, form).await?;
                // What was exchanged for the caller's token lives no longer than it.
                fetched.renew_at = fetched.renew_at.min(caller.deadline());
                let header = fetched.header.clone();
                *cache = Some(fetched);
                Ok(Some(header))
            }
        }
    }

    /// Drops the cached access token `sent` after the downstream answered
    /// 401 to it; a token fetched since by another call is kept.
    async fn forget(&self, downstream: &Downstream, sent: &HeaderValue) {
        let slot = match self {
            Credential::None | Credential::ServiceToken(_) => return,
            Credential::ClientCredentials(cc) => {
                let mut cache = cc.cache.lock().await;
                if cache.as_ref().is_some_and(|c| c.header == *sent) {
                    *cache = None;
                }
                return;
            }
            Credential::TokenExchange(te) => match &downstream.caller {
                Some(caller) => te.cache.existing(&caller.0.digest),
                None => None,
            },
        };
        if let Some(slot) = slot {
            let mut cache = slot.lock().await;
            if cache.as_ref().is_some_and(|c| c.header == *sent) {
                *cache = None;
            }
        }
    }
}

/// RFC 8693's grant type and token type names.
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

impl TokenEndpoint {
    /// Posts `form` with the server's client authentication and reads the
    /// access token issued. Errors repeat only the endpoint's OAuth error
    /// code, never its body, the client secret or anything of `form`.
    async fn request(&self, downstream: &Downstream, form: String) -> Result<CachedToken, ToolError> {
        let internal = |m: String| downstream.error(ToolError::internal, m);
        let secret = self.secret.read().map_err(internal)?;
        let basic = format!("{}:{}", form_encode(&self.client_id), form_encode(&secret));
        let mut authorization = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(basic)
        ))
        .map_err(|_| internal("the client secret is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        let what = "the token request";
        let inner = &downstream.inner;
        let client = inner.token_client.as_ref().unwrap_or(&inner.client);
        let response = client
            .post(self.url.clone())
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| map_error(downstream, what, &e, inner.timeout))?;
        let response = read_response(downstream, what, response, MAX_TOKEN_RESPONSE_BYTES, inner.timeout).await?;
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: Option<String>,
            token_type: Option<String>,
            issued_token_type: Option<String>,
            expires_in: Option<u64>,
            error: Option<String>,
        }
        let parsed: Option<TokenResponse> = serde_json::from_slice(&response.body).ok();
        if !response.status.is_success() {
            // Only the OAuth error code is repeated, never the body.
            let code = parsed
                .and_then(|p| p.error)
                .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let message = format!("the token endpoint answered {}{code}", response.status);
            return Err(if response.status.is_server_error() {
                downstream.error(ToolError::unavailable, message)
            } else {
                downstream.error(ToolError::internal, message)
            });
        }
        let Some(TokenResponse {
            access_token: Some(token),
            token_type,
            issued_token_type,
            expires_in,
            ..
        }) = parsed
        else {
            return Err(internal("the token endpoint's answer has no access_token".into()));
        };
        if token_type.is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(internal(
                "the token endpoint issued a token that is not a bearer token".into(),
            ));
        }
        if issued_token_type.is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
            return Err(internal(format!(
                "the token endpoint issued a token that is not an access token (`issued_token_type` is not \
                 {ACCESS_TOKEN_TYPE})"
            )));
        }
        let lifetime = expires_in.map_or(TOKEN_DEFAULT_LIFETIME, Duration::from_secs);
        let header = bearer(&token).map_err(|e| internal(format!("the issued access token {e}")))?;
        Ok(CachedToken {
            header,
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN.min(lifetime / 2)),
        })
    }
}

/// `Bearer <token>`, marked sensitive; the error never includes the token.
fn bearer(token: &str) -> Result<HeaderValue, &'static str> {
    if token.is_empty() {
        return Err("is empty");
    }
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| "contains characters a header cannot carry")?;
    value.set_sensitive(true);
    Ok(value)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The downstream credentials that cannot be read now, each named by where it
/// should be (never what it holds): `/readyz` fails while any is missing, so a
/// pod without its Secret never takes traffic it would fail.
pub fn missing_credentials(specs: &[DownstreamSpec]) -> Vec<String> {
    specs
        .iter()
        .filter_map(|spec| {
            let secret = match &spec.credentials {
                CredentialSpec::ServiceToken { secret } => secret,
                CredentialSpec::ClientCredentials { client_secret, .. }
                | CredentialSpec::TokenExchange { client_secret, .. } => client_secret,
                CredentialSpec::None => return None,
            };
            let problem = Secret(secret.clone()).read().err()?;
            Some(format!("downstream `{}`: {problem}", spec.name))
        })
        .collect()
}

/// Where a secret is read from, at each use.
struct Secret(SecretRef);

impl Secret {
    /// The secret, trimmed of surrounding whitespace; errors name where it
    /// should be, never what it is.
    fn read(&self) -> Result<String, String> {
        let value = match &self.0 {
            SecretRef::Env(name) => std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    format!("its credential is missing: set the environment variable {name}")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("its credential in the environment variable {name} is not valid UTF-8")
                }
            })?,
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("its credential cannot be read from {path}: {}", e.kind()))?,
        };
        let value = value.trim();
        if value.is_empty() {
            let place = match &self.0 {
                SecretRef::Env(name) => format!("the environment variable {name}"),
                SecretRef::File(path) => path.clone(),
            };
            return Err(format!("its credential in {place} is empty"));
        }
        Ok(value.to_owned())
    }
}

// ---------------------------------------------------------------------------
// Where requests may go

/// Why a destination was refused.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// One downstream's reachable hosts and address rules.
#[derive(Debug)]
struct Policy {
    /// `(host, port)`: host as the URL serialises it (lowercase name, dotted
    /// IPv4, bracketed IPv6), without a trailing dot.
    allowed: BTreeSet<(String, u16)>,
    /// IP literals the contract itself lists (egress or base URL).
    contract_literals: BTreeSet<IpAddr>,
    private_network: bool,
}

impl Policy {
    fn declared(&self) -> String {
        let hosts: Vec<String> = self.allowed.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        hosts.join(", ")
    }

    /// Scheme, declared host:port, and the address of an IP literal.
    fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let Some((host, port)) = host_key(url) else {
            return Err(Refused(format!("`{url}` has no host")));
        };
        let target = format!("{host}:{port}");
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Refused(format!(
                "{target}: the scheme `{}` is not http(s)",
                url.scheme()
            )));
        }
        if !self.allowed.contains(&(host.clone(), port)) {
            return Err(Refused(format!(
                "{target} is not in the downstream's declared egress ({}): declare it under the downstream's `egress` in the contract",
                self.declared()
            )));
        }
        let ip = literal_ip(&host);
        let loopback = match ip {
            Some(ip) => {
                self.check_address(&host, ip, true)?;
                classify(ip) == Class::Loopback
            }
            None => is_localhost(&host),
        };
        if url.scheme() == "http" && !loopback {
            return Err(Refused(format!(
                "{target}: plain http is allowed only to a declared loopback host; use https"
            )));
        }
        Ok(())
    }

    /// Whether `ip` may be reached for `host` (`literal`: the host is this exact, declared address).
    fn check_address(&self, host: &str, ip: IpAddr, literal: bool) -> Result<(), Refused> {
        let class = classify(ip);
        let allowed = match class {
            Class::Public => true,
            Class::Loopback => literal || is_localhost(host),
            Class::Private => literal || self.private_network,
            Class::LinkLocal => literal && self.contract_literals.contains(&ip),
            Class::Forbidden => false,
        };
        if allowed {
            return Ok(());
        }
        let range = match class {
            Class::Loopback => "a loopback address",
            Class::Private => "a private-network address",
            Class::LinkLocal => "a link-local address (cloud metadata lives here)",
            Class::Forbidden => "an unspecified, broadcast, multicast or reserved address",
            Class::Public => unreachable!("public addresses are allowed"),
        };
        let what = if literal {
            format!("{host} is")
        } else {
            format!("{host} resolves to {ip},")
        };
        let how = match (class, literal) {
            (Class::Forbidden, _) => "never reachable",
            (Class::LinkLocal, true) => {
                "reachable only when the contract lists this exact address in the downstream's `egress`"
            }
            (Class::Private, false) => {
                "a declared name may resolve to it only when the downstream sets `private_network`"
            }
            _ => "a declared name may not resolve to it; declare the exact address if it is meant",
        };
        Err(Refused(format!("{what} {range}: {how}")))
    }
}

/// The resolver reqwest uses for this downstream's names.
struct Resolver {
    policy: Arc<Policy>,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if !policy.allowed.iter().any(|(h, _)| *h == host) {
                return Err(Box::new(Refused(format!(
                    "{host} is not in the downstream's declared egress ({})",
                    policy.declared()
                ))) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addresses: Vec<SocketAddr> = if is_localhost(&host) {
                // RFC 6761: localhost is loopback, whatever DNS says.
                vec![
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ]
            } else if let Some(ip) = literal_ip(&host) {
                policy.check_address(&host, ip, true)?;
                vec![SocketAddr::new(ip, 0)]
            } else {
                let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                for address in &found {
                    policy.check_address(&host, address.ip(), false)?;
                }
                found
            };
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    Loopback,
    Private,
    LinkLocal,
    Forbidden,
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    match (a, b) {
        (0, _) => Class::Forbidden,
        (127, _) => Class::Loopback,
        (10, _) | (192, 168) => Class::Private,
        (172, 16..=31) => Class::Private,
        (100, 64..=127) => Class::Private,
        (198, 18..=19) => Class::Private,
        (192, 0) if c == 0 => Class::Private,
        (169, 254) => Class::LinkLocal,
        (224..=255, _) => Class::Forbidden,
        _ => Class::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Class::Forbidden;
    }
    if ip.is_loopback() {
        return Class::Loopback;
    }
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d).
    if let Some(v4) = ip.to_ipv4() {
        return classify_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match segments {
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => classify_v4(embedded(hi, lo)),
        // 6to4 2002:a.b.c.d::/48.
        [0x2002, hi, lo, ..] => classify_v4(embedded(hi, lo)),
        [first, ..] if first & 0xfe00 == 0xfc00 => Class::Private,
        [first, ..] if first & 0xffc0 == 0xfe80 => Class::LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => Class::Private,
        [first, ..] if first & 0xff00 == 0xff00 => Class::Forbidden,
        _ => Class::Public,
    }
}

fn is_localhost(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost")
}

/// The address of an IP-literal host as the URL serialises it.
fn literal_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// `(host, port)` of a URL, normalised as in [`Policy::allowed`].
fn host_key(url: &Url) -> Option<(String, u16)> {
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    Some((host, url.port_or_known_default()?))
}

/// A `host:port` egress entry, normalised the way URLs are.
fn parse_egress(entry: &str) -> Result<(String, u16), String> {
    let has_port = entry.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':')
    });
    let url = Url::parse(&format!("https://{entry}/")).ok().filter(|u| {
        has_port && u.path() == "/" && u.username().is_empty() && u.password().is_none() && u.query().is_none()
    });
    url.as_ref()
        .and_then(host_key)
        .ok_or_else(|| format!("the egress entry `{entry}` is not `host:port`"))
}

/// A base URL: http(s), no credentials, query or fragment, path ending in `/`.
fn parse_base(text: &str) -> Result<Url, String> {
    let mut url = Url::parse(text).map_err(|e| format!("base URL `{text}` is invalid: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!("base URL `{text}` is not http(s)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("base URL carries credentials: declare them under the downstream's `credentials`".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("base URL `{text}` has a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `base` joined with a relative `path`; refuses anything that leaves `base`.
fn join(base: &Url, path: &str) -> Result<Url, String> {
    let before_query = path.split(['?', '#']).next().unwrap_or_default();
    if before_query.starts_with("//") || before_query.contains('\\') {
        return Err("it would leave the downstream's base URL".into());
    }
    if path.contains('#') {
        return Err("it has a fragment".into());
    }
    if before_query.contains("://") || Url::parse(path).is_ok_and(|u| u.has_host()) {
        return Err("it is an absolute URL: pass a path relative to the downstream's base URL".into());
    }
    let relative = path.strip_prefix('/').unwrap_or(path);
    let joined = base
        .join(&format!("./{relative}"))
        .map_err(|e| format!("it is not a valid URL path: {e}"))?;
    let inside = joined.scheme() == base.scheme()
        && joined.host_str() == base.host_str()
        && joined.port_or_known_default() == base.port_or_known_default()
        && joined.path().starts_with(base.path());
    if !inside {
        return Err("it would leave the downstream's base URL".into());
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::path::PathBuf;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const CANARY: &str = "canary-7f3a9c1e5b2d4f60-never-print";

    /// What a test server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A loopback HTTP/1.1 server answering each request with `answer(&seen)`
    /// (a full response, or `None` to hold the connection open and never answer).
    struct TestServer {
        port: u16,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl TestServer {
        async fn start(answer: impl Fn(&Seen) -> Option<Vec<u8>> + Send + Sync + 'static) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let answer = Arc::new(answer);
            let log = Arc::clone(&seen);
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (answer, log) = (Arc::clone(&answer), Arc::clone(&log));
                    tokio::spawn(async move {
                        loop {
                            let Some(request) = read_request(&mut stream).await else {
                                return;
                            };
                            log.lock().unwrap().push(request.clone());
                            match answer(&request) {
                                Some(bytes) => {
                                    if stream.write_all(&bytes).await.is_err() {
                                        return;
                                    }
                                }
                                None => {
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                    return;
                                }
                            }
                        }
                    });
                }
            });
            TestServer { port, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }

        fn egress(&self) -> String {
            format!("127.0.0.1:{}", self.port)
        }
    }

    async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Seen> {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = buffer[head_end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Some(Seen {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    fn respond(status: &str, headers: &[(&str, &str)], body: &str) -> Option<Vec<u8>> {
        let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(body);
        Some(text.into_bytes())
    }

    fn ok_json(body: Value) -> Option<Vec<u8>> {
        respond("200 OK", &[("content-type", "application/json")], &body.to_string())
    }

    /// A token file in the temp directory, removed on drop.
    struct TokenFile(PathBuf);

    impl TokenFile {
        fn new(token: &str) -> TokenFile {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("charter-egress-token-{}-{n}", std::process::id()));
            std::fs::write(&path, format!("{token}\n")).unwrap();
            TokenFile(path)
        }
        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TokenFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn spec(name: &str, base_url: &str, egress: &[String], credentials: CredentialSpec) -> DownstreamSpec {
        DownstreamSpec {
            name: name.into(),
            base_url: base_url.into(),
            egress: egress.to_vec(),
            timeout_ms: Some(5_000),
            credentials,
            private_network: false,
        }
    }

    fn token_file(file: &TokenFile) -> CredentialSpec {
        CredentialSpec::ServiceToken {
            secret: SecretRef::File(file.path()),
        }
    }

    fn one(spec: DownstreamSpec) -> Downstream {
        let name = spec.name.clone();
        Egress::new(vec![spec], BTreeMap::new()).unwrap().client(&name).unwrap()
    }

    fn assert_secret_free(error: &ToolError) {
        assert!(!error.message.contains(CANARY), "the token leaked: {error:?}");
        assert!(!format!("{error:?}").contains(CANARY), "the token leaked: {error:?}");
    }

    #[test]
    fn specs_from_the_surface_build_clients() {
        let specs: Vec<DownstreamSpec> = serde_json::from_value(json!([
            {
                "name": "helpdesk",
                "base_url": "https://helpdesk.example.com/api/v3",
                "egress": ["helpdesk.example.com:443"],
                "timeout_ms": 5000,
                "credentials": {
                    "kind": "client_credentials",
                    "token_url": "https://helpdesk.example.com/oauth/token",
                    "client_id": "support-replies-mcp",
                    "client_secret": { "env": "HELPDESK_CLIENT_SECRET" },
                    "scopes": ["tickets:read"],
                },
                "private_network": false,
            },
            {
                "name": "policy-store",
                "base_url": "https://policies.example.com",
                "egress": [],
                "timeout_ms": null,
                "credentials": { "kind": "service_token", "secret": { "file": "/run/secrets/policy-token" } },
                "private_network": false,
            },
            {
                "name": "public",
                "base_url": "https://api.example.org",
                "egress": [],
                "timeout_ms": null,
                "credentials": { "kind": "none" },
                "private_network": false,
            },
        ]))
        .unwrap();
        let egress = Egress::new(specs, BTreeMap::new()).unwrap();
        assert_eq!(
            egress.names().collect::<Vec<_>>(),
            ["helpdesk", "policy-store", "public"]
        );
        assert_eq!(
            egress.client("policy-store").unwrap().inner.timeout,
            Duration::from_millis(DEFAULT_TIMEOUT_MS)
        );
    }

    #[test]
    fn construction_refuses_what_the_policy_would() {
        let cases = [
            (
                spec("a", "http://helpdesk.example.com/api", &[], CredentialSpec::None),
                "plain http",
            ),
            (
                spec("a", "ftp://helpdesk.example.com/", &[], CredentialSpec::None),
                "not http(s)",
            ),
            (
                spec("a", "https://user:pw@helpdesk.example.com/", &[], CredentialSpec::None),
                "carries credentials",
            ),
            (spec("a", "https://0.0.0.0/", &[], CredentialSpec::None), "unspecified"),
            (
                spec("a", "https://x.example/", &["x.example".into()], CredentialSpec::None),
                "not `host:port`",
            ),
        ];
        for (spec, expected) in cases {
            let err = Egress::new(vec![spec], BTreeMap::new()).unwrap_err();
            assert!(err.contains(expected), "{err} (expected {expected})");
            assert!(err.starts_with("downstream `a`"), "{err}");
        }
        let twice = Egress::new(
            vec![
                spec("a", "https://x.example/", &[], CredentialSpec::None),
                spec("a", "https://y.example/", &[], CredentialSpec::None),
            ],
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(twice.contains("declared twice"), "{twice}");
        let unknown = Egress::new(
            vec![spec("a", "https://x.example/", &[], CredentialSpec::None)],
            BTreeMap::from([("b".to_owned(), "https://y.example".to_owned())]),
        )
        .unwrap_err();
        assert!(unknown.contains("does not declare"), "{unknown}");
        let egress = Egress::new(vec![], BTreeMap::new()).unwrap();
        assert!(
            egress
                .client("nope")
                .unwrap_err()
                .message
                .contains("no downstream named `nope`")
        );
    }

    #[test]
    fn paths_stay_under_the_base_url() {
        let base = parse_base("https://helpdesk.example.com/api/v3").unwrap();
        let ok = |p: &str| join(&base, p).unwrap().to_string();
        assert_eq!(ok("/tickets/42"), "https://helpdesk.example.com/api/v3/tickets/42");
        assert_eq!(ok("tickets/42"), "https://helpdesk.example.com/api/v3/tickets/42");
        assert_eq!(
            ok("tickets?status=open"),
            "https://helpdesk.example.com/api/v3/tickets?status=open"
        );
        assert_eq!(ok("tickets:42"), "https://helpdesk.example.com/api/v3/tickets:42");
        assert_eq!(ok("a/../b"), "https://helpdesk.example.com/api/v3/b");
        assert_eq!(ok(""), "https://helpdesk.example.com/api/v3/");
        for escape in [
            "//evil.example/x",
            "///evil.example/x",
            "https://evil.example/x",
            "http://helpdesk.example.com/api/v3/x",
            "../v2/tickets",
            "/../../admin",
            "a/../../x",
            "%2e%2e/v2",
            "\\\\evil.example\\x",
            "/\\evil.example",
            "x#fragment",
        ] {
            assert!(
                join(&base, escape).is_err(),
                "`{escape}` was accepted: {:?}",
                join(&base, escape)
            );
        }
    }

    #[test]
    fn addresses_are_classified() {
        let class = |s: &str| classify(s.parse().unwrap());
        for (ip, expected) in [
            ("8.8.8.8", Class::Public),
            ("93.184.216.34", Class::Public),
            ("127.0.0.1", Class::Loopback),
            ("127.8.9.10", Class::Loopback),
            ("10.1.2.3", Class::Private),
            ("172.16.0.1", Class::Private),
            ("172.31.255.255", Class::Private),
            ("172.32.0.1", Class::Public),
            ("192.168.1.1", Class::Private),
            ("100.64.0.1", Class::Private),
            ("100.127.255.255", Class::Private),
            ("100.128.0.1", Class::Public),
            ("169.254.169.254", Class::LinkLocal),
            ("0.0.0.0", Class::Forbidden),
            ("255.255.255.255", Class::Forbidden),
            ("224.0.0.1", Class::Forbidden),
            ("::", Class::Forbidden),
            ("::1", Class::Loopback),
            ("::ffff:127.0.0.1", Class::Loopback),
            ("::ffff:169.254.169.254", Class::LinkLocal),
            ("::ffff:10.0.0.1", Class::Private),
            ("64:ff9b::a9fe:a9fe", Class::LinkLocal),
            ("2002:a00:1::1", Class::Private),
            ("fd00::1", Class::Private),
            ("fc00::1", Class::Private),
            ("fe80::1", Class::LinkLocal),
            ("ff02::1", Class::Forbidden),
            ("2606:4700::1111", Class::Public),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    fn policy(allowed: &[(&str, u16)], private_network: bool) -> Policy {
        Policy {
            allowed: allowed.iter().map(|(h, p)| (h.to_string(), *p)).collect(),
            contract_literals: BTreeSet::new(),
            private_network,
        }
    }

    #[test]
    fn declared_names_may_not_resolve_into_special_ranges() {
        let strict = policy(&[("helpdesk.example.com", 443)], false);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(
            strict
                .check_address("helpdesk.example.com", ip("93.184.216.34"), false)
                .is_ok()
        );
        for bad in [
            "127.0.0.1",
            "10.0.0.5",
            "169.254.169.254",
            "fd00::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
        ] {
            let err = strict
                .check_address("helpdesk.example.com", ip(bad), false)
                .unwrap_err();
            assert!(err.0.contains(&format!("resolves to {}", ip(bad))), "{err}");
        }
        let internal = policy(&[("policies.internal", 443)], true);
        assert!(
            internal
                .check_address("policies.internal", ip("10.0.0.5"), false)
                .is_ok()
        );
        assert!(
            internal
                .check_address("policies.internal", ip("100.64.1.1"), false)
                .is_ok()
        );
        for bad in ["127.0.0.1", "169.254.169.254", "fe80::1", "255.255.255.255"] {
            assert!(
                internal.check_address("policies.internal", ip(bad), false).is_err(),
                "{bad}"
            );
        }
        let err = internal
            .check_address("policies.internal", ip("169.254.169.254"), false)
            .unwrap_err();
        assert!(err.0.contains("link-local"), "{err}");
    }

    #[tokio::test]
    async fn the_resolver_refuses_undeclared_names() {
        use reqwest::dns::Resolve;
        let resolver = Resolver {
            policy: Arc::new(policy(&[("localhost", 8080)], false)),
        };
        let name: reqwest::dns::Name = "evil.example".parse().unwrap();
        let err = resolver.resolve(name).await.err().unwrap();
        assert!(
            err.to_string()
                .contains("evil.example is not in the downstream's declared egress"),
            "{err}"
        );
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addresses: Vec<SocketAddr> = resolver.resolve(name).await.unwrap().collect();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()), "{addresses:?}");
    }

    /// A name other than `localhost` that `/etc/hosts` maps to a loopback address, if any.
    fn hosts_file_loopback_name() -> Option<String> {
        let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
        hosts.lines().find_map(|line| {
            let mut fields = line.split('#').next()?.split_whitespace();
            let ip: IpAddr = fields.next()?.parse().ok()?;
            if !ip.is_loopback() {
                return None;
            }
            fields
                .find(|name| {
                    !is_localhost(&name.to_ascii_lowercase()) && name.contains(|c: char| c.is_ascii_alphabetic())
                })
                .map(str::to_ascii_lowercase)
        })
    }

    #[tokio::test]
    async fn a_declared_name_resolving_to_loopback_is_refused_through_reqwest() {
        let Some(name) = hosts_file_loopback_name() else {
            eprintln!("skipped: /etc/hosts names no loopback host besides localhost");
            return;
        };
        let server = TestServer::start(|_| ok_json(json!({}))).await;
        let token = TokenFile::new(CANARY);
        let ds = one(spec(
            "helpdesk",
            &format!("https://{name}:{}/", server.port),
            &[],
            token_file(&token),
        ));
        let err = ds.get("x").await.unwrap_err();
        assert_eq!(err.kind, super::super::dispatch::ErrorKind::Internal, "{err}");
        assert!(
            err.message.contains(&format!("{name} resolves to 127."))
                || err.message.contains(&format!("{name} resolves to ::1")),
            "{err}"
        );
        assert!(err.message.contains("a loopback address"), "{err}");
        assert_secret_free(&err);
        assert!(server.seen().is_empty(), "no connection was made");
    }

    #[tokio::test]
    async fn declared_loopback_host_gets_the_service_token() {
        let server = TestServer::start(|seen| ok_json(json!({"target": seen.target}))).await;
        let token = TokenFile::new(CANARY);
        let helpdesk = one(spec(
            "helpdesk",
            &server.url("/api/v3"),
            &[server.egress()],
            token_file(&token),
        ));
        let response = helpdesk.get("/tickets/42").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().unwrap();
        assert_eq!(body["target"], "/api/v3/tickets/42");
        let response = helpdesk
            .request(Method::GET, "tickets")
            .query(&[("status", "open"), ("q", "a b&c")])
            .header("x-request-id", "r1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.json::<Value>().unwrap()["target"],
            "/api/v3/tickets?status=open&q=a+b%26c"
        );
        let posted = helpdesk
            .post_json("tickets/42/drafts", &json!({"body": "hello"}))
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        assert_eq!(posted.status(), StatusCode::OK);

        let seen = server.seen();
        assert_eq!(seen.len(), 3);
        for request in &seen {
            assert_eq!(
                request.header("authorization"),
                Some(format!("Bearer {CANARY}").as_str())
            );
        }
        assert_eq!(seen[1].header("x-request-id"), Some("r1"));
        assert_eq!(seen[2].method, "POST");
        assert_eq!(seen[2].header("content-type"), Some("application/json"));
        assert_eq!(seen[2].body, r#"{"body":"hello"}"#);
        assert!(!format!("{helpdesk:?}").contains(CANARY));

        // Rotation: the file is read at each use.
        std::fs::write(&token.0, "rotated-token").unwrap();
        helpdesk.get("x").await.unwrap();
        assert_eq!(server.seen()[3].header("authorization"), Some("Bearer rotated-token"));
    }

    #[tokio::test]
    async fn localhost_by_name_works_when_declared() {
        let server = TestServer::start(|_| ok_json(json!({"ok": true}))).await;
        let base = format!("http://localhost:{}/", server.port);
        let local = one(spec("local", &base, &[], CredentialSpec::None));
        assert_eq!(
            local.get("ping").await.unwrap().json::<Value>().unwrap(),
            json!({"ok": true})
        );
        assert_eq!(
            server.seen()[0].header("authorization"),
            None,
            "no credential declared, none sent"
        );
    }

    #[tokio::test]
    async fn a_service_token_from_the_environment_is_sent() {
        // A variable the test process already has (setting one is unsafe with threads running).
        let Some((name, value)) = std::env::vars()
            .find(|(n, v)| !n.is_empty() && !v.trim().is_empty() && v.bytes().all(|b| b.is_ascii_graphic()))
        else {
            eprintln!("skipped: no environment variable with a header-safe value");
            return;
        };
        let server = TestServer::start(|_| ok_json(json!({}))).await;
        let ds = one(spec(
            "d",
            &server.url("/"),
            &[],
            CredentialSpec::ServiceToken {
                secret: SecretRef::Env(name),
            },
        ));
        ds.get("x").await.unwrap();
        assert_eq!(
            server.seen()[0].header("authorization"),
            Some(format!("Bearer {value}").as_str())
        );
    }

    #[tokio::test]
    async fn missing_credentials_are_named_not_shown() {
        let server = TestServer::start(|_| ok_json(json!({}))).await;
        let helpdesk = one(spec(
            "helpdesk",
            &server.url("/"),
            &[],
            CredentialSpec::ServiceToken {
                secret: SecretRef::Env("CHARTER_EGRESS_TEST_TOKEN_THAT_IS_NOT_SET".into()),
            },
        ));
        let err = helpdesk.get("x").await.unwrap_err();
        assert!(
            err.message
                .contains("set the environment variable CHARTER_EGRESS_TEST_TOKEN_THAT_IS_NOT_SET"),
            "{err}"
        );
        let bad = TokenFile::new(&format!("{CANARY}\nwith a line break"));
        let helpdesk = one(spec("helpdesk", &server.url("/"), &[], token_file(&bad)));
        let err = helpdesk.get("x").await.unwrap_err();
        assert!(err.message.contains("the service token contains characters"), "{err}");
        assert_secret_free(&err);
        assert!(server.seen().is_empty(), "nothing was sent without a valid credential");
    }

    #[tokio::test]
    async fn handlers_cannot_set_credentials() {
        let server = TestServer::start(|_| ok_json(json!({}))).await;
        let ds = one(spec("d", &server.url("/"), &[], CredentialSpec::None));
        for header in ["Authorization", "cookie", "Proxy-Authorization", "host"] {
            let err = ds
                .request(Method::GET, "x")
                .header(header, "Bearer caller")
                .send()
                .await
                .unwrap_err();
            assert!(err.message.contains("handlers cannot set"), "{err}");
        }
        assert!(server.seen().is_empty());
    }

    #[tokio::test]
    async fn escaping_paths_are_refused_before_sending() {
        let server = TestServer::start(|_| ok_json(json!({}))).await;
        let ds = one(spec("d", &server.url("/api/"), &[], CredentialSpec::None));
        for path in ["//169.254.169.254/latest", "http://127.0.0.1:1/", "../admin"] {
            let err = ds.get(path).await.unwrap_err();
            assert_eq!(err.kind, super::super::dispatch::ErrorKind::Invalid, "{err}");
            assert!(err.message.starts_with("downstream `d`: the path"), "{err}");
        }
        assert!(server.seen().is_empty());
    }

    #[tokio::test]
    async fn redirects_follow_only_declared_hosts() {
        let target = TestServer::start(|seen| ok_json(json!({"at": seen.target}))).await;
        let target_url = target.url("/landed");
        let undeclared = TestServer::start(|_| ok_json(json!({}))).await;
        let undeclared_url = undeclared.url("/stolen");
        let origin = TestServer::start(move |seen| match seen.target.as_str() {
            "/to-declared" => respond("302 Found", &[("location", &target_url)], ""),
            "/to-undeclared" => respond("302 Found", &[("location", &undeclared_url)], ""),
            "/to-metadata" => respond(
                "302 Found",
                &[("location", "http://169.254.169.254/latest/meta-data/")],
                "",
            ),
            "/to-private" => respond("307 Temporary Redirect", &[("location", "http://10.1.2.3:8080/")], ""),
            "/to-mapped" => respond("302 Found", &[("location", "http://[::ffff:127.0.0.1]:9/")], ""),
            "/to-name" => respond("302 Found", &[("location", "https://evil.example/")], ""),
            "/loop" => respond("302 Found", &[("location", "/loop")], ""),
            _ => respond("404 Not Found", &[], ""),
        })
        .await;
        let token = TokenFile::new(CANARY);
        let ds = one(spec(
            "helpdesk",
            &origin.url("/"),
            &[target.egress()],
            token_file(&token),
        ));

        let landed = ds.get("to-declared").await.unwrap();
        assert_eq!(landed.json::<Value>().unwrap(), json!({"at": "/landed"}));
        assert_eq!(
            target.seen()[0].header("authorization"),
            None,
            "the credential is not carried to another host"
        );

        for (path, refused) in [
            (
                "to-undeclared",
                format!(
                    "127.0.0.1:{} is not in the downstream's declared egress",
                    undeclared.port
                ),
            ),
            (
                "to-metadata",
                "169.254.169.254:80 is not in the downstream's declared egress".to_owned(),
            ),
            (
                "to-private",
                "10.1.2.3:8080 is not in the downstream's declared egress".to_owned(),
            ),
            (
                "to-mapped",
                "[::ffff:7f00:1]:9 is not in the downstream's declared egress".to_owned(),
            ),
            (
                "to-name",
                "evil.example:443 is not in the downstream's declared egress".to_owned(),
            ),
        ] {
            let started = Instant::now();
            let err = ds.get(path).await.unwrap_err();
            assert_eq!(err.kind, super::super::dispatch::ErrorKind::Internal, "{err}");
            assert!(err.message.starts_with("downstream `helpdesk`: GET /"), "{err}");
            assert!(err.message.contains("was refused: via a redirect, "), "{err}");
            assert!(err.message.contains(&refused), "{err}\nexpected: {refused}");
            assert_secret_free(&err);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "no connection was attempted"
            );
        }
        assert!(undeclared.seen().is_empty());

        let err = ds.get("loop").await.unwrap_err();
        assert!(err.message.contains("more than 5 redirects"), "{err}");
        assert_eq!(
            origin.seen().iter().filter(|s| s.target == "/loop").count(),
            MAX_REDIRECTS + 1
        );
    }

    #[tokio::test]
    async fn the_metadata_address_is_refused_without_connecting() {
        for base in ["http://169.254.169.254/latest/", "https://169.254.169.254/latest/"] {
            // Even where stand-ins are allowed.
            let err = Egress::in_environment(
                vec![spec(
                    "helpdesk",
                    "https://helpdesk.example.com/",
                    &[],
                    CredentialSpec::None,
                )],
                BTreeMap::from([("helpdesk".to_owned(), base.to_owned())]),
                &Environment::new("staging").unwrap(),
            )
            .unwrap_err();
            assert!(err.contains("169.254.169.254 is a link-local address"), "{err}");
        }
        // Declared as a name that resolves there: refused at resolution.
        let strict = policy(&[("metadata.example", 80)], false);
        let err = strict
            .check_address("metadata.example", "169.254.169.254".parse().unwrap(), false)
            .unwrap_err();
        assert!(err.0.contains("resolves to 169.254.169.254"), "{err}");
    }

    #[tokio::test]
    async fn private_ip_literals_need_an_exact_declaration() {
        // Declared exactly: allowed (and https, being no loopback).
        let declared = Egress::new(
            vec![spec("d", "https://10.0.0.5:8443/", &[], CredentialSpec::None)],
            BTreeMap::new(),
        );
        assert!(declared.is_ok(), "{declared:?}");
        // Plain http to a private address is refused even when declared.
        let err = Egress::new(
            vec![spec("d", "http://10.0.0.5/", &[], CredentialSpec::None)],
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(err.contains("plain http"), "{err}");
        // A private literal reached any other way is not declared.
        let p = policy(&[("helpdesk.example.com", 443)], true);
        let err = p.check_url(&Url::parse("https://10.0.0.5/").unwrap()).unwrap_err();
        assert!(
            err.0
                .contains("10.0.0.5:443 is not in the downstream's declared egress"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_timeout_is_honoured() {
        let server = TestServer::start(|_| None).await;
        let mut slow = spec("slow", &server.url("/"), &[], CredentialSpec::None);
        slow.timeout_ms = Some(300);
        let ds = one(slow);
        let started = Instant::now();
        let err = ds.get("wait").await.unwrap_err();
        assert_eq!(err.kind, super::super::dispatch::ErrorKind::Unavailable, "{err}");
        assert!(err.message.contains("within 300 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        let err = ds
            .request(Method::GET, "wait")
            .timeout(Duration::from_millis(50))
            .send()
            .await
            .unwrap_err();
        assert!(err.message.contains("within 50 ms"), "{err}");
        // Inside a call whose deadline is sooner than the downstream's
        // timeout, the request ends one timer tick before that deadline, not
        // earlier, with the request's own error.
        let deadline = Instant::now() + Duration::from_millis(120);
        let err = super::super::deadline::within(deadline, ds.get("wait"))
            .await
            .unwrap_err();
        assert!(
            Instant::now() + Duration::from_millis(1) >= deadline,
            "gave up before the deadline: {err}"
        );
        assert!(
            err.message.contains("GET /wait within") && !err.message.contains("within 300 ms"),
            "{err}"
        );
        // A later deadline does not lengthen the downstream's timeout.
        let later = Instant::now() + Duration::from_secs(60);
        let err = super::super::deadline::within(later, ds.get("wait")).await.unwrap_err();
        assert!(err.message.contains("within 300 ms"), "{err}");
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let server = TestServer::start(|seen| match seen.target.as_str() {
            "/declared" => respond("200 OK", &[], &"x".repeat(4096)),
            "/chunked" => {
                let mut text = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_owned();
                for _ in 0..8 {
                    text.push_str(&format!("200\r\n{}\r\n", "y".repeat(512)));
                }
                text.push_str("0\r\n\r\n");
                Some(text.into_bytes())
            }
            _ => respond("200 OK", &[], &"z".repeat(1000)),
        })
        .await;
        let egress = Egress::new(
            vec![spec("big", &server.url("/"), &[], CredentialSpec::None)],
            BTreeMap::new(),
        )
        .unwrap()
        .with_max_response_bytes(1024);
        let ds = egress.client("big").unwrap();
        assert_eq!(ds.get("small").await.unwrap().bytes().len(), 1000);
        for path in ["declared", "chunked"] {
            let err = ds.get(path).await.unwrap_err();
            assert!(err.message.contains("larger than 1024 bytes"), "{path}: {err}");
        }
        let err = ds
            .request(Method::GET, "small")
            .max_response_bytes(999)
            .send()
            .await
            .unwrap_err();
        assert!(err.message.contains("larger than 999 bytes"), "{err}");
        assert_eq!(
            egress.client("big").unwrap().get("chunked").await.unwrap_err().kind,
            super::super::dispatch::ErrorKind::Unavailable
        );
    }

    #[tokio::test]
    async fn error_statuses_map_to_tool_errors_without_the_token() {
        let server = TestServer::start(|seen| match seen.target.as_str() {
            "/missing" => respond("404 Not Found", &[], "no such ticket"),
            "/busy" => respond("503 Service Unavailable", &[], CANARY),
            "/denied" => respond("403 Forbidden", &[], ""),
            _ => respond("200 OK", &[], "not json"),
        })
        .await;
        let token = TokenFile::new(CANARY);
        let ds = one(spec("helpdesk", &server.url("/"), &[], token_file(&token)));
        let kind = |r: Result<DownstreamResponse, ToolError>| {
            let err = r.unwrap_err();
            assert_secret_free(&err);
            err.kind
        };
        use super::super::dispatch::ErrorKind;
        assert_eq!(
            kind(ds.get("missing").await.unwrap().error_for_status()),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(ds.get("busy").await.unwrap().error_for_status()),
            ErrorKind::Unavailable
        );
        assert_eq!(
            kind(ds.get("denied").await.unwrap().error_for_status()),
            ErrorKind::Internal
        );
        let err = ds.get("busy").await.unwrap().error_for_status().unwrap_err();
        assert_eq!(
            err.message,
            "downstream `helpdesk` answered 503 Service Unavailable to GET /busy"
        );
        let err = ds.get("text").await.unwrap().json::<Value>().unwrap_err();
        assert!(err.message.contains("is not the JSON expected"), "{err}");

        // Unreachable: a declared loopback port nobody listens on.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let gone = one(spec(
            "gone",
            &format!("http://127.0.0.1:{port}/"),
            &[],
            token_file(&token),
        ));
        let err = gone.get("x").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(
            err.message.starts_with("downstream `gone`: GET /x: cannot connect: "),
            "{err}"
        );
        assert_secret_free(&err);
    }

    #[tokio::test]
    async fn client_credentials_are_fetched_cached_and_renewed() {
        let issued = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = Arc::clone(&issued);
        let idp = TestServer::start(move |seen| {
            if seen.target != "/oauth/token" {
                return respond("404 Not Found", &[], "");
            }
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            ok_json(json!({"access_token": format!("access-{n}"), "token_type": "Bearer", "expires_in": 3600}))
        })
        .await;
        let api = TestServer::start(|seen| match seen.header("authorization") {
            Some("Bearer access-1") if seen.target == "/api/expire" => respond("401 Unauthorized", &[], ""),
            Some(_) => ok_json(json!({})),
            None => respond("401 Unauthorized", &[], ""),
        })
        .await;
        let secret = TokenFile::new(CANARY);
        let helpdesk = one(spec(
            "helpdesk",
            &api.url("/api"),
            &[],
            CredentialSpec::ClientCredentials {
                token_url: idp.url("/oauth/token"),
                client_id: "support replies".into(),
                client_secret: SecretRef::File(secret.path()),
                scopes: vec!["tickets:read".into(), "ticket_drafts:write".into()],
            },
        ));
        helpdesk.get("a").await.unwrap().error_for_status().unwrap();
        helpdesk.get("b").await.unwrap().error_for_status().unwrap();
        assert_eq!(idp.seen().len(), 1, "the token is cached");
        let token_request = &idp.seen()[0];
        assert_eq!(token_request.method, "POST");
        assert_eq!(
            token_request.body,
            "grant_type=client_credentials&scope=tickets%3Aread+ticket_drafts%3Awrite"
        );
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("support+replies:{}", form_encode(CANARY)));
        assert_eq!(
            token_request.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        assert!(
            api.seen()
                .iter()
                .all(|s| s.header("authorization") == Some("Bearer access-1"))
        );

        // A 401 drops the cached token; the next call fetches a new one.
        let expired = helpdesk.get("expire").await.unwrap();
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        helpdesk.get("c").await.unwrap().error_for_status().unwrap();
        assert_eq!(idp.seen().len(), 2);
        assert_eq!(
            api.seen().last().unwrap().header("authorization"),
            Some("Bearer access-2")
        );

        // A refusing token endpoint: its error code, never the secret.
        let refusing = TestServer::start(|_| {
            respond(
                "401 Unauthorized",
                &[("content-type", "application/json")],
                &json!({"error": "invalid_client", "error_description": CANARY}).to_string(),
            )
        })
        .await;
        let ds = one(spec(
            "helpdesk",
            &api.url("/api"),
            &[],
            CredentialSpec::ClientCredentials {
                token_url: refusing.url("/token"),
                client_id: "c".into(),
                client_secret: SecretRef::File(secret.path()),
                scopes: vec![],
            },
        ));
        let err = ds.get("a").await.unwrap_err();
        assert!(
            err.message
                .contains("the token endpoint answered 401 Unauthorized (invalid_client)"),
            "{err}"
        );
        assert_secret_free(&err);
    }

    /// A token endpoint on loopback that counts what it issues: `access-N`
    /// for the Nth request, valid for `expires_in` seconds.
    async fn counting_idp(expires_in: u64) -> (TestServer, Arc<std::sync::atomic::AtomicU32>) {
        let issued = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = Arc::clone(&issued);
        let idp = TestServer::start(move |seen| {
            if seen.target != "/oauth/token" {
                return respond("404 Not Found", &[], "");
            }
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            ok_json(json!({"access_token": format!("access-{n}"), "token_type": "Bearer", "expires_in": expires_in}))
        })
        .await;
        (idp, issued)
    }

    /// Calls `GET path` `n` times at once and fails on any error.
    async fn concurrently(ds: &Downstream, n: usize, path: &str) {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (ds, path) = (ds.clone(), path.to_owned());
            calls.spawn(async move { ds.get(&path).await.unwrap().error_for_status().unwrap() });
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_credentials_fetch_once_for_concurrent_calls_and_renew_before_expiry() {
        let (idp, _) = counting_idp(4).await;
        let api = TestServer::start(|seen| match seen.header("authorization") {
            Some(_) => ok_json(json!({})),
            None => respond("401 Unauthorized", &[], ""),
        })
        .await;
        let secret = TokenFile::new(CANARY);
        let ds = one(spec(
            "helpdesk",
            &api.url("/api"),
            &[],
            CredentialSpec::ClientCredentials {
                token_url: idp.url("/oauth/token"),
                client_id: "c".into(),
                client_secret: SecretRef::File(secret.path()),
                scopes: vec![],
            },
        ));
        concurrently(&ds, 50, "a").await;
        assert_eq!(idp.seen().len(), 1, "50 concurrent calls, one token request");
        assert_eq!(api.seen().len(), 50);
        assert!(
            api.seen()
                .iter()
                .all(|s| s.header("authorization") == Some("Bearer access-1"))
        );
        // `expires_in: 4` is renewed two seconds before it ends (half its lifetime,
        // being shorter than the usual margin): once, for all callers.
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        concurrently(&ds, 50, "b").await;
        assert_eq!(idp.seen().len(), 2, "renewed once shortly before expiry");
        assert!(
            api.seen()[50..]
                .iter()
                .all(|s| s.header("authorization") == Some("Bearer access-2"))
        );
    }

    #[tokio::test]
    async fn a_401_drops_only_the_token_it_was_sent_with() {
        let (idp, _) = counting_idp(3600).await;
        let api = TestServer::start(|seen| match (seen.target.as_str(), seen.header("authorization")) {
            ("/api/expire", Some("Bearer access-1")) => respond("401 Unauthorized", &[], ""),
            (_, Some(_)) => ok_json(json!({})),
            _ => respond("401 Unauthorized", &[], ""),
        })
        .await;
        let secret = TokenFile::new(CANARY);
        let ds = one(spec(
            "helpdesk",
            &api.url("/api"),
            &[],
            CredentialSpec::ClientCredentials {
                token_url: idp.url("/oauth/token"),
                client_id: "c".into(),
                client_secret: SecretRef::File(secret.path()),
                scopes: vec![],
            },
        ));
        ds.get("a").await.unwrap();
        assert_eq!(ds.get("expire").await.unwrap().status(), StatusCode::UNAUTHORIZED);
        ds.get("b").await.unwrap().error_for_status().unwrap();
        assert_eq!(idp.seen().len(), 2, "the 401 dropped access-1");
        // A late 401 for a token already replaced leaves the new one cached.
        let Credential::ClientCredentials(cc) = &ds.inner.credentials else {
            unreachable!()
        };
        let stale = bearer("access-1").unwrap();
        ds.inner.credentials.forget(&ds, &stale).await;
        assert!(cc.cache.lock().await.is_some());
        ds.get("c").await.unwrap().error_for_status().unwrap();
        assert_eq!(idp.seen().len(), 2);
    }

    #[tokio::test]
    async fn a_rotated_service_token_is_used_on_the_next_call() {
        let api = TestServer::start(|_| ok_json(json!({}))).await;
        let file = TokenFile::new("first-token");
        let from_file = one(spec("files", &api.url("/"), &[], token_file(&file)));
        from_file.get("a").await.unwrap();
        std::fs::write(&file.0, "second-token\n").unwrap();
        from_file.get("b").await.unwrap();

        let variable = format!("CHARTER_EGRESS_TEST_TOKEN_{}", std::process::id());
        // SAFETY: the variable's name is unique to this test; nothing else reads or writes it.
        unsafe { std::env::set_var(&variable, "third-token") };
        let from_env = one(spec(
            "env",
            &api.url("/"),
            &[],
            CredentialSpec::ServiceToken {
                secret: SecretRef::Env(variable.clone()),
            },
        ));
        from_env.get("c").await.unwrap();
        // SAFETY: as above.
        unsafe { std::env::set_var(&variable, "fourth-token") };
        from_env.get("d").await.unwrap();
        // SAFETY: as above.
        unsafe { std::env::remove_var(&variable) };
        let err = from_env.get("e").await.unwrap_err();
        assert!(
            err.message.contains(&format!(
                "its credential is missing: set the environment variable {variable}"
            )),
            "{err}"
        );

        let sent: Vec<Option<String>> = api
            .seen()
            .iter()
            .map(|s| s.header("authorization").map(String::from))
            .collect();
        assert_eq!(
            sent,
            [
                Some("Bearer first-token".to_owned()),
                Some("Bearer second-token".to_owned()),
                Some("Bearer third-token".to_owned()),
                Some("Bearer fourth-token".to_owned()),
            ]
        );
    }

    /// A caller token the downstream must never see.
    const CALLER_CANARY: &str = "eyJhbGciOiJFZERTQSJ9.caller-canary-3b9e61d4.c2lnbmF0dXJl";

    fn far_future() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    }

    /// A token-exchange endpoint issuing `exchanged-N-for-<who>`, valid
    /// `expires_in` seconds: who is `alice` for [`CALLER_CANARY`] (so the
    /// canary never reaches the downstream this way), else the caller token's
    /// middle part.
    async fn exchanging_idp(expires_in: u64) -> TestServer {
        let issued = Arc::new(std::sync::atomic::AtomicU32::new(0));
        TestServer::start(move |seen| {
            let form: BTreeMap<String, String> = reqwest::Url::parse(&format!("http://x/?{}", seen.body))
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
            let subject = form.get("subject_token").cloned().unwrap_or_default();
            let who = if subject == CALLER_CANARY {
                "alice".to_owned()
            } else {
                subject.split('.').nth(1).unwrap_or("?").to_owned()
            };
            let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            ok_json(json!({
                "access_token": format!("exchanged-{n}-for-{who}"),
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": expires_in,
            }))
        })
        .await
    }

    fn exchange_spec(idp: &TestServer, api: &TestServer, secret: &TokenFile) -> DownstreamSpec {
        spec(
            "tickets",
            &api.url("/api"),
            &[],
            CredentialSpec::TokenExchange {
                token_url: idp.url("/oauth/token"),
                client_id: "support replies".into(),
                client_secret: SecretRef::File(secret.path()),
                audience: "https://tickets.example.com".into(),
                scopes: vec!["tickets:read".into(), "tickets:comment".into()],
            },
        )
    }

    fn form_of(seen: &Seen) -> BTreeMap<String, String> {
        reqwest::Url::parse(&format!("http://x/?{}", seen.body))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    fn assert_caller_token_unseen(api: &TestServer) {
        for seen in api.seen() {
            let everything = format!("{seen:?}");
            assert!(
                !everything.contains(CALLER_CANARY),
                "the downstream saw the caller's token: {seen:?}"
            );
            assert!(
                !everything.contains("caller-canary"),
                "the downstream saw the caller's token: {seen:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_exchange_trades_each_callers_token_once_and_sends_only_the_result() {
        let idp = exchanging_idp(3600).await;
        let api = TestServer::start(|seen| ok_json(json!({"auth": seen.header("authorization")}))).await;
        let secret = TokenFile::new(CANARY);
        let tickets = one(exchange_spec(&idp, &api, &secret));
        let alice = tickets
            .clone()
            .for_caller(Some(CallerToken::new(CALLER_CANARY, far_future())));
        let bob_token = "eyJhbGciOiJFZERTQSJ9.bob.c2ln";
        let bob = tickets
            .clone()
            .for_caller(Some(CallerToken::new(bob_token, far_future())));

        // Ten concurrent calls of one caller: one exchange.
        concurrently(&alice, 10, "tickets/1").await;
        assert_eq!(idp.seen().len(), 1, "one exchange for concurrent calls of one caller");
        let exchange = &idp.seen()[0];
        assert_eq!(exchange.method, "POST");
        assert_eq!(exchange.target, "/oauth/token");
        assert_eq!(
            exchange.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("support+replies:{}", form_encode(CANARY)));
        assert_eq!(
            exchange.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        let form = form_of(exchange);
        let expected: BTreeMap<String, String> = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", CALLER_CANARY),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ("audience", "https://tickets.example.com"),
            ("scope", "tickets:read tickets:comment"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(form, expected);

        // Repeats are cached; another caller gets an exchange of their own.
        alice.get("tickets/2").await.unwrap().error_for_status().unwrap();
        bob.get("tickets/3").await.unwrap().error_for_status().unwrap();
        bob.get("tickets/4").await.unwrap().error_for_status().unwrap();
        assert_eq!(idp.seen().len(), 2, "one exchange per caller");
        assert_eq!(form_of(&idp.seen()[1])["subject_token"], bob_token);
        let sent: Vec<String> = api
            .seen()
            .iter()
            .map(|s| s.header("authorization").unwrap_or_default().to_owned())
            .collect();
        assert!(
            sent[..11].iter().all(|a| *a == "Bearer exchanged-1-for-alice"),
            "{sent:?}"
        );
        assert!(
            sent[11..].iter().all(|a| *a == "Bearer exchanged-2-for-bob"),
            "{sent:?}"
        );
        assert_caller_token_unseen(&api);

        // The cache is keyed by the token's hash; neither it nor Debug shows the token.
        let Credential::TokenExchange(te) = &tickets.inner.credentials else {
            unreachable!()
        };
        assert_eq!(te.cache.len(), 2);
        for shown in [format!("{alice:?}"), format!("{tickets:?}")] {
            assert!(!shown.contains("caller-canary"), "{shown}");
        }
        let mut context = super::super::dispatch::Context::new("alice", "1");
        context.caller_token = Some(CallerToken::new(CALLER_CANARY, far_future()));
        assert!(!format!("{context:?}").contains("caller-canary"));

        // A 401 from the downstream drops that caller's exchanged token only.
        let rejecting = TestServer::start(|seen| match seen.header("authorization") {
            Some("Bearer exchanged-3-for-alice") => respond("401 Unauthorized", &[], ""),
            _ => ok_json(json!({})),
        })
        .await;
        let idp = exchanging_idp(3600).await;
        let tickets = one(exchange_spec(&idp, &rejecting, &secret));
        let alice = tickets
            .clone()
            .for_caller(Some(CallerToken::new(CALLER_CANARY, far_future())));
        let bob = tickets.for_caller(Some(CallerToken::new(bob_token, far_future())));
        bob.get("x").await.unwrap().error_for_status().unwrap();
        alice.get("x").await.unwrap().error_for_status().unwrap();
        bob.get("x").await.unwrap().error_for_status().unwrap();
        alice.get("x").await.unwrap().error_for_status().unwrap();
        assert_eq!(idp.seen().len(), 2);
        // exchanged-3 comes next (alice again, after a forced 401 below).
        let Credential::TokenExchange(te) = &alice.inner.credentials else {
            unreachable!()
        };
        let alice_key = CallerToken::new(CALLER_CANARY, 0).0.digest;
        *te.cache.existing(&alice_key).unwrap().lock().await = None;
        assert_eq!(alice.get("x").await.unwrap().status(), StatusCode::UNAUTHORIZED);
        alice.get("x").await.unwrap().error_for_status().unwrap();
        bob.get("x").await.unwrap().error_for_status().unwrap();
        assert_eq!(
            idp.seen().len(),
            4,
            "alice's rejected token was replaced; bob's stayed cached"
        );
        assert_caller_token_unseen(&rejecting);
    }

    #[tokio::test]
    async fn exchanged_tokens_are_renewed_before_they_or_the_callers_token_expire() {
        let idp = exchanging_idp(4).await;
        let api = TestServer::start(|_| ok_json(json!({}))).await;
        let secret = TokenFile::new(CANARY);
        let tickets = one(exchange_spec(&idp, &api, &secret));
        let alice = tickets
            .clone()
            .for_caller(Some(CallerToken::new(CALLER_CANARY, far_future())));
        alice.get("a").await.unwrap();
        alice.get("b").await.unwrap();
        assert_eq!(idp.seen().len(), 1);
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        alice.get("c").await.unwrap();
        assert_eq!(idp.seen().len(), 2, "renewed shortly before `expires_in`");

        // An hour-long exchanged token is not reused past the caller's own `exp`.
        let idp = exchanging_idp(3600).await;
        let tickets = one(exchange_spec(&idp, &api, &secret));
        let soon = far_future() - 3600 + 2;
        let brief = tickets.for_caller(Some(CallerToken::new(CALLER_CANARY, soon)));
        brief.get("a").await.unwrap();
        brief.get("b").await.unwrap();
        assert_eq!(idp.seen().len(), 1);
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        brief.get("c").await.unwrap();
        assert_eq!(
            idp.seen().len(),
            2,
            "the caller's token expired, so its exchange did too"
        );
        assert_caller_token_unseen(&api);
    }

    #[tokio::test]
    async fn token_exchange_without_a_caller_is_refused_before_any_request() {
        let idp = exchanging_idp(3600).await;
        let api = TestServer::start(|_| ok_json(json!({}))).await;
        let secret = TokenFile::new(CANARY);
        let tickets = one(exchange_spec(&idp, &api, &secret));
        for ds in [tickets.clone(), tickets.for_caller(None)] {
            let err = ds.get("a").await.unwrap_err();
            assert_eq!(err.kind, super::super::dispatch::ErrorKind::Internal);
            assert!(
                err.message
                    .starts_with("downstream `tickets` uses token exchange, which needs an authenticated HTTP caller"),
                "{err}"
            );
            assert!(
                err.message.contains("over stdio or with --dev-no-auth there is none"),
                "{err}"
            );
            assert!(err.message.contains("client_credentials or a service token"), "{err}");
        }
        // A context without a caller (stdio) hands out clients that refuse the same way.
        let egress = Egress::new(vec![exchange_spec(&idp, &api, &secret)], BTreeMap::new()).unwrap();
        let mut context = super::super::dispatch::Context::new("local-user", "1");
        context.downstreams = egress.bind("triage", &["tickets".into()]).unwrap();
        let err = context.downstream("tickets").unwrap().get("a").await.unwrap_err();
        assert!(err.message.contains("uses token exchange"), "{err}");
        // With one, the caller's token is exchanged.
        context.caller_token = Some(CallerToken::new(CALLER_CANARY, far_future()));
        context.downstream("tickets").unwrap().get("a").await.unwrap();
        assert_eq!(idp.seen().len(), 1);
        assert_eq!(api.seen().len(), 1);
        assert_caller_token_unseen(&api);
    }

    #[tokio::test]
    async fn token_endpoint_failures_name_the_oauth_error_only() {
        let api = TestServer::start(|_| ok_json(json!({}))).await;
        let secret = TokenFile::new(CANARY);
        let elsewhere = TestServer::start(|_| ok_json(json!({"access_token": "stolen"}))).await;
        let elsewhere_url = elsewhere.url("/oauth/token");
        let idp = TestServer::start(move |seen| match seen.target.as_str() {
            "/refuse" => respond(
                "400 Bad Request",
                &[("content-type", "application/json")],
                &json!({"error": "invalid_grant", "error_description": format!("bad {CALLER_CANARY} {CANARY}")})
                    .to_string(),
            ),
            "/down" => respond("503 Service Unavailable", &[], CALLER_CANARY),
            "/odd-code" => respond("400 Bad Request", &[], &json!({"error": CALLER_CANARY}).to_string()),
            "/not-access" => ok_json(json!({
                "access_token": "x",
                "issued_token_type": "urn:ietf:params:oauth:token-type:id_token",
                "token_type": "N_A",
            })),
            "/no-token" => ok_json(json!({"issued_token_type": CALLER_CANARY})),
            "/redirect" => respond("307 Temporary Redirect", &[("location", &elsewhere_url)], ""),
            _ => respond("404 Not Found", &[], ""),
        })
        .await;
        for (path, expected, kind) in [
            (
                "/refuse",
                "downstream `tickets`: the token endpoint answered 400 Bad Request (invalid_grant)",
                super::super::dispatch::ErrorKind::Internal,
            ),
            (
                "/down",
                "downstream `tickets`: the token endpoint answered 503 Service Unavailable",
                super::super::dispatch::ErrorKind::Unavailable,
            ),
            (
                "/odd-code",
                "downstream `tickets`: the token endpoint answered 400 Bad Request",
                super::super::dispatch::ErrorKind::Internal,
            ),
            (
                "/not-access",
                "downstream `tickets`: the token endpoint issued a token that is not a bearer token",
                super::super::dispatch::ErrorKind::Internal,
            ),
            (
                "/no-token",
                "downstream `tickets`: the token endpoint's answer has no access_token",
                super::super::dispatch::ErrorKind::Internal,
            ),
            (
                "/redirect",
                "downstream `tickets`: the token endpoint answered 307 Temporary Redirect",
                super::super::dispatch::ErrorKind::Internal,
            ),
        ] {
            let mut ds_spec = exchange_spec(&idp, &api, &secret);
            ds_spec.egress = vec![elsewhere.egress()];
            if let CredentialSpec::TokenExchange { token_url, .. } = &mut ds_spec.credentials {
                *token_url = idp.url(path);
            }
            let ds = one(ds_spec).for_caller(Some(CallerToken::new(CALLER_CANARY, far_future())));
            let err = ds.get("a").await.unwrap_err();
            assert_eq!(err.message, expected, "{path}");
            assert_eq!(err.kind, kind, "{path}");
            assert_secret_free(&err);
            assert!(!format!("{err:?}").contains("caller-canary"), "{err:?}");
        }
        assert!(api.seen().is_empty(), "no call went out without a token");
        assert!(elsewhere.seen().is_empty(), "token requests follow no redirect");
    }

    #[test]
    fn the_exchanged_token_cache_is_bounded() {
        let cache = ExchangedTokens::new(4);
        let key = |n: u8| [n; 32];
        let held = cache.slot(&key(0));
        for n in 1..=3 {
            cache.slot(&key(n));
        }
        assert_eq!(cache.len(), 4);
        // Full: idle slots without a live token go, the one in use stays.
        cache.slot(&key(4));
        assert_eq!(cache.len(), 2);
        assert!(cache.existing(&key(0)).is_some_and(|s| Arc::ptr_eq(&s, &held)));
        // Live tokens are evicted least recently used first.
        let live = |slot: Arc<tokio::sync::Mutex<Option<CachedToken>>>| {
            *slot.try_lock().unwrap() = Some(CachedToken {
                header: bearer("t").unwrap(),
                renew_at: Instant::now() + Duration::from_secs(60),
            });
        };
        drop(held);
        live(cache.existing(&key(0)).unwrap());
        live(cache.existing(&key(4)).unwrap());
        live(cache.slot(&key(5)));
        live(cache.slot(&key(6)));
        cache.slot(&key(0));
        cache.slot(&key(7));
        assert_eq!(cache.len(), 4);
        assert!(cache.existing(&key(4)).is_none(), "the least recently used went");
        assert!(cache.existing(&key(0)).is_some(), "a recently used one stayed");
    }

    #[test]
    fn production_overrides_name_only_declared_hosts() {
        let contract = || {
            vec![spec(
                "helpdesk",
                "https://helpdesk.example.com/api",
                &["mirror.example.com:443".into()],
                CredentialSpec::None,
            )]
        };
        let overrides = |url: &str| BTreeMap::from([("helpdesk".to_owned(), url.to_owned())]);
        let production = Environment::default();
        // Declared hosts: the base URL's (another path) and the egress list's.
        for url in ["https://helpdesk.example.com/v2", "https://mirror.example.com/api"] {
            let egress = Egress::in_environment(contract(), overrides(url), &production).unwrap();
            assert!(egress.client("helpdesk").unwrap().base_url().starts_with(url));
        }
        let err = Egress::in_environment(contract(), overrides("http://127.0.0.1:8090/"), &production).unwrap_err();
        assert_eq!(
            err,
            "downstream `helpdesk`: the configured base URL (`[downstreams.helpdesk] base_url`) names \
             127.0.0.1:8090, which the contract does not declare for this downstream (it declares \
             helpdesk.example.com:443, mirror.example.com:443); in the `production` environment a base URL \
             may only name a declared host: point it at one of those, declare 127.0.0.1:8090 in the \
             downstream's `egress` in the contract, or, for a stand-in outside production, set `environment` \
             (e.g. `environment = \"staging\"`) in the configuration"
        );
        // Another port of a declared host is another host.
        assert!(
            Egress::in_environment(contract(), overrides("https://helpdesk.example.com:8443/"), &production).is_err()
        );
    }

    #[tokio::test]
    async fn stand_ins_outside_production_are_reachable_and_announced() {
        let stand_in = TestServer::start(|_| ok_json(json!({"recorded": true}))).await;
        let contract = vec![spec(
            "helpdesk",
            "https://helpdesk.example.com/api",
            &[],
            CredentialSpec::None,
        )];
        let overrides = BTreeMap::from([("helpdesk".to_owned(), stand_in.url("/replay"))]);
        let log = Arc::new(Mutex::new(Vec::<u8>::new()));
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let writer = Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Capture(Arc::clone(&writer)))
            .finish();
        let egress = tracing::subscriber::with_default(subscriber, || {
            Egress::in_environment(contract, overrides, &Environment::new("staging").unwrap())
        })
        .unwrap();
        let logged = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("WARN"), "{logged}");
        assert!(
            logged.contains(&format!(
                "downstream `helpdesk` is served by a stand-in at {}, a host the contract does not declare: \
                 allowed because the environment is `staging`, refused in production",
                stand_in.url("/replay/")
            )),
            "{logged}"
        );
        let answer = egress.client("helpdesk").unwrap().get("tickets").await.unwrap();
        assert_eq!(answer.json::<Value>().unwrap(), json!({"recorded": true}));
        assert_eq!(stand_in.seen()[0].target, "/replay/tickets");
    }

    #[test]
    fn the_environment_comes_from_the_configuration() {
        let specs = vec![spec(
            "helpdesk",
            "https://helpdesk.example.com/",
            &[],
            CredentialSpec::None,
        )];
        let mut config: super::super::config::Config =
            toml::from_str("[downstreams.helpdesk]\nbase_url = \"http://127.0.0.1:8090\"").unwrap();
        config.apply_env("SRV", |_| None).unwrap();
        let err = Egress::from_config(&specs, &config).unwrap_err();
        assert!(err.contains("in the `production` environment"), "{err}");
        config
            .apply_env("SRV", |k| (k == "SRV_ENVIRONMENT").then(|| "local".to_owned()))
            .unwrap();
        assert!(Egress::from_config(&specs, &config).is_ok());
    }
}

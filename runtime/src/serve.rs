//! Transports: stdio and Streamable HTTP, hardened where rmcp's defaults are
//! open (Origin checks off, unbounded stdio lines, Nagle on), and shut down
//! cleanly on SIGTERM or Ctrl-C.

use rmcp::ServiceExt as _;
use rmcp::transport::async_rw::AsyncRwTransport;
#[cfg(feature = "http")]
use std::sync::Arc;

use super::config::Config;
#[cfg(feature = "http")]
use super::controls::{Denial, Identity};
#[cfg(feature = "http")]
use super::server::Admitted;
use super::server::McpServer;
#[cfg(feature = "http")]
use super::sessions::{Owner, SESSION_HEADER, Sessions};

/// Serves one client over stdin/stdout until it disconnects or a signal arrives.
pub async fn stdio(server: McpServer, config: &Config) -> Result<(), String> {
    let transport = AsyncRwTransport::new_server(tokio::io::stdin(), tokio::io::stdout())
        .with_max_line_length(config.stdio.max_line_bytes);
    let running = server
        .serve(transport)
        .await
        .map_err(|e| format!("the client did not complete the handshake: {e}"))?;
    tracing::info!("serving on stdio");
    let cancel = running.cancellation_token();
    tokio::select! {
        quit = running.waiting() => {
            quit.map_err(|e| format!("the server stopped abnormally: {e}"))?;
        }
        () = shutdown_signal() => {
            tracing::info!("signal received, shutting down");
            cancel.cancel();
        }
    }
    Ok(())
}

/// Serves Streamable HTTP on `listen` until a signal arrives: stateless, JSON
/// responses when the client accepts them, Host and Origin allowlists on, and
/// every request through [`admit`] (bearer token, scopes, rate limit, size
/// and nesting caps) before the protocol layer parses it.
#[cfg(feature = "http")]
pub async fn http(server: McpServer, config: &Config, listen: &str, gate: HttpGate) -> Result<(), String> {
    use axum::routing::get;
    use axum::serve::ListenerExt as _;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    use tokio_util::sync::CancellationToken;

    let shutdown = CancellationToken::new();
    refuse_unauthenticated_exposure(server.surface(), &gate, listen)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let mut origins = server.surface().http.origins.clone();
    origins.extend(config.http.allowed_origins.iter().cloned());
    // The server's own origin (each allowed host at the bound port) is same-origin, not cross-site.
    for host in &config.http.allowed_hosts {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        origins.push(format!("http://{host}:{}", bound.port()));
    }
    let max_body = server.surface().http.max_request_bytes as usize;
    let sites = Sites::new(&config.http.allowed_hosts, &origins);
    // Stateless unless the contract opts in to legacy sessions (`access.sessions`);
    // 2026-07-28 requests are served statelessly either way.
    let session_spec = server.surface().http.sessions;
    let sessions = Arc::new(Sessions::new(session_spec, server.subscriptions()));
    let http_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(session_spec.is_some())
        .with_json_response(true)
        .with_allowed_hosts(config.http.allowed_hosts.clone())
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(max_body)
        .with_cancellation_token(shutdown.child_token());
    let mcp_server = server.clone();
    let service = StreamableHttpService::new(move || Ok(mcp_server.clone()), sessions.clone(), http_config);
    // Only token-exchange downstreams need the caller's token past the gate.
    #[cfg(all(feature = "oauth", feature = "egress"))]
    let keep_caller_token = server
        .surface()
        .downstreams
        .iter()
        .any(|d| matches!(d.credentials, super::surface::CredentialSpec::TokenExchange { .. }));
    let state = Arc::new(GateState {
        server: server.clone(),
        gate,
        sites,
        max_body,
        sessions: session_spec.map(|_| sessions),
        #[cfg(all(feature = "oauth", feature = "egress"))]
        keep_caller_token,
    });
    let mcp = axum::Router::new().route_service(
        &config.http.path,
        Gated {
            state: state.clone(),
            inner: service,
        },
    );
    let mut router = axum::Router::new()
        .merge(mcp)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready));
    // With `http.metrics_listen`, /metrics moves to its own port, so a network
    // policy can open it to the monitoring namespace alone.
    match &config.http.metrics_listen {
        Some(metrics_listen) => {
            let metrics_listener = tokio::net::TcpListener::bind(metrics_listen)
                .await
                .map_err(|e| format!("cannot listen for metrics on {metrics_listen} (http.metrics_listen): {e}"))?;
            let metrics_router = axum::Router::new()
                .route("/metrics", get(metrics))
                .with_state(state.clone());
            let stop = shutdown.child_token();
            tracing::info!(address = %metrics_listen, "serving /metrics");
            tokio::spawn(async move {
                let served = axum::serve(metrics_listener, metrics_router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            });
        }
        None => router = router.route("/metrics", get(metrics)),
    }
    for path in state.gate.metadata_paths() {
        router = router.route(&path, get(resource_metadata));
    }
    let router = router.with_state(state);
    let listener = listener.tap_io(|stream| {
        // Small JSON-RPC messages: send them now, not after Nagle's delay.
        let _ = stream.set_nodelay(true);
    });
    tracing::info!(address = %bound, path = %config.http.path, "serving Streamable HTTP");
    // Tests and supervisors read the bound address (useful with port 0) from this line.
    eprintln!("listening on http://{bound}{}", config.http.path);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("signal received, shutting down");
            shutdown.cancel();
        })
        .await
        .map_err(|e| format!("the HTTP server failed: {e}"))
}

/// How the HTTP layer authenticates callers.
#[cfg(feature = "http")]
#[derive(Clone, Default)]
pub struct HttpGate {
    /// Validates bearer tokens; `None` when the contract requires no OAuth.
    #[cfg(feature = "oauth")]
    pub auth: Option<std::sync::Arc<super::auth::Authenticator>>,
    /// RFC 9728 metadata and its URL, for `WWW-Authenticate`.
    pub metadata: Option<(serde_json::Value, String)>,
    /// The resource URL tokens must be issued for.
    pub audience: Option<String>,
}

#[cfg(feature = "http")]
impl HttpGate {
    fn authenticates(&self) -> bool {
        #[cfg(feature = "oauth")]
        if self.auth.is_some() {
            return true;
        }
        false
    }

    fn metadata_paths(&self) -> Vec<String> {
        #[cfg(feature = "oauth")]
        if let Some(audience) = &self.audience {
            return super::auth::metadata_paths(audience);
        }
        Vec::new()
    }

    fn ready(&self) -> bool {
        #[cfg(feature = "oauth")]
        if let Some(auth) = &self.auth {
            return auth.ready();
        }
        true
    }
}

#[cfg(feature = "http")]
struct GateState {
    server: McpServer,
    gate: HttpGate,
    /// The Host and Origin values this server answers.
    sites: Sites,
    max_body: usize,
    /// Legacy sessions, when the contract opts in.
    sessions: Option<Arc<Sessions>>,
    /// A downstream exchanges the caller's token (RFC 8693): keep it for the handler's context.
    #[cfg(all(feature = "oauth", feature = "egress"))]
    keep_caller_token: bool,
}

/// Deepest JSON nesting accepted on HTTP; contract schemas are far shallower,
/// and refusing early keeps recursive parsers and validators cheap.
#[cfg(feature = "http")]
pub const MAX_JSON_DEPTH: usize = 64;

/// The HTTP gate in front of the MCP endpoint: authenticates the bearer
/// token (401), buffers the body within its cap (413), refuses deep nesting
/// (400), and applies scopes (403) and the rate limit (429) to the call it
/// carries, so refusals use HTTP's own status codes and headers.
#[cfg(feature = "http")]
async fn admit(
    state: &GateState,
    request: axum::extract::Request,
) -> Result<axum::extract::Request, axum::response::Response> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse as _;

    // Before the token: a request from a page on another site is refused as
    // such (403), whether or not it carries a token (the specification's MUST).
    if let Err(refused) = state.sites.check(request.headers()) {
        state.server.refuse_unauthenticated(refused.reason(), refused.message());
        return Err((refused.status(), json_error(refused.reason(), refused.message())).into_response());
    }
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (identity, caller_token) = authenticate(state, request.headers()).await?;
    #[cfg(not(feature = "egress"))]
    let () = caller_token;
    let session = request.headers().get(SESSION_HEADER).map(|v| v.to_str().unwrap_or(""));
    if let (Some(sessions), Some(id)) = (&state.sessions, session)
        && sessions.owner(id, &identity.subject) == Owner::Other
    {
        // Someone else's session is, to this caller, no session at all.
        state.server.refuse_request(&identity, "session_not_found");
        return Err(session_not_found());
    }
    let opens_session = state.sessions.is_some() && session.is_none();
    let (mut parts, body) = request.into_parts();
    let mut rate_counted = false;
    let body = if parts.method == axum::http::Method::POST {
        let bytes = match axum::body::to_bytes(body, state.max_body).await {
            Ok(bytes) => bytes,
            Err(_) => {
                state.server.refuse_request(&identity, "request_too_large");
                let message = format!("the request body is over {} bytes", state.max_body);
                let mut response =
                    (StatusCode::PAYLOAD_TOO_LARGE, json_error("request_too_large", &message)).into_response();
                close_connection(&mut response);
                return Err(response);
            }
        };
        if json_depth(&bytes) > MAX_JSON_DEPTH {
            state.server.refuse_request(&identity, "too_deep");
            let message = format!("JSON nested deeper than {MAX_JSON_DEPTH} levels");
            return Err((StatusCode::BAD_REQUEST, json_error("too_deep", &message)).into_response());
        }
        // One parse serves both: a body that is not JSON at all is a JSON-RPC parse
        // error (-32700), answered 400; a single request is held to its gates.
        let message = match super::server::peek(&bytes) {
            Ok(message) => Some(message),
            Err(super::server::Unpeekable::NotJson(why)) => {
                state.server.refuse_request(&identity, "parse_error");
                return Err(parse_error(&why));
            }
            // JSON, but not one request object (a batch, a bare value): rmcp answers it.
            Err(super::server::Unpeekable::NotOneRequest) => None,
        };
        if opens_session
            && message.as_ref().and_then(|m| m.method()) == Some("initialize")
            && let Some(sessions) = &state.sessions
            && sessions.full().await
        {
            state.server.refuse_request(&identity, "sessions_full");
            let message = format!(
                "this server holds its {} sessions already (access.sessions.max); retry later, or connect statelessly with a 2026-07-28 client",
                sessions.max()
            );
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, json_error("sessions_full", &message)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            return Err(response);
        }
        match state.server.precheck(&identity, message).await {
            Ok(counted) => rate_counted = counted,
            Err((denial, message)) => {
                return Err(match denial {
                    Denial::InsufficientScope(scopes) => {
                        let challenge = state.gate.challenge_insufficient_scope(&scopes);
                        let mut response =
                            (StatusCode::FORBIDDEN, json_error("insufficient_scope", &message)).into_response();
                        if let Ok(value) = header::HeaderValue::from_str(&challenge) {
                            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                        }
                        response
                    }
                    Denial::RateLimited(wait) => {
                        let mut response =
                            (StatusCode::TOO_MANY_REQUESTS, json_error("rate_limited", &message)).into_response();
                        response.headers_mut().insert(
                            header::RETRY_AFTER,
                            header::HeaderValue::from(super::controls::retry_after_secs(wait)),
                        );
                        response
                    }
                    _ => (StatusCode::SERVICE_UNAVAILABLE, json_error(denial.reason(), &message)).into_response(),
                });
            }
        }
        axum::body::Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert(Admitted {
        identity,
        rate_counted,
        traceparent,
        #[cfg(feature = "egress")]
        caller_token,
    });
    Ok(axum::extract::Request::from_parts(parts, body))
}

#[cfg(feature = "http")]
type GatedFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send>>;

/// The MCP endpoint: [`admit`], then rmcp's service. A plain tower service
/// rather than an axum middleware, which would box and clone the rest of the
/// route for every request.
#[cfg(feature = "http")]
struct Gated<S> {
    state: Arc<GateState>,
    inner: S,
}

#[cfg(feature = "http")]
impl<S: Clone> Clone for Gated<S> {
    fn clone(&self) -> Self {
        Gated {
            state: self.state.clone(),
            inner: self.inner.clone(),
        }
    }
}

#[cfg(feature = "http")]
impl<S, B> tower_service::Service<axum::extract::Request> for Gated<S>
where
    S: tower_service::Service<
            axum::extract::Request,
            Response = axum::http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = GatedFuture;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), std::convert::Infallible>> {
        // rmcp's service is always ready; each call drives its own clone.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::extract::Request) -> GatedFuture {
        let state = self.state.clone();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let request = match admit(&state, request).await {
                Ok(request) => request,
                Err(refused) => return Ok(refused),
            };
            // An `initialize` without a session opens one: remember whose it is.
            let opener = match &state.sessions {
                Some(_) if !request.headers().contains_key(SESSION_HEADER) => request
                    .extensions()
                    .get::<Admitted>()
                    .map(|a| a.identity.subject.clone()),
                _ => None,
            };
            let closing = request.method() == axum::http::Method::DELETE;
            let mut response = inner.call(request).await?.map(axum::body::Body::new);
            if closing && response.status() == axum::http::StatusCode::ACCEPTED {
                // rmcp answers a closed session 202; clients expect 200 or 204 (the Python SDK logs
                // "Session termination failed" otherwise), and nothing is left to accept.
                *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
                *response.body_mut() = axum::body::Body::empty();
            }
            if let (Some(sessions), Some(subject)) = (&state.sessions, opener)
                && let Some(id) = response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok())
            {
                sessions.opened_by(id, &subject);
            }
            Ok(response)
        })
    }
}

#[cfg(feature = "http")]
impl HttpGate {
    fn metadata_url(&self) -> Option<&str> {
        self.metadata.as_ref().map(|(_, url)| url.as_str())
    }

    /// `WWW-Authenticate` for a token without the scopes a call needs (RFC 6750 section 3.1).
    fn challenge_insufficient_scope(&self, scopes: &[String]) -> String {
        let mut challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", scopes.join(" "));
        if let Some(url) = self.metadata_url() {
            challenge.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        challenge
    }
}

/// The verified bearer token a request carried, kept for token-exchange
/// downstreams (feature `egress`); nothing without them.
#[cfg(all(feature = "http", feature = "egress"))]
type PresentedToken = Option<super::egress::CallerToken>;
#[cfg(all(feature = "http", not(feature = "egress")))]
type PresentedToken = ();

/// The caller of an HTTP request and the token they proved it with, or the
/// 401 that refuses them.
#[cfg(feature = "http")]
async fn authenticate(
    state: &GateState,
    headers: &axum::http::HeaderMap,
) -> Result<(Arc<Identity>, PresentedToken), axum::response::Response> {
    if !state.gate.authenticates() {
        return Ok((Arc::new(Identity::anonymous()), PresentedToken::default()));
    }
    #[cfg(feature = "oauth")]
    if let Some(auth) = &state.gate.auth {
        use axum::http::{StatusCode, header};
        use axum::response::IntoResponse as _;

        // Two Authorization headers are ambiguous: refuse rather than pick one.
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let authorization = match (values.next(), values.next()) {
            (Some(value), None) => Some(value.to_str().unwrap_or("")),
            (None, _) => None,
            (Some(_), Some(_)) => Some(""),
        };
        return match auth.authenticate(authorization).await {
            Ok(caller) => {
                #[cfg(feature = "egress")]
                let token = if state.keep_caller_token {
                    super::auth::bearer_token(authorization)
                        .ok()
                        .map(|token| super::egress::CallerToken::new(token, caller.expires_at))
                } else {
                    None
                };
                #[cfg(not(feature = "egress"))]
                let token = ();
                Ok((caller.identity(), token))
            }
            Err(error) => {
                state.server.refuse_unauthenticated(error.reason(), &error.to_string());
                let challenge = error.www_authenticate(state.gate.metadata_url().unwrap_or_default());
                // 503 when the provider's keys cannot be fetched: the token may be fine.
                let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
                let mut response = (status, json_error(error.reason(), &error.to_string())).into_response();
                if let Ok(value) = header::HeaderValue::from_str(&challenge) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                }
                close_connection(&mut response);
                Err(response)
            }
        };
    }
    let _ = headers;
    Ok((Arc::new(Identity::anonymous()), PresentedToken::default()))
}

/// What rmcp answers for a session it does not hold: the same words for a
/// session that belongs to someone else.
#[cfg(feature = "http")]
fn session_not_found() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (axum::http::StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

/// A JSON-RPC parse error (-32700) for a body that is not JSON, as HTTP 400.
#[cfg(feature = "http")]
fn parse_error(error: &str) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": -32700, "message": format!("Parse error: the body is not JSON ({error})") },
    });
    (axum::http::StatusCode::BAD_REQUEST, json_body(&body)).into_response()
}

/// The hosts and origins the MCP endpoint answers, parsed once: the same
/// rules as rmcp's own checks (which still run after the gate), applied
/// before authentication so a cross-site request gets 403 rather than 401.
#[cfg(feature = "http")]
struct Sites {
    /// `(host, port)`; no port means any.
    hosts: Vec<(String, Option<u16>)>,
    /// `(scheme, host, port)`; `None` port means any (`:*`, or none given).
    origins: Vec<(String, String, Option<u16>)>,
}

#[cfg(feature = "http")]
#[derive(Debug, PartialEq, Eq)]
enum Offsite {
    Host,
    Origin,
}

#[cfg(feature = "http")]
impl Offsite {
    fn reason(&self) -> &'static str {
        match self {
            Offsite::Host => "forbidden_host",
            Offsite::Origin => "forbidden_origin",
        }
    }

    fn message(&self) -> &'static str {
        match self {
            Offsite::Host => "the Host header names a host this server does not answer (DNS rebinding protection)",
            Offsite::Origin => "the Origin header names a site this server does not accept requests from",
        }
    }

    fn status(&self) -> axum::http::StatusCode {
        axum::http::StatusCode::FORBIDDEN
    }
}

#[cfg(feature = "http")]
impl Sites {
    fn new(hosts: &[String], origins: &[String]) -> Sites {
        let hosts = hosts
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            // A bare IPv6 address (`::1`) is no authority: it is a host without a port.
            .map(|h| match axum::http::uri::Authority::try_from(h) {
                Ok(a) => (normal_host(a.host()), a.port_u16()),
                Err(_) => (normal_host(h), None),
            })
            .collect();
        let origins = origins
            .iter()
            .filter_map(|o| {
                let o = o.trim();
                let (base, any_port) = match o.strip_suffix(":*") {
                    Some(base) => (base, true),
                    None => (o, false),
                };
                let (scheme, host, port) = parse_origin(base)?;
                Some((scheme, host, if any_port { None } else { port.or(default_port(base)) }))
            })
            .collect();
        Sites { hosts, origins }
    }

    fn check(&self, headers: &axum::http::HeaderMap) -> Result<(), Offsite> {
        if !self.hosts.is_empty()
            && let Some(host) = headers.get(axum::http::header::HOST)
        {
            let authority = host
                .to_str()
                .ok()
                .and_then(|h| axum::http::uri::Authority::try_from(h).ok())
                .ok_or(Offsite::Host)?;
            let (name, port) = (normal_host(authority.host()), authority.port_u16());
            if !self
                .hosts
                .iter()
                .any(|(h, p)| *h == name && p.is_none_or(|p| Some(p) == port))
            {
                return Err(Offsite::Host);
            }
        }
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
            return Ok(());
        };
        // `null` (a sandboxed or file page) and anything unparsable are no site of ours.
        let origin = origin.to_str().map_err(|_| Offsite::Origin)?;
        let (scheme, host, port) = parse_origin(origin).ok_or(Offsite::Origin)?;
        let port = port.or(default_port(origin));
        let allowed = self
            .origins
            .iter()
            .any(|(s, h, p)| *s == scheme && *h == host && p.is_none_or(|p| Some(p) == port));
        if allowed { Ok(()) } else { Err(Offsite::Origin) }
    }
}

#[cfg(feature = "http")]
fn normal_host(host: &str) -> String {
    host.trim_matches(|c| c == '[' || c == ']').to_ascii_lowercase()
}

/// `scheme://host[:port]`, lowercased; `None` for `null` and anything with a path.
#[cfg(feature = "http")]
fn parse_origin(value: &str) -> Option<(String, String, Option<u16>)> {
    let uri = axum::http::Uri::try_from(value.trim()).ok()?;
    let authority = uri.authority()?;
    if uri
        .path_and_query()
        .is_some_and(|p| !p.as_str().is_empty() && p.as_str() != "/")
    {
        return None;
    }
    Some((
        uri.scheme_str()?.to_ascii_lowercase(),
        normal_host(authority.host()),
        authority.port_u16(),
    ))
}

#[cfg(feature = "http")]
fn default_port(origin: &str) -> Option<u16> {
    let scheme = origin.split("://").next()?.to_ascii_lowercase();
    match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Marks a response sent before its request's body was read: the server will
/// not reuse the connection (the unread body is still on it), so it says so,
/// and a pooling client opens a new one instead of failing on a closed socket.
#[cfg(feature = "http")]
fn close_connection(response: &mut axum::response::Response) {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
}

#[cfg(feature = "http")]
fn json_error(error: &str, description: &str) -> axum::response::Response {
    json_body(&serde_json::json!({ "error": error, "error_description": description }))
}

#[cfg(feature = "http")]
fn json_body(value: &serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(value).unwrap_or_default(),
    )
        .into_response()
}

/// The deepest nesting of arrays and objects in `bytes`, outside strings.
/// Malformed JSON is left to the parser; this only bounds its recursion.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(feature = "http")]
async fn ready(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<GateState>>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    let mut problems = Vec::new();
    if !state.gate.ready() {
        problems.push("the identity provider's keys are not loaded yet".to_string());
    }
    if state.server.controls().is_some_and(|c| !c.audit.healthy()) {
        problems.push("the audit log cannot be written".to_string());
    }
    #[cfg(feature = "egress")]
    problems.extend(super::egress::missing_credentials(&state.server.surface().downstreams));
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
            .into_response()
    }
}

#[cfg(feature = "http")]
async fn metrics(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<GateState>>,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse as _;
    let Some(controls) = state.server.controls() else {
        return (axum::http::StatusCode::NOT_FOUND, "no metrics\n").into_response();
    };
    controls.metrics.set_audit_failures(controls.audit.failures());
    controls.metrics.set_kill_switch(controls.kill.check(None).is_some());
    #[cfg(feature = "approvals")]
    if let Some(store) = &controls.approvals {
        match store.pending_summary().await {
            Ok((count, oldest)) => controls.metrics.set_pending_approvals(count, oldest),
            Err(e) => tracing::warn!(error = %e, "cannot count pending approvals for /metrics"),
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        controls.metrics.render(),
    )
        .into_response()
}

#[cfg(feature = "http")]
async fn resource_metadata(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<GateState>>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match &state.gate.metadata {
        Some((document, _)) => json_body(document),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// A contract that requires OAuth is never served without token checks on an
/// address other machines can reach: only on loopback, for development.
#[cfg(feature = "http")]
fn refuse_unauthenticated_exposure(
    surface: &super::surface::Surface,
    gate: &HttpGate,
    listen: &str,
) -> Result<(), String> {
    if surface.oauth.is_none() || gate.authenticates() {
        return Ok(());
    }
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {listen}: the contract requires OAuth and this server runs without \
             token checks (--dev-no-auth, or a build without the `oauth` feature); listen on 127.0.0.1"
        ))
    }
}

/// Resolves on SIGTERM (how orchestrators stop a pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The integration tests' token signer (tests/support/jwt.rs), for the test below.
#[cfg(all(test, feature = "oauth-eddsa", feature = "egress"))]
#[path = "../tests/support/jwt.rs"]
mod test_jwt;

#[cfg(all(test, feature = "oauth-eddsa", feature = "egress"))]
mod tests {
    //! A handler behind the real HTTP gate calls a token-exchange downstream:
    //! a signed JWT, verified against a loopback JWKS, is exchanged at a
    //! loopback token endpoint, and only the exchanged token reaches the API.

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use base64::Engine as _;
    use serde_json::{Map, Value, json};

    use super::test_jwt as jwt;

    use super::super::config::Config;
    use super::super::dispatch::{BoxFuture, Context, Dispatch, ResourceBody, ToolError, ToolOutput};
    use super::super::server::McpServer;
    use super::super::surface::Surface;
    use super::HttpGate;
    use rmcp::model::{ContentBlock, PromptMessage};

    struct CallsTickets;

    impl Dispatch for CallsTickets {
        fn call_tool<'a>(
            &'a self,
            _: &'a str,
            _: Value,
            context: &'a Context,
        ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
            Box::pin(async move {
                let response = context.downstream("tickets")?.get("ping").await?.error_for_status()?;
                Ok(ToolOutput::Content(vec![ContentBlock::text(
                    response.text()?.to_string(),
                )]))
            })
        }
        fn read_resource<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: Map<String, Value>,
            _: &'a Context,
        ) -> BoxFuture<'a, Result<ResourceBody, ToolError>> {
            Box::pin(async { Err(ToolError::internal("no resources here")) })
        }
        fn get_prompt<'a>(
            &'a self,
            _: &'a str,
            _: BTreeMap<String, String>,
            _: &'a Context,
        ) -> BoxFuture<'a, Result<Vec<PromptMessage>, ToolError>> {
            Box::pin(async { Err(ToolError::internal("no prompts here")) })
        }
    }

    /// What the loopback identity provider and API saw.
    #[derive(Default)]
    struct Seen {
        token_requests: Vec<String>,
        /// Each API request's `Authorization`, and all its headers.
        api_requests: Vec<(Option<String>, String)>,
    }

    /// One loopback server playing identity provider (JWKS, token endpoint) and downstream API.
    async fn provider(jwks: Value) -> (u16, Arc<Mutex<Seen>>) {
        use axum::routing::{get, post};
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (exchange, api) = (Arc::clone(&seen), Arc::clone(&seen));
        let router = axum::Router::new()
            .route("/jwks", get(move || async move { super::json_body(&jwks) }))
            .route(
                "/oauth/token",
                post(move |body: String| async move {
                    exchange.lock().unwrap().token_requests.push(body);
                    super::json_body(&json!({
                        "access_token": "exchanged-for-tickets",
                        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                        "token_type": "Bearer",
                        "expires_in": 300,
                    }))
                }),
            )
            .route(
                "/api/ping",
                get(move |headers: axum::http::HeaderMap| async move {
                    let authorization = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    api.lock()
                        .unwrap()
                        .api_requests
                        .push((authorization, format!("{headers:?}")));
                    "pong"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (port, seen)
    }

    fn surface(provider: u16, audience: &str, client_secret: &str) -> Surface {
        let idp = format!("http://127.0.0.1:{provider}");
        let surface = json!({
            "server": {
                "name": "exchange-test", "title": null, "version": "1.0.0",
                "description": "Tests token exchange end to end.", "env_prefix": "EXCHANGE_TEST",
                "disable": {"env": null, "file": null}
            },
            "http": {"origins": [], "max_request_bytes": 65536},
            "oauth": {
                "issuer": idp, "audience": audience, "jwks_uri": format!("{idp}/jwks"),
                "algorithms": ["EdDSA"], "leeway_ms": 0
            },
            "scopes": [],
            "data_classes": {},
            "downstreams": [{
                "name": "tickets",
                "base_url": format!("{idp}/api"),
                "egress": [],
                "timeout_ms": 5000,
                "credentials": {
                    "kind": "token_exchange",
                    "token_url": format!("{idp}/oauth/token"),
                    "client_id": "exchange-test",
                    "client_secret": {"file": client_secret},
                    "audience": "https://tickets.example.com",
                    "scopes": ["tickets:read"],
                },
                "private_network": false,
            }],
            "tools": [{
                "definition": {
                    "name": "ping_tickets",
                    "description": "Calls the tickets API.",
                    "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false}
                },
                "hash": "0".repeat(64),
                "effect": "read",
                "scopes": [],
                "data_class": null,
                "approval": {"mode": "none"},
                "audit": {"arguments": true, "results": false},
                "limits": {
                    "timeout_ms": 5000, "max_request_bytes": 4096, "max_response_bytes": 65536,
                    "rate": {"count": 100, "period_ms": 1000}, "concurrency": 4
                },
                "content": ["text"],
                "progress": false,
                "client_logging": false,
                "asks_client": [],
                "downstreams": ["tickets"],
            }],
            "resources": [],
            "prompts": [],
        });
        Surface::parse(&surface.to_string()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_behind_the_http_gate_sends_the_exchanged_token() {
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]});
        let (idp_port, seen) = provider(jwks).await;

        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let audience = format!("http://127.0.0.1:{port}/mcp");
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "client-secret\n").unwrap();
        let surface = surface(idp_port, &audience, &secret.path().display().to_string());
        let config = Config::default();
        let egress = super::super::egress::Egress::from_config(&surface.downstreams, &config).unwrap();
        let oauth = surface.oauth.clone().unwrap();
        let mut settings = super::super::auth::OAuthSettings::new(oauth.issuer.clone(), audience.clone());
        settings.jwks_uri = oauth.jwks_uri.clone();
        settings.algorithms = oauth.algorithms.clone();
        let auth = super::super::auth::Authenticator::new(settings).unwrap();
        auth.refresh().await.unwrap();
        let gate = HttpGate {
            auth: Some(Arc::new(auth)),
            metadata: None,
            audience: Some(audience.clone()),
        };
        let server = McpServer::new(surface, CallsTickets)
            .unwrap()
            .with_egress(&egress)
            .unwrap();
        let listen = format!("127.0.0.1:{port}");
        tokio::spawn(async move { super::http(server, &config, &listen, gate).await });

        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = json!({
            "iss": oauth.issuer, "aud": audience, "sub": "alice", "exp": now + 600,
            "jti": "caller-canary-91c2",
        });
        let caller_token = jwt::sign("EdDSA", Some("k1"), &claims, jwt::Key::Ed25519(&key));

        let client = reqwest::Client::new();
        let call = json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "ping_tickets", "arguments": {}}
        });
        let mut answer = None;
        for _ in 0..100 {
            let sent = client
                .post(format!("http://127.0.0.1:{port}/mcp"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .bearer_auth(&caller_token)
                .body(call.to_string())
                .send()
                .await;
            match sent {
                Ok(response) => {
                    answer = Some(response.text().await.unwrap());
                    break;
                }
                // Not listening yet.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let answer = answer.expect("the server answers");
        let message: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(message["result"]["content"][0]["text"], "pong", "{message}");
        assert!(!answer.contains(&caller_token));

        let seen = seen.lock().unwrap();
        assert_eq!(seen.token_requests.len(), 1);
        let form: BTreeMap<String, String> = reqwest::Url::parse(&format!("http://x/?{}", seen.token_requests[0]))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(
            form["subject_token"], caller_token,
            "the caller's verified token was exchanged"
        );
        assert_eq!(form["audience"], "https://tickets.example.com");
        assert_eq!(form["scope"], "tickets:read");
        assert_eq!(seen.api_requests.len(), 1);
        let (authorization, headers) = &seen.api_requests[0];
        assert_eq!(authorization.as_deref(), Some("Bearer exchanged-for-tickets"));
        assert!(!headers.contains(&caller_token), "{headers}");
    }
}

#[cfg(all(test, feature = "http"))]
mod site_tests {
    use super::{Offsite, Sites};
    use axum::http::{HeaderMap, HeaderValue, header};

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn hosts_and_origins_are_held_to_the_allowlists() {
        let sites = Sites::new(
            &["localhost".into(), "127.0.0.1".into(), "::1".into()],
            &[
                "https://assistant.example.com".into(),
                "http://127.0.0.1:8080".into(),
                "http://localhost:*".into(),
            ],
        );
        let check = |host, origin| sites.check(&headers(host, origin));
        assert_eq!(check(Some("127.0.0.1:8080"), None), Ok(()));
        assert_eq!(check(Some("[::1]:8080"), None), Ok(()));
        assert_eq!(check(Some("LOCALHOST"), None), Ok(()));
        assert_eq!(check(None, None), Ok(()), "no Host: left to rmcp");
        assert_eq!(check(Some("attacker.test"), None), Err(Offsite::Host));
        assert_eq!(check(Some("127.0.0.1.nip.io:8080"), None), Err(Offsite::Host));
        let host = Some("127.0.0.1:8080");
        assert_eq!(check(host, Some("https://assistant.example.com")), Ok(()));
        assert_eq!(check(host, Some("https://ASSISTANT.example.com:443")), Ok(()));
        assert_eq!(check(host, Some("http://127.0.0.1:8080")), Ok(()));
        assert_eq!(check(host, Some("http://localhost:5173")), Ok(()), "`:*` is any port");
        assert_eq!(
            check(host, Some("https://assistant.example.com:8443")),
            Err(Offsite::Origin)
        );
        assert_eq!(check(host, Some("http://assistant.example.com")), Err(Offsite::Origin));
        assert_eq!(check(host, Some("http://127.0.0.1:9090")), Err(Offsite::Origin));
        assert_eq!(check(host, Some("null")), Err(Offsite::Origin));
        assert_eq!(check(host, Some("https://evil.example.com")), Err(Offsite::Origin));
        assert_eq!(
            check(host, Some("http://127.0.0.1.evil.example.com:8080")),
            Err(Offsite::Origin)
        );
        assert_eq!(
            check(host, Some("https://assistant.example.com/path")),
            Err(Offsite::Origin)
        );
    }
}

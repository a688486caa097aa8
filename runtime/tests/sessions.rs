//! Legacy Streamable HTTP sessions (`access.sessions`) through the whole HTTP
//! stack, with bearer tokens signed here and checked against a JWKS served
//! over loopback: a session belongs to the subject that opened it, the cap
//! holds, and subscriptions follow the session.
#![cfg(feature = "oauth")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use charter_runtime::auth::{Authenticator, OAuthSettings};
use charter_runtime::codegen::{BoxFuture, Context, Dispatch, McpServer, ResourceBody, ToolError, ToolOutput};
use charter_runtime::config::Config;
use charter_runtime::serve::{self, HttpGate};
use charter_runtime::surface::Surface;
use rand_core::OsRng;
use rmcp::model::PromptMessage;
use serde_json::{Map, Value, json};

#[path = "support/jwt.rs"]
mod jwt;

const AUDIENCE: &str = "https://mcp.example.com/watcher";
const PROTOCOL: &str = "2025-11-25";
const WATCHED: &str = "test://watched";

struct Watcher;

impl Dispatch for Watcher {
    fn call_tool<'a>(&'a self, _: &'a str, _: Value, _: &'a Context) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async { Err(ToolError::internal("no tools here")) })
    }
    fn read_resource<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Map<String, Value>,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<ResourceBody, ToolError>> {
        Box::pin(async { Ok(ResourceBody::Text("watched".into())) })
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

fn surface(max_sessions: u32) -> Surface {
    let limits = json!({"timeout_ms": 5000, "max_request_bytes": 65536, "max_response_bytes": 65536,
        "rate": {"count": 1000, "period_ms": 60000}, "concurrency": 16});
    serde_json::from_value(json!({
        "server": {"name": "watcher", "title": null, "version": "1.0.0",
            "description": "Serves one subscribable resource for the session tests.",
            "env_prefix": "WATCHER", "disable": {"env": null, "file": null}},
        "http": {"origins": [], "max_request_bytes": 65536,
            "sessions": {"max": max_sessions, "idle_ms": 60000}},
        "oauth": null, "scopes": [], "data_classes": {}, "downstreams": [], "tools": [], "prompts": [],
        "resources": [{
            "definition": {"uri": WATCHED, "name": "watched", "description": "A watched text.", "mimeType": "text/plain"},
            "hash": "0", "variables": null, "scopes": [], "data_class": null, "limits": limits,
            "downstreams": [], "subscribable": true
        }]
    }))
    .unwrap()
}

struct Idp {
    key: p256::ecdsa::SigningKey,
    base: String,
}

impl Idp {
    async fn start() -> Idp {
        let key = p256::ecdsa::SigningKey::random(&mut OsRng);
        let point = key.verifying_key().to_encoded_point(false);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())}]});
        let router = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { ([("content-type", "application/json")], jwks.to_string()) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Idp { key, base }
    }

    fn token(&self, subject: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = json!({"iss": self.base, "aud": AUDIENCE, "sub": subject, "exp": now + 300, "iat": now});
        jwt::sign("ES256", Some("k1"), &claims, jwt::Key::P256(&self.key))
    }

    async fn authenticator(&self) -> Authenticator {
        let mut settings = OAuthSettings::new(self.base.clone(), AUDIENCE);
        settings.jwks_uri = Some(format!("{}/jwks", self.base));
        settings.algorithms = vec!["ES256".into()];
        let auth = Authenticator::new(settings).unwrap();
        auth.refresh().await.unwrap();
        auth
    }
}

/// A server on a free loopback port, serving until the test ends.
async fn start(idp: &Idp, max_sessions: u32) -> String {
    let server = McpServer::new(surface(max_sessions), Watcher).unwrap();
    let gate = HttpGate {
        auth: Some(Arc::new(idp.authenticator().await)),
        metadata: None,
        audience: None,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}/mcp");
    tokio::spawn(async move {
        let config = Config::default();
        let _ = serve::http(server, &config, &listen, gate).await;
    });
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server did not start");
}

async fn post(url: &str, token: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL)
        .body(body.to_string());
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.unwrap()
}

/// `initialize` and `notifications/initialized`: the new session's id.
async fn open(url: &str, token: &str) -> Result<String, reqwest::Response> {
    let response = post(
        url,
        token,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    if response.status() != 200 {
        return Err(response);
    }
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let _ = response.text().await;
    let initialized = post(
        url,
        token,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.status(), 202);
    Ok(session)
}

fn subscribe(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "resources/subscribe", "params": {"uri": WATCHED}})
}

/// The JSON-RPC message in an SSE or JSON body.
async fn message(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| !d.is_empty())
        .unwrap_or(text.trim());
    serde_json::from_str(data).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {text}"))
}

#[tokio::test]
async fn a_session_answers_only_the_subject_that_opened_it() {
    let idp = Idp::start().await;
    let url = start(&idp, 8).await;
    let (alice, mallory) = (idp.token("alice"), idp.token("mallory"));
    let session = open(&url, &alice).await.unwrap();

    // Mallory holds a valid token and Alice's session id: to her, the session does not exist.
    let stolen = post(&url, &mallory, Some(&session), subscribe(2)).await;
    assert_eq!(stolen.status(), 404);
    assert_eq!(stolen.text().await.unwrap(), "Not Found: Session not found");
    let stream = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&mallory)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 404, "the standalone stream of someone else's session");
    let delete = reqwest::Client::new()
        .delete(&url)
        .bearer_auth(&mallory)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404, "closing someone else's session");

    // Alice's own requests in it work, and her session survived the attempts.
    let subscribed = message(post(&url, &alice, Some(&session), subscribe(3)).await).await;
    assert_eq!(subscribed["id"], 3);
    assert!(subscribed.get("result").is_some(), "{subscribed}");

    // A request without a token is refused before the session is looked at.
    let anonymous = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .body(subscribe(4).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn the_session_cap_refuses_initialize_with_503_until_one_closes() {
    let idp = Idp::start().await;
    let url = start(&idp, 2).await;
    let token = idp.token("alice");
    let first = open(&url, &token).await.unwrap();
    let _second = open(&url, &token).await.unwrap();
    let refused = open(&url, &token).await.unwrap_err();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert!(
        body.to_string().contains("access.sessions.max"),
        "the refusal names the setting: {body}"
    );

    // Closing one (DELETE, by its owner) makes room.
    let closed = reqwest::Client::new()
        .delete(&url)
        .bearer_auth(&token)
        .header("mcp-session-id", &first)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "DELETE: {}", closed.status());
    let gone = post(&url, &token, Some(&first), subscribe(5)).await;
    assert_eq!(gone.status(), 404, "a closed session is gone");
    open(&url, &token).await.expect("room for one more after a close");
}

#[tokio::test]
async fn subscribing_needs_a_subscribable_resource_and_a_session() {
    let idp = Idp::start().await;
    let url = start(&idp, 8).await;
    let token = idp.token("alice");
    let session = open(&url, &token).await.unwrap();
    let unknown = message(
        post(
            &url,
            &token,
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 6, "method": "resources/subscribe", "params": {"uri": "test://elsewhere"}}),
        )
        .await,
    )
    .await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let unsubscribed = message(
        post(
            &url,
            &token,
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 7, "method": "resources/unsubscribe", "params": {"uri": WATCHED}}),
        )
        .await,
    )
    .await;
    assert!(
        unsubscribed.get("result").is_some(),
        "unsubscribing without a subscription is no error: {unsubscribed}"
    );
}

//! OAuth bearer-token checks against a real identity provider stand-in: a
//! JWKS (and discovery documents) served over loopback HTTP, tokens signed
//! with keys generated here.
#![cfg(feature = "oauth")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use charter_runtime::auth::{
    AuthError, Authenticator, Caller, OAuthSettings, insufficient_scope, metadata_paths, metadata_url,
};
use jsonwebtoken::Algorithm;
use rand_core::OsRng;
use serde_json::{Value, json};

#[path = "support/jwt.rs"]
mod jwt;

const AUDIENCE: &str = "https://mcp.example.com/support-replies";

// ---------------------------------------------------------------- keys

struct TestKeys {
    rsa: rsa::RsaPrivateKey,
    rsa_n: String,
    rsa_e: String,
    /// The RSA public key as an identity provider might publish it, in several encodings.
    rsa_public_encodings: Vec<Vec<u8>>,
    ec: [EcKey; 2],
    ed: ed25519_dalek::SigningKey,
    ed_x: String,
    p384: p384::ecdsa::SigningKey,
}

struct EcKey {
    private: p256::ecdsa::SigningKey,
    x: String,
    y: String,
}

fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
        use rsa::traits::PublicKeyParts as _;

        let rsa = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let public = rsa.to_public_key();
        let ec = || {
            let key = p256::ecdsa::SigningKey::random(&mut OsRng);
            let point = key.verifying_key().to_encoded_point(false);
            EcKey {
                x: URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                y: URL_SAFE_NO_PAD.encode(point.y().unwrap()),
                private: key,
            }
        };
        let ed = ed25519_dalek::SigningKey::generate(&mut OsRng);
        TestKeys {
            rsa_n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            rsa_e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            rsa_public_encodings: vec![
                public.to_public_key_pem(LineEnding::LF).unwrap().into_bytes(),
                public.to_pkcs1_pem(LineEnding::LF).unwrap().into_bytes(),
                public.to_public_key_der().unwrap().as_bytes().to_vec(),
                public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
                public.n().to_bytes_be(),
            ],
            ec: [ec(), ec()],
            p384: p384::ecdsa::SigningKey::random(&mut OsRng),
            ed_x: URL_SAFE_NO_PAD.encode(ed.verifying_key().to_bytes()),
            ed,
            rsa,
        }
    })
}

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "use": "sig", "kid": kid, "n": keys().rsa_n, "e": keys().rsa_e})
}

fn ec_jwk(kid: &str, which: usize) -> Value {
    let key = &keys().ec[which];
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": key.x, "y": key.y, "alg": "ES256"})
}

fn ed_jwk(kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": keys().ed_x})
}

/// The default key set: one key of each kind.
fn p384_jwk(kid: &str) -> Value {
    let point = keys().p384.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC", "crv": "P-384", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    })
}

fn jwks() -> Value {
    json!({"keys": [rsa_jwk("rsa-1"), ec_jwk("ec-1", 0), ed_jwk("ed-1"), p384_jwk("p384-1")]})
}

enum Signer {
    Rsa,
    Ec(usize),
    Ed,
    P384,
}

fn sign(signer: Signer, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match signer {
        Signer::Rsa => jwt::Key::Rsa(&keys().rsa),
        Signer::Ec(which) => jwt::Key::P256(&keys().ec[which].private),
        Signer::Ed => jwt::Key::Ed25519(&keys().ed),
        Signer::P384 => jwt::Key::P384(&keys().p384),
    };
    jwt::sign(&format!("{alg:?}"), kid, claims, key)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// ---------------------------------------------------------------- identity provider

#[derive(Default)]
struct IdpState {
    jwks: Mutex<Value>,
    /// Other JSON documents by path (discovery metadata).
    documents: Mutex<HashMap<String, Value>>,
    /// Paths answered with a 302 to the given Location.
    redirects: Mutex<HashMap<String, String>>,
    jwks_hits: AtomicUsize,
    failing: AtomicBool,
    oversized: AtomicBool,
}

struct Idp {
    base: String,
    state: Arc<IdpState>,
}

impl Idp {
    async fn start(jwks: Value) -> Idp {
        let state = Arc::new(IdpState {
            jwks: Mutex::new(jwks),
            ..IdpState::default()
        });
        let router = axum::Router::new().fallback(serve).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Idp { base, state }
    }

    fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.base)
    }

    fn hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    fn redirect(&self, path: &str, location: &str) {
        self.state
            .redirects
            .lock()
            .unwrap()
            .insert(path.into(), location.into());
    }

    fn publish(&self, path: &str, document: Value) {
        self.state.documents.lock().unwrap().insert(path.into(), document);
    }

    /// Settings for this provider as issuer, with the key set URL given.
    fn settings(&self) -> OAuthSettings {
        let mut settings = OAuthSettings::new(self.base.clone(), AUDIENCE);
        settings.jwks_uri = Some(self.jwks_uri());
        settings
    }

    /// Claims of a valid token for this provider and [`AUDIENCE`].
    fn claims(&self) -> Value {
        json!({
            "iss": self.base,
            "aud": AUDIENCE,
            "sub": "user-1",
            "exp": now() + 300,
            "iat": now(),
            "scope": "tickets:read tickets:write",
            "azp": "support-app",
            "jti": "token-1",
        })
    }
}

/// `n` chunks of a kilobyte of spaces, streamed.
struct Endless(usize);

impl futures_core::Stream for Endless {
    type Item = Result<axum::body::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        std::task::Poll::Ready(Some(Ok(axum::body::Bytes::from(vec![b' '; 1024]))))
    }
}

async fn serve(State(state): State<Arc<IdpState>>, uri: Uri) -> Response {
    let json = |value: &Value| ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response();
    if let Some(location) = state.redirects.lock().unwrap().get(uri.path()) {
        return (StatusCode::FOUND, [(header::LOCATION, location.clone())]).into_response();
    }
    if uri.path() == "/endless" {
        // No Content-Length, and more bytes than any key set: only a cap on what is read stops it.
        return axum::body::Body::from_stream(Endless(4096)).into_response();
    }
    if uri.path() == "/jwks" {
        state.jwks_hits.fetch_add(1, Ordering::SeqCst);
        if state.failing.load(Ordering::SeqCst) {
            return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
        }
        if state.oversized.load(Ordering::SeqCst) {
            let padding = "x".repeat(2 * 1024 * 1024);
            return json(&json!({"keys": [], "padding": padding}));
        }
        let jwks = state.jwks.lock().unwrap().clone();
        return json(&jwks);
    }
    match state.documents.lock().unwrap().get(uri.path()) {
        Some(document) => json(document),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// A provider serving [`jwks`] and an authenticator for it, keys loaded.
async fn setup(configure: impl FnOnce(&mut OAuthSettings)) -> (Idp, Authenticator) {
    let idp = Idp::start(jwks()).await;
    let mut settings = idp.settings();
    configure(&mut settings);
    let auth = Authenticator::new(settings).unwrap();
    auth.refresh().await.unwrap();
    assert!(auth.ready());
    (idp, auth)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn accept(auth: &Authenticator, token: &str) -> Caller {
    match auth.authenticate(Some(&bearer(token))).await {
        Ok(caller) => (*caller).clone(),
        Err(e) => panic!("refused ({}): {e}", e.reason()),
    }
}

/// Asserts the refusal, and that nothing said about it repeats the token.
async fn refuse(auth: &Authenticator, token: &str, expected: AuthError) {
    let error = auth.authenticate(Some(&bearer(token))).await.unwrap_err();
    assert_eq!(error, expected, "{error}");
    assert_no_token_in(&error, token);
}

fn assert_no_token_in(error: &AuthError, token: &str) {
    let said = [
        error.to_string(),
        format!("{error:?}"),
        error.www_authenticate(&metadata_url(AUDIENCE, None)),
        error.reason().to_string(),
    ];
    for text in said {
        assert!(!text.contains(token), "{text}");
        for part in token.split('.').filter(|part| part.len() >= 6) {
            assert!(!text.contains(part), "`{text}` contains a part of the token");
        }
    }
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

// ---------------------------------------------------------------- tests

#[test]
fn authenticator_is_shareable() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Authenticator>();
}

#[tokio::test]
async fn a_valid_token_names_its_caller() {
    let (idp, auth) = setup(|_| {}).await;
    let token = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims());
    let caller = accept(&auth, &token).await;
    assert_eq!(caller.subject, "user-1");
    assert_eq!(caller.client_id.as_deref(), Some("support-app"));
    assert_eq!(caller.token_id.as_deref(), Some("token-1"));
    assert_eq!(
        caller.scopes.iter().map(String::as_str).collect::<Vec<_>>(),
        ["tickets:read", "tickets:write"]
    );
    assert_eq!(caller.expires_at, idp.claims()["exp"].as_u64().unwrap());
    // The scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let header = format!("{scheme} {token}");
        assert_eq!(*auth.authenticate(Some(&header)).await.unwrap(), caller);
    }
}

#[tokio::test]
async fn every_asymmetric_family_verifies() {
    let (idp, auth) = setup(|_| {}).await;
    for (signer, alg, kid) in [
        (Signer::Rsa, Algorithm::RS256, "rsa-1"),
        (Signer::Rsa, Algorithm::RS384, "rsa-1"),
        (Signer::Rsa, Algorithm::RS512, "rsa-1"),
        (Signer::Rsa, Algorithm::PS256, "rsa-1"),
        (Signer::Rsa, Algorithm::PS384, "rsa-1"),
        (Signer::Rsa, Algorithm::PS512, "rsa-1"),
        (Signer::Ec(0), Algorithm::ES256, "ec-1"),
        (Signer::P384, Algorithm::ES384, "p384-1"),
        (Signer::Ed, Algorithm::EdDSA, "ed-1"),
    ] {
        let token = sign(signer, alg, Some(kid), &idp.claims());
        assert_eq!(accept(&auth, &token).await.subject, "user-1", "{alg:?}");
        // The same token with its signature's last byte changed: each family's check is real.
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let tampered = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes));
        refuse(&auth, &tampered, AuthError::BadSignature).await;
    }
    // An algorithm left out of the configuration is refused even with a fitting key.
    let (idp, auth) = setup(|s| s.algorithms = vec!["ES256".into()]).await;
    let token = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims());
    refuse(&auth, &token, AuthError::DisallowedAlgorithm).await;
    let token = sign(Signer::Ec(0), Algorithm::ES256, Some("ec-1"), &idp.claims());
    accept(&auth, &token).await;
}

#[tokio::test]
async fn requests_without_a_bearer_token_are_refused() {
    let (_idp, auth) = setup(|_| {}).await;
    let metadata = metadata_url(AUDIENCE, None);
    let missing = auth.authenticate(None).await.unwrap_err();
    assert_eq!(missing, AuthError::MissingToken);
    assert_eq!(missing.reason(), "missing_token");
    assert_eq!(
        missing.www_authenticate(&metadata),
        "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/support-replies\""
    );
    assert_eq!(auth.authenticate(Some("")).await.unwrap_err(), AuthError::MissingToken);
    for header in [
        "Basic dXNlcjpwYXNzd29yZA==",
        "Token abc.def.ghi",
        "Digest username=\"x\"",
    ] {
        let error = auth.authenticate(Some(header)).await.unwrap_err();
        assert_eq!(error, AuthError::UnsupportedScheme, "{header}");
        assert_eq!(error.reason(), "unsupported_scheme");
        assert!(!error.www_authenticate(&metadata).contains("error="));
    }
    for garbage in [
        "",
        "not-a-jwt",
        "a.b.c",
        "a.b",
        "a b c",
        "e30.e30.e30.e30.e30",
        "eyJhbGciOiJSUzI1NiJ9..x",
    ] {
        let error = auth.authenticate(Some(&format!("Bearer {garbage}"))).await.unwrap_err();
        assert_eq!(error, AuthError::MalformedToken, "{garbage:?}");
        let challenge = error.www_authenticate(&metadata);
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
            "{challenge}"
        );
        assert!(
            challenge.ends_with(&format!("resource_metadata=\"{metadata}\"")),
            "{challenge}"
        );
    }
}

#[tokio::test]
async fn expiry_and_not_before_with_leeway() {
    let (idp, auth) = setup(|s| s.leeway = Duration::from_secs(30)).await;
    let with = |changes: Value| {
        let mut claims = idp.claims();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        sign(Signer::Ec(0), Algorithm::ES256, Some("ec-1"), &claims)
    };
    refuse(&auth, &with(json!({"exp": now() - 100})), AuthError::Expired).await;
    accept(&auth, &with(json!({"exp": now() - 10}))).await;
    refuse(&auth, &with(json!({"nbf": now() + 100})), AuthError::NotYetValid).await;
    accept(&auth, &with(json!({"nbf": now() + 10}))).await;
    accept(&auth, &with(json!({"nbf": now() - 10}))).await;
    refuse(&auth, &with(json!({"exp": null})), AuthError::MissingClaim("exp")).await;
    refuse(&auth, &with(json!({"sub": null})), AuthError::MissingClaim("sub")).await;
    assert_eq!(AuthError::Expired.reason(), "expired");
    assert_eq!(AuthError::NotYetValid.reason(), "not_yet_valid");
}

#[tokio::test]
async fn issuer_and_audience_must_match() {
    let (idp, auth) = setup(|_| {}).await;
    let with = |name: &str, value: Value| {
        let mut claims = idp.claims();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value;
        }
        sign(Signer::Ec(0), Algorithm::ES256, Some("ec-1"), &claims)
    };
    refuse(
        &auth,
        &with("iss", json!("https://evil.example.com")),
        AuthError::WrongIssuer,
    )
    .await;
    refuse(
        &auth,
        &with("iss", json!(format!("{}/", idp.base))),
        AuthError::WrongIssuer,
    )
    .await;
    refuse(&auth, &with("iss", Value::Null), AuthError::MissingClaim("iss")).await;
    // A token for another resource is refused, however close its URL.
    refuse(
        &auth,
        &with("aud", json!("https://mcp.example.com/other")),
        AuthError::WrongAudience,
    )
    .await;
    refuse(
        &auth,
        &with("aud", json!(format!("{AUDIENCE}/"))),
        AuthError::WrongAudience,
    )
    .await;
    refuse(
        &auth,
        &with("aud", json!(["https://mcp.example.com/other"])),
        AuthError::WrongAudience,
    )
    .await;
    refuse(&auth, &with("aud", Value::Null), AuthError::MissingClaim("aud")).await;
    accept(&auth, &with("aud", json!(["https://mcp.example.com/other", AUDIENCE]))).await;
    accept(&auth, &with("aud", json!([AUDIENCE]))).await;
}

#[tokio::test]
async fn signatures_must_verify_with_the_named_key() {
    let (idp, auth) = setup(|_| {}).await;
    // Signed by a key the provider does not publish, claiming a published kid.
    let forged = sign(Signer::Ec(1), Algorithm::ES256, Some("ec-1"), &idp.claims());
    refuse(&auth, &forged, AuthError::BadSignature).await;
    // A valid signature over other claims.
    let token = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims());
    let mut claims = idp.claims();
    claims["sub"] = json!("admin");
    let other = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &claims);
    let parts: Vec<&str> = token.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    refuse(&auth, &spliced, AuthError::BadSignature).await;
    assert_eq!(AuthError::BadSignature.reason(), "bad_signature");
}

#[tokio::test]
async fn unsigned_and_symmetric_tokens_are_refused() {
    let (idp, auth) = setup(|_| {}).await;
    let b64 = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "rsa-1"});
        let unsigned = format!("{}.{}.", b64(&header), b64(&idp.claims()));
        refuse(&auth, &unsigned, AuthError::DisallowedAlgorithm).await;
    }
    // HMAC keyed with the provider's public RSA key, the classic confusion attack.
    for secret in &keys().rsa_public_encodings {
        for alg in ["HS256", "HS384", "HS512"] {
            let token = jwt::sign(alg, Some("rsa-1"), &idp.claims(), jwt::Key::Hmac(secret));
            refuse(&auth, &token, AuthError::DisallowedAlgorithm).await;
            let token = jwt::sign(alg, None, &idp.claims(), jwt::Key::Hmac(secret));
            refuse(&auth, &token, AuthError::DisallowedAlgorithm).await;
        }
    }
    assert_eq!(AuthError::DisallowedAlgorithm.reason(), "disallowed_algorithm");
}

#[tokio::test]
async fn the_named_key_must_fit_the_algorithm() {
    let (idp, auth) = setup(|_| {}).await;
    // An RS256 token naming the EC key.
    let token = sign(Signer::Rsa, Algorithm::RS256, Some("ec-1"), &idp.claims());
    refuse(&auth, &token, AuthError::KeyMismatch).await;
    // An ES256 token naming the RSA key.
    let token = sign(Signer::Ec(0), Algorithm::ES256, Some("rsa-1"), &idp.claims());
    refuse(&auth, &token, AuthError::KeyMismatch).await;
    // A key the provider pinned to RS256 does not serve PS256.
    let mut pinned = rsa_jwk("rsa-pinned");
    pinned["alg"] = json!("RS256");
    idp.set_jwks(json!({"keys": [pinned, ec_jwk("ec-1", 0)]}));
    auth.refresh().await.unwrap();
    let token = sign(Signer::Rsa, Algorithm::PS256, Some("rsa-pinned"), &idp.claims());
    refuse(&auth, &token, AuthError::KeyMismatch).await;
    let token = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-pinned"), &idp.claims());
    accept(&auth, &token).await;
    assert_eq!(AuthError::KeyMismatch.reason(), "key_mismatch");
}

#[tokio::test]
async fn a_token_without_kid_needs_exactly_one_fitting_key() {
    let (idp, auth) = setup(|s| s.refresh_min_interval = Duration::from_secs(600)).await;
    // One RSA, one EC, one Ed25519 key: each algorithm has exactly one fitting key.
    accept(&auth, &sign(Signer::Rsa, Algorithm::RS256, None, &idp.claims())).await;
    accept(&auth, &sign(Signer::Ec(0), Algorithm::ES256, None, &idp.claims())).await;
    accept(&auth, &sign(Signer::Ed, Algorithm::EdDSA, None, &idp.claims())).await;
    // Two RSA keys: which one is meant is not guessed.
    idp.set_jwks(json!({"keys": [rsa_jwk("rsa-1"), rsa_jwk("rsa-2"), ec_jwk("ec-1", 0)]}));
    auth.refresh().await.unwrap();
    let mut claims = idp.claims();
    claims["jti"] = json!("another");
    refuse(
        &auth,
        &sign(Signer::Rsa, Algorithm::RS256, None, &claims),
        AuthError::UnknownKey,
    )
    .await;
    accept(&auth, &sign(Signer::Rsa, Algorithm::RS256, Some("rsa-2"), &claims)).await;
}

#[tokio::test]
async fn a_rotated_in_key_is_fetched_once_the_interval_allows() {
    let interval = Duration::from_secs(1);
    let idp = Idp::start(jwks()).await;
    let rotated = sign(Signer::Ec(1), Algorithm::ES256, Some("ec-2"), &idp.claims());
    let mut settings = idp.settings();
    settings.refresh_min_interval = interval;
    let auth = Authenticator::new(settings).unwrap();
    auth.refresh().await.unwrap();
    assert_eq!(idp.hits(), 1);
    idp.set_jwks(json!({"keys": [rsa_jwk("rsa-1"), ec_jwk("ec-1", 0), ec_jwk("ec-2", 1)]}));
    // Right after the startup fetch: no second fetch yet.
    refuse(&auth, &rotated, AuthError::UnknownKey).await;
    assert_eq!(idp.hits(), 1);
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    // One refetch, then the new key verifies.
    accept(&auth, &rotated).await;
    assert_eq!(idp.hits(), 2);
    let mut claims = idp.claims();
    claims["jti"] = json!("second");
    accept(&auth, &sign(Signer::Ec(1), Algorithm::ES256, Some("ec-2"), &claims)).await;
    assert_eq!(idp.hits(), 2);
    assert_eq!(AuthError::UnknownKey.reason(), "unknown_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_costs_one_fetch_per_interval() {
    let interval = Duration::from_millis(1500);
    let (idp, auth) = setup(|s| s.refresh_min_interval = interval).await;
    assert_eq!(idp.hits(), 1);
    // Signed beforehand, so each round reaches the server at once.
    let rounds: Vec<Vec<String>> = (0..3)
        .map(|round| {
            (0..60)
                .map(|i| {
                    sign(
                        Signer::Ec(0),
                        Algorithm::ES256,
                        Some(&format!("random-{round}-{i}")),
                        &idp.claims(),
                    )
                })
                .collect()
        })
        .collect();
    let known = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims());
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let flood = |round: usize| {
        rounds[round - 1]
            .iter()
            .map(|token| {
                let (auth, token) = (auth.clone(), token.clone());
                tokio::spawn(async move { (auth.authenticate(Some(&bearer(&token))).await, token) })
            })
            .collect::<Vec<_>>()
    };
    for task in flood(1) {
        let (result, token) = task.await.unwrap();
        let error = result.unwrap_err();
        assert_eq!(error, AuthError::UnknownKey);
        assert_no_token_in(&error, &token);
    }
    assert_eq!(idp.hits(), 2, "one fetch for the whole flood");
    for task in flood(2) {
        assert_eq!(task.await.unwrap().0.unwrap_err(), AuthError::UnknownKey);
    }
    assert_eq!(idp.hits(), 2, "no fetch within the interval");
    // Known keys keep working throughout, without fetches.
    accept(&auth, &known).await;
    assert_eq!(idp.hits(), 2);
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    for task in flood(3) {
        assert_eq!(task.await.unwrap().0.unwrap_err(), AuthError::UnknownKey);
    }
    assert_eq!(idp.hits(), 3, "one more fetch once the interval passed");
}

#[tokio::test]
async fn cached_tokens_skip_verification_until_they_expire() {
    let (idp, auth) = setup(|s| {
        s.max_age = Duration::from_secs(1);
        s.refresh_min_interval = Duration::from_millis(50);
        s.leeway = Duration::ZERO;
    })
    .await;
    assert_eq!(idp.hits(), 1);
    let token = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims());
    let caller = accept(&auth, &token).await;
    assert_eq!(auth.cached_tokens(), 1);
    // The keys go stale; a cached token does not even look at them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..100 {
        assert_eq!(accept(&auth, &token).await, caller);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(idp.hits(), 1, "a cache hit fetches nothing");
    assert_eq!(auth.cached_tokens(), 1);
    // A token not seen before is verified, and the stale keys are renewed in the background.
    let mut claims = idp.claims();
    claims["jti"] = json!("fresh");
    accept(&auth, &sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &claims)).await;
    eventually("the background renewal", || idp.hits() == 2).await;
    assert_eq!(auth.cached_tokens(), 2);

    // A cached token stops working when it expires.
    let mut claims = idp.claims();
    claims["exp"] = json!(now() + 1);
    let short = sign(Signer::Ec(0), Algorithm::ES256, Some("ec-1"), &claims);
    accept(&auth, &short).await;
    let expires = claims["exp"].as_u64().unwrap();
    while now() <= expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refuse(&auth, &short, AuthError::Expired).await;
}

#[tokio::test]
async fn a_withdrawn_key_stops_cached_tokens_at_once() {
    let (idp, auth) = setup(|_| {}).await;
    let token = sign(Signer::Ec(0), Algorithm::ES256, Some("ec-1"), &idp.claims());
    accept(&auth, &token).await;
    assert_eq!(auth.cached_tokens(), 1);
    idp.set_jwks(json!({"keys": [rsa_jwk("rsa-1")]}));
    auth.refresh().await.unwrap();
    assert_eq!(auth.cached_tokens(), 0);
    refuse(&auth, &token, AuthError::UnknownKey).await;
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_old_keys() {
    let (idp, auth) = setup(|s| s.refresh_min_interval = Duration::from_millis(100)).await;
    idp.state.failing.store(true, Ordering::SeqCst);
    let error = auth.refresh().await.unwrap_err();
    assert!(error.contains("500"), "{error}");
    assert!(auth.ready());
    accept(
        &auth,
        &sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims()),
    )
    .await;
    // An unknown key cannot be looked up while the provider is down.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let token = sign(Signer::Ec(1), Algorithm::ES256, Some("ec-2"), &idp.claims());
    let error = auth.authenticate(Some(&bearer(&token))).await.unwrap_err();
    assert_eq!(error, AuthError::JwksUnavailable);
    assert_eq!((error.reason(), error.status()), ("jwks_unavailable", 503));
    assert_no_token_in(&error, &token);
    // Back up: the key set is fetched again and still serves.
    idp.state.failing.store(false, Ordering::SeqCst);
    auth.refresh().await.unwrap();
    accept(&auth, &sign(Signer::Ed, Algorithm::EdDSA, Some("ed-1"), &idp.claims())).await;
}

#[tokio::test]
async fn without_keys_tokens_cannot_be_checked() {
    let idp = Idp::start(jwks()).await;
    idp.state.failing.store(true, Ordering::SeqCst);
    let auth = Authenticator::new(idp.settings()).unwrap();
    assert!(!auth.ready());
    assert!(auth.refresh().await.is_err());
    assert!(!auth.ready());
    let token = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims());
    refuse(&auth, &token, AuthError::JwksUnavailable).await;
    idp.state.failing.store(false, Ordering::SeqCst);
    auth.refresh().await.unwrap();
    assert!(auth.ready());
    accept(&auth, &token).await;
}

#[tokio::test]
async fn key_sets_are_bounded_and_must_hold_usable_keys() {
    let idp = Idp::start(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "h"}]})).await;
    let auth = Authenticator::new(idp.settings()).unwrap();
    let error = auth.refresh().await.unwrap_err();
    assert!(error.contains("no signing key"), "{error}");
    idp.state.oversized.store(true, Ordering::SeqCst);
    let error = auth.refresh().await.unwrap_err();
    assert!(error.contains("more than 1048576 bytes"), "{error}");
    assert!(!auth.ready());
    let mut endless = idp.settings();
    endless.jwks_uri = Some(format!("{}/endless", idp.base));
    let error = Authenticator::new(endless).unwrap().refresh().await.unwrap_err();
    assert!(error.contains("more than 1048576 bytes"), "{error}");
}

#[tokio::test]
async fn redirects_are_followed_three_times_at_most_and_only_to_https_or_loopback() {
    let idp = Idp::start(jwks()).await;
    let at = |path: &str| {
        let mut settings = idp.settings();
        settings.jwks_uri = Some(format!("{}{path}", idp.base));
        Authenticator::new(settings).unwrap()
    };
    idp.redirect("/moved", "/jwks");
    idp.redirect("/moved-twice", &format!("{}/moved", idp.base));
    for path in ["/moved", "/moved-twice"] {
        let auth = at(path);
        auth.refresh().await.unwrap();
        accept(
            &auth,
            &sign(Signer::Ec(0), Algorithm::ES256, Some("ec-1"), &idp.claims()),
        )
        .await;
    }
    idp.redirect("/away", "http://idp.example.com/jwks");
    let error = at("/away").refresh().await.unwrap_err();
    assert!(
        error.contains("neither https nor loopback") && error.contains("plain http"),
        "{error}"
    );
    idp.redirect("/scheme-relative", "//idp.example.com/jwks");
    let error = at("/scheme-relative").refresh().await.unwrap_err();
    assert!(error.contains("neither https nor loopback"), "{error}");
    idp.redirect("/loop", "/loop");
    let error = at("/loop").refresh().await.unwrap_err();
    assert!(error.contains("more than 3 redirects"), "{error}");
    assert!(
        idp.state.jwks_hits.load(Ordering::SeqCst) == 2,
        "only the two good redirects reached the key set"
    );
}

#[tokio::test]
async fn the_key_set_is_discovered_from_the_issuer() {
    // RFC 8414 metadata at the root.
    let idp = Idp::start(jwks()).await;
    idp.publish(
        "/.well-known/oauth-authorization-server",
        json!({"issuer": idp.base, "jwks_uri": idp.jwks_uri()}),
    );
    let mut settings = idp.settings();
    settings.jwks_uri = None;
    let auth = Authenticator::new(settings.clone()).unwrap();
    auth.refresh().await.unwrap();
    accept(
        &auth,
        &sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims()),
    )
    .await;

    // OpenID Connect discovery only.
    let idp = Idp::start(jwks()).await;
    idp.publish(
        "/.well-known/openid-configuration",
        json!({"issuer": idp.base, "jwks_uri": idp.jwks_uri()}),
    );
    let mut settings = idp.settings();
    settings.jwks_uri = None;
    let auth = Authenticator::new(settings).unwrap();
    auth.refresh().await.unwrap();
    accept(&auth, &sign(Signer::Ed, Algorithm::EdDSA, Some("ed-1"), &idp.claims())).await;

    // An issuer with a path, OpenID's appended form.
    let idp = Idp::start(jwks()).await;
    let issuer = format!("{}/tenant-a", idp.base);
    idp.publish(
        "/tenant-a/.well-known/openid-configuration",
        json!({"issuer": issuer, "jwks_uri": idp.jwks_uri()}),
    );
    let mut settings = OAuthSettings::new(issuer.clone(), AUDIENCE);
    settings.jwks_uri = None;
    let auth = Authenticator::new(settings).unwrap();
    auth.refresh().await.unwrap();
    let mut claims = idp.claims();
    claims["iss"] = json!(issuer);
    accept(&auth, &sign(Signer::Ec(0), Algorithm::ES256, Some("ec-1"), &claims)).await;

    // Metadata for another issuer, or pointing at plain http elsewhere, is refused.
    let idp = Idp::start(jwks()).await;
    idp.publish(
        "/.well-known/oauth-authorization-server",
        json!({"issuer": "https://evil.example.com", "jwks_uri": idp.jwks_uri()}),
    );
    idp.publish(
        "/.well-known/openid-configuration",
        json!({"issuer": idp.base, "jwks_uri": "http://idp.example.com/jwks"}),
    );
    let mut settings = idp.settings();
    settings.jwks_uri = None;
    let auth = Authenticator::new(settings).unwrap();
    let error = auth.refresh().await.unwrap_err();
    assert!(error.contains("another issuer"), "{error}");
    assert!(error.contains("plain http"), "{error}");
    assert_eq!(idp.hits(), 0);
    assert!(!auth.ready());
}

#[tokio::test]
async fn plain_http_is_for_loopback_only() {
    let mut settings = OAuthSettings::new("https://idp.example.com", AUDIENCE);
    settings.jwks_uri = Some("http://idp.example.com/.well-known/jwks.json".into());
    let error = Authenticator::new(settings.clone()).unwrap_err();
    assert!(error.contains("plain http") && error.contains("loopback"), "{error}");
    settings.jwks_uri = Some("http://10.0.0.8/jwks".into());
    assert!(Authenticator::new(settings.clone()).is_err());
    for loopback in [
        "http://127.0.0.1:8080/jwks",
        "http://localhost/jwks",
        "http://[::1]:9000/jwks",
    ] {
        settings.jwks_uri = Some(loopback.into());
        Authenticator::new(settings.clone()).unwrap();
    }
    settings.jwks_uri = Some("https://idp.example.com/jwks".into());
    Authenticator::new(settings).unwrap();
}

#[tokio::test]
async fn protected_resource_metadata() {
    let (idp, auth) = setup(|_| {}).await;
    let scopes = vec!["tickets:read".to_string(), "tickets:write".to_string()];
    assert_eq!(
        auth.metadata(&scopes, "Support replies"),
        json!({
            "resource": AUDIENCE,
            "authorization_servers": [idp.base],
            "scopes_supported": ["tickets:read", "tickets:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Support replies",
        })
    );
    assert_eq!(
        metadata_paths(AUDIENCE),
        [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/support-replies"
        ]
    );
    assert_eq!(
        auth.metadata_url(),
        "https://mcp.example.com/.well-known/oauth-protected-resource/support-replies"
    );
    assert_eq!(
        metadata_url(AUDIENCE, Some("http://127.0.0.1:7777")),
        "http://127.0.0.1:7777/.well-known/oauth-protected-resource/support-replies"
    );
    let token = sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &idp.claims());
    let caller = accept(&auth, &token).await;
    let required = ["tickets:read", "tickets:admin"];
    assert!(!caller.has_scopes(&required));
    assert_eq!(caller.missing_scopes(&required), ["tickets:admin"]);
    assert_eq!(
        insufficient_scope(&required, &auth.metadata_url()),
        "Bearer error=\"insufficient_scope\", scope=\"tickets:read tickets:admin\", \
         resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/support-replies\""
    );
}

#[tokio::test]
async fn scopes_come_from_scope_or_scp() {
    let (idp, auth) = setup(|_| {}).await;
    let mut claims = idp.claims();
    claims.as_object_mut().unwrap().remove("scope");
    claims.as_object_mut().unwrap().remove("azp");
    claims["scp"] = json!(["tickets:read", "drafts:write"]);
    claims["client_id"] = json!("cli-app");
    let caller = accept(&auth, &sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &claims)).await;
    assert!(caller.has_scopes(&["tickets:read", "drafts:write"]));
    assert_eq!(caller.scopes.len(), 2);
    assert_eq!(caller.client_id.as_deref(), Some("cli-app"));
    // Azure AD's `scp` is a space-separated string.
    claims["scp"] = json!("a b");
    claims["jti"] = json!("other");
    let caller = accept(&auth, &sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &claims)).await;
    assert_eq!(caller.scopes.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
    // No scope claim at all: no scopes.
    claims.as_object_mut().unwrap().remove("scp");
    claims["jti"] = json!("third");
    let caller = accept(&auth, &sign(Signer::Rsa, Algorithm::RS256, Some("rsa-1"), &claims)).await;
    assert!(caller.scopes.is_empty());
}

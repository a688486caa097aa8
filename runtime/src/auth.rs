//! OAuth 2.1 resource-server authentication for the HTTP transport: bearer
//! JWTs from the `Authorization` header, verified against the keys the
//! identity provider publishes (JWKS), and the RFC 9728 protected resource
//! metadata that tells clients where to get a token.
//!
//! A token is accepted when, in this order:
//! - it arrives as `Authorization: Bearer <token>` (scheme case-insensitive;
//!   never from a query string or a body);
//! - it is a signed JWT (JWS compact form) whose header names an allowed
//!   asymmetric algorithm: `none`, every `HS*` and anything not configured is
//!   refused before any key is looked at;
//! - the key it names (`kid`) is in the provider's key set and fits the
//!   algorithm (an RSA key for RS*/PS*, P-256 for ES256, P-384 for ES384,
//!   Ed25519 for EdDSA; the key's own `alg`, when published, must be equal).
//!   A token without `kid` is accepted only when exactly one key fits. Keys are
//!   never taken from the token itself (`jwk`, `jku`, `x5u` are ignored);
//! - the signature verifies, `exp` is present and not past, `nbf` (when
//!   present) is not ahead, both with the configured leeway;
//! - `iss` equals the configured issuer and `aud` (string or array) contains
//!   the configured audience, this server's resource URL;
//! - `sub` is present.
//!
//! The key set is fetched once at startup ([`Authenticator::refresh`]), again
//! when a token names an unknown key (at most once per
//! `refresh_min_interval`, however many such tokens arrive), and in the
//! background once it is older than `max_age`. A failed fetch keeps the keys
//! already held.
//!
//! Verified tokens are cached until they expire, keyed by their SHA-256: the
//! token itself is never stored, logged or echoed, and no error message
//! carries any part of it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::Uri;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The well-known path of RFC 9728 protected resource metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The algorithms a token may be signed with: asymmetric only, so the server
/// holds nothing that can mint a token.
pub const DEFAULT_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// How long one fetch of the key set or the provider's metadata may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set or metadata document read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Longest accepted token; real access tokens are a few kilobytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Verified tokens remembered at once.
const TOKEN_CACHE_CAPACITY: usize = 10_000;
/// Clock skew tolerated at most: more would keep expired tokens alive.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 4096;

/// Where the server finds its identity provider and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The provider's issuer identifier: a token's `iss` must equal it exactly.
    pub issuer: String,
    /// This server's resource URL (RFC 8707): a token's `aud` must contain it exactly.
    pub audience: String,
    /// Where the provider publishes its keys. When `None`, read from the
    /// issuer's metadata (`.well-known/oauth-authorization-server`, then
    /// `.well-known/openid-configuration`).
    pub jwks_uri: Option<String>,
    /// Accepted signing algorithms, a subset of [`DEFAULT_ALGORITHMS`].
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`; at most five minutes.
    pub leeway: Duration,
    /// Shortest time between two fetches of the key set caused by unknown keys.
    pub refresh_min_interval: Duration,
    /// Age after which the key set is fetched again in the background.
    pub max_age: Duration,
}

impl OAuthSettings {
    /// Settings with the defaults: every asymmetric algorithm, 30 s leeway,
    /// refetch at most every 30 s, keys renewed hourly, key set discovered.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> OAuthSettings {
        OAuthSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_uri: None,
            algorithms: DEFAULT_ALGORITHMS.iter().map(|s| s.to_string()).collect(),
            leeway: Duration::from_secs(30),
            refresh_min_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(3600),
        }
    }
}

/// Who called: the verified token's claims the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `sub`: the user (or the client, for machine tokens).
    pub subject: String,
    /// `azp`, else `client_id`: the OAuth client the token was issued to.
    pub client_id: Option<String>,
    /// From `scope` (space-separated) and `scp` (array or space-separated).
    pub scopes: BTreeSet<String>,
    /// `jti`, when the provider sets one.
    pub token_id: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The identity requests with this token act as, made at its first call
    /// and shared by the rest while the token is cached.
    identity: std::sync::OnceLock<Arc<super::controls::Identity>>,
}

impl Caller {
    /// Who an HTTP request with this token is from.
    pub fn identity(&self) -> Arc<super::controls::Identity> {
        self.identity
            .get_or_init(|| {
                Arc::new(super::controls::Identity {
                    subject: self.subject.clone(),
                    client: self.client_id.clone(),
                    scopes: Some(self.scopes.clone()),
                    transport: "http",
                })
            })
            .clone()
    }

    /// Whether the token grants every one of `required`.
    pub fn has_scopes<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required.iter().all(|scope| self.scopes.contains(scope.as_ref()))
    }

    /// The scopes of `required` the token lacks.
    pub fn missing_scopes<'a, S: AsRef<str>>(&self, required: &'a [S]) -> Vec<&'a str> {
        required
            .iter()
            .map(AsRef::as_ref)
            .filter(|scope| !self.scopes.contains(*scope))
            .collect()
    }
}

/// Why a request was not authenticated. [`AuthError::reason`] is stable (audit
/// logs, metric labels); the message (`Display`) is for people and never
/// contains any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    MissingToken,
    /// An `Authorization` header with another scheme than Bearer.
    UnsupportedScheme,
    /// Not a signed JWT: wrong shape, bad encoding, oversized, critical header extensions.
    MalformedToken,
    /// Signed with `none`, a symmetric (HS*) or an unconfigured algorithm.
    DisallowedAlgorithm,
    /// Names a key the provider does not publish (or none, where several fit).
    UnknownKey,
    /// The key it names does not fit its algorithm (e.g. an RS256 token naming an EC key).
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is past.
    Expired,
    /// `nbf` is ahead.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not contain this server's resource URL.
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is absent.
    MissingClaim(&'static str),
    /// The provider's keys could not be fetched, so the token cannot be checked.
    JwksUnavailable,
}

impl AuthError {
    /// A short, stable identifier.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::UnsupportedScheme => "unsupported_scheme",
            AuthError::MalformedToken => "malformed_token",
            AuthError::DisallowedAlgorithm => "disallowed_algorithm",
            AuthError::UnknownKey => "unknown_key",
            AuthError::KeyMismatch => "key_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::JwksUnavailable => "jwks_unavailable",
        }
    }

    /// The HTTP status to answer with: 503 when the keys are unavailable (the
    /// client should retry, not fetch a new token), 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::JwksUnavailable => 503,
            _ => 401,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750, RFC 9728): a bare challenge
    /// pointing at the metadata when the request carried no bearer token, with
    /// `error="invalid_token"` and a description when it carried a bad one.
    pub fn www_authenticate(&self, resource_metadata_url: &str) -> String {
        match self {
            AuthError::MissingToken | AuthError::UnsupportedScheme | AuthError::JwksUnavailable => {
                format!("Bearer resource_metadata={}", quoted(resource_metadata_url))
            }
            _ => format!(
                "Bearer error=\"invalid_token\", error_description={}, resource_metadata={}",
                quoted(&self.to_string()),
                quoted(resource_metadata_url)
            ),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MissingToken => f.write_str("no bearer token: send it as `Authorization: Bearer <token>`"),
            AuthError::UnsupportedScheme => f.write_str("the Authorization header does not use the Bearer scheme"),
            AuthError::MalformedToken => f.write_str("the bearer token is not a well-formed signed JWT"),
            AuthError::DisallowedAlgorithm => f.write_str("the token is signed with an algorithm this server refuses"),
            AuthError::UnknownKey => {
                f.write_str("the token is signed with a key the identity provider does not publish")
            }
            AuthError::KeyMismatch => f.write_str("the token's algorithm does not fit the key it names"),
            AuthError::BadSignature => f.write_str("the token's signature does not verify"),
            AuthError::Expired => f.write_str("the token has expired"),
            AuthError::NotYetValid => f.write_str("the token is not valid yet"),
            AuthError::WrongIssuer => f.write_str("the token was issued by another identity provider"),
            AuthError::WrongAudience => f.write_str("the token was issued for another resource"),
            AuthError::MissingClaim(claim) => write!(f, "the token has no `{claim}` claim"),
            AuthError::JwksUnavailable => {
                f.write_str("the identity provider's signing keys cannot be fetched; try again later")
            }
        }
    }
}

impl std::error::Error for AuthError {}

/// The `WWW-Authenticate` value for a 403: the token is valid but lacks scopes.
pub fn insufficient_scope<S: AsRef<str>>(required: &[S], resource_metadata_url: &str) -> String {
    let scopes: Vec<&str> = required.iter().map(AsRef::as_ref).collect();
    format!(
        "Bearer error=\"insufficient_scope\", scope={}, resource_metadata={}",
        quoted(&scopes.join(" ")),
        quoted(resource_metadata_url)
    )
}

/// The paths to serve the protected resource metadata at: the bare
/// well-known path and, when the resource URL has a path, the path-suffixed
/// form of RFC 9728 §3 (`https://mcp.example.com/support-replies` →
/// `/.well-known/oauth-protected-resource/support-replies`).
pub fn metadata_paths(audience: &str) -> Vec<String> {
    let mut paths = vec![METADATA_PATH.to_string()];
    let path = resource_path(audience);
    if !path.is_empty() {
        paths.push(format!("{METADATA_PATH}{path}"));
    }
    paths
}

/// The metadata URL for `WWW-Authenticate`: the audience's origin (or
/// `base_url`'s, when the server is reached elsewhere, e.g. on loopback in
/// tests), the well-known path, then the audience's path.
pub fn metadata_url(audience: &str, base_url: Option<&str>) -> String {
    let origin_of = |url: &str| match url.parse::<Uri>() {
        Ok(parsed) if parsed.scheme().is_some() && parsed.host().is_some() => origin(&parsed),
        _ => url.trim_end_matches('/').to_string(),
    };
    let origin = origin_of(base_url.unwrap_or(audience));
    format!("{origin}{METADATA_PATH}{}", resource_path(audience))
}

/// The audience's path without its trailing slash; empty for a bare origin.
fn resource_path(audience: &str) -> String {
    audience
        .parse::<Uri>()
        .map(|url| url.path().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// `scheme://host[:port]` of an absolute URL, lowercased, without the scheme's
/// default port: the serialization of its origin.
fn origin(url: &Uri) -> String {
    let scheme = url.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let host = url.host().unwrap_or_default().to_ascii_lowercase();
    match url.port_u16() {
        Some(port) if !matches!((scheme.as_str(), port), ("https", 443) | ("http", 80)) => {
            format!("{scheme}://{host}:{port}")
        }
        _ => format!("{scheme}://{host}"),
    }
}

/// A quoted-string for an auth-param, with anything a quoted-string cannot
/// carry plainly (quotes, backslashes, control and non-ASCII characters) replaced.
fn quoted(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    format!("\"{clean}\"")
}

/// Checks bearer tokens for one resource. Cheap to clone: everything is shared.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    issuer_url: Uri,
    audience: String,
    jwks_uri: Option<Uri>,
    algorithms: Vec<Algorithm>,
    /// One prepared validation per accepted algorithm.
    validations: Vec<(Algorithm, Validation)>,
    refresh_min_interval: Duration,
    max_age: Duration,
    fetcher: super::fetch::Fetcher,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching, so concurrent fetches collapse into one.
    fetch: tokio::sync::Mutex<FetchState>,
    /// Completed fetch attempts, read without the lock to notice a fetch made while waiting for it.
    attempts: AtomicU64,
    /// A background renewal of a stale key set is under way.
    renewing: AtomicBool,
    tokens: TokenCache,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_failed: bool,
    /// The key set URL read from the provider's metadata.
    discovered: Option<Uri>,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
    /// When the set was fetched; `None` until the first successful fetch.
    fetched_at: Option<Instant>,
}

struct Key {
    kid: Option<String>,
    /// The algorithm the provider pinned the key to, if it did.
    alg: Option<Algorithm>,
    kind: KeyKind,
    decoding: DecodingKey,
    /// The public key material, to notice keys withdrawn from the set.
    fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (
                KeyKind::Rsa,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (KeyKind::P256, Algorithm::ES256)
                | (KeyKind::P384, Algorithm::ES384)
                | (KeyKind::Ed25519, Algorithm::EdDSA)
        )
    }
}

impl Key {
    fn fits(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|pinned| pinned == alg)
    }
}

/// Why no key was picked for a token.
enum Miss {
    /// No key by that `kid` (or, without `kid`, none fits).
    Unknown,
    /// No `kid`, and several keys fit.
    Ambiguous,
    /// Keys by that `kid` exist, none fits the algorithm.
    Mismatch,
}

fn select(keys: &[Key], alg: Algorithm, kid: Option<&str>) -> Result<usize, Miss> {
    match kid {
        Some(kid) => {
            let mut named = keys
                .iter()
                .enumerate()
                .filter(|(_, key)| key.kid.as_deref() == Some(kid))
                .peekable();
            if named.peek().is_none() {
                return Err(Miss::Unknown);
            }
            named
                .find(|(_, key)| key.fits(alg))
                .map(|(i, _)| i)
                .ok_or(Miss::Mismatch)
        }
        None => {
            let mut fitting = keys.iter().enumerate().filter(|(_, key)| key.fits(alg));
            match (fitting.next(), fitting.next()) {
                (Some((i, _)), None) => Ok(i),
                (None, _) => Err(Miss::Unknown),
                (Some(_), Some(_)) => Err(Miss::Ambiguous),
            }
        }
    }
}

/// What asking for a fresh key set came to.
#[derive(Debug, PartialEq, Eq)]
enum Refetch {
    /// Fetched (by this call or one it waited for).
    Fetched,
    /// The latest attempt failed.
    Failed,
    /// Too soon after the last attempt.
    Skipped,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks_uri", &self.inner.jwks_uri.as_ref().map(Uri::to_string))
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Checks the settings and prepares the HTTP client; fetches nothing (see [`Authenticator::refresh`]).
    pub fn new(settings: OAuthSettings) -> Result<Authenticator, String> {
        let issuer_url = check_url("the OAuth issuer", &settings.issuer)?;
        if issuer_url.query().is_some() {
            return Err(format!(
                "the OAuth issuer `{}` has a query: an issuer identifier is a URL without query or fragment",
                settings.issuer
            ));
        }
        check_url("the OAuth audience (this server's resource URL)", &settings.audience)?;
        let jwks_uri = settings
            .jwks_uri
            .as_deref()
            .map(|uri| check_url("the JWKS URL", uri))
            .transpose()?;
        let algorithms = parse_algorithms(&settings.algorithms)?;
        super::jws::install();
        if settings.leeway > MAX_LEEWAY {
            return Err(format!(
                "the OAuth leeway of {} s is too long: at most {} s",
                settings.leeway.as_secs(),
                MAX_LEEWAY.as_secs()
            ));
        }
        if settings.refresh_min_interval.is_zero() {
            return Err(
                "the JWKS refresh interval must be positive: it bounds the fetches tokens with unknown keys cause"
                    .into(),
            );
        }
        if settings.max_age.is_zero() {
            return Err("the JWKS maximum age must be positive".into());
        }
        let leeway = settings.leeway.as_secs();
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut validation = Validation::new(alg);
                validation.leeway = leeway;
                validation.validate_exp = true;
                validation.validate_nbf = true;
                validation.validate_aud = true;
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                validation.set_issuer(&[settings.issuer.as_str()]);
                validation.set_audience(&[settings.audience.as_str()]);
                (alg, validation)
            })
            .collect();
        Ok(Authenticator {
            inner: Arc::new(Inner {
                issuer: settings.issuer,
                issuer_url,
                audience: settings.audience,
                jwks_uri,
                algorithms,
                validations,
                refresh_min_interval: settings.refresh_min_interval,
                max_age: settings.max_age,
                fetcher: super::fetch::Fetcher::new(FETCH_TIMEOUT, MAX_DOCUMENT_BYTES, check_url)?,
                keys: RwLock::new(Arc::new(KeySet::default())),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                attempts: AtomicU64::new(0),
                renewing: AtomicBool::new(false),
                tokens: TokenCache::new(TOKEN_CACHE_CAPACITY, leeway),
            }),
        })
    }

    /// Fetches the key set now (discovering its URL first if needed), whatever
    /// the refresh interval; at startup and for readiness. A failure keeps the
    /// keys held before.
    pub async fn refresh(&self) -> Result<(), String> {
        let mut state = self.inner.fetch.lock().await;
        self.inner.fetch_locked(&mut state).await.map(|_| ())
    }

    /// Whether a key set has been loaded at least once.
    pub fn ready(&self) -> bool {
        self.inner.current_keys().fetched_at.is_some()
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The configured audience: this server's resource URL.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Verified tokens currently cached (a gauge for metrics).
    pub fn cached_tokens(&self) -> usize {
        self.inner.tokens.len()
    }

    /// Checks the `Authorization` header value and returns who called.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<Caller>, AuthError> {
        let token = presented_token(authorization)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(caller) = self.inner.tokens.get(&digest, unix_now()) {
            return Ok(caller);
        }
        // Only a token that was well-formed is ever cached, so a hit needs no second look.
        if !well_formed(token) {
            return Err(AuthError::MalformedToken);
        }
        let header = TokenHeader::parse(token, &self.inner.algorithms)?;
        // Shared with the cache: a cached token's call copies no claim.
        let caller = Arc::new(self.verify(token, &header).await?);
        self.inner.tokens.insert(digest, caller.clone(), unix_now());
        Ok(caller)
    }

    /// The RFC 9728 protected resource metadata document.
    pub fn metadata(&self, scopes_supported: &[String], resource_name: &str) -> Value {
        let mut document = Map::new();
        document.insert("resource".into(), json!(self.inner.audience));
        document.insert("authorization_servers".into(), json!([self.inner.issuer]));
        if !scopes_supported.is_empty() {
            document.insert("scopes_supported".into(), json!(scopes_supported));
        }
        document.insert("bearer_methods_supported".into(), json!(["header"]));
        if !resource_name.is_empty() {
            document.insert("resource_name".into(), json!(resource_name));
        }
        Value::Object(document)
    }

    /// The metadata URL for `WWW-Authenticate`, on the audience's origin.
    pub fn metadata_url(&self) -> String {
        metadata_url(&self.inner.audience, None)
    }

    async fn verify(&self, token: &str, header: &TokenHeader) -> Result<Caller, AuthError> {
        let alg = header.alg;
        let kid = header.kid.as_deref();
        let mut keys = self.inner.current_keys();
        self.renew_if_stale(&keys);
        let index = match select(&keys.keys, alg, kid) {
            Ok(index) => index,
            Err(Miss::Mismatch) => return Err(AuthError::KeyMismatch),
            Err(Miss::Ambiguous) => return Err(AuthError::UnknownKey),
            Err(Miss::Unknown) => {
                let outcome = self.inner.refetch().await;
                keys = self.inner.current_keys();
                match select(&keys.keys, alg, kid) {
                    Ok(index) => index,
                    Err(Miss::Mismatch) => return Err(AuthError::KeyMismatch),
                    Err(Miss::Ambiguous) => return Err(AuthError::UnknownKey),
                    Err(Miss::Unknown) if outcome == Refetch::Failed || keys.fetched_at.is_none() => {
                        return Err(AuthError::JwksUnavailable);
                    }
                    Err(Miss::Unknown) => return Err(AuthError::UnknownKey),
                }
            }
        };
        let validation = self
            .inner
            .validations
            .iter()
            .find_map(|(a, validation)| (*a == alg).then_some(validation))
            .ok_or(AuthError::DisallowedAlgorithm)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &keys.keys[index].decoding, validation)
            .map_err(|e| jwt_error(e.kind()))?;
        caller_from_claims(&data.claims)
    }

    /// Starts a background fetch when the key set is older than `max_age`;
    /// requests go on with the keys held meanwhile.
    fn renew_if_stale(&self, keys: &KeySet) {
        let stale = keys.fetched_at.is_some_and(|at| at.elapsed() >= self.inner.max_age);
        if !stale || self.inner.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            struct Done(Arc<Inner>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.renewing.store(false, Ordering::Release);
                }
            }
            let done = Done(inner);
            let inner = &done.0;
            let mut state = inner.fetch.lock().await;
            let still_stale = inner
                .current_keys()
                .fetched_at
                .is_some_and(|at| at.elapsed() >= inner.max_age);
            let too_soon = state
                .last_attempt
                .is_some_and(|at| at.elapsed() < inner.refresh_min_interval);
            if still_stale && !too_soon {
                let _ = inner.fetch_locked(&mut state).await;
            }
        });
    }
}

impl Inner {
    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Fetches the key set for a token naming an unknown key, unless another
    /// fetch completed while waiting or the last attempt was too recent.
    async fn refetch(&self) -> Refetch {
        let seen = self.attempts.load(Ordering::Acquire);
        let mut state = self.fetch.lock().await;
        let recent = state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.refresh_min_interval);
        if self.attempts.load(Ordering::Acquire) != seen || recent {
            return if state.last_failed {
                Refetch::Failed
            } else if recent && self.attempts.load(Ordering::Acquire) == seen {
                Refetch::Skipped
            } else {
                Refetch::Fetched
            };
        }
        match self.fetch_locked(&mut state).await {
            Ok(_) => Refetch::Fetched,
            Err(_) => Refetch::Failed,
        }
    }

    /// One fetch attempt; the caller holds the fetch lock.
    async fn fetch_locked(&self, state: &mut FetchState) -> Result<usize, String> {
        state.last_attempt = Some(Instant::now());
        let result = self.load(state).await;
        state.last_failed = result.is_err();
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match &result {
            Ok(count) => tracing::debug!(keys = count, "loaded the identity provider's signing keys"),
            Err(e) => {
                // The discovered URL may be what changed: discover again next time.
                state.discovered = None;
                tracing::warn!(error = %e, "cannot refresh the identity provider's signing keys; keeping the old ones")
            }
        }
        result
    }

    async fn load(&self, state: &mut FetchState) -> Result<usize, String> {
        let uri = match (&self.jwks_uri, &state.discovered) {
            (Some(uri), _) | (None, Some(uri)) => uri.clone(),
            (None, None) => {
                let uri = self.discover().await?;
                state.discovered = Some(uri.clone());
                uri
            }
        };
        let document = self.fetcher.get_json(&uri).await?;
        let keys = parse_jwks(&document, &self.algorithms).map_err(|e| format!("the key set at {uri} {e}"))?;
        let count = keys.len();
        self.install(keys);
        Ok(count)
    }

    /// Swaps in a fetched key set. Tokens verified with a key that left the
    /// set are forgotten, so a withdrawn key stops working at once.
    fn install(&self, keys: Vec<Key>) {
        let withdrawn = {
            let mut slot = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            let withdrawn = slot
                .keys
                .iter()
                .any(|old| !keys.iter().any(|new| new.fingerprint == old.fingerprint));
            *slot = Arc::new(KeySet {
                keys,
                fetched_at: Some(Instant::now()),
            });
            withdrawn
        };
        if withdrawn {
            self.tokens.clear();
        }
    }

    /// Reads the key set URL from the issuer's metadata, trying the places
    /// RFC 8414 and OpenID Connect Discovery define, in the order the MCP
    /// authorization spec gives.
    async fn discover(&self) -> Result<Uri, String> {
        let mut failures = Vec::new();
        for url in discovery_urls(&self.issuer_url) {
            let document = match self.fetcher.get_json(&url).await {
                Ok(document) => document,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            if document.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
                failures.push(format!(
                    "the metadata at {url} is for another issuer than `{}`",
                    self.issuer
                ));
                continue;
            }
            let Some(jwks_uri) = document.get("jwks_uri").and_then(Value::as_str) else {
                failures.push(format!("the metadata at {url} has no `jwks_uri`"));
                continue;
            };
            match check_url(&format!("the JWKS URL published at {url}"), jwks_uri) {
                Ok(jwks_uri) => return Ok(jwks_uri),
                Err(e) => failures.push(e),
            }
        }
        Err(format!(
            "cannot discover the JWKS URL of `{}` (set it explicitly to skip discovery): {}",
            self.issuer,
            failures.join("; ")
        ))
    }
}

/// The metadata URLs to try for an issuer: with a path, RFC 8414's path
/// insertion, then OpenID's path insertion and appending; without, the two
/// well-known documents at the root.
fn discovery_urls(issuer: &Uri) -> Vec<Uri> {
    let path = issuer.path().trim_end_matches('/');
    let origin = format!(
        "{}://{}",
        issuer.scheme_str().unwrap_or("https"),
        issuer.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let at = |p: String| -> Option<Uri> { format!("{origin}{p}").parse().ok() };
    let urls = if path.is_empty() {
        vec![
            at("/.well-known/oauth-authorization-server".into()),
            at("/.well-known/openid-configuration".into()),
        ]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    };
    urls.into_iter().flatten().collect()
}

fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() {
        return Err(format!(
            "no OAuth token algorithm is allowed: list some of {}",
            DEFAULT_ALGORITHMS.join(", ")
        ));
    }
    let mut algorithms = Vec::new();
    for name in names {
        let Some(&(_, alg)) = ALGORITHMS.iter().find(|(n, _)| n == name) else {
            let why = if name.eq_ignore_ascii_case("none") {
                "unsigned tokens are never accepted".to_string()
            } else if name.to_ascii_uppercase().starts_with("HS") {
                "HMAC algorithms need a shared secret; a resource server verifies with the identity provider's \
                 public keys"
                    .to_string()
            } else {
                "not a supported JWS algorithm".to_string()
            };
            return Err(format!(
                "OAuth token algorithm `{name}` is refused: {why}; use some of {}",
                DEFAULT_ALGORITHMS.join(", ")
            ));
        };
        let feature = charter_surface::oauth_algorithm_feature(name).unwrap_or("oauth-*");
        if !super::jws::compiled(feature) {
            return Err(format!(
                "OAuth token algorithm `{name}` is not compiled into this server (the runtime's `{feature}` feature): \
                 regenerate the server with `charter generate`, which turns on the features of \
                 `access.oauth.algorithms`"
            ));
        }
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    Ok(algorithms)
}

/// An `https` URL, or `http` to a loopback host (local identity providers, tests).
fn check_url(what: &str, raw: &str) -> Result<Uri, String> {
    if raw.contains('#') {
        return Err(format!("{what} `{raw}` has a fragment: remove it"));
    }
    let url: Uri = raw
        .parse()
        .map_err(|e| format!("{what} `{raw}` is not an absolute URL: {e}"))?;
    let Some(scheme) = url.scheme_str() else {
        return Err(format!("{what} `{raw}` is not an absolute URL: it has no scheme"));
    };
    if url.host().is_none_or(str::is_empty) {
        return Err(format!("{what} `{raw}` has no host"));
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("{what} `{raw}` carries credentials: remove them"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "{what} `{raw}` uses plain http: use https (plain http is allowed only for loopback hosts such as \
                 127.0.0.1 or localhost)"
            ));
        }
        other => return Err(format!("{what} `{raw}` has scheme `{other}`: use https")),
    }
    Ok(url)
}

fn is_loopback(url: &Uri) -> bool {
    let host = url.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The usable signing keys of a JWKS document. Keys that cannot serve (other
/// uses, symmetric, unknown types, weak, or for no accepted algorithm) are
/// skipped; a set with none left is an error.
fn parse_jwks(document: &Value, algorithms: &[Algorithm]) -> Result<Vec<Key>, String> {
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("has no `keys` array")?;
    let mut keys = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match parse_jwk(entry, algorithms) {
            Ok(key) => keys.push(key),
            Err(why) => {
                let kid = entry.get("kid").and_then(Value::as_str).unwrap_or_default();
                tracing::debug!(index, kid, "skipping a key: {why}");
            }
        }
    }
    if keys.is_empty() {
        let accepted: Vec<&str> = ALGORITHMS
            .iter()
            .filter(|(_, alg)| algorithms.contains(alg))
            .map(|(name, _)| *name)
            .collect();
        return Err(format!("holds no signing key usable with {}", accepted.join(", ")));
    }
    Ok(keys)
}

fn parse_jwk(jwk: &Value, algorithms: &[Algorithm]) -> Result<Key, String> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let text = field(name).ok_or_else(|| format!("no `{name}`"))?;
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| format!("`{name}` is not base64url"))
    };
    let kty = field("kty").ok_or("no `kty`")?;
    if let Some(usage) = jwk.get("use")
        && usage.as_str() != Some("sig")
    {
        return Err("not a signing key (`use`)".into());
    }
    if let Some(ops) = jwk.get("key_ops")
        && !ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")))
    {
        return Err("not a verification key (`key_ops`)".into());
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => match ALGORITHMS.iter().find(|(n, _)| n == name) {
            Some(&(_, alg)) if algorithms.contains(&alg) => Some(alg),
            _ => return Err(format!("for algorithm `{name}`, which is not accepted")),
        },
        Some(_) => return Err("`alg` is not a string".into()),
    };
    let (kind, decoding, fingerprint) = match kty {
        "RSA" => {
            let n = bytes("n")?;
            let e = bytes("e")?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let bits = bit_length(n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "an RSA key of {bits} bits: at least {MIN_RSA_BITS} are required"
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!(
                    "an RSA key of {bits} bits: at most {MAX_RSA_BITS} are supported"
                ));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("an RSA key with an implausible exponent".into());
            }
            let fingerprint = format!("RSA:{}:{}", URL_SAFE_NO_PAD.encode(n), URL_SAFE_NO_PAD.encode(e));
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(n, e), fingerprint)
        }
        "EC" => {
            let (kind, size) = match field("crv") {
                Some("P-256") => (KeyKind::P256, 32),
                Some("P-384") => (KeyKind::P384, 48),
                other => return Err(format!("an EC key on an unsupported curve {other:?}")),
            };
            let x = bytes("x")?;
            let y = bytes("y")?;
            if x.len() != size || y.len() != size {
                return Err("an EC key with coordinates of the wrong length".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let fingerprint = format!("EC:{}", URL_SAFE_NO_PAD.encode(&point));
            (kind, DecodingKey::from_ec_der(&point), fingerprint)
        }
        "OKP" => {
            if field("crv") != Some("Ed25519") {
                return Err(format!("an OKP key on an unsupported curve {:?}", field("crv")));
            }
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err("an Ed25519 key of the wrong length".into());
            }
            let fingerprint = format!("OKP:{}", URL_SAFE_NO_PAD.encode(&x));
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x), fingerprint)
        }
        "oct" => return Err("a symmetric key: never used to verify tokens".into()),
        other => return Err(format!("an unsupported key type `{other}`")),
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err("its `alg` does not fit its key type".into());
    }
    if !algorithms.iter().any(|&alg| kind.fits(alg)) {
        return Err("no accepted algorithm uses this key type".into());
    }
    let kid = field("kid").map(String::from);
    let fingerprint = format!("{}|{fingerprint}", kid.as_deref().unwrap_or_default());
    Ok(Key {
        kid,
        alg,
        kind,
        decoding,
        fingerprint,
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.first() {
        Some(&top) => big_endian.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// The token from `Authorization: Bearer <token>` (RFC 6750 §2.1).
// The gate needs it only for token-exchange downstreams (feature `egress`); the tests hold it to RFC 6750.
#[cfg_attr(not(feature = "egress"), allow(dead_code))]
pub(crate) fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let token = presented_token(authorization)?;
    if well_formed(token) {
        Ok(token)
    } else {
        Err(AuthError::MalformedToken)
    }
}

/// The token after `Bearer `, within the size bound; its characters are not checked yet.
fn presented_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::UnsupportedScheme);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::MalformedToken);
    }
    Ok(token)
}

/// RFC 6750's `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn well_formed(token: &str) -> bool {
    let b64token = token.trim_end_matches('=');
    !b64token.is_empty()
        && b64token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// The parts of a JWS header needed before verification.
#[derive(Debug)]
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

impl TokenHeader {
    fn parse(token: &str, accepted: &[Algorithm]) -> Result<TokenHeader, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            // Five parts would be an encrypted JWT (JWE), which is not accepted either.
            return Err(AuthError::MalformedToken);
        };
        if header.is_empty() || payload.is_empty() {
            return Err(AuthError::MalformedToken);
        }
        let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| AuthError::MalformedToken)?;
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&bytes) else {
            return Err(AuthError::MalformedToken);
        };
        let name = fields
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(AuthError::MalformedToken)?;
        let alg = ALGORITHMS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, alg)| alg)
            .filter(|alg| accepted.contains(alg))
            .ok_or(AuthError::DisallowedAlgorithm)?;
        // RFC 7515 §4.1.11: critical extensions not understood make the token invalid; none are.
        if fields.contains_key("crit") {
            return Err(AuthError::MalformedToken);
        }
        let kid = match fields.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(AuthError::MalformedToken),
        };
        Ok(TokenHeader { alg, kid })
    }
}

fn jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            AuthError::DisallowedAlgorithm
        }
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(match claim.as_str() {
            "exp" => "exp",
            "iss" => "iss",
            "aud" => "aud",
            "sub" => "sub",
            _ => "required",
        }),
        _ => AuthError::MalformedToken,
    }
}

fn caller_from_claims(claims: &Map<String, Value>) -> Result<Caller, AuthError> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let subject = match claims.get("sub") {
        None | Some(Value::Null) => return Err(AuthError::MissingClaim("sub")),
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(_) => return Err(AuthError::MalformedToken),
    };
    let expires_at = match claims.get("exp") {
        Some(Value::Number(exp)) => exp
            .as_u64()
            .or_else(|| exp.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
            .ok_or(AuthError::MalformedToken)?,
        None => return Err(AuthError::MissingClaim("exp")),
        Some(_) => return Err(AuthError::MalformedToken),
    };
    let mut scopes = BTreeSet::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(list)) => scopes.extend(list.split_whitespace().map(String::from)),
            Some(Value::Array(items)) => scopes.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .flat_map(str::split_whitespace)
                    .map(String::from),
            ),
            _ => {}
        }
    }
    Ok(Caller {
        subject,
        client_id: text("azp").or_else(|| text("client_id")),
        scopes,
        token_id: text("jti"),
        expires_at,
        identity: std::sync::OnceLock::new(),
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Verified tokens by SHA-256, each valid until its `exp` (plus the leeway
/// verification allowed). Bounded: when full, expired entries go first, then
/// arbitrary ones.
struct TokenCache {
    entries: RwLock<HashMap<[u8; 32], Arc<Caller>>>,
    capacity: usize,
    leeway: u64,
}

impl TokenCache {
    fn new(capacity: usize, leeway: u64) -> TokenCache {
        TokenCache {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            leeway,
        }
    }

    fn live(&self, caller: &Caller, now: u64) -> bool {
        now <= caller.expires_at.saturating_add(self.leeway)
    }

    fn get(&self, digest: &[u8; 32], now: u64) -> Option<Arc<Caller>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(digest).filter(|caller| self.live(caller, now)).cloned()
    }

    fn insert(&self, digest: [u8; 32], caller: Arc<Caller>, now: u64) {
        if !self.live(&caller, now) {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            entries.retain(|_, cached| self.live(cached, now));
            if entries.len() >= self.capacity {
                let excess = entries.len() + 1 - self.capacity;
                let evict = excess.max(self.capacity / 10);
                let victims: Vec<[u8; 32]> = entries.keys().take(evict).copied().collect();
                for victim in victims {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(digest, caller);
    }

    fn clear(&self) {
        self.entries.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(subject: &str, expires_at: u64) -> Arc<Caller> {
        Arc::new(Caller {
            subject: subject.into(),
            client_id: None,
            scopes: BTreeSet::new(),
            token_id: None,
            expires_at,
            identity: std::sync::OnceLock::new(),
        })
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("")), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("   ")), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("Bearer a.b.c")), Ok("a.b.c"));
        assert_eq!(bearer_token(Some("bearer a.b.c")), Ok("a.b.c"));
        assert_eq!(bearer_token(Some("BEARER   a.b.c ")), Ok("a.b.c"));
        assert_eq!(bearer_token(Some("Bearer abc==")), Ok("abc=="));
        assert_eq!(
            bearer_token(Some("Basic dXNlcjpwYXNz")),
            Err(AuthError::UnsupportedScheme)
        );
        assert_eq!(bearer_token(Some("a.b.c")), Err(AuthError::UnsupportedScheme));
        assert_eq!(bearer_token(Some("Bearertoken")), Err(AuthError::UnsupportedScheme));
        assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::MalformedToken));
        assert_eq!(bearer_token(Some("Bearer ")), Err(AuthError::MalformedToken));
        assert_eq!(bearer_token(Some("Bearer a b")), Err(AuthError::MalformedToken));
        assert_eq!(bearer_token(Some("Bearer a,b")), Err(AuthError::MalformedToken));
        assert_eq!(bearer_token(Some("Bearer ===")), Err(AuthError::MalformedToken));
        assert_eq!(bearer_token(Some("Bearer a=b")), Err(AuthError::MalformedToken));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(bearer_token(Some(&long)), Err(AuthError::MalformedToken));
    }

    #[test]
    fn header_parsing() {
        let all = [Algorithm::RS256, Algorithm::ES256];
        let token = |header: Value| format!("{}.{}.sig", b64(&header), b64(&json!({"sub": "x"})));
        let parsed = TokenHeader::parse(&token(json!({"alg": "RS256", "kid": "k1"})), &all).unwrap();
        assert_eq!((parsed.alg, parsed.kid.as_deref()), (Algorithm::RS256, Some("k1")));
        assert!(
            TokenHeader::parse(&token(json!({"alg": "ES256"})), &all)
                .unwrap()
                .kid
                .is_none()
        );
        for alg in ["none", "None", "HS256", "HS384", "HS512", "RS1", ""] {
            let err = TokenHeader::parse(&token(json!({"alg": alg})), &all).unwrap_err();
            assert_eq!(err, AuthError::DisallowedAlgorithm, "{alg}");
        }
        // Allowed by the library, not by this configuration.
        let err = TokenHeader::parse(&token(json!({"alg": "PS256"})), &all).unwrap_err();
        assert_eq!(err, AuthError::DisallowedAlgorithm);
        let malformed = [
            "abc".to_string(),
            "a.b".to_string(),
            "a.b.c.d.e".to_string(),
            format!(".{}.sig", b64(&json!({}))),
            format!("{}..sig", b64(&json!({"alg": "RS256"}))),
            format!("%%%.{}.sig", b64(&json!({}))),
            token(json!(["RS256"])),
            token(json!({"kid": "k1"})),
            token(json!({"alg": "RS256", "kid": 7})),
            token(json!({"alg": "RS256", "crit": ["exp"]})),
        ];
        for token in malformed {
            assert_eq!(
                TokenHeader::parse(&token, &all).unwrap_err(),
                AuthError::MalformedToken,
                "{token}"
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        let ok = OAuthSettings::new("https://idp.example.com", "https://mcp.example.com/support");
        Authenticator::new(ok.clone()).unwrap();
        let refused = |change: &dyn Fn(&mut OAuthSettings), needle: &str| {
            let mut settings = ok.clone();
            change(&mut settings);
            let err = Authenticator::new(settings).unwrap_err();
            assert!(err.contains(needle), "{err}");
        };
        refused(&|s| s.algorithms = vec!["HS256".into()], "HMAC");
        refused(&|s| s.algorithms = vec!["RS256".into(), "none".into()], "unsigned");
        refused(&|s| s.algorithms = vec!["RSA-OAEP".into()], "not a supported");
        refused(&|s| s.algorithms.clear(), "no OAuth token algorithm");
        refused(
            &|s| s.jwks_uri = Some("http://idp.example.com/jwks".into()),
            "plain http",
        );
        refused(
            &|s| s.jwks_uri = Some("ftp://idp.example.com/jwks".into()),
            "scheme `ftp`",
        );
        refused(&|s| s.jwks_uri = Some("/jwks".into()), "not an absolute URL");
        refused(
            &|s| s.jwks_uri = Some("https://u:p@idp.example.com/jwks".into()),
            "credentials",
        );
        refused(&|s| s.issuer = "http://idp.example.com".into(), "plain http");
        refused(&|s| s.issuer = "https://idp.example.com?x=1".into(), "query");
        refused(&|s| s.audience = "mcp.example.com".into(), "not an absolute URL");
        refused(&|s| s.audience = "https://mcp.example.com/#x".into(), "fragment");
        refused(&|s| s.leeway = Duration::from_secs(3600), "leeway");
        refused(&|s| s.refresh_min_interval = Duration::ZERO, "interval");
        let mut local = ok.clone();
        local.issuer = "http://127.0.0.1:9/".into();
        local.jwks_uri = Some("http://localhost:9/jwks".into());
        local.audience = "http://[::1]:8080/mcp".into();
        Authenticator::new(local).unwrap();
    }

    #[test]
    fn jwk_rules() {
        let all: Vec<Algorithm> = ALGORITHMS.iter().map(|&(_, alg)| alg).collect();
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 256]);
        let e = URL_SAFE_NO_PAD.encode([1u8, 0, 1]);
        let xy = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let rsa = parse_jwk(&json!({"kty": "RSA", "kid": "r", "n": n, "e": e}), &all).unwrap();
        assert_eq!(rsa.kind, KeyKind::Rsa);
        assert!(rsa.fits(Algorithm::RS256) && rsa.fits(Algorithm::PS512) && !rsa.fits(Algorithm::ES256));
        let pinned = parse_jwk(
            &json!({"kty": "RSA", "alg": "RS256", "use": "sig", "n": n, "e": e}),
            &all,
        )
        .unwrap();
        assert!(pinned.fits(Algorithm::RS256) && !pinned.fits(Algorithm::PS256));
        let ec = parse_jwk(&json!({"kty": "EC", "crv": "P-256", "x": xy, "y": xy}), &all).unwrap();
        assert!(ec.fits(Algorithm::ES256) && !ec.fits(Algorithm::ES384) && !ec.fits(Algorithm::RS256));
        let ed = parse_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": xy}), &all).unwrap();
        assert!(ed.fits(Algorithm::EdDSA));

        let skipped = [
            json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}),
            json!({"kty": "RSA", "use": "enc", "n": n, "e": e}),
            json!({"kty": "RSA", "key_ops": ["encrypt"], "n": n, "e": e}),
            json!({"kty": "RSA", "alg": "HS256", "n": n, "e": e}),
            json!({"kty": "RSA", "alg": "ES256", "n": n, "e": e}),
            json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 128]), "e": e}),
            json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 1024]), "e": e}),
            json!({"kty": "RSA", "n": n}),
            json!({"kty": "EC", "crv": "P-521", "x": xy, "y": xy}),
            json!({"kty": "EC", "crv": "P-384", "x": xy, "y": xy}),
            json!({"kty": "OKP", "crv": "X25519", "x": xy}),
            json!({"kty": "PQC"}),
            json!({"n": n, "e": e}),
        ];
        for jwk in skipped {
            assert!(parse_jwk(&jwk, &all).is_err(), "{jwk}");
        }
        // A key for no configured algorithm is skipped too.
        assert!(parse_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": xy}), &[Algorithm::RS256]).is_err());
        assert!(
            parse_jwks(&json!({"keys": []}), &all)
                .err()
                .unwrap()
                .contains("no signing key")
        );
        assert!(parse_jwks(&json!({"no": "keys"}), &all).is_err());
        let set = parse_jwks(
            &json!({"keys": [{"kty": "oct", "k": "AA"}, {"kty": "RSA", "n": n, "e": e}]}),
            &all,
        )
        .unwrap();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn key_selection() {
        let all: Vec<Algorithm> = ALGORITHMS.iter().map(|&(_, alg)| alg).collect();
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 256]);
        let e = URL_SAFE_NO_PAD.encode([1u8, 0, 1]);
        let xy = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let keys: Vec<Key> = [
            json!({"kty": "RSA", "kid": "r1", "n": n, "e": e}),
            json!({"kty": "RSA", "kid": "r2", "n": n, "e": e}),
            json!({"kty": "EC", "kid": "e1", "crv": "P-256", "x": xy, "y": xy}),
        ]
        .iter()
        .map(|jwk| parse_jwk(jwk, &all).unwrap())
        .collect();
        assert!(matches!(select(&keys, Algorithm::RS256, Some("r2")), Ok(1)));
        assert!(matches!(
            select(&keys, Algorithm::RS256, Some("e1")),
            Err(Miss::Mismatch)
        ));
        assert!(matches!(
            select(&keys, Algorithm::RS256, Some("zz")),
            Err(Miss::Unknown)
        ));
        assert!(matches!(select(&keys, Algorithm::ES256, None), Ok(2)));
        assert!(matches!(select(&keys, Algorithm::RS256, None), Err(Miss::Ambiguous)));
        assert!(matches!(select(&keys, Algorithm::EdDSA, None), Err(Miss::Unknown)));
    }

    #[test]
    fn token_cache_expires_and_stays_bounded() {
        let cache = TokenCache::new(10, 5);
        cache.insert([1; 32], caller("a", 100), 50);
        assert_eq!(cache.get(&[1; 32], 100).unwrap().subject, "a");
        assert!(cache.get(&[1; 32], 105).is_some(), "within the leeway");
        assert!(cache.get(&[1; 32], 106).is_none(), "expired");
        assert!(cache.get(&[2; 32], 50).is_none());
        // Already expired: not stored.
        cache.insert([3; 32], caller("c", 10), 50);
        assert!(cache.get(&[3; 32], 10).is_none());

        let cache = TokenCache::new(10, 0);
        for i in 0..5u8 {
            cache.insert([i; 32], caller("old", 100), 0);
        }
        for i in 5..10u8 {
            cache.insert([i; 32], caller("new", 1000), 0);
        }
        assert_eq!(cache.len(), 10);
        // Full: the expired entries go first.
        cache.insert([10; 32], caller("newest", 1000), 200);
        assert_eq!(cache.len(), 6);
        assert!((5..=10u8).all(|i| cache.get(&[i; 32], 200).is_some()));
        // Full of live entries: some arbitrary ones go, never beyond capacity.
        for i in 11..100u8 {
            cache.insert([i; 32], caller("live", 1000), 200);
            assert!(cache.len() <= 10);
        }
        assert!(cache.get(&[99; 32], 200).is_some());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn claims_to_caller() {
        let claims = |value: Value| value.as_object().unwrap().clone();
        let c = caller_from_claims(&claims(json!({
            "sub": "user-1", "exp": 2000, "azp": "app", "client_id": "other", "jti": "t1",
            "scope": "read  write", "scp": ["admin", "read"]
        })))
        .unwrap();
        assert_eq!(c.subject, "user-1");
        assert_eq!(c.client_id.as_deref(), Some("app"));
        assert_eq!(c.token_id.as_deref(), Some("t1"));
        assert_eq!(c.expires_at, 2000);
        assert_eq!(
            c.scopes.iter().map(String::as_str).collect::<Vec<_>>(),
            ["admin", "read", "write"]
        );
        assert!(c.has_scopes(&["read", "admin"]));
        assert_eq!(c.missing_scopes(&["read", "delete"]), ["delete"]);
        let c = caller_from_claims(&claims(
            json!({"sub": "s", "exp": 5.5, "client_id": "cli", "scp": "a b"}),
        ))
        .unwrap();
        assert_eq!(
            (c.client_id.as_deref(), c.expires_at, c.scopes.len()),
            (Some("cli"), 5, 2)
        );
        assert_eq!(
            caller_from_claims(&claims(json!({"exp": 1}))),
            Err(AuthError::MissingClaim("sub"))
        );
        assert_eq!(
            caller_from_claims(&claims(json!({"sub": 3, "exp": 1}))),
            Err(AuthError::MalformedToken)
        );
        assert_eq!(
            caller_from_claims(&claims(json!({"sub": "s"}))),
            Err(AuthError::MissingClaim("exp"))
        );
    }

    #[test]
    fn challenges() {
        let url = "https://mcp.example.com/.well-known/oauth-protected-resource/support";
        assert_eq!(
            AuthError::MissingToken.www_authenticate(url),
            format!("Bearer resource_metadata=\"{url}\"")
        );
        assert_eq!(
            AuthError::Expired.www_authenticate(url),
            format!(
                "Bearer error=\"invalid_token\", error_description=\"the token has expired\", \
                 resource_metadata=\"{url}\""
            )
        );
        let challenge = AuthError::KeyMismatch.www_authenticate(url);
        assert!(
            challenge.contains("error_description=\"the token's algorithm"),
            "{challenge}"
        );
        assert_eq!(
            insufficient_scope(&["tickets:write", "tickets:read"], url),
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"tickets:write tickets:read\", \
                 resource_metadata=\"{url}\""
            )
        );
        assert_eq!(quoted("a\"b\\c\nd"), "\"a'b'c?d\"");
        assert_eq!(AuthError::JwksUnavailable.status(), 503);
        assert_eq!(AuthError::BadSignature.status(), 401);
        assert_eq!(AuthError::MissingClaim("sub").reason(), "missing_claim");
    }

    #[test]
    fn metadata_locations() {
        assert_eq!(
            metadata_paths("https://mcp.example.com/support-replies"),
            [
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/support-replies"
            ]
        );
        assert_eq!(
            metadata_paths("https://mcp.example.com/a/b/"),
            [
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/a/b"
            ]
        );
        assert_eq!(
            metadata_paths("https://mcp.example.com"),
            ["/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            metadata_paths("https://mcp.example.com/"),
            ["/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            metadata_url("https://mcp.example.com/support-replies", None),
            "https://mcp.example.com/.well-known/oauth-protected-resource/support-replies"
        );
        assert_eq!(
            metadata_url("https://mcp.example.com:8443/mcp?x=1", None),
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp", Some("http://127.0.0.1:4000/")),
            "http://127.0.0.1:4000/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://mcp.example.com", None),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn discovery_locations() {
        let urls = |issuer: &str| -> Vec<String> {
            discovery_urls(&issuer.parse().unwrap())
                .iter()
                .map(|u| u.to_string())
                .collect()
        };
        assert_eq!(
            urls("https://idp.example.com"),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server",
                "https://idp.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            urls("https://idp.example.com/tenant/"),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server/tenant",
                "https://idp.example.com/.well-known/openid-configuration/tenant",
                "https://idp.example.com/tenant/.well-known/openid-configuration"
            ]
        );
    }
}

//! A stand-in identity provider on loopback: a P-256 key made at start, its
//! public half served as a JWKS, and ES256 access tokens (the contract's
//! `algorithms: [ES256]`) minted with it.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey as _;
use serde_json::json;

const KEY_ID: &str = "control-overhead-1";

pub struct Idp {
    key: EncodingKey,
    /// `http://127.0.0.1:PORT`: the issuer, and the origin the JWKS is served from.
    pub issuer: String,
}

impl Idp {
    /// Makes a key and serves its JWKS at `{issuer}/jwks` on the current tokio runtime.
    pub async fn start() -> Result<Idp, String> {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| format!("cannot encode the test key: {e}"))?;
        let key = EncodingKey::from_ec_der(der.as_bytes());
        let jwk =
            Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|e| format!("no JWK for the test key: {e}"))?;
        let mut jwk = serde_json::to_value(jwk).map_err(|e| e.to_string())?;
        jwk["kid"] = json!(KEY_ID);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        let jwks = json!({ "keys": [jwk] });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen for the JWKS: {e}"))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
        let body = serde_json::to_string(&jwks).map_err(|e| e.to_string())?;
        let router = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Idp {
            key,
            issuer: format!("http://{addr}"),
        })
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// An access token for `subject`, valid for an hour, carrying `scope`.
    pub fn mint(&self, audience: &str, subject: &str, scope: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let claims = json!({
            "iss": self.issuer,
            "aud": audience,
            "sub": subject,
            "azp": "control-overhead",
            "scope": scope,
            "iat": now,
            "exp": now + 3600,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KEY_ID.into());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| format!("cannot sign a token: {e}"))
    }
}

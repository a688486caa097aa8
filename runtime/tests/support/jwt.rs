//! Signs test tokens as an identity provider would, with the test's own keys.
//! Not through jsonwebtoken: the runtime installs a provider of its own that
//! verifies and never signs, and that provider is what the tests exercise.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A private key of one of the families an identity provider signs with.
#[allow(dead_code)] // each test file uses some of them
pub enum Key<'a> {
    Rsa(&'a rsa::RsaPrivateKey),
    P256(&'a p256::ecdsa::SigningKey),
    P384(&'a p384::ecdsa::SigningKey),
    Ed25519(&'a ed25519_dalek::SigningKey),
    /// A shared secret, for the HMAC tokens a resource server must refuse.
    Hmac(&'a [u8]),
}

/// A compact JWS of `claims` with the header `{"typ":"JWT","alg":alg,"kid":kid}`.
/// Panics when `alg` does not fit the key: a mistake in the test itself.
#[allow(dead_code)]
pub fn sign(alg: &str, kid: Option<&str>, claims: &Value, key: Key<'_>) -> String {
    let mut header = json!({"typ": "JWT", "alg": alg});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signature(alg, message.as_bytes(), key);
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn signature(alg: &str, message: &[u8], key: Key<'_>) -> Vec<u8> {
    use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _};
    use sha2::{Sha256, Sha384, Sha512};
    let mut rng = rand_core::OsRng;
    match (alg, key) {
        ("RS256", Key::Rsa(k)) => rsa::pkcs1v15::SigningKey::<Sha256>::new(k.clone())
            .sign(message)
            .to_vec(),
        ("RS384", Key::Rsa(k)) => rsa::pkcs1v15::SigningKey::<Sha384>::new(k.clone())
            .sign(message)
            .to_vec(),
        ("RS512", Key::Rsa(k)) => rsa::pkcs1v15::SigningKey::<Sha512>::new(k.clone())
            .sign(message)
            .to_vec(),
        ("PS256", Key::Rsa(k)) => rsa::pss::BlindedSigningKey::<Sha256>::new(k.clone())
            .sign_with_rng(&mut rng, message)
            .to_vec(),
        ("PS384", Key::Rsa(k)) => rsa::pss::BlindedSigningKey::<Sha384>::new(k.clone())
            .sign_with_rng(&mut rng, message)
            .to_vec(),
        ("PS512", Key::Rsa(k)) => rsa::pss::BlindedSigningKey::<Sha512>::new(k.clone())
            .sign_with_rng(&mut rng, message)
            .to_vec(),
        ("ES256", Key::P256(k)) => {
            let signature: p256::ecdsa::Signature = k.sign(message);
            signature.to_bytes().to_vec()
        }
        ("ES384", Key::P384(k)) => {
            let signature: p384::ecdsa::Signature = k.sign(message);
            signature.to_bytes().to_vec()
        }
        ("EdDSA", Key::Ed25519(k)) => k.sign(message).to_bytes().to_vec(),
        ("HS256", Key::Hmac(secret)) => hmac::<hmac::Hmac<Sha256>>(secret, message),
        ("HS384", Key::Hmac(secret)) => hmac::<hmac::Hmac<Sha384>>(secret, message),
        ("HS512", Key::Hmac(secret)) => hmac::<hmac::Hmac<Sha512>>(secret, message),
        (alg, _) => panic!("the test signs {alg} with a key of another family"),
    }
}

fn hmac<M: hmac::Mac + hmac::digest::KeyInit>(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

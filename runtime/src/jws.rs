//! Token signatures, checked with only the algorithms the contract accepts.
//!
//! jsonwebtoken parses tokens and checks their claims; the signature itself is
//! checked by the [`CryptoProvider`] here, built on RustCrypto with each family
//! behind a feature of its own: `oauth-rsa` (RS256 to PS512), `oauth-es256`,
//! `oauth-es384`, `oauth-eddsa`. `charter generate` turns on those of
//! `access.oauth.algorithms`, so an ES256 contract compiles no RSA, P-384 or
//! Ed25519 code (jsonwebtoken's own `rust_crypto` provider compiles all four).
//!
//! The provider verifies and never signs: a resource server holds no key that
//! can mint a token. It is installed as jsonwebtoken's process-wide provider
//! when the authenticator starts. A handler that signs tokens with
//! jsonwebtoken installs its own provider before the server starts
//! (`CryptoProvider::install_default`); that one then serves both, and must
//! verify the contract's algorithms (jsonwebtoken's built-in ones do).

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Whether this build has the signature family `feature` (one of
/// [`charter_surface::OAUTH_ALGORITHM_FEATURES`], as
/// [`charter_surface::oauth_algorithm_feature`] names it for an algorithm).
pub fn compiled(feature: &str) -> bool {
    (feature == "oauth-rsa" && cfg!(feature = "oauth-rsa"))
        || (feature == "oauth-es256" && cfg!(feature = "oauth-es256"))
        || (feature == "oauth-es384" && cfg!(feature = "oauth-es384"))
        || (feature == "oauth-eddsa" && cfg!(feature = "oauth-eddsa"))
}

/// Makes this module's provider jsonwebtoken's, unless one is installed.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = PROVIDER.install_default();
    });
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: |_, _| Err(refused()),
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(refused()),
        rsa_pub_components_from_public_key: |_| Err(refused()),
        ec_pub_components_from_private_key: |_, _| Err(refused()),
        ed_pub_components_from_private_key: |_, _| Err(refused()),
        compute_digest: |_, _| Err(refused()),
    },
};

/// What the provider answers for anything but verifying a compiled algorithm.
fn refused() -> Error {
    ErrorKind::InvalidAlgorithm.into()
}

/// One key, parsed once per verification, for one algorithm.
enum Key {
    /// For RS256 to PS512: the verifier's algorithm picks the padding and the digest.
    #[cfg(feature = "oauth-rsa")]
    Rsa(rsa::RsaPublicKey),
    #[cfg(feature = "oauth-es256")]
    P256(p256::ecdsa::VerifyingKey),
    #[cfg(feature = "oauth-es384")]
    P384(p384::ecdsa::VerifyingKey),
    #[cfg(feature = "oauth-eddsa")]
    Ed25519(ed25519_dalek::VerifyingKey),
}

struct ContractVerifier {
    alg: Algorithm,
    key: Key,
}

// Without any `oauth-*` algorithm feature every key is refused.
#[allow(unreachable_code, unused_variables)]
fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let key = match (alg, key.kind()) {
        #[cfg(feature = "oauth-rsa")]
        (
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
            jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e },
        ) => Key::Rsa(
            rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?,
        ),
        #[cfg(feature = "oauth-es256")]
        (Algorithm::ES256, jsonwebtoken::DecodingKeyKind::SecretOrDer(point)) => {
            Key::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| ErrorKind::InvalidEcdsaKey)?)
        }
        #[cfg(feature = "oauth-es384")]
        (Algorithm::ES384, jsonwebtoken::DecodingKeyKind::SecretOrDer(point)) => {
            Key::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| ErrorKind::InvalidEcdsaKey)?)
        }
        #[cfg(feature = "oauth-eddsa")]
        (Algorithm::EdDSA, jsonwebtoken::DecodingKeyKind::SecretOrDer(x)) => {
            let x: &[u8; 32] = x.as_slice().try_into().map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Key::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(x).map_err(|_| ErrorKind::InvalidEddsaKey)?)
        }
        _ => return Err(refused()),
    };
    Ok(Box::new(ContractVerifier { alg: *alg, key }))
}

impl Verifier<Vec<u8>> for ContractVerifier {
    #[allow(unused_variables)] // without any `oauth-*` algorithm feature
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        match &self.key {
            #[cfg(feature = "oauth-rsa")]
            Key::Rsa(key) => {
                use rsa::{Pkcs1v15Sign, Pss};
                use sha2::{Sha256, Sha384, Sha512};
                match self.alg {
                    Algorithm::RS256 => rsa_verify::<Sha256>(key, Pkcs1v15Sign::new::<Sha256>(), message, signature),
                    Algorithm::RS384 => rsa_verify::<Sha384>(key, Pkcs1v15Sign::new::<Sha384>(), message, signature),
                    Algorithm::RS512 => rsa_verify::<Sha512>(key, Pkcs1v15Sign::new::<Sha512>(), message, signature),
                    Algorithm::PS256 => rsa_verify::<Sha256>(key, Pss::new::<Sha256>(), message, signature),
                    Algorithm::PS384 => rsa_verify::<Sha384>(key, Pss::new::<Sha384>(), message, signature),
                    Algorithm::PS512 => rsa_verify::<Sha512>(key, Pss::new::<Sha512>(), message, signature),
                    // `verifier` pairs an RSA key with the six algorithms above only.
                    _ => Err(signature::Error::new()),
                }
            }
            #[cfg(feature = "oauth-es256")]
            Key::P256(key) => {
                let signature = p256::ecdsa::Signature::from_slice(signature)?;
                key.verify(message, &signature)
            }
            #[cfg(feature = "oauth-es384")]
            Key::P384(key) => {
                let signature = p384::ecdsa::Signature::from_slice(signature)?;
                key.verify(message, &signature)
            }
            #[cfg(feature = "oauth-eddsa")]
            Key::Ed25519(key) => {
                let signature = ed25519_dalek::Signature::from_slice(signature)?;
                key.verify_strict(message, &signature)
            }
            #[cfg(not(any(
                feature = "oauth-rsa",
                feature = "oauth-es256",
                feature = "oauth-es384",
                feature = "oauth-eddsa"
            )))]
            _ => Err(signature::Error::new()),
        }
    }
}

/// An RSA signature over the `H` digest of `message`, in `scheme`.
#[cfg(feature = "oauth-rsa")]
fn rsa_verify<H: sha2::Digest>(
    key: &rsa::RsaPublicKey,
    scheme: impl rsa::traits::SignatureScheme,
    message: &[u8],
    signature: &[u8],
) -> Result<(), signature::Error> {
    key.verify(scheme, &H::digest(message), signature)
        .map_err(signature::Error::from_source)
}

impl JwtVerifier for ContractVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

#[cfg(all(test, feature = "oauth-rsa", feature = "oauth-es256"))]
mod tests {
    use super::*;

    #[test]
    fn it_verifies_only_and_only_keys_of_the_tokens_family() {
        let family = |alg: &str| charter_surface::oauth_algorithm_feature(alg);
        assert!(compiled(family("RS256").unwrap()) && compiled(family("ES256").unwrap()));
        assert!(family("HS256").is_none() && family("HS512").is_none() && family("none").is_none());
        assert!(!compiled("oauth-*") && !compiled("hs256"));
        // Never a signer, not even for an HMAC secret.
        let secret = jsonwebtoken::EncodingKey::from_secret(b"secret");
        assert!((PROVIDER.signer_factory)(&Algorithm::HS256, &secret).is_err());
        assert!((PROVIDER.signer_factory)(&Algorithm::ES256, &secret).is_err());
        // An RSA key never checks an EC signature, nor an EC point an RSA one; HMAC never.
        let rsa = DecodingKey::from_rsa_raw_components(&[0xc5; 256], &[1, 0, 1]);
        assert!(verifier(&Algorithm::ES256, &rsa).is_err());
        assert!(verifier(&Algorithm::RS256, &rsa).is_ok());
        let point = DecodingKey::from_ec_der(&[4; 65]);
        assert!(verifier(&Algorithm::RS256, &point).is_err());
        assert!(verifier(&Algorithm::HS256, &DecodingKey::from_secret(b"secret")).is_err());
    }
}

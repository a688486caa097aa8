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

/// Whether this build can check signatures made with `alg`.
pub fn compiled(alg: Algorithm) -> bool {
    let rsa = matches!(
        alg,
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
    );
    (rsa && cfg!(feature = "oauth-rsa"))
        || (alg == Algorithm::ES256 && cfg!(feature = "oauth-es256"))
        || (alg == Algorithm::ES384 && cfg!(feature = "oauth-es384"))
        || (alg == Algorithm::EdDSA && cfg!(feature = "oauth-eddsa"))
}

/// The runtime feature that compiles `alg` in, for error messages.
pub fn feature(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "oauth-es256",
        Algorithm::ES384 => "oauth-es384",
        Algorithm::EdDSA => "oauth-eddsa",
        _ => "oauth-rsa",
    }
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
    #[cfg(feature = "oauth-rsa")]
    Rsa(rsa::RsaPublicKey, Rsa),
    #[cfg(feature = "oauth-es256")]
    P256(p256::ecdsa::VerifyingKey),
    #[cfg(feature = "oauth-es384")]
    P384(p384::ecdsa::VerifyingKey),
    #[cfg(feature = "oauth-eddsa")]
    Ed25519(ed25519_dalek::VerifyingKey),
}

#[cfg(feature = "oauth-rsa")]
#[derive(Clone, Copy)]
enum Rsa {
    Pkcs1(u16),
    Pss(u16),
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
        (alg, jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e }) => {
            let scheme = match alg {
                Algorithm::RS256 => Rsa::Pkcs1(256),
                Algorithm::RS384 => Rsa::Pkcs1(384),
                Algorithm::RS512 => Rsa::Pkcs1(512),
                Algorithm::PS256 => Rsa::Pss(256),
                Algorithm::PS384 => Rsa::Pss(384),
                Algorithm::PS512 => Rsa::Pss(512),
                _ => return Err(refused()),
            };
            let key = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
            Key::Rsa(key, scheme)
        }
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
            Key::Rsa(key, scheme) => {
                use rsa::{Pkcs1v15Sign, Pss};
                use sha2::{Sha256, Sha384, Sha512};
                match *scheme {
                    Rsa::Pkcs1(256) => rsa_verify::<Sha256>(key, Pkcs1v15Sign::new::<Sha256>(), message, signature),
                    Rsa::Pkcs1(384) => rsa_verify::<Sha384>(key, Pkcs1v15Sign::new::<Sha384>(), message, signature),
                    Rsa::Pkcs1(_) => rsa_verify::<Sha512>(key, Pkcs1v15Sign::new::<Sha512>(), message, signature),
                    Rsa::Pss(256) => rsa_verify::<Sha256>(key, Pss::new::<Sha256>(), message, signature),
                    Rsa::Pss(384) => rsa_verify::<Sha384>(key, Pss::new::<Sha384>(), message, signature),
                    Rsa::Pss(_) => rsa_verify::<Sha512>(key, Pss::new::<Sha512>(), message, signature),
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
        assert!(compiled(Algorithm::RS256) && compiled(Algorithm::ES256));
        assert!(!compiled(Algorithm::HS256) && !compiled(Algorithm::HS512));
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

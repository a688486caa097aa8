//! Token signatures, checked with only the algorithms the contract accepts.
//!
//! jsonwebtoken parses tokens and checks their claims; the signature itself is
//! checked by the [`CryptoProvider`] here, on ring, which the JWKS fetch's TLS
//! (feature `oauth`) builds already: its assembly verifies a P-256 signature
//! several times faster than a portable implementation, so a token's first
//! call costs less. Ed25519 is checked by ed25519-dalek's `verify_strict`,
//! stricter than ring's. Each family is behind a feature of its own: `oauth-rsa`
//! (RS256 to PS512, moduli of 2048 to 8192 bits), `oauth-es256`, `oauth-es384`,
//! `oauth-eddsa`. `charter generate` turns on those of
//! `access.oauth.algorithms`, and only their verification code is linked.
//!
//! The provider verifies and never signs: a resource server holds no key that
//! can mint a token. It is installed as jsonwebtoken's process-wide provider
//! when the authenticator starts. A handler that signs tokens with
//! jsonwebtoken installs its own provider before the server starts
//! (`CryptoProvider::install_default`); that one then serves both, and must
//! verify the contract's algorithms (jsonwebtoken's built-in ones do).

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::Verifier;
use jsonwebtoken::{Algorithm, DecodingKey};
#[cfg(any(feature = "oauth-rsa", feature = "oauth-es256", feature = "oauth-es384"))]
use ring::signature;

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

/// One key for one algorithm. ring parses and checks RSA and EC keys while
/// verifying (and refuses an RSA modulus under 2048 bits); an Ed25519 key is
/// parsed here.
enum Key {
    /// For RS256 to PS512: the verifier's algorithm picks the padding and the digest.
    #[cfg(feature = "oauth-rsa")]
    Rsa(signature::RsaPublicKeyComponents<Vec<u8>>),
    /// An uncompressed EC point (ES256, ES384).
    #[cfg(any(feature = "oauth-es256", feature = "oauth-es384"))]
    Point(signature::UnparsedPublicKey<Vec<u8>>),
    /// Ed25519 stays on ed25519-dalek for `verify_strict`, which also refuses
    /// weak (small-order) keys and non-canonical encodings; ring does not.
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
        ) => Key::Rsa(signature::RsaPublicKeyComponents {
            n: n.clone(),
            e: e.clone(),
        }),
        #[cfg(feature = "oauth-es256")]
        (Algorithm::ES256, jsonwebtoken::DecodingKeyKind::SecretOrDer(point)) => Key::Point(
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point.clone()),
        ),
        #[cfg(feature = "oauth-es384")]
        (Algorithm::ES384, jsonwebtoken::DecodingKeyKind::SecretOrDer(point)) => Key::Point(
            signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point.clone()),
        ),
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
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), jsonwebtoken::signature::Error> {
        let verified = match &self.key {
            #[cfg(feature = "oauth-rsa")]
            Key::Rsa(key) => {
                let parameters = match self.alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    // `verifier` pairs an RSA key with the six algorithms above only.
                    _ => return Err(jsonwebtoken::signature::Error::new()),
                };
                key.verify(parameters, message, signature).is_ok()
            }
            #[cfg(any(feature = "oauth-es256", feature = "oauth-es384"))]
            Key::Point(key) => key.verify(message, signature).is_ok(),
            #[cfg(feature = "oauth-eddsa")]
            Key::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .and_then(|signature| key.verify_strict(message, &signature))
                .is_ok(),
            #[cfg(not(any(
                feature = "oauth-rsa",
                feature = "oauth-es256",
                feature = "oauth-es384",
                feature = "oauth-eddsa"
            )))]
            _ => false,
        };
        if verified {
            Ok(())
        } else {
            Err(jsonwebtoken::signature::Error::new())
        }
    }
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

    #[test]
    fn rsa_keys_under_2048_bits_are_refused() {
        use rsa::pkcs1v15::SigningKey;
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        use rsa::traits::PublicKeyParts as _;
        let check = |bits: usize| {
            let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).unwrap();
            let public = private.to_public_key();
            let key = DecodingKey::from_rsa_raw_components(&public.n().to_bytes_be(), &public.e().to_bytes_be());
            let signature = SigningKey::<sha2::Sha256>::new(private).sign(b"header.claims").to_vec();
            verifier(&Algorithm::RS256, &key)
                .unwrap()
                .verify(b"header.claims", &signature)
        };
        assert!(check(2048).is_ok());
        assert!(check(1024).is_err(), "a 1024-bit modulus is too weak to trust");
    }
}

#[cfg(all(test, feature = "oauth-eddsa"))]
mod ed25519_tests {
    use super::*;

    #[test]
    fn a_weak_ed25519_key_verifies_nothing() {
        // The identity point as the key, and as `R` with `s = 0`, satisfies the
        // plain verification equation for every message: a forgery that only a
        // strict check refuses (ring's Ed25519 verification accepts it).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = identity.to_vec();
        forged.extend([0u8; 32]);
        if let Ok(verifier) = verifier(&Algorithm::EdDSA, &DecodingKey::from_ed_der(&identity)) {
            assert!(verifier.verify(b"header.claims", &forged).is_err());
        }
    }
}

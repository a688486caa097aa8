//! The one TLS crypto provider every client in the runtime uses: the JWKS and
//! metadata fetcher, downstream calls, and PostgreSQL.
//!
//! It is rustls' *ring* provider. Since 0.23.48 rustls marks it deprecated
//! because ring has no post-quantum key exchange (X25519MLKEM768, which
//! rustls offers only on aws-lc-rs). The runtime stays on ring for now: it
//! builds without the C toolchain and CMake that aws-lc needs, and the
//! server's build time and size are held against bare rmcp (BENCHMARKS.md).
//! Moving to aws-lc-rs, for post-quantum key exchange with the identity
//! provider, downstreams and the database, is this module and the `rustls`
//! features in Cargo.toml.

/// rustls' ring provider.
#[allow(deprecated)] // on purpose: see the module's documentation
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Installs [`provider`] as the process default, once; a provider installed
/// first (by the team's code) is left in place.
#[cfg(any(feature = "oauth", feature = "egress"))]
pub(crate) fn install_default() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = provider().install_default();
    });
}

//! charter-runtime: the layer between the MCP protocol and a team's handlers.
//!
//! Every charter-generated server depends on this crate, vendored beside it
//! (`charter-runtime/`) or by path, so it builds from crates.io alone and a
//! reviewer can read every line that runs. The server turns on only the
//! Cargo features its contract needs.
//!
//! The generated code supplies two things: the surface (`surface.json`, a
//! [`surface::Surface`]: every tool, resource and prompt exactly as clients see
//! them, with the policy around each) and a [`dispatch::Dispatch`] that turns
//! validated JSON into typed handler calls. It reaches the runtime through
//! [`codegen`] alone. Everything that must hold whatever a handler does
//! (authentication, scopes, limits, validation, approval, audit, egress,
//! transport hardening) lives here.

#[cfg(feature = "approvals")]
pub mod approval;
#[cfg(feature = "postgres")]
pub mod approval_pg;
#[cfg(feature = "approvals")]
pub mod approvals;
pub mod audit;
#[cfg(feature = "oauth")]
pub mod auth;
#[cfg(feature = "egress")]
pub mod binding;
pub mod cli;
pub mod client;
pub mod config;
pub mod controls;
mod deadline;
pub mod dispatch;
#[cfg(feature = "egress")]
pub mod egress;
pub mod error;
#[cfg(feature = "oauth")]
mod fetch;
pub mod guard;
#[cfg(feature = "oauth")]
pub mod jws;
pub mod metrics;
mod pipeline;
pub mod prompt;
pub mod report;
pub mod rounds;
pub mod selftest;
pub mod serve;
pub mod server;
#[cfg(feature = "http")]
pub mod sessions;
#[cfg(feature = "redis")]
pub mod shared_limits;
pub mod subscriptions;
pub mod surface;
pub mod template;
#[cfg(any(feature = "oauth", feature = "egress", feature = "postgres"))]
mod tls;
pub mod validate;

/// What generated code uses, and nothing else: the seam's one door, in the
/// manner of `tonic::codegen`. Handlers written by the team use the public
/// modules ([`dispatch`], [`config`], [`egress`](crate::egress)) directly.
pub mod codegen {
    pub use crate::cli::run;
    pub use crate::config::Config;
    pub use crate::dispatch::{BoxFuture, Context, Dispatch, ResourceBody, ToolError, ToolOutput, decode, encode};
    pub use crate::selftest;
    pub use crate::server::McpServer;
    pub use crate::surface::Surface;
    pub use rmcp::model::{ContentBlock, PromptMessage};
    pub use serde_json::{Map, Value};
}

/// The global allocator of a generated server (its `main.rs` declares it):
/// mimalloc, without transparent huge pages. A library cannot choose the
/// allocator for the binaries and tests that link it, so the runtime only
/// offers it (feature `mimalloc`).
#[cfg(feature = "mimalloc")]
pub use mimalloc::MiMalloc as Allocator;

/// The logging facade the runtime's subscriber (stderr, `{PREFIX}_LOG`) listens to, for
/// handlers' own log lines (`charter_runtime::tracing::warn!(...)`).
pub use tracing;

/// The MCP SDK this runtime serves with, for handlers that build content
/// blocks or prompt messages (`charter_runtime::rmcp::model::...`): one version
/// in the whole server.
pub use rmcp;

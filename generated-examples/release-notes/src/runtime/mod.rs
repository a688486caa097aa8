//! charter-runtime: the layer between the MCP protocol and a team's handlers.
//!
//! Every charter-generated server carries a verbatim copy of these sources in
//! `src/runtime/`, so it builds from crates.io alone and a reviewer can read
//! every line that runs. Modules refer to each other through `super::`, never
//! `crate::`, so the same files compile as this crate's root and as a module
//! of a generated crate.
//!
//! The generated code supplies two things: the surface (`surface.json`: every
//! tool, resource and prompt exactly as clients see them, with their limits)
//! and a [`dispatch::Dispatch`] that turns validated JSON into typed handler
//! calls. Everything that must hold whatever a handler does (input and output
//! validation, timeouts, size caps, transport hardening) lives here.

#[cfg(feature = "approvals")]
pub mod approval;
pub mod audit;
#[cfg(feature = "oauth")]
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod controls;
pub mod dispatch;
#[cfg(feature = "egress")]
pub mod egress;
pub mod guard;
pub mod metrics;
pub mod prompt;
pub mod serve;
pub mod server;
pub mod surface;
pub mod template;
pub mod validate;

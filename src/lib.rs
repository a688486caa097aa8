//! charter: check MCP server contracts against production rules, and
//! generate governed Rust MCP servers from them.
//!
//! The pipeline, one module per stage:
//! `contract` (parse YAML into raw types) -> `model` (validate, resolve and
//! normalize into the IR) -> `lint` (production rules) -> reports.

pub mod atomic;
pub mod check;
pub mod cli;
pub mod contract;
pub mod diagnostic;
pub mod diff;
pub mod digest;
pub mod emit;
pub mod generate;
pub mod init;
pub mod lint;
pub mod lock;
pub mod model;
pub mod openapi;
pub mod report;
pub mod suggest;
pub mod surface;
pub mod write;

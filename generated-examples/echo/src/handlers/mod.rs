//! The team's code: the contract's handlers. charter wrote this file once, because it
//! was missing, and never touches it again.
//!
//! Echo does nothing on purpose: it is the benchmark's tool whose handler costs nothing
//! (bench/control-overhead), so what a call costs is the server's controls alone.

use crate::generated::handler::Handler;
use crate::generated::types;
use charter_runtime::codegen::{Config, Context, ToolError};

/// No state: echo reads nothing and calls nothing.
pub struct Handlers {}

impl Handlers {
    /// Builds the handlers from the environment's configuration (none is read).
    pub fn new(config: &Config) -> Result<Handlers, String> {
        let _ = config;
        Ok(Handlers {})
    }
}

impl Handler for Handlers {
    async fn echo(&self, _context: &Context, input: types::EchoInput) -> Result<types::EchoOutput, ToolError> {
        // The contract bounds the text to 1..=1000 characters, so the count always fits.
        let length = i64::try_from(input.text.chars().count()).unwrap_or(i64::MAX);
        Ok(types::EchoOutput {
            text: input.text,
            length,
        })
    }
}

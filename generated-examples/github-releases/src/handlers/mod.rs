//! The team's code: the contract's handlers. charter wrote this file once, because it
//! was missing, and never touches it again. Implement each method; when the contract
//! gains a tool, `cargo build` names the method to add here.

use crate::generated::handler::Handler;
use charter_runtime::codegen::Config;

/// State the handlers share: clients for downstreams, paths, caches.
pub struct Handlers {}

impl Handlers {
    /// Builds the handlers from the environment's configuration (`[handlers]` table).
    pub fn new(config: &Config) -> Result<Handlers, String> {
        let _ = config;
        Ok(Handlers {})
    }
}

impl Handler for Handlers {}

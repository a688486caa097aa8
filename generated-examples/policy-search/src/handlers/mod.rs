//! The team's code: the contract's handlers. charter wrote this file once, because it
//! was missing, and never touches it again. Implement each method; when the contract
//! gains a tool, `cargo build` names the method to add here.
#![allow(unused_imports)]
use crate::generated::handler::Handler;
use crate::generated::types;
use crate::runtime::config::Config;
use crate::runtime::dispatch::{Context, ResourceBody, ToolError};
/// State the handlers share: clients for downstreams, paths, caches.
pub struct Handlers {}
impl Handlers {
    /// Builds the handlers from the environment's configuration (`[handlers]` table).
    pub fn new(config: &Config) -> Result<Handlers, String> {
        let _ = config;
        Ok(Handlers {})
    }
}
impl Handler for Handlers {
    async fn search_policies(
        &self,
        context: &Context,
        input: types::SearchPoliciesInput,
    ) -> Result<types::SearchPoliciesOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `search_policies`"))
    }
    async fn get_policy_section(
        &self,
        context: &Context,
        input: types::GetPolicySectionInput,
    ) -> Result<types::GetPolicySectionOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `get_policy_section`"))
    }
    async fn read_policy_index(
        &self,
        context: &Context,
    ) -> Result<ResourceBody, ToolError> {
        let _ = context;
        Err(ToolError::not_implemented("resource `policy_index`"))
    }
    async fn read_approved_policy(
        &self,
        context: &Context,
        uri: &str,
        params: types::ApprovedPolicyParams,
    ) -> Result<ResourceBody, ToolError> {
        let _ = (context, uri, params);
        Err(ToolError::not_implemented("resource `approved_policy`"))
    }
}

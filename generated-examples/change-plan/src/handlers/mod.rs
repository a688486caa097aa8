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
    async fn get_service_state(
        &self,
        context: &Context,
        input: types::GetServiceStateInput,
    ) -> Result<types::GetServiceStateOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `get_service_state`"))
    }
    async fn diff_desired_state(
        &self,
        context: &Context,
        input: types::DiffDesiredStateInput,
    ) -> Result<types::DiffDesiredStateOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `diff_desired_state`"))
    }
    async fn draft_change_plan(
        &self,
        context: &Context,
        input: types::DraftChangePlanInput,
    ) -> Result<types::DraftChangePlanOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `draft_change_plan`"))
    }
    async fn open_change_request(
        &self,
        context: &Context,
        input: types::OpenChangeRequestInput,
    ) -> Result<types::OpenChangeRequestOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `open_change_request`"))
    }
    async fn read_change_plan(
        &self,
        context: &Context,
        uri: &str,
        params: types::ChangePlanParams,
    ) -> Result<ResourceBody, ToolError> {
        let _ = (context, uri, params);
        Err(ToolError::not_implemented("resource `change_plan`"))
    }
    async fn read_change_policy(
        &self,
        context: &Context,
    ) -> Result<ResourceBody, ToolError> {
        let _ = context;
        Err(ToolError::not_implemented("resource `change_policy`"))
    }
}

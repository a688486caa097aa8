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
    async fn list_merged_pull_requests(
        &self,
        context: &Context,
        input: types::ListMergedPullRequestsInput,
    ) -> Result<types::ListMergedPullRequestsOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `list_merged_pull_requests`"))
    }
    async fn get_pull_request(
        &self,
        context: &Context,
        input: types::GetPullRequestInput,
    ) -> Result<types::GetPullRequestOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `get_pull_request`"))
    }
    async fn draft_release_notes(
        &self,
        context: &Context,
        input: types::DraftReleaseNotesInput,
    ) -> Result<types::DraftReleaseNotesOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `draft_release_notes`"))
    }
    async fn read_style_guide(
        &self,
        context: &Context,
    ) -> Result<ResourceBody, ToolError> {
        let _ = context;
        Err(ToolError::not_implemented("resource `style_guide`"))
    }
    async fn read_draft(
        &self,
        context: &Context,
        uri: &str,
        params: types::DraftParams,
    ) -> Result<ResourceBody, ToolError> {
        let _ = (context, uri, params);
        Err(ToolError::not_implemented("resource `draft`"))
    }
}

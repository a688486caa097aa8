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
    async fn list_assigned_tickets(
        &self,
        context: &Context,
        input: types::ListAssignedTicketsInput,
    ) -> Result<types::ListAssignedTicketsOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `list_assigned_tickets`"))
    }
    async fn get_ticket(
        &self,
        context: &Context,
        input: types::GetTicketInput,
    ) -> Result<types::GetTicketOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `get_ticket`"))
    }
    async fn create_reply_draft(
        &self,
        context: &Context,
        input: types::CreateReplyDraftInput,
    ) -> Result<types::CreateReplyDraftOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `create_reply_draft`"))
    }
    async fn set_ticket_priority(
        &self,
        context: &Context,
        input: types::SetTicketPriorityInput,
    ) -> Result<types::SetTicketPriorityOutput, ToolError> {
        let _ = (context, input);
        Err(ToolError::not_implemented("tool `set_ticket_priority`"))
    }
    async fn read_reply_guidelines(
        &self,
        context: &Context,
    ) -> Result<ResourceBody, ToolError> {
        let _ = context;
        Err(ToolError::not_implemented("resource `reply_guidelines`"))
    }
}

//! The team's code: the contract's handlers. charter wrote this file once, because it
//! was missing, and never touches it again.
//!
//! This example keeps the helpdesk in a local SQLite database (`data/schema.sql`), seeded
//! with sample tickets (`data/seed.sql`) when it is empty. Settings (`[handlers]`):
//!
//! - `database`: the SQLite file; default `:memory:` (a fresh database per run).
//! - `agent`: the login the sample tickets are assigned to; default the local user
//!   (`$USER`, else `local`: the caller on stdio). Use `anonymous` for unauthenticated HTTP.
//! - `helpdesk_url`: where review links point; default `https://helpdesk.example.com`.
//! - `auto_approve_by`: when set, priority changes are applied at once as approved by this
//!   support lead; by default they stay `pending_approval`, as the contract describes.
mod clock;

use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::generated::handler::Handler;
use crate::generated::types;
use charter_runtime::config::Config;
use charter_runtime::dispatch::{Context, ResourceBody, ToolError};

const SCHEMA: &str = include_str!("../../data/schema.sql");
const SEED: &str = include_str!("../../data/seed.sql");
const GUIDELINES: &str = include_str!("../../data/reply-guidelines.md");

/// How long a priority change waits for a lead's approval (the contract's `approval.expires`).
const APPROVAL_EXPIRES_SECS: i64 = 4 * 3600;

/// State the handlers share: the helpdesk database and settings.
pub struct Handlers {
    db: Mutex<Connection>,
    helpdesk_url: String,
    auto_approve_by: Option<String>,
}

impl Handlers {
    /// Builds the handlers from the environment's configuration (`[handlers]` table).
    pub fn new(config: &Config) -> Result<Handlers, String> {
        let path = config.handler_str("database", ":memory:");
        let default_agent = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "local".into());
        let agent = config.handler_str("agent", &default_agent);
        let db = if path == ":memory:" {
            Connection::open_in_memory()
        } else {
            Connection::open(&path)
        }
        .map_err(|e| format!("database {path}: {e}"))?;
        db.execute_batch(SCHEMA)
            .map_err(|e| format!("database {path}: schema: {e}"))?;
        let tickets: i64 = db
            .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
            .map_err(|e| format!("database {path}: {e}"))?;
        if tickets == 0 {
            db.execute_batch(&format!("BEGIN; {SEED} COMMIT;"))
                .map_err(|e| format!("database {path}: seed: {e}"))?;
            db.execute(
                "UPDATE tickets SET assignee = ?1 WHERE assignee = 'demo-agent'",
                [&agent],
            )
            .map_err(|e| format!("database {path}: seed: {e}"))?;
        }
        let auto_approve_by = Some(config.handler_str("auto_approve_by", "")).filter(|s| !s.is_empty());
        let helpdesk_url = config
            .handler_str("helpdesk_url", "https://helpdesk.example.com")
            .trim_end_matches('/')
            .to_string();
        Ok(Handlers {
            db: Mutex::new(db),
            helpdesk_url,
            auto_approve_by,
        })
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (statements are atomic).
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A ticket row the caller is allowed to see.
struct Ticket {
    id: i64,
    subject: String,
    status: String,
    priority: String,
    requester_name: String,
    requester_email: String,
    requester_org: Option<String>,
}

fn db_error(e: rusqlite::Error) -> ToolError {
    charter_runtime::tracing::error!(error = %e, "helpdesk database");
    ToolError::unavailable("the helpdesk database failed; try again")
}

/// The ticket, if it exists and is assigned to the caller.
fn assigned_ticket(db: &Connection, context: &Context, id: i64) -> Result<Ticket, ToolError> {
    let row = db
        .query_row(
            "SELECT id, subject, status, priority, requester_name, requester_email, requester_org, assignee
             FROM tickets WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    Ticket {
                        id: r.get(0)?,
                        subject: r.get(1)?,
                        status: r.get(2)?,
                        priority: r.get(3)?,
                        requester_name: r.get(4)?,
                        requester_email: r.get(5)?,
                        requester_org: r.get(6)?,
                    },
                    r.get::<_, String>(7)?,
                ))
            },
        )
        .optional()
        .map_err(db_error)?;
    match row {
        None => Err(ToolError::not_found(format!("there is no ticket {id}"))),
        // Same wording for someone else's ticket: the caller learns nothing about it.
        Some((_, assignee)) if assignee != context.caller => {
            Err(ToolError::invalid(format!("ticket {id} is not assigned to you")))
        }
        Some((ticket, _)) => Ok(ticket),
    }
}

/// A contract enum from its string value.
fn from_str<T: DeserializeOwned>(value: &str) -> Result<T, ToolError> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| ToolError::internal(format!("unexpected value `{value}` in the helpdesk database")))
}

/// A contract enum's string value.
fn to_str<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Marks pending priority changes older than the approval window as expired.
fn expire_stale_changes(db: &Connection, now: i64) -> Result<(), ToolError> {
    let mut stmt = db
        .prepare("SELECT id, requested_at FROM priority_changes WHERE state = 'pending_approval'")
        .map_err(db_error)?;
    let pending: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_error)?
        .collect::<Result<_, _>>()
        .map_err(db_error)?;
    for (id, requested_at) in pending {
        if clock::parse_rfc3339(&requested_at).is_none_or(|t| t + APPROVAL_EXPIRES_SECS < now) {
            db.execute("UPDATE priority_changes SET state = 'expired' WHERE id = ?1", [id])
                .map_err(db_error)?;
        }
    }
    Ok(())
}

impl Handler for Handlers {
    async fn list_assigned_tickets(
        &self,
        context: &Context,
        input: types::ListAssignedTicketsInput,
    ) -> Result<types::ListAssignedTicketsOutput, ToolError> {
        let statuses: Vec<String> = match &input.statuses {
            Some(statuses) => statuses.iter().map(to_str).collect(),
            None => vec!["new".into(), "open".into(), "pending".into()],
        };
        let since = match &input.updated_since {
            Some(text) => Some(
                clock::parse_rfc3339(text)
                    .ok_or_else(|| ToolError::invalid(format!("updated_since `{text}` is not a date-time")))?,
            ),
            None => None,
        };
        let limit = input.limit.unwrap_or(25).clamp(1, 50) as usize;
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT id, subject, status, priority, requester_name, updated_at, sla_due_at FROM tickets
                 WHERE assignee = ?1
                 ORDER BY sla_due_at IS NULL, sla_due_at,
                          CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END,
                          updated_at DESC, id",
            )
            .map_err(db_error)?;
        let rows = stmt
            .query_map([&context.caller], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .map_err(db_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        let mut tickets = Vec::new();
        for (id, subject, status, priority, requester_name, updated_at, sla_due_at) in rows {
            if !statuses.contains(&status) {
                continue;
            }
            if let Some(since) = since
                && clock::parse_rfc3339(&updated_at).is_some_and(|t| t < since)
            {
                continue;
            }
            tickets.push(types::TicketSummary {
                ticket_id: id,
                subject,
                status: from_str(&status)?,
                priority: from_str(&priority)?,
                requester_name,
                updated_at,
                sla_due_at,
            });
        }
        let truncated = tickets.len() > limit;
        tickets.truncate(limit);
        Ok(types::ListAssignedTicketsOutput { tickets, truncated })
    }

    async fn get_ticket(
        &self,
        context: &Context,
        input: types::GetTicketInput,
    ) -> Result<types::GetTicketOutput, ToolError> {
        let db = self.db();
        let ticket = assigned_ticket(&db, context, input.ticket_id)?;
        let internal = input.include_internal_notes.unwrap_or(false);
        let max = input.max_messages.unwrap_or(30).clamp(1, 100);
        // The newest `max` messages, returned oldest first.
        let mut stmt = db
            .prepare(
                "SELECT author_role, author_name, sent_at, public, body FROM (
                     SELECT * FROM messages WHERE ticket_id = ?1 AND (public = 1 OR ?2)
                     ORDER BY sent_at DESC, id DESC LIMIT ?3
                 ) ORDER BY sent_at, id",
            )
            .map_err(db_error)?;
        let messages = stmt
            .query_map(params![ticket.id, internal, max], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?
            .into_iter()
            .map(|(role, author_name, sent_at, public, body)| {
                Ok(types::GetTicketOutputMessagesItem {
                    author_role: from_str(&role)?,
                    author_name,
                    sent_at,
                    public,
                    body,
                })
            })
            .collect::<Result<Vec<_>, ToolError>>()?;
        let draft = db
            .query_row(
                "SELECT draft_id, body, updated_at FROM drafts WHERE ticket_id = ?1",
                [ticket.id],
                |r| {
                    Ok(types::GetTicketOutputDraft {
                        draft_id: Some(r.get(0)?),
                        body: Some(r.get(1)?),
                        updated_at: Some(r.get(2)?),
                    })
                },
            )
            .optional()
            .map_err(db_error)?;
        Ok(types::GetTicketOutput {
            ticket_id: ticket.id,
            subject: ticket.subject,
            status: from_str(&ticket.status)?,
            priority: from_str(&ticket.priority)?,
            requester: types::GetTicketOutputRequester {
                name: ticket.requester_name,
                email: ticket.requester_email,
                organization: ticket.requester_org,
            },
            messages,
            draft,
        })
    }

    async fn create_reply_draft(
        &self,
        context: &Context,
        input: types::CreateReplyDraftInput,
    ) -> Result<types::CreateReplyDraftOutput, ToolError> {
        let db = self.db();
        let ticket = assigned_ticket(&db, context, input.ticket_id)?;
        if ticket.status == "solved" {
            return Err(ToolError::invalid(format!(
                "ticket {} is solved; reopen it in the helpdesk before drafting a reply",
                ticket.id
            )));
        }
        let draft_id = clock::uuid_v4();
        let saved_at = clock::rfc3339(clock::now_secs());
        db.execute(
            "INSERT INTO drafts (ticket_id, draft_id, body, language, author, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (ticket_id) DO UPDATE SET draft_id = excluded.draft_id, body = excluded.body,
                 language = excluded.language, author = excluded.author, updated_at = excluded.updated_at",
            params![
                ticket.id,
                draft_id,
                input.body,
                input.language,
                context.caller,
                saved_at
            ],
        )
        .map_err(db_error)?;
        Ok(types::CreateReplyDraftOutput {
            review_url: format!("{}/agent/tickets/{}#draft-{draft_id}", self.helpdesk_url, ticket.id),
            draft_id,
            ticket_id: ticket.id,
            state: types::CreateReplyDraftOutputState::UnsentDraft,
            saved_at,
        })
    }

    async fn set_ticket_priority(
        &self,
        context: &Context,
        input: types::SetTicketPriorityInput,
    ) -> Result<types::SetTicketPriorityOutput, ToolError> {
        let mut db = self.db();
        let ticket = assigned_ticket(&db, context, input.ticket_id)?;
        if ticket.status == "solved" {
            return Err(ToolError::invalid(format!(
                "ticket {} is solved; its priority no longer matters",
                ticket.id
            )));
        }
        let requested = to_str(&input.priority);
        let now = clock::now_secs();
        let now_text = clock::rfc3339(now);
        expire_stale_changes(&db, now)?;
        let output = |previous: &str, state: types::SetTicketPriorityOutputState, approved_by: Option<String>| {
            Ok(types::SetTicketPriorityOutput {
                ticket_id: ticket.id,
                previous_priority: from_str(previous)?,
                requested_priority: input.priority,
                state,
                approved_by,
            })
        };
        let tx = db.transaction().map_err(db_error)?;
        let pending: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, requested_priority FROM priority_changes
                 WHERE ticket_id = ?1 AND state = 'pending_approval'",
                [ticket.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_error)?;
        if let Some(lead) = &self.auto_approve_by {
            // Approved at once (local demonstration): apply, and record the previous priority.
            tx.execute(
                "UPDATE priority_changes SET state = 'rejected' WHERE ticket_id = ?1 AND state = 'pending_approval'",
                [ticket.id],
            )
            .map_err(db_error)?;
            tx.execute(
                "INSERT INTO priority_changes (ticket_id, previous_priority, requested_priority, reason, requested_by,
                     requested_at, state, approved_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'applied', ?7)",
                params![
                    ticket.id,
                    ticket.priority,
                    requested,
                    input.reason,
                    context.caller,
                    now_text,
                    lead
                ],
            )
            .map_err(db_error)?;
            tx.execute(
                "UPDATE tickets SET priority = ?2, updated_at = ?3 WHERE id = ?1",
                params![ticket.id, requested, now_text],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            return output(
                &ticket.priority,
                types::SetTicketPriorityOutputState::Applied,
                Some(lead.clone()),
            );
        }
        match pending {
            // Idempotent: the same request again is the same pending change.
            Some((_, pending_priority)) if pending_priority == requested => {}
            // A different priority replaces the pending request.
            Some((id, _)) => {
                tx.execute(
                    "UPDATE priority_changes SET requested_priority = ?2, reason = ?3, requested_by = ?4,
                         requested_at = ?5 WHERE id = ?1",
                    params![id, requested, input.reason, context.caller, now_text],
                )
                .map_err(db_error)?;
            }
            // Nothing to change and nothing pending.
            None if ticket.priority == requested => {
                return output(&ticket.priority, types::SetTicketPriorityOutputState::Applied, None);
            }
            None => {
                tx.execute(
                    "INSERT INTO priority_changes (ticket_id, previous_priority, requested_priority, reason,
                         requested_by, requested_at, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending_approval')",
                    params![
                        ticket.id,
                        ticket.priority,
                        requested,
                        input.reason,
                        context.caller,
                        now_text
                    ],
                )
                .map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)?;
        output(
            &ticket.priority,
            types::SetTicketPriorityOutputState::PendingApproval,
            None,
        )
    }

    async fn read_reply_guidelines(&self, _context: &Context) -> Result<ResourceBody, ToolError> {
        Ok(ResourceBody::Text(GUIDELINES.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::dispatch::Dispatcher;
    use charter_runtime::server::McpServer;
    use charter_runtime::surface::Surface;
    use serde_json::{Map, Value, json};

    const AGENT: &str = "test-agent";

    fn config(settings: &[(&str, &str)]) -> Config {
        let mut config = Config::default();
        config.handlers.insert("agent".into(), AGENT.into());
        for (key, value) in settings {
            config.handlers.insert(key.to_string(), value.to_string().into());
        }
        config
    }

    fn server_with(config: &Config) -> McpServer {
        let surface = Surface::parse(crate::generated::SURFACE).unwrap();
        McpServer::new(surface, Dispatcher::new(Handlers::new(config).unwrap())).unwrap()
    }

    fn context() -> Context {
        Context::new(AGENT, "1")
    }

    /// Calls a tool through the server (input and output validation included).
    async fn call(server: &McpServer, tool: &str, args: Value) -> Result<Value, String> {
        let args: Map<String, Value> = serde_json::from_value(args).unwrap();
        let result = server.call(tool, Some(args), context()).await.unwrap();
        if result.is_error == Some(true) {
            return Err(serde_json::to_string(&result.content).unwrap());
        }
        Ok(result.structured_content.expect("structured content"))
    }

    fn ids(out: &Value) -> Vec<i64> {
        out["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["ticket_id"].as_i64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn lists_own_open_tickets_most_urgent_sla_first() {
        let server = server_with(&config(&[]));
        let out = call(&server, "list_assigned_tickets", json!({})).await.unwrap();
        assert_eq!(ids(&out), [48220, 48213, 48197, 48175]);
        assert_eq!(out["truncated"], false);
        assert_eq!(out["tickets"][3]["sla_due_at"], Value::Null);

        let out = call(
            &server,
            "list_assigned_tickets",
            json!({"statuses": ["on_hold", "solved"]}),
        )
        .await
        .unwrap();
        assert_eq!(ids(&out), [48102, 47990]);
        let out = call(&server, "list_assigned_tickets", json!({"limit": 2}))
            .await
            .unwrap();
        assert_eq!((ids(&out), out["truncated"].clone()), (vec![48220, 48213], json!(true)));
        let out = call(
            &server,
            "list_assigned_tickets",
            json!({"updated_since": "2026-11-23T10:00:00+01:00"}),
        )
        .await
        .unwrap();
        assert_eq!(ids(&out), [48220, 48213]);
    }

    #[tokio::test]
    async fn get_ticket_hides_internal_notes_unless_asked() {
        let server = server_with(&config(&[]));
        let out = call(&server, "get_ticket", json!({"ticket_id": 48213})).await.unwrap();
        assert_eq!(out["requester"]["email"], "maria.santos@lumenlogistics.example");
        assert_eq!(out["messages"].as_array().unwrap().len(), 2);
        assert!(out["messages"].as_array().unwrap().iter().all(|m| m["public"] == true));
        assert_eq!(out["draft"], Value::Null);

        let out = call(
            &server,
            "get_ticket",
            json!({"ticket_id": 48213, "include_internal_notes": true, "max_messages": 3}),
        )
        .await
        .unwrap();
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0]["author_role"], "system");
        assert_eq!(
            messages[2]["body"],
            "Any update? I can send the bank statement if that helps."
        );
    }

    #[tokio::test]
    async fn others_tickets_and_unknown_tickets_are_refused() {
        let server = server_with(&config(&[]));
        let err = call(&server, "get_ticket", json!({"ticket_id": 48230}))
            .await
            .unwrap_err();
        assert!(err.contains("not assigned to you"), "{err}");
        let err = call(&server, "get_ticket", json!({"ticket_id": 1})).await.unwrap_err();
        assert!(err.contains("no ticket 1"), "{err}");
        let body = "Hi Hannah, thanks for your question about limits.";
        let err = call(&server, "create_reply_draft", json!({"ticket_id": 48230, "body": body}))
            .await
            .unwrap_err();
        assert!(err.contains("not assigned to you"), "{err}");
    }

    #[tokio::test]
    async fn drafts_are_stored_and_replaced() {
        let server = server_with(&config(&[]));
        let body = "Hi Maria,\n\nI have passed the duplicate charge to our billing team.";
        let first = call(
            &server,
            "create_reply_draft",
            json!({"ticket_id": 48213, "body": body, "language": "en"}),
        )
        .await
        .unwrap();
        assert_eq!(first["state"], "unsent_draft");
        assert!(
            first["review_url"]
                .as_str()
                .unwrap()
                .starts_with("https://helpdesk.example.com/agent/tickets/48213")
        );
        let second_body = format!("{body} You will hear back by Wednesday.");
        let second = call(
            &server,
            "create_reply_draft",
            json!({"ticket_id": 48213, "body": second_body}),
        )
        .await
        .unwrap();
        assert_ne!(first["draft_id"], second["draft_id"]);
        let ticket = call(&server, "get_ticket", json!({"ticket_id": 48213})).await.unwrap();
        assert_eq!(ticket["draft"]["draft_id"], second["draft_id"]);
        assert_eq!(ticket["draft"]["body"], second_body.as_str());
        // Drafting never changes status.
        assert_eq!(ticket["status"], "open");

        let err = call(&server, "create_reply_draft", json!({"ticket_id": 47990, "body": body}))
            .await
            .unwrap_err();
        assert!(err.contains("solved"), "{err}");
    }

    #[tokio::test]
    async fn priority_changes_wait_for_approval() {
        let server = server_with(&config(&[]));
        let args = json!({"ticket_id": 48197, "priority": "high", "reason": "Customer's payroll export is blocked."});
        let out = call(&server, "set_ticket_priority", args.clone()).await.unwrap();
        assert_eq!(out["previous_priority"], "normal");
        assert_eq!(out["requested_priority"], "high");
        assert_eq!(out["state"], "pending_approval");
        assert_eq!(out["approved_by"], Value::Null);
        // Idempotent, and the ticket keeps its priority until a lead approves.
        assert_eq!(call(&server, "set_ticket_priority", args).await.unwrap(), out);
        let ticket = call(&server, "get_ticket", json!({"ticket_id": 48197})).await.unwrap();
        assert_eq!(ticket["priority"], "normal");
        let out = call(
            &server,
            "set_ticket_priority",
            json!({"ticket_id": 48197, "priority": "normal", "reason": "Workaround found, no longer blocked."}),
        )
        .await
        .unwrap();
        assert_eq!(out["state"], "pending_approval");
    }

    #[tokio::test]
    async fn auto_approval_applies_and_persists_in_the_database_file() {
        let path = std::env::temp_dir().join(format!("support-replies-test-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let settings = [("database", path.to_str().unwrap()), ("auto_approve_by", "lead.kim")];
        {
            let server = server_with(&config(&settings));
            let args = json!({"ticket_id": 48175, "priority": "normal", "reason": "Sales lead for 3 extra seats."});
            let out = call(&server, "set_ticket_priority", args).await.unwrap();
            assert_eq!(out["state"], "applied");
            assert_eq!(out["approved_by"], "lead.kim");
            assert_eq!(out["previous_priority"], "low");
        }
        // A second start on the same file keeps the change and does not seed again.
        let server = server_with(&config(&settings));
        let ticket = call(&server, "get_ticket", json!({"ticket_id": 48175})).await.unwrap();
        assert_eq!(ticket["priority"], "normal");
        let out = call(&server, "list_assigned_tickets", json!({})).await.unwrap();
        assert_eq!(out["tickets"].as_array().unwrap().len(), 4);
        drop(server);
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn guidelines_resource() {
        let server = server_with(&config(&[]));
        let result = server.read("support://guidelines/replies", context()).await.unwrap();
        let text = match &result.contents[0] {
            charter_runtime::rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
            other => panic!("{other:?}"),
        };
        assert!(text.contains("When a ticket goes to a specialist queue"));
    }
}

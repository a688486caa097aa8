//! The team's code: the contract's handlers. charter wrote this file once, because it
//! was missing, and never touches it again.
//!
//! This example works offline: the deployed state Argo CD would report is
//! `data/current-state.json`, the manifests rendered from deploy-config revisions are
//! `data/desired-state.json` (both embedded; `[handlers] current_state` and
//! `[handlers] desired_state` name JSON files to use instead). Plans and change requests
//! are kept in memory; change requests are also appended, one JSON object a line, to
//! `[handlers] change_requests_log` when set.
mod clock;
mod plan;
mod state;

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::generated::handler::Handler;
use crate::generated::types;
use charter_runtime::config::Config;
use charter_runtime::dispatch::{Context, ResourceBody, ToolError};

const CHANGE_POLICY: &str = include_str!("../../data/change-policy.md");

/// The most changes `diff_desired_state` returns.
const MAX_CHANGES: usize = 200;

/// A plan as stored for review.
struct StoredPlan {
    service: String,
    environment: String,
    needs_cab: bool,
    markdown: String,
}

/// State the handlers share: both states, stored plans and opened change requests.
pub struct Handlers {
    current: state::CurrentState,
    desired: state::DesiredState,
    plans: Mutex<HashMap<String, StoredPlan>>,
    change_requests: Mutex<Vec<serde_json::Value>>,
    change_requests_log: Option<std::path::PathBuf>,
    servicenow_url: String,
}

impl Handlers {
    /// Builds the handlers from the environment's configuration (`[handlers]` table).
    pub fn new(config: &Config) -> Result<Handlers, String> {
        let read = |key: &str, embedded: &str| -> Result<String, String> {
            match config.handler_str(key, "").as_str() {
                "" => Ok(embedded.to_string()),
                path => std::fs::read_to_string(path).map_err(|e| format!("{key} {path}: {e}")),
            }
        };
        let (current, desired) = state::load(
            &read("current_state", state::CURRENT_STATE)?,
            &read("desired_state", state::DESIRED_STATE)?,
        )?;
        let log = config.handler_str("change_requests_log", "");
        Ok(Handlers {
            current,
            desired,
            plans: Mutex::new(HashMap::new()),
            change_requests: Mutex::new(Vec::new()),
            change_requests_log: (!log.is_empty()).then(|| log.into()),
            servicenow_url: config
                .handler_str("servicenow_url", "https://example.service-now.com")
                .trim_end_matches('/')
                .to_string(),
        })
    }

    fn deployed(&self, service: &str, environment: &str) -> Result<&state::Deployed, ToolError> {
        self.current
            .services
            .get(service)
            .and_then(|envs| envs.get(environment))
            .ok_or_else(|| ToolError::not_found(format!("no Argo CD application {service} in {environment}")))
    }

    /// The deployed state, the target revision and the changes between them.
    fn compare(
        &self,
        service: &str,
        environment: &str,
        target: Option<&str>,
    ) -> Result<(&state::Deployed, &state::Revision, Vec<state::Change>), ToolError> {
        let deployed = self.deployed(service, environment)?;
        let sha = target.unwrap_or(&self.desired.head);
        let revision = self.desired.revision(sha).ok_or_else(|| {
            ToolError::not_found(format!("revision {sha} is not on main of {}", self.desired.repository))
        })?;
        let objects = revision
            .services
            .get(service)
            .and_then(|envs| envs.get(environment))
            .ok_or_else(|| {
                ToolError::not_found(format!(
                    "revision {} of {} renders no manifests for {service} in {environment}",
                    &sha[..8],
                    self.desired.repository
                ))
            })?;
        Ok((deployed, revision, state::diff(&deployed.objects, objects)))
    }
}

/// A contract enum from its string value.
fn from_str<T: DeserializeOwned>(value: &str) -> Result<T, ToolError> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| ToolError::internal(format!("unexpected value `{value}` in the deployed state")))
}

/// A contract enum's string value.
fn to_str<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Checks a window's times and order.
fn check_window(window: &types::Window) -> Result<(i64, i64), ToolError> {
    let start = clock::parse_rfc3339(&window.start)
        .ok_or_else(|| ToolError::invalid(format!("window start `{}` is not a date-time", window.start)))?;
    let end = clock::parse_rfc3339(&window.end)
        .ok_or_else(|| ToolError::invalid(format!("window end `{}` is not a date-time", window.end)))?;
    if end <= start {
        return Err(ToolError::invalid("the window ends before it starts"));
    }
    Ok((start, end))
}

impl Handler for Handlers {
    async fn get_service_state(
        &self,
        _context: &Context,
        input: types::GetServiceStateInput,
    ) -> Result<types::GetServiceStateOutput, ToolError> {
        let deployed = self.deployed(&input.service, &to_str(&input.environment))?;
        let mut images: Vec<String> = deployed.objects.iter().flat_map(state::Object::images).collect();
        images.sort();
        images.dedup();
        images.truncate(20);
        Ok(types::GetServiceStateOutput {
            service: input.service,
            environment: input.environment,
            revision: deployed.revision.clone(),
            images,
            replicas: deployed.replicas.map(|r| types::GetServiceStateOutputReplicas {
                desired: Some(r.desired),
                ready: Some(r.ready),
            }),
            sync_status: from_str(&deployed.sync_status)?,
            health: from_str(&deployed.health)?,
            last_synced_at: deployed.last_synced_at.clone(),
        })
    }

    async fn diff_desired_state(
        &self,
        _context: &Context,
        input: types::DiffDesiredStateInput,
    ) -> Result<types::DiffDesiredStateOutput, ToolError> {
        let environment = to_str(&input.environment);
        let (deployed, revision, changes) =
            self.compare(&input.service, &environment, input.target_revision.as_deref())?;
        let truncated = changes.len() > MAX_CHANGES;
        let changes = changes
            .into_iter()
            .take(MAX_CHANGES)
            .map(|c| types::DiffDesiredStateOutputChangesItem {
                kind: c.kind,
                name: c.name,
                namespace: c.namespace,
                change: match c.change {
                    state::ChangeKind::Added => types::DiffDesiredStateOutputChangesItemChange::Added,
                    state::ChangeKind::Modified => types::DiffDesiredStateOutputChangesItemChange::Modified,
                    state::ChangeKind::Removed => types::DiffDesiredStateOutputChangesItemChange::Removed,
                },
                summary: c.summary,
            })
            .collect();
        Ok(types::DiffDesiredStateOutput {
            from_revision: deployed.revision.clone(),
            to_revision: revision.sha.clone(),
            changes,
            truncated,
        })
    }

    async fn draft_change_plan(
        &self,
        context: &Context,
        input: types::DraftChangePlanInput,
    ) -> Result<types::DraftChangePlanOutput, ToolError> {
        let environment = to_str(&input.environment);
        let window = match &input.window {
            Some(window) => Some(check_window(window)?),
            None => None,
        };
        let (deployed, revision, changes) = self.compare(&input.service, &environment, Some(&input.target_revision))?;
        if changes.is_empty() {
            return Err(ToolError::invalid(format!(
                "{} in {environment} already runs the manifests of {}; there is nothing to change",
                input.service,
                &revision.sha[..8]
            )));
        }
        let plan_id = clock::uuid_v4();
        let plan = plan::draft(&plan::Request {
            plan_id: &plan_id,
            service: &input.service,
            environment: &environment,
            rollout: &to_str(&input.rollout),
            window: input
                .window
                .as_ref()
                .zip(window)
                .map(|(w, secs)| (w.start.as_str(), w.end.as_str(), secs)),
            notes: input.notes.as_deref(),
            author: &context.caller,
            deployed,
            revision,
            changes: &changes,
        });
        let risk = match plan.risk {
            plan::Risk::Low => types::DraftChangePlanOutputRisk::Low,
            plan::Risk::Medium => types::DraftChangePlanOutputRisk::Medium,
            plan::Risk::High => types::DraftChangePlanOutputRisk::High,
        };
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).insert(
            plan_id.clone(),
            StoredPlan {
                service: input.service.clone(),
                environment,
                needs_cab: plan.needs_cab,
                markdown: plan.markdown.clone(),
            },
        );
        Ok(types::DraftChangePlanOutput {
            plan_id,
            markdown: plan.markdown,
            steps: plan
                .steps
                .into_iter()
                .enumerate()
                .map(|(i, (action, verification))| types::DraftChangePlanOutputStepsItem {
                    order: i as i64 + 1,
                    action,
                    verification,
                })
                .collect(),
            rollback: plan.rollback,
            risk,
            risk_reasons: plan.risk_reasons,
            needs_cab: plan.needs_cab,
        })
    }

    async fn open_change_request(
        &self,
        context: &Context,
        input: types::OpenChangeRequestInput,
    ) -> Result<types::OpenChangeRequestOutput, ToolError> {
        let (start, end) = check_window(&input.window)?;
        let plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        let plan = plans.get(&input.plan_id).ok_or_else(|| {
            ToolError::not_found(format!(
                "there is no stored change plan {}; draft one first",
                input.plan_id
            ))
        })?;
        let change_type = to_str(&input.change_type);
        if change_type == "standard" && plan.needs_cab {
            return Err(ToolError::invalid(
                "the plan needs the change advisory board, so it cannot be a standard change; use change_type normal",
            ));
        }
        if plan.environment == "production" && plan::in_freeze(start, end) {
            return Err(ToolError::invalid(
                "the window falls in a production freeze (15 December to 5 January); choose another window",
            ));
        }
        let mut requests = self.change_requests.lock().unwrap_or_else(|e| e.into_inner());
        let number = format!("CHG{:07}", 31_000 + requests.len() + 1);
        let link = format!(
            "{}/change_request.do?sysparm_query=number%3D{number}",
            self.servicenow_url
        );
        let record = serde_json::json!({
            "change_request": number,
            "state": "new",
            "plan_id": input.plan_id,
            "service": plan.service,
            "environment": plan.environment,
            "change_type": change_type,
            "assignment_group": to_str(&input.assignment_group),
            "window": { "start": clock::rfc3339(start), "end": clock::rfc3339(end) },
            "justification": input.justification,
            "requested_by": context.caller,
            "opened_at": clock::rfc3339(clock::now_secs()),
        });
        if let Some(path) = &self.change_requests_log {
            use std::io::Write;
            let line = format!("{record}\n");
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .map_err(|e| {
                    charter_runtime::tracing::error!(error = %e, path = %path.display(), "change request log");
                    ToolError::unavailable("the change request could not be recorded; try again")
                })?;
        }
        requests.push(record);
        Ok(types::OpenChangeRequestOutput {
            change_request: number,
            state: types::OpenChangeRequestOutputState::New,
            link,
        })
    }

    async fn read_change_plan(
        &self,
        _context: &Context,
        _uri: &str,
        params: types::ChangePlanParams,
    ) -> Result<ResourceBody, ToolError> {
        let plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        let plan = plans
            .get(&params.plan_id)
            .ok_or_else(|| ToolError::not_found(format!("there is no stored change plan {}", params.plan_id)))?;
        Ok(ResourceBody::Text(plan.markdown.clone()))
    }

    async fn read_change_policy(&self, _context: &Context) -> Result<ResourceBody, ToolError> {
        Ok(ResourceBody::Text(CHANGE_POLICY.to_string()))
    }
}

#[cfg(test)]
mod tests;

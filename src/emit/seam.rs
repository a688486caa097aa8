//! The model lowered into the runtime's typed surface (`charter-surface`):
//! the one seam between what the generator decides and what the runtime
//! enforces. Both sides use the same serde types, so a field or a value one
//! side does not know cannot slip through as a string.

use charter_surface as seam;

use crate::contract::raw;
use crate::model::{self, Approval, Credentials, Model, ResourceTarget, SecretRef};
use crate::surface;

/// The surface a generated server embeds. Fails only for a contract the
/// runtime cannot honour, which `charter check` refuses before emission.
pub fn surface(model: &Model) -> Result<seam::Surface, String> {
    let server = &model.server;
    let server_limits = limits(&model.limits);
    Ok(seam::Surface {
        server: seam::ServerInfo {
            name: server.name.original.clone(),
            title: server.title.clone(),
            version: server.version.to_string(),
            description: server.description.clone(),
            env_prefix: super::env_prefix(model),
            disable: seam::DisableSpec {
                env: server.retirement.disable.as_ref().and_then(|d| d.env.clone()),
                file: server.retirement.disable.as_ref().and_then(|d| d.file.clone()),
            },
        },
        http: seam::HttpDefaults {
            origins: model.access.origins.clone(),
            max_request_bytes: model.limits.max_request_bytes,
            sessions: model.access.sessions.map(|s| seam::SessionsSpec {
                max: s.max,
                idle_ms: millis(s.idle),
            }),
        },
        oauth: model.access.oauth.as_ref().map(|o| seam::OAuthSpec {
            issuer: o.issuer.clone(),
            audience: o.audience.clone(),
            jwks_uri: o.jwks_uri.clone(),
            algorithms: o.algorithms.clone(),
            leeway_ms: millis(o.leeway),
        }),
        scopes: model.access.scopes.iter().map(|s| s.name.clone()).collect(),
        data_classes: model
            .data_classes
            .iter()
            .map(|c| (c.name.clone(), redaction(c.logs)))
            .collect(),
        downstreams: model.downstreams.iter().map(downstream).collect::<Result<_, _>>()?,
        tools: model.tools.iter().map(tool).collect(),
        resources: model.resources.iter().map(resource).collect(),
        prompts: model.prompts.iter().map(|p| prompt(p, &server_limits)).collect(),
    })
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn limits(limits: &model::Limits) -> seam::Limits {
    seam::Limits {
        timeout_ms: millis(limits.timeout),
        max_request_bytes: limits.max_request_bytes,
        max_response_bytes: limits.max_response_bytes,
        rate: seam::Rate {
            count: limits.rate.count,
            period_ms: millis(limits.rate.period),
        },
        concurrency: limits.concurrency,
    }
}

fn effect(effect: raw::Effect) -> seam::Effect {
    match effect {
        raw::Effect::Read => seam::Effect::Read,
        raw::Effect::Draft => seam::Effect::Draft,
        raw::Effect::Write => seam::Effect::Write,
    }
}

fn redaction(redaction: raw::Redaction) -> seam::Redaction {
    match redaction {
        raw::Redaction::Full => seam::Redaction::Full,
        raw::Redaction::Hash => seam::Redaction::Hash,
        raw::Redaction::Redact => seam::Redaction::Redact,
        raw::Redaction::Omit => seam::Redaction::Omit,
    }
}

fn content_kind(kind: raw::ContentKind) -> seam::ContentKind {
    match kind {
        raw::ContentKind::Text => seam::ContentKind::Text,
        raw::ContentKind::Image => seam::ContentKind::Image,
        raw::ContentKind::Audio => seam::ContentKind::Audio,
        raw::ContentKind::Resource => seam::ContentKind::Resource,
        raw::ContentKind::ResourceLink => seam::ContentKind::ResourceLink,
    }
}

fn client_request(request: raw::ClientRequest) -> seam::ClientRequest {
    match request {
        raw::ClientRequest::Sampling => seam::ClientRequest::Sampling,
        raw::ClientRequest::Elicitation => seam::ClientRequest::Elicitation,
        raw::ClientRequest::Roots => seam::ClientRequest::Roots,
    }
}

fn approval(approval: &Approval) -> seam::ApprovalSpec {
    match approval {
        Approval::None => seam::ApprovalSpec::None,
        Approval::User => seam::ApprovalSpec::User,
        Approval::Reviewer { scope, expires } => seam::ApprovalSpec::Reviewer {
            scope: scope.clone(),
            expires_ms: millis(*expires),
        },
    }
}

fn tool(tool: &model::Tool) -> seam::ToolSpec {
    let definition = surface::tool(tool);
    seam::ToolSpec {
        hash: surface::definition_hash(&definition),
        definition,
        effect: effect(tool.effect),
        scopes: tool.scopes.clone(),
        data_class: tool.data_class.clone(),
        approval: approval(&tool.approval),
        audit: seam::AuditSpec {
            arguments: tool.audit.arguments,
            results: tool.audit.results,
        },
        limits: limits(&tool.limits),
        content: tool.content.iter().copied().map(content_kind).collect(),
        progress: tool.progress,
        client_logging: tool.client_logging,
        asks_client: tool.asks_client.iter().copied().map(client_request).collect(),
        downstreams: tool.downstreams.clone(),
        binding: tool.binding.as_ref().map(binding),
    }
}

fn binding(b: &model::Binding) -> seam::BindingSpec {
    seam::BindingSpec {
        downstream: b.downstream.clone(),
        method: b.method,
        path: b.path.clone(),
        parameters: b.parameters.clone(),
        success: b.success.clone(),
        response: seam::ResponseSpec {
            field: b.response_field.clone(),
        },
    }
}

fn resource(resource: &model::Resource) -> seam::ResourceSpec {
    let definition = surface::resource(resource);
    let variables = match &resource.target {
        ResourceTarget::Static { .. } => None,
        ResourceTarget::Template { variables, .. } => Some(
            variables
                .iter()
                .map(|v| (v.name.original.clone(), v.schema.value.clone()))
                .collect(),
        ),
    };
    seam::ResourceSpec {
        hash: surface::definition_hash(&definition),
        definition,
        variables,
        scopes: resource.scopes.clone(),
        data_class: resource.data_class.clone(),
        limits: limits(&resource.limits),
        downstreams: resource.downstreams.clone(),
        subscribable: resource.subscribable,
    }
}

/// Prompts have no limits of their own in the contract: they run under the server's.
fn prompt(prompt: &model::Prompt, server_limits: &seam::Limits) -> seam::PromptSpec {
    let definition = surface::prompt(prompt);
    seam::PromptSpec {
        hash: surface::definition_hash(&definition),
        definition,
        text: prompt.text.clone(),
        handler: prompt.handler.is_some(),
        asks_client: prompt.asks_client.iter().copied().map(client_request).collect(),
        max_lengths: prompt
            .arguments
            .iter()
            .map(|a| (a.name.original.clone(), a.max_length))
            .collect(),
        completions: prompt
            .arguments
            .iter()
            .filter(|a| !a.completions.is_empty())
            .map(|a| (a.name.original.clone(), a.completions.clone()))
            .collect(),
        scopes: prompt.scopes.clone(),
        data_class: prompt.data_class.clone(),
        limits: server_limits.clone(),
    }
}

fn secret(secret: &SecretRef) -> seam::SecretRef {
    match secret {
        SecretRef::Env(name) => seam::SecretRef::Env(name.clone()),
        SecretRef::File(path) => seam::SecretRef::File(path.clone()),
    }
}

/// A downstream as the egress control needs it: where it is, which hosts it
/// may reach, and where (never what) its credential is.
fn downstream(downstream: &model::Downstream) -> Result<seam::DownstreamSpec, String> {
    let name = &downstream.name.original;
    let credentials = match &downstream.credentials {
        Credentials::None => seam::CredentialSpec::None,
        Credentials::ServiceToken { secret: s } => seam::CredentialSpec::ServiceToken { secret: secret(s) },
        Credentials::ClientCredentials {
            token_url,
            client_id,
            client_secret,
        } => seam::CredentialSpec::ClientCredentials {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: secret(client_secret),
            scopes: downstream.credential_scopes.clone(),
        },
        Credentials::TokenExchange {
            token_url,
            audience,
            client_id,
            client_secret,
        } => seam::CredentialSpec::TokenExchange {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: secret(client_secret),
            audience: audience.clone(),
            scopes: downstream.credential_scopes.clone(),
        },
        // `charter check` refuses it (`token-passthrough`).
        Credentials::CallerToken => {
            return Err(format!(
                "downstream `{name}` passes the caller's token through, which is never allowed"
            ));
        }
    };
    Ok(seam::DownstreamSpec {
        name: name.clone(),
        base_url: downstream.base_url.clone(),
        egress: downstream.egress.iter().map(ToString::to_string).collect(),
        timeout_ms: downstream.timeout.map(millis),
        credentials,
        private_network: downstream.private_network,
    })
}

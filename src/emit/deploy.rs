//! What the deploy manifests need from the model, worked out once so the templates
//! (`kubernetes.yaml`, `network-policy*.yaml`, `alerts*.yaml`, README, REVIEW) only lay it out:
//! where state lives at more than one replica, which secrets the pod mounts, which
//! addresses it may reach.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Approval, Credentials, Model, SecretRef, Transport};

/// The user and group the image and the pod run as: distroless's `nonroot`, by number,
/// because the kubelet can only verify `runAsNonRoot` against a numeric user.
pub const UID: u32 = 65532;

#[derive(Debug, Serialize)]
pub struct DeployPlan {
    pub uid: u32,
    /// More than one replica may run: approvals and rate limits must be shared.
    pub replicated: bool,
    /// Pending approvals live in PostgreSQL (replicated, with reviewer approvals).
    pub postgres: bool,
    /// Rate limits are shared through Redis (replicated).
    pub redis: bool,
    /// Pending approvals live in SQLite on the pod's volume (one replica, reviewer approvals).
    pub sqlite_approvals: bool,
    /// Some call may end `input_required` (a tool or prompt asks the client, or a write needs the
    /// user's confirmation), so the client retries with a sealed state (SEP-2322); replicated,
    /// every replica needs the same sealing key.
    pub request_state: bool,
    /// The Secret holding environment-variable credentials, and its keys.
    pub secret_env: Vec<SecretKey>,
    /// Mounted secret files, one volume per directory.
    pub secret_dirs: Vec<SecretDir>,
    /// Every host the server reaches, with its addresses from `deploy.egress_cidrs`.
    pub network: Vec<NetworkRule>,
    /// Hosts with no addresses: blocked by the plain NetworkPolicy.
    pub unaddressed: Vec<String>,
    /// The environment variable (contract `retirement.disable.env`) read at start-up.
    pub kill_switch_env: Option<String>,
    /// Host names clients may use: the Service's names and the public audience's host.
    pub allowed_hosts: Vec<String>,
    /// The public host and path clients reach (the OAuth audience), when the contract names one.
    pub public_url: Option<String>,
    /// Tools, resources and prompts, for per-capability alerts.
    pub capabilities: Vec<Capability>,
    /// Seconds after which a pending approval is reported as ageing: half the shortest
    /// reviewer expiry, so reviewers hear of it while it can still be decided.
    pub approval_age_alert_secs: Option<u64>,
    /// Legacy HTTP sessions (`access.sessions`): each lives in one pod, so routing is sticky.
    pub sessions: Option<SessionsPlan>,
}

#[derive(Debug, Serialize)]
pub struct SessionsPlan {
    pub max: u32,
    /// The idle life, which the Service's client affinity outlasts by nothing.
    pub idle_secs: u64,
    pub idle: String,
}

#[derive(Debug, Serialize)]
pub struct SecretKey {
    /// The environment variable, which is also the Secret's key.
    pub name: String,
    /// What reads it, e.g. `downstream helpdesk (client secret)`.
    pub purpose: String,
    /// A downstream's credential (the others are the shared-state URLs of a replicated deployment).
    pub downstream: bool,
}

#[derive(Debug, Serialize)]
pub struct SecretDir {
    /// Volume name, e.g. `secrets-0`.
    pub volume: String,
    pub dir: String,
    pub files: Vec<SecretFile>,
}

#[derive(Debug, Serialize)]
pub struct SecretFile {
    /// The key in the `NAME-files` Secret (a valid Secret key, unique across directories).
    pub key: String,
    /// The file name under its directory.
    pub file: String,
    pub path: String,
    pub purpose: String,
}

#[derive(Debug, Serialize)]
pub struct NetworkRule {
    pub host: String,
    pub port: u16,
    pub purpose: String,
    pub cidrs: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Capability {
    pub kind: &'static str,
    pub name: String,
    /// The call timeout in seconds, for the latency-near-timeout alert.
    pub timeout_secs: f64,
}

impl DeployPlan {
    pub fn new(model: &Model) -> DeployPlan {
        let http = model.access.transports.contains(&Transport::Http);
        let reviewers = model
            .tools
            .iter()
            .any(|t| matches!(t.approval, Approval::Reviewer { .. }));
        let replicated = http && model.deploy.replicas_max > 1;
        let mut secret_env = Vec::new();
        let mut files: BTreeMap<String, Vec<SecretFile>> = BTreeMap::new();
        for d in &model.downstreams {
            let secret = match &d.credentials {
                Credentials::ServiceToken { secret } => Some((secret, "service token")),
                Credentials::ClientCredentials { client_secret, .. }
                | Credentials::TokenExchange { client_secret, .. } => Some((client_secret, "client secret")),
                Credentials::None | Credentials::CallerToken => None,
            };
            let Some((secret, what)) = secret else { continue };
            let purpose = format!("downstream {} ({what})", d.name.original);
            match secret {
                SecretRef::Env(name) => secret_env.push(SecretKey {
                    name: name.clone(),
                    purpose,
                    downstream: true,
                }),
                SecretRef::File(path) => {
                    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
                    files.entry(dir.to_string()).or_default().push(SecretFile {
                        key: String::new(),
                        file: file.to_string(),
                        path: path.clone(),
                        purpose,
                    });
                }
            }
        }
        let env_prefix = super::env_prefix(model);
        if replicated && reviewers {
            secret_env.push(SecretKey {
                name: format!("{env_prefix}_POSTGRES_URL"),
                purpose: "pending approvals, shared by replicas (PostgreSQL URL with its password)".into(),
                downstream: false,
            });
        }
        let request_state = http
            && (model
                .tools
                .iter()
                .any(|t| !t.asks_client.is_empty() || t.approval == Approval::User)
                || model.prompts.iter().any(|p| !p.asks_client.is_empty()));
        if replicated && request_state {
            secret_env.push(SecretKey {
                name: format!("{env_prefix}_REQUEST_STATE_KEY"),
                purpose: "seals multi-round request states, the same on every replica (32 random bytes or more)".into(),
                downstream: false,
            });
        }
        if replicated {
            secret_env.push(SecretKey {
                name: format!("{env_prefix}_REDIS_URL"),
                purpose: "rate limits, shared by replicas (Redis URL with its password)".into(),
                downstream: false,
            });
        }
        let mut keys_used = std::collections::BTreeSet::new();
        let secret_dirs = files
            .into_iter()
            .enumerate()
            .map(|(i, (dir, mut files))| {
                for f in &mut files {
                    let mut key = f.file.clone();
                    let mut n = 2;
                    while !keys_used.insert(key.clone()) {
                        key = format!("{}-{n}", f.file);
                        n += 1;
                    }
                    f.key = key;
                }
                SecretDir {
                    volume: format!("secrets-{i}"),
                    dir,
                    files,
                }
            })
            .collect();
        let network: Vec<NetworkRule> = model
            .network_hosts()
            .into_iter()
            .map(|h| NetworkRule {
                cidrs: model.deploy.egress_cidrs.get(&h.host).cloned().unwrap_or_default(),
                host: h.host,
                port: h.port,
                purpose: h.purpose,
            })
            .collect();
        let unaddressed = network
            .iter()
            .filter(|n| n.cidrs.is_empty())
            .map(|n| format!("{}:{}", n.host, n.port))
            .collect();
        let name = &model.server.name.original;
        let namespace = &model.deploy.namespace;
        let public = model
            .access
            .oauth
            .as_ref()
            .and_then(|o| url::Url::parse(&o.audience).ok());
        let mut allowed_hosts = vec![
            format!("{name}.{namespace}.svc"),
            format!("{name}.{namespace}.svc.cluster.local"),
        ];
        if let Some(host) = public.as_ref().and_then(|u| u.host_str()) {
            allowed_hosts.push(host.to_string());
        }
        let mut capabilities = Vec::new();
        for t in &model.tools {
            capabilities.push(Capability {
                kind: "tool",
                name: t.name.original.clone(),
                timeout_secs: t.limits.timeout.as_secs_f64(),
            });
        }
        for r in &model.resources {
            capabilities.push(Capability {
                kind: "resource",
                name: r.name.original.clone(),
                timeout_secs: r.limits.timeout.as_secs_f64(),
            });
        }
        let approval_age_alert_secs = model
            .tools
            .iter()
            .filter_map(|t| match &t.approval {
                Approval::Reviewer { expires, .. } => Some(expires.as_secs() / 2),
                _ => None,
            })
            .min();
        DeployPlan {
            approval_age_alert_secs,
            uid: UID,
            replicated,
            postgres: replicated && reviewers,
            redis: replicated,
            sqlite_approvals: reviewers && !replicated,
            request_state,
            secret_env,
            secret_dirs,
            network,
            unaddressed,
            kill_switch_env: model.server.retirement.disable.as_ref().and_then(|d| d.env.clone()),
            allowed_hosts,
            public_url: public.map(|u| u.to_string()),
            capabilities,
            sessions: model.access.sessions.filter(|_| http).map(|s| SessionsPlan {
                max: s.max,
                // Kubernetes takes 1 to 86400 seconds; the contract's idle is within that.
                idle_secs: s.idle.as_secs().clamp(1, 86_400),
                idle: crate::model::units::format_duration(s.idle),
            }),
        }
    }
}

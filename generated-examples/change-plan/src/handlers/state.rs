//! The deployed state (what Argo CD reports, `data/current-state.json`) and the desired state
//! (manifests rendered from revisions of the deploy-config repository, `data/desired-state.json`),
//! and the object-by-object diff between them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub const CURRENT_STATE: &str = include_str!("../../data/current-state.json");
pub const DESIRED_STATE: &str = include_str!("../../data/desired-state.json");

/// A Kubernetes object, reduced to what the plan needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Object {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// Everything else (`spec`, `data`, ...).
    #[serde(flatten)]
    pub body: BTreeMap<String, Value>,
}

impl Object {
    fn key(&self) -> (String, String, String) {
        (self.kind.clone(), self.namespace.clone(), self.name.clone())
    }

    /// Container images of a workload.
    pub fn images(&self) -> Vec<String> {
        let containers = match self.kind.as_str() {
            "CronJob" => &self.body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
            _ => &self.body.get("spec").unwrap_or(&Value::Null)["template"]["spec"]["containers"],
        };
        containers
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["image"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deployed {
    pub revision: String,
    pub sync_status: String,
    pub health: String,
    pub last_synced_at: String,
    #[serde(default)]
    pub replicas: Option<Replicas>,
    pub objects: Vec<Object>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Replicas {
    pub desired: i64,
    pub ready: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CurrentState {
    /// Service, then environment.
    pub services: BTreeMap<String, BTreeMap<String, Deployed>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DesiredState {
    pub repository: String,
    pub head: String,
    pub revisions: Vec<Revision>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Revision {
    pub sha: String,
    pub message: String,
    pub committed_at: String,
    /// Service, then environment, then the rendered objects.
    pub services: BTreeMap<String, BTreeMap<String, Vec<Object>>>,
}

impl DesiredState {
    pub fn revision(&self, sha: &str) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.sha == sha)
    }
}

/// Parses both files and checks that they fit together.
pub fn load(current: &str, desired: &str) -> Result<(CurrentState, DesiredState), String> {
    let current: CurrentState = serde_json::from_str(current).map_err(|e| format!("current state: {e}"))?;
    let desired: DesiredState = serde_json::from_str(desired).map_err(|e| format!("desired state: {e}"))?;
    let is_sha = |s: &str| s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if desired.revision(&desired.head).is_none() {
        return Err(format!(
            "desired state: head {} is not one of its revisions",
            desired.head
        ));
    }
    for revision in &desired.revisions {
        if !is_sha(&revision.sha) {
            return Err(format!("desired state: `{}` is not a full commit SHA", revision.sha));
        }
    }
    for (service, environments) in &current.services {
        for (environment, deployed) in environments {
            if !is_sha(&deployed.revision) {
                return Err(format!(
                    "current state: {service}/{environment}: revision is not a full commit SHA"
                ));
            }
        }
    }
    Ok((current, desired))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Removed,
}

#[derive(Debug, Clone)]
pub struct Change {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub change: ChangeKind,
    pub summary: String,
    /// The changed fields, as JSON paths (for Secrets: the changed keys under `data`).
    pub fields: Vec<String>,
}

/// The objects that differ between `from` (deployed) and `to` (desired), in a stable order.
pub fn diff(from: &[Object], to: &[Object]) -> Vec<Change> {
    let from: BTreeMap<_, _> = from.iter().map(|o| (o.key(), o)).collect();
    let to: BTreeMap<_, _> = to.iter().map(|o| (o.key(), o)).collect();
    let mut changes = Vec::new();
    for (key, new) in &to {
        match from.get(key) {
            None => changes.push(Change {
                kind: new.kind.clone(),
                name: new.name.clone(),
                namespace: new.namespace.clone(),
                change: ChangeKind::Added,
                summary: if new.kind == "Secret" {
                    "New Secret (values not shown).".into()
                } else {
                    format!("New {}: {}.", new.kind, describe(new))
                },
                fields: Vec::new(),
            }),
            Some(old) if old != new => {
                let mut old_leaves = BTreeMap::new();
                let mut new_leaves = BTreeMap::new();
                leaves(
                    "",
                    &Value::Object(old.body.clone().into_iter().collect()),
                    &mut old_leaves,
                );
                leaves(
                    "",
                    &Value::Object(new.body.clone().into_iter().collect()),
                    &mut new_leaves,
                );
                let mut paths: Vec<&String> = old_leaves.keys().chain(new_leaves.keys()).collect();
                paths.sort();
                paths.dedup();
                let changed: Vec<(&String, Option<&String>, Option<&String>)> = paths
                    .into_iter()
                    .map(|p| (p, old_leaves.get(p), new_leaves.get(p)))
                    .filter(|(_, a, b)| a != b)
                    .collect();
                let summary = if new.kind == "Secret" {
                    let keys: Vec<&str> = changed.iter().map(|(p, _, _)| p.trim_start_matches("data.")).collect();
                    format!(
                        "Secret values changed for keys: {} (values not shown).",
                        keys.join(", ")
                    )
                } else {
                    let parts: Vec<String> = changed
                        .iter()
                        .map(|(p, a, b)| match (a, b) {
                            (Some(a), Some(b)) => format!("{p}: {a} → {b}"),
                            (None, Some(b)) => format!("{p}: added {b}"),
                            (Some(a), None) => format!("{p}: removed (was {a})"),
                            (None, None) => unreachable!(),
                        })
                        .collect();
                    truncate(&parts.join("; "), 2000)
                };
                changes.push(Change {
                    kind: new.kind.clone(),
                    name: new.name.clone(),
                    namespace: new.namespace.clone(),
                    change: ChangeKind::Modified,
                    summary,
                    fields: changed.iter().map(|(p, _, _)| p.to_string()).collect(),
                });
            }
            Some(_) => {}
        }
    }
    for (key, old) in &from {
        if !to.contains_key(key) {
            changes.push(Change {
                kind: old.kind.clone(),
                name: old.name.clone(),
                namespace: old.namespace.clone(),
                change: ChangeKind::Removed,
                summary: if old.kind == "Secret" {
                    "Secret removed.".into()
                } else {
                    format!("{} removed: {}.", old.kind, describe(old))
                },
                fields: Vec::new(),
            });
        }
    }
    changes
}

/// A one-line description of an object, for added and removed ones.
fn describe(object: &Object) -> String {
    let mut leaves_of = BTreeMap::new();
    leaves(
        "",
        &Value::Object(object.body.clone().into_iter().collect()),
        &mut leaves_of,
    );
    let parts: Vec<String> = leaves_of.iter().take(6).map(|(p, v)| format!("{p}={v}")).collect();
    let more = leaves_of.len().saturating_sub(6);
    let mut text = parts.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more fields"));
    }
    truncate(&text, 1800)
}

/// Flattens JSON into `path -> value` leaves; arrays of named items are keyed by name.
fn leaves(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                leaves(&join(key), value, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let label = item["name"].as_str().map_or_else(|| i.to_string(), str::to_string);
                leaves(&format!("{prefix}[{label}]"), item, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end.saturating_sub(3).min(end)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_states_load_and_diff() {
        let (current, desired) = load(CURRENT_STATE, DESIRED_STATE).unwrap();
        let deployed = &current.services["payments-api"]["production"];
        let head = desired.revision(&desired.head).unwrap();
        let changes = diff(&deployed.objects, &head.services["payments-api"]["production"]);
        let by_kind: Vec<(&str, ChangeKind)> = changes.iter().map(|c| (c.kind.as_str(), c.change)).collect();
        assert_eq!(
            by_kind,
            [
                ("ConfigMap", ChangeKind::Modified),
                ("Deployment", ChangeKind::Modified),
                ("HorizontalPodAutoscaler", ChangeKind::Modified),
                ("PodDisruptionBudget", ChangeKind::Added),
                ("Secret", ChangeKind::Modified),
                ("CronJob", ChangeKind::Removed),
            ]
        );
        let deployment = &changes[1];
        assert!(
            deployment
                .summary
                .contains("payments-api:1.14.2 → registry.example.com/payments/payments-api:1.15.0")
        );
        assert!(
            deployment.summary.contains("env[DB_POOL_SIZE].value: 20 → 30"),
            "{}",
            deployment.summary
        );
        assert!(!changes[4].summary.contains("sha256"), "secret values never appear");
    }
}

//! Drafting a change plan from a diff, following `data/change-policy.md`: risk rating, whether
//! the change advisory board (CAB) must assess it, rollout steps with checks, and rollback.

use super::clock;
use super::state::{Change, ChangeKind, Deployed, Revision};

pub struct Request<'a> {
    pub plan_id: &'a str,
    pub service: &'a str,
    pub environment: &'a str,
    /// `rolling`, `canary` or `blue_green`.
    pub rollout: &'a str,
    /// Start and end as given, and as seconds since the epoch.
    pub window: Option<(&'a str, &'a str, (i64, i64))>,
    pub notes: Option<&'a str>,
    pub author: &'a str,
    pub deployed: &'a Deployed,
    pub revision: &'a Revision,
    pub changes: &'a [Change],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

pub struct Plan {
    pub markdown: String,
    /// Action and its verification, in order.
    pub steps: Vec<(String, String)>,
    pub rollback: Vec<String>,
    pub risk: Risk,
    pub risk_reasons: Vec<String>,
    pub needs_cab: bool,
}

/// Whether a window touches the year-end freeze (15 December to 5 January, UTC).
pub fn in_freeze(start: i64, end: i64) -> bool {
    let frozen = |secs: i64| {
        let (_, m, d) = clock::date_of(secs);
        (m == 12 && d >= 15) || (m == 1 && d <= 5)
    };
    // Windows are hours long; checking each day they touch is enough.
    (start..=end).step_by(86_400).chain([end]).any(frozen)
}

fn is_workload(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet")
}

/// Risk and the reasons for it, per the change policy.
fn assess(request: &Request) -> (Risk, Vec<String>) {
    let production = request.environment == "production";
    let mut reasons: Vec<(Risk, String)> = Vec::new();
    let deployed = request.deployed;
    if deployed.health != "healthy" || deployed.sync_status != "synced" {
        reasons.push((
            Risk::High,
            format!(
                "The service is {} and {} before the change.",
                deployed.health,
                deployed.sync_status.replace('_', " ")
            ),
        ));
    }
    if let Some((_, _, (start, end))) = request.window
        && production
        && in_freeze(start, end)
    {
        reasons.push((Risk::High, "The window falls in the year-end production freeze.".into()));
    }
    for change in request.changes {
        let object = format!("{} {}", change.kind, change.name);
        let fields = change.fields.join(" ");
        match change.change {
            ChangeKind::Removed if production => {
                reasons.push((Risk::High, format!("{object} is removed from production.")));
            }
            ChangeKind::Added if production => reasons.push((Risk::Medium, format!("{object} is added."))),
            _ if change.kind == "Secret" && production => {
                reasons.push((Risk::Medium, format!("{object} is rotated or changed.")));
            }
            ChangeKind::Modified if production && fields.contains("resources.") => {
                reasons.push((Risk::Medium, format!("{object} changes resource requests or limits.")));
            }
            ChangeKind::Modified
                if production
                    && (change.kind == "HorizontalPodAutoscaler"
                        || change.kind == "PodDisruptionBudget"
                        || fields.contains("spec.replicas")) =>
            {
                reasons.push((Risk::Medium, format!("{object} changes scaling.")));
            }
            _ => {}
        }
    }
    if production && request.changes.len() > 5 {
        reasons.push((
            Risk::Medium,
            format!("{} objects change at once.", request.changes.len()),
        ));
    }
    if production && request.window.is_none() {
        reasons.push((
            Risk::Medium,
            "No maintenance window is given; production changes need one.".into(),
        ));
    }
    let risk = reasons.iter().map(|(r, _)| *r).max().unwrap_or(Risk::Low);
    let mut reasons: Vec<String> = reasons.into_iter().map(|(_, text)| text).collect();
    if reasons.is_empty() {
        reasons.push(if production {
            "Only images or configuration of existing objects change, on a healthy, synced service.".into()
        } else {
            "Staging change.".into()
        });
    }
    reasons.truncate(20);
    (risk, reasons)
}

pub fn draft(request: &Request) -> Plan {
    let (risk, risk_reasons) = assess(request);
    let production = request.environment == "production";
    let adds_or_removes = request.changes.iter().any(|c| c.change != ChangeKind::Modified);
    let touches_secret = request.changes.iter().any(|c| c.kind == "Secret");
    let standard = !production || (risk == Risk::Low && !adds_or_removes && !touches_secret);
    let needs_cab = !standard;
    let (service, env) = (request.service, request.environment);
    let from = &request.deployed.revision;
    let to = &request.revision.sha;
    let app = format!("{service}-{env}");
    let workloads: Vec<&Change> = request.changes.iter().filter(|c| is_workload(&c.kind)).collect();
    let supporting: Vec<&Change> = request.changes.iter().filter(|c| !is_workload(&c.kind)).collect();
    let rollout_target = |c: &Change| format!("{}/{} -n {}", c.kind.to_lowercase(), c.name, c.namespace);

    let mut steps: Vec<(String, String)> = vec![(
        format!(
            "Confirm that Argo CD application {app} is Synced and Healthy at revision {}.",
            &from[..12]
        ),
        format!(
            "`argocd app get {app}` shows Sync Status Synced to {} and Health Status Healthy.",
            &from[..12]
        ),
    )];
    if touches_secret {
        steps.push((
            "Confirm that the new Secret versions exist in Vault and note the previous versions for rollback.".into(),
            "`vault kv metadata get` lists the new version as current and the previous version undeleted.".into(),
        ));
    }
    if !supporting.is_empty() {
        let names: Vec<String> = supporting.iter().map(|c| format!("{} {}", c.kind, c.name)).collect();
        steps.push((
            format!(
                "Sync the supporting objects first: `argocd app sync {app} --revision {to} --resource` for {}.",
                names.join(", ")
            ),
            "`argocd app get` shows these objects Synced; nothing else has changed yet.".into(),
        ));
    }
    match request.rollout {
        "canary" => {
            for weight in [10, 50, 100] {
                steps.push((
                    format!("Shift {weight} % of traffic to the canary of {service} at revision {}.", &to[..12]),
                    "Hold 15 minutes: error rate and p99 latency stay within the service's SLO on the canary dashboard."
                        .into(),
                ));
            }
        }
        "blue_green" => {
            steps.push((
                format!(
                    "Deploy the green stack of {service} at revision {} alongside blue.",
                    &to[..12]
                ),
                "All green pods are Ready; smoke tests pass against the green preview Service.".into(),
            ));
            steps.push((
                "Switch the Service selector from blue to green.".into(),
                "Traffic reaches green only; error rate and p99 latency stay within SLO for 30 minutes.".into(),
            ));
            steps.push((
                "Scale the blue stack to zero after 30 minutes without alerts.".into(),
                "Blue has no pods; green serves all traffic.".into(),
            ));
        }
        _ => {
            steps.push((
                format!(
                    "Sync {app} to revision {} (rolling update, maxUnavailable 0).",
                    &to[..12]
                ),
                if workloads.is_empty() {
                    "`argocd app get` shows Synced and Healthy at the target revision.".into()
                } else {
                    let checks: Vec<String> = workloads
                        .iter()
                        .map(|c| format!("`kubectl rollout status {}`", rollout_target(c)))
                        .collect();
                    format!(
                        "{} completes; ready replicas equal desired replicas.",
                        checks.join(" and ")
                    )
                },
            ));
        }
    }
    steps.push((
        format!("Watch {service} for 30 minutes after the change."),
        "No new alerts; error rate, latency and saturation match the hour before the change.".into(),
    ));
    steps.truncate(50);

    let mut rollback = vec![format!(
        "Sync Argo CD application {app} back to revision {from}: `argocd app sync {app} --revision {from}`."
    )];
    match request.rollout {
        "canary" => rollback.insert(0, "Set the canary traffic weight to 0 %.".into()),
        "blue_green" => rollback.insert(
            0,
            "Switch the Service selector back to blue (kept for 30 minutes).".into(),
        ),
        _ => {
            for workload in &workloads {
                rollback.push(format!(
                    "If the sync cannot complete, `kubectl rollout undo {}`.",
                    rollout_target(workload)
                ));
            }
        }
    }
    if touches_secret {
        rollback.push("Restore the previous Secret versions from Vault and restart the pods that read them.".into());
    }
    for removed in request.changes.iter().filter(|c| c.change == ChangeKind::Removed) {
        rollback.push(format!(
            "{} {} returns with the sync to {}; confirm it exists again.",
            removed.kind,
            removed.name,
            &from[..12]
        ));
    }
    rollback.push(format!(
        "Confirm `argocd app get {app}` shows Synced and Healthy at {}.",
        &from[..12]
    ));
    rollback.truncate(20);

    let markdown = render(request, &steps, &rollback, risk, &risk_reasons, needs_cab);
    Plan {
        markdown,
        steps,
        rollback,
        risk,
        risk_reasons,
        needs_cab,
    }
}

fn render(
    request: &Request,
    steps: &[(String, String)],
    rollback: &[String],
    risk: Risk,
    risk_reasons: &[String],
    needs_cab: bool,
) -> String {
    let mut md = String::new();
    let push = |md: &mut String, line: &str| {
        md.push_str(line);
        md.push('\n');
    };
    push(
        &mut md,
        &format!("# Change plan: {} in {}", request.service, request.environment),
    );
    push(&mut md, "");
    push(
        &mut md,
        &format!("- Plan: `{}` (draft, nothing deployed)", request.plan_id),
    );
    push(
        &mut md,
        &format!(
            "- Drafted by: {} at {}",
            request.author,
            clock::rfc3339(clock::now_secs())
        ),
    );
    push(
        &mut md,
        &format!(
            "- From revision: `{}` (deployed, synced {})",
            request.deployed.revision, request.deployed.last_synced_at
        ),
    );
    push(
        &mut md,
        &format!(
            "- To revision: `{}` (committed {}): {}",
            request.revision.sha, request.revision.committed_at, request.revision.message
        ),
    );
    push(&mut md, &format!("- Rollout: {}", request.rollout.replace('_', "-")));
    match request.window {
        Some((start, end, _)) => push(&mut md, &format!("- Window: {start} to {end}")),
        None => push(&mut md, "- Window: not given"),
    }
    push(&mut md, &format!("- Risk: **{}**", risk.as_str()));
    push(
        &mut md,
        &format!(
            "- Change type: {}",
            if needs_cab {
                "normal (needs the change advisory board)"
            } else {
                "standard"
            }
        ),
    );
    if let Some(notes) = request.notes {
        push(&mut md, "");
        push(&mut md, "## Notes");
        push(&mut md, "");
        push(&mut md, notes.trim());
    }
    push(&mut md, "");
    push(&mut md, "## Changes");
    push(&mut md, "");
    push(&mut md, "| Change | Kind | Namespace/Name | Summary |");
    push(&mut md, "|---|---|---|---|");
    for change in request.changes {
        let change_name = match change.change {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Removed => "removed",
        };
        push(
            &mut md,
            &format!(
                "| {change_name} | {} | {}/{} | {} |",
                change.kind,
                change.namespace,
                change.name,
                change.summary.replace('|', "\\|")
            ),
        );
    }
    push(&mut md, "");
    push(&mut md, "## Risk");
    push(&mut md, "");
    for reason in risk_reasons {
        push(&mut md, &format!("- {reason}"));
    }
    push(&mut md, "");
    push(&mut md, "## Steps");
    push(&mut md, "");
    for (i, (action, verification)) in steps.iter().enumerate() {
        push(&mut md, &format!("{}. {action}", i + 1));
        push(&mut md, &format!("   - Check: {verification}"));
    }
    push(&mut md, "");
    push(&mut md, "## Rollback");
    push(&mut md, "");
    for (i, step) in rollback.iter().enumerate() {
        push(&mut md, &format!("{}. {step}", i + 1));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_covers_year_end() {
        let at = |s: &str| clock::parse_rfc3339(s).unwrap();
        assert!(in_freeze(at("2026-12-15T06:00:00Z"), at("2026-12-15T08:00:00Z")));
        assert!(in_freeze(at("2026-12-14T22:00:00Z"), at("2026-12-15T02:00:00Z")));
        assert!(in_freeze(at("2027-01-05T06:00:00Z"), at("2027-01-05T08:00:00Z")));
        assert!(!in_freeze(at("2026-12-01T06:00:00Z"), at("2026-12-01T10:00:00Z")));
        assert!(!in_freeze(at("2027-01-06T06:00:00Z"), at("2027-01-06T10:00:00Z")));
    }
}

//! The handlers on the embedded states, called through the real server so inputs and outputs
//! are validated against the contract.

use serde_json::{Map, Value, json};

use super::*;
use crate::generated::dispatch::Dispatcher;
use charter_runtime::server::McpServer;
use charter_runtime::surface::Surface;

const DEPLOYED: &str = "3f9c2e7a1b4d5c6e8f0a9b1c2d3e4f5a6b7c8d9e";
const R1: &str = "7d41e0c9b2a35f68e1d4c7b0a3f69e2d5c8b1a47";
const HEAD: &str = "c05a8f3e6d29b17c4e80f5a2d93b6c1e7f40a8d2";

fn server_with(config: &Config) -> McpServer {
    let surface = Surface::parse(crate::generated::SURFACE).unwrap();
    McpServer::new(surface, Dispatcher::new(Handlers::new(config).unwrap())).unwrap()
}

fn server() -> McpServer {
    server_with(&Config::default())
}

async fn call(server: &McpServer, tool: &str, args: Value) -> Result<Value, String> {
    let args: Map<String, Value> = serde_json::from_value(args).unwrap();
    let result = server
        .call(tool, Some(args), Context::new("eng.ada", "1"))
        .await
        .unwrap();
    if result.is_error == Some(true) {
        return Err(serde_json::to_string(&result.content).unwrap());
    }
    Ok(result.structured_content.expect("structured content"))
}

async fn read(server: &McpServer, uri: &str) -> Result<String, String> {
    let result = server
        .read(uri, Context::new("eng.ada", "1"))
        .await
        .map_err(|e| e.to_string())?;
    match &result.contents[0] {
        charter_runtime::rmcp::model::ResourceContents::TextResourceContents { text, .. } => Ok(text.clone()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn service_state() {
    let server = server();
    let out = call(
        &server,
        "get_service_state",
        json!({"service": "payments-api", "environment": "production"}),
    )
    .await
    .unwrap();
    assert_eq!(out["revision"], DEPLOYED);
    assert_eq!(
        out["images"],
        json!([
            "registry.example.com/payments/payments-api:1.14.2",
            "registry.example.com/payments/reconcile:0.9.4"
        ])
    );
    assert_eq!(out["replicas"], json!({"desired": 6, "ready": 6}));
    assert_eq!(
        (out["sync_status"].as_str(), out["health"].as_str()),
        (Some("synced"), Some("healthy"))
    );
    let err = call(
        &server,
        "get_service_state",
        json!({"service": "ledger-api", "environment": "staging"}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("no Argo CD application ledger-api"), "{err}");
}

#[tokio::test]
async fn diff_against_head_and_older_revision() {
    let server = server();
    let out = call(
        &server,
        "diff_desired_state",
        json!({"service": "payments-api", "environment": "production"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (out["from_revision"].as_str(), out["to_revision"].as_str()),
        (Some(DEPLOYED), Some(HEAD))
    );
    assert_eq!(out["changes"].as_array().unwrap().len(), 6);
    assert_eq!(out["truncated"], false);
    let secret = out["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "Secret")
        .unwrap();
    assert_eq!(
        secret["summary"],
        "Secret values changed for keys: password (values not shown)."
    );

    // Production manifests did not change between the deployed revision and R1.
    let out = call(
        &server,
        "diff_desired_state",
        json!({"service": "payments-api", "environment": "production", "target_revision": R1}),
    )
    .await
    .unwrap();
    assert_eq!(out["changes"], json!([]));
    let err = call(
        &server,
        "diff_desired_state",
        json!({"service": "payments-api", "environment": "production", "target_revision": "0".repeat(40)}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("is not on main"), "{err}");
}

#[tokio::test]
async fn risky_production_plan_needs_cab_and_is_stored() {
    let server = server();
    let out = call(
        &server,
        "draft_change_plan",
        json!({
            "service": "payments-api", "environment": "production", "target_revision": HEAD,
            "rollout": "canary", "window": {"start": "2026-12-01T06:00:00Z", "end": "2026-12-01T08:00:00Z"},
            "notes": "Needs PSP sandbox sign-off (INC-4411 follow-up)."
        }),
    )
    .await
    .unwrap();
    assert_eq!(out["risk"], "high");
    assert_eq!(out["needs_cab"], true);
    let reasons = out["risk_reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r == "CronJob payments-reconcile-legacy is removed from production.")
    );
    let steps = out["steps"].as_array().unwrap();
    assert!(steps.iter().enumerate().all(|(i, s)| s["order"] == i as i64 + 1));
    assert!(
        steps
            .iter()
            .any(|s| s["action"].as_str().unwrap().starts_with("Shift 10 %"))
    );
    let rollback = out["rollback"].as_array().unwrap();
    assert_eq!(rollback[0], "Set the canary traffic weight to 0 %.");
    assert!(rollback.iter().any(|r| r.as_str().unwrap().contains(DEPLOYED)));
    assert!(rollback.iter().any(|r| r.as_str().unwrap().contains("Vault")));
    let markdown = out["markdown"].as_str().unwrap();
    assert!(markdown.contains("INC-4411") && markdown.contains("## Rollback"));
    assert!(
        !markdown.contains("sha256:"),
        "secret fingerprints never leave the server"
    );

    let plan_id = out["plan_id"].as_str().unwrap();
    assert_eq!(
        read(&server, &format!("change-plan://plans/{plan_id}")).await.unwrap(),
        markdown
    );

    // The plan needs the CAB, so it cannot be a standard change.
    let request = |change_type: &str| {
        json!({
            "plan_id": plan_id, "change_type": change_type, "assignment_group": "platform-infrastructure",
            "window": {"start": "2026-12-01T06:00:00Z", "end": "2026-12-01T08:00:00Z"},
            "justification": "Release payments-api 1.15.0 with 3DS2 for the EU card mandate."
        })
    };
    let err = call(&server, "open_change_request", request("standard"))
        .await
        .unwrap_err();
    assert!(err.contains("change advisory board"), "{err}");
    let out = call(&server, "open_change_request", request("normal")).await.unwrap();
    assert_eq!(out["change_request"], "CHG0031001");
    assert_eq!(out["state"], "new");
    // Not idempotent: a second call opens another request.
    let out = call(&server, "open_change_request", request("normal")).await.unwrap();
    assert_eq!(out["change_request"], "CHG0031002");
}

#[tokio::test]
async fn image_only_production_change_is_low_risk_standard() {
    let server = server();
    let out = call(
        &server,
        "draft_change_plan",
        json!({
            "service": "checkout-web", "environment": "production", "target_revision": HEAD, "rollout": "rolling",
            "window": {"start": "2026-12-02T06:00:00Z", "end": "2026-12-02T07:00:00Z"}
        }),
    )
    .await
    .unwrap();
    assert_eq!(out["risk"], "low");
    assert_eq!(out["needs_cab"], false);
    let steps = out["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| {
        s["verification"]
            .as_str()
            .unwrap()
            .contains("kubectl rollout status deployment/checkout-web")
    }));
    let plan_id = out["plan_id"].as_str().unwrap();
    // A window in the year-end freeze is refused.
    let err = call(
        &server,
        "open_change_request",
        json!({
            "plan_id": plan_id, "change_type": "standard", "assignment_group": "platform-infrastructure",
            "window": {"start": "2026-12-20T06:00:00Z", "end": "2026-12-20T07:00:00Z"},
            "justification": "Ship the checkout-web 2.8.1 address-form fix."
        }),
    )
    .await
    .unwrap_err();
    assert!(err.contains("freeze"), "{err}");
}

#[tokio::test]
async fn planning_without_changes_or_with_bad_window_is_refused() {
    let server = server();
    let err = call(
        &server,
        "draft_change_plan",
        json!({"service": "checkout-web", "environment": "staging", "target_revision": HEAD, "rollout": "rolling"}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("nothing to change"), "{err}");
    let err = call(
        &server,
        "draft_change_plan",
        json!({
            "service": "payments-api", "environment": "staging", "target_revision": HEAD, "rollout": "blue_green",
            "window": {"start": "2026-12-02T08:00:00Z", "end": "2026-12-02T06:00:00Z"}
        }),
    )
    .await
    .unwrap_err();
    assert!(err.contains("ends before it starts"), "{err}");
    let out = call(
        &server,
        "draft_change_plan",
        json!({"service": "payments-api", "environment": "staging", "target_revision": HEAD, "rollout": "blue_green"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (out["risk"].as_str(), out["needs_cab"].as_bool()),
        (Some("low"), Some(false))
    );
}

#[tokio::test]
async fn unknown_plans_and_policy_resource() {
    let server = server();
    let missing = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
    let err = call(
        &server,
        "open_change_request",
        json!({
            "plan_id": missing, "change_type": "normal", "assignment_group": "network-operations",
            "window": {"start": "2026-12-01T06:00:00Z", "end": "2026-12-01T08:00:00Z"},
            "justification": "A justification long enough to pass."
        }),
    )
    .await
    .unwrap_err();
    assert!(err.contains("no stored change plan"), "{err}");
    assert!(read(&server, &format!("change-plan://plans/{missing}")).await.is_err());
    assert!(
        read(&server, "change-plan://guides/change-policy")
            .await
            .unwrap()
            .contains("## Freeze periods")
    );
}

#[tokio::test]
async fn change_requests_are_logged_when_configured() {
    let path = std::env::temp_dir().join(format!("change-plan-test-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut config = Config::default();
    config
        .handlers
        .insert("change_requests_log".into(), path.display().to_string().into());
    let server = server_with(&config);
    let plan = call(
        &server,
        "draft_change_plan",
        json!({"service": "payments-api", "environment": "staging", "target_revision": HEAD, "rollout": "rolling"}),
    )
    .await
    .unwrap();
    call(
        &server,
        "open_change_request",
        json!({
            "plan_id": plan["plan_id"], "change_type": "standard", "assignment_group": "platform-infrastructure",
            "window": {"start": "2026-12-01T06:00:00Z", "end": "2026-12-01T08:00:00Z"},
            "justification": "Promote payments-api 1.15.0 to staging."
        }),
    )
    .await
    .unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    let record: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(record["service"], "payments-api");
    assert_eq!(record["requested_by"], "eng.ada");
    std::fs::remove_file(&path).unwrap();
}

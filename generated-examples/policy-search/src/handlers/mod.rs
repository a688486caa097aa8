//! The team's code: the contract's handlers. charter wrote this file once, because it
//! was missing, and never touches it again.
//!
//! This example serves a local policy library: the Markdown documents in
//! `data/policies/` are embedded in the binary, or read from the folder named by
//! `[handlers] policies_dir`. Links point at `[handlers] library_url`
//! (default `https://policies.example.com`).
mod library;

use crate::generated::handler::Handler;
use crate::generated::types;
use charter_runtime::config::Config;
use charter_runtime::dispatch::{Context, ResourceBody, ToolError};

use library::{Library, Policy};

/// State the handlers share: the parsed policy library and where its links point.
pub struct Handlers {
    library: Library,
    library_url: String,
}

impl Handlers {
    /// Builds the handlers from the environment's configuration (`[handlers]` table).
    pub fn new(config: &Config) -> Result<Handlers, String> {
        let dir = config.handler_str("policies_dir", "");
        let library = if dir.is_empty() {
            Library::embedded()?
        } else {
            Library::from_dir(std::path::Path::new(&dir))?
        };
        let library_url = config
            .handler_str("library_url", "https://policies.example.com")
            .trim_end_matches('/')
            .to_string();
        Ok(Handlers { library, library_url })
    }

    fn url(&self, policy: &Policy, section: Option<&str>) -> String {
        let base = format!("{}/policies/{}/v{}", self.library_url, policy.policy_id, policy.version);
        match section {
            Some(section) => format!("{base}#section-{section}"),
            None => base,
        }
    }

    fn current(&self, policy_id: &str) -> Result<&Policy, ToolError> {
        self.library
            .get(policy_id, &library::today())
            .ok_or_else(|| ToolError::not_found(format!("no approved, currently effective policy {policy_id}")))
    }
}

fn classification(policy: &Policy) -> types::Classification {
    match policy.classification.as_str() {
        "confidential" => types::Classification::Confidential,
        _ => types::Classification::Internal,
    }
}

fn area_name(area: types::PolicyArea) -> String {
    // The enum's serde names are the contract's values.
    serde_json::to_value(area)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Handler for Handlers {
    async fn search_policies(
        &self,
        _context: &Context,
        input: types::SearchPoliciesInput,
    ) -> Result<types::SearchPoliciesOutput, ToolError> {
        let date = input.effective_on.unwrap_or_else(library::today);
        let areas: Option<Vec<String>> = input.areas.map(|areas| areas.into_iter().map(area_name).collect());
        let max = input.max_results.unwrap_or(5).clamp(1, 20) as usize;
        let hits = self.library.search(&input.query, areas.as_deref(), &date);
        let total_matches = hits.len() as i64;
        let citations = hits
            .into_iter()
            .take(max)
            .map(|hit| types::Citation {
                policy_id: hit.policy.policy_id.clone(),
                title: hit.policy.title.clone(),
                version: hit.policy.version.clone(),
                section: hit.section.number.clone(),
                section_title: hit.section.heading.clone(),
                quote: hit.quote,
                url: self.url(hit.policy, Some(&hit.section.number)),
                classification: classification(hit.policy),
                effective_date: hit.policy.effective_date.clone(),
                score: Some(hit.score),
            })
            .collect();
        Ok(types::SearchPoliciesOutput {
            citations,
            total_matches,
        })
    }

    async fn get_policy_section(
        &self,
        _context: &Context,
        input: types::GetPolicySectionInput,
    ) -> Result<types::GetPolicySectionOutput, ToolError> {
        let policy = self.current(&input.policy_id)?;
        let section = policy.section(&input.section).ok_or_else(|| {
            let numbers: Vec<&str> = policy.sections.iter().map(|s| s.number.as_str()).collect();
            ToolError::not_found(format!(
                "{} v{} has no section {}; its sections are {}",
                policy.policy_id,
                policy.version,
                input.section,
                numbers.join(", ")
            ))
        })?;
        Ok(types::GetPolicySectionOutput {
            policy_id: policy.policy_id.clone(),
            title: policy.title.clone(),
            version: policy.version.clone(),
            section: section.number.clone(),
            heading: section.heading.clone(),
            text: section.text.clone(),
            url: self.url(policy, Some(&section.number)),
            classification: classification(policy),
            effective_date: policy.effective_date.clone(),
        })
    }

    async fn read_policy_index(&self, _context: &Context) -> Result<ResourceBody, ToolError> {
        let policies: Vec<serde_json::Value> = self
            .library
            .effective_on(&library::today())
            .into_iter()
            .map(|p| {
                serde_json::json!({
                    "policy_id": p.policy_id,
                    "title": p.title,
                    "area": p.area,
                    "version": p.version,
                    "owner": p.owner,
                    "effective_date": p.effective_date,
                })
            })
            .collect();
        let body = serde_json::to_string_pretty(&serde_json::json!({ "policies": policies }))
            .map_err(|e| ToolError::internal(format!("policy index: {e}")))?;
        Ok(ResourceBody::Text(body))
    }

    async fn read_approved_policy(
        &self,
        _context: &Context,
        _uri: &str,
        params: types::ApprovedPolicyParams,
    ) -> Result<ResourceBody, ToolError> {
        let policy = self.current(&params.policy_id)?;
        Ok(ResourceBody::Text(format!(
            "<!-- {} v{}, effective {}, owner {}, {}: {} -->\n\n{}",
            policy.policy_id,
            policy.version,
            policy.effective_date,
            policy.owner,
            policy.classification,
            self.url(policy, None),
            policy.body
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::dispatch::Dispatcher;
    use charter_runtime::server::McpServer;
    use charter_runtime::surface::Surface;
    use serde_json::{Map, Value, json};

    fn server() -> McpServer {
        let surface = Surface::parse(crate::generated::SURFACE).unwrap();
        McpServer::new(surface, Dispatcher::new(Handlers::new(&Config::default()).unwrap())).unwrap()
    }

    fn context() -> Context {
        Context::new("test", "1")
    }

    /// Calls a tool through the server (input and output validation included) and returns its
    /// structured result, or the error text.
    async fn call(tool: &str, args: Value) -> Result<Value, String> {
        let args: Map<String, Value> = serde_json::from_value(args).unwrap();
        let result = server().call(tool, Some(args), context()).await.unwrap();
        if result.is_error == Some(true) {
            return Err(serde_json::to_string(&result.content).unwrap());
        }
        Ok(result.structured_content.expect("structured content"))
    }

    #[tokio::test]
    async fn search_finds_current_rotation_rule() {
        let out = call("search_policies", json!({"query": "password rotation"}))
            .await
            .unwrap();
        let first = &out["citations"][0];
        assert_eq!(first["policy_id"], "POL-0142");
        assert_eq!(first["version"], "3.1");
        assert_eq!(first["section"], "3.2");
        assert_eq!(first["section_title"], "Rotation");
        assert!(
            first["quote"]
                .as_str()
                .unwrap()
                .starts_with("Passwords are not rotated")
        );
        assert_eq!(
            first["url"],
            "https://policies.example.com/policies/POL-0142/v3.1#section-3.2"
        );
        assert!(out["total_matches"].as_i64().unwrap() >= out["citations"].as_array().unwrap().len() as i64);
        // Drafts and retired policies never appear.
        for citation in out["citations"].as_array().unwrap() {
            assert!(!["POL-0501", "POL-0099"].contains(&citation["policy_id"].as_str().unwrap()));
        }
    }

    #[tokio::test]
    async fn search_on_an_earlier_date_uses_that_version() {
        let out = call(
            "search_policies",
            json!({"query": "password rotation", "effective_on": "2025-01-01", "max_results": 1}),
        )
        .await
        .unwrap();
        assert_eq!(out["citations"].as_array().unwrap().len(), 1);
        assert_eq!(out["citations"][0]["version"], "2.4");
        assert!(out["citations"][0]["quote"].as_str().unwrap().contains("every 90 days"));
    }

    #[tokio::test]
    async fn search_filters_by_area_and_reports_no_match() {
        let out = call(
            "search_policies",
            json!({"query": "hotel nightly limit", "areas": ["finance"]}),
        )
        .await
        .unwrap();
        assert_eq!(out["citations"][0]["policy_id"], "POL-0207");
        assert_eq!(out["citations"][0]["section"], "2.3");
        let out = call(
            "search_policies",
            json!({"query": "hotel nightly limit", "areas": ["privacy"]}),
        )
        .await
        .unwrap();
        assert_eq!(out["citations"], json!([]));
        assert_eq!(out["total_matches"], 0);
        let out = call("search_policies", json!({"query": "zebra xylophone"}))
            .await
            .unwrap();
        assert_eq!(out["total_matches"], 0);
    }

    #[tokio::test]
    async fn confidential_policies_are_labelled() {
        let out = call("search_policies", json!({"query": "support tickets retention"}))
            .await
            .unwrap();
        assert_eq!(out["citations"][0]["policy_id"], "POL-0315");
        assert_eq!(out["citations"][0]["classification"], "confidential");
    }

    #[tokio::test]
    async fn get_section_returns_text_with_subsections() {
        let out = call("get_policy_section", json!({"policy_id": "POL-0142", "section": "4"}))
            .await
            .unwrap();
        assert_eq!(out["heading"], "Multi-factor authentication");
        assert_eq!(out["version"], "3.1");
        let text = out["text"].as_str().unwrap();
        assert!(text.contains("4.1 Where MFA is required") && text.contains("SMS and voice codes"));
        assert!(!text.contains("Service accounts"));
    }

    #[tokio::test]
    async fn get_section_refuses_unknown_policy_section_and_drafts() {
        let err = call("get_policy_section", json!({"policy_id": "POL-0142", "section": "9.1"}))
            .await
            .unwrap_err();
        assert!(err.contains("no section 9.1"), "{err}");
        let err = call("get_policy_section", json!({"policy_id": "POL-0501", "section": "1"}))
            .await
            .unwrap_err();
        assert!(err.contains("no approved"), "{err}");
        let err = call("get_policy_section", json!({"policy_id": "POL-9999", "section": "1"}))
            .await
            .unwrap_err();
        assert!(err.contains("no approved"), "{err}");
    }

    #[tokio::test]
    async fn resources_read() {
        let server = server();
        let index = server.read("policy://approved/index", context()).await.unwrap();
        let text = match &index.contents[0] {
            charter_runtime::rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
            other => panic!("{other:?}"),
        };
        let index: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(index["policies"].as_array().unwrap().len(), 5);
        assert_eq!(index["policies"][0]["owner"], "security-engineering");

        let policy = server.read("policy://approved/POL-0388", context()).await.unwrap();
        let text = match &policy.contents[0] {
            charter_runtime::rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
            other => panic!("{other:?}"),
        };
        assert!(text.contains("# Remote Work Policy") && text.contains("## 3 Working abroad"));
        assert!(server.read("policy://approved/POL-0501", context()).await.is_err());
    }

    #[test]
    fn policies_dir_overrides_the_embedded_library() {
        let dir = std::env::temp_dir().join(format!("policy-search-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("POL-0001.md"),
            library::EMBEDDED[3].1.replace("POL-0207", "POL-0001"),
        )
        .unwrap();
        let mut config = Config::default();
        config
            .handlers
            .insert("policies_dir".into(), dir.display().to_string().into());
        let handlers = Handlers::new(&config).unwrap();
        let current = handlers.library.effective_on("2026-11-01");
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].policy_id, "POL-0001");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

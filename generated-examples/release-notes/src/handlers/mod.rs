//! The team's code: the contract's handlers. charter wrote this file once, because it
//! was missing, and never touches it again.
//!
//! This example works offline on sample pull requests (`data/pull-requests.json`, embedded;
//! `[handlers] pull_requests` names a JSON file of the same shape to use instead). The
//! repositories in that file are the approved ones. Drafts are kept in memory, and the style
//! guide is `data/style-guide.md`.
mod clock;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Deserialize;

use crate::generated::handler::Handler;
use crate::generated::types;
use charter_runtime::config::Config;
use charter_runtime::dispatch::{Context, ResourceBody, ToolError};

const PULL_REQUESTS: &str = include_str!("../../data/pull-requests.json");
const STYLE_GUIDE: &str = include_str!("../../data/style-guide.md");

/// The longest body `get_pull_request` returns, in bytes (64 KiB).
const MAX_BODY: usize = 65_536;

#[derive(Debug, Clone, Deserialize)]
struct Data {
    repositories: BTreeMap<String, Repository>,
}

#[derive(Debug, Clone, Deserialize)]
struct Repository {
    pull_requests: Vec<PullRequest>,
}

#[derive(Debug, Clone, Deserialize)]
struct PullRequest {
    number: i64,
    title: String,
    body: String,
    author: String,
    reviewers: Vec<String>,
    labels: Vec<String>,
    /// None when the pull request was closed or is open without merging.
    merged_at: Option<String>,
    merge_commit_sha: Option<String>,
    changed_files: i64,
    html_url: String,
}

impl PullRequest {
    /// The UTC merge date, `YYYY-MM-DD`.
    fn merged_on(&self) -> Option<String> {
        let at = clock::parse_rfc3339(self.merged_at.as_deref()?)?;
        Some(clock::rfc3339(at)[..10].to_string())
    }

    fn has(&self, labels: &[&str]) -> bool {
        self.labels.iter().any(|l| labels.contains(&l.as_str()))
    }
}

/// Sections of the notes in the style guide's order: title and the labels that place a pull
/// request in it. The first matching section wins; the last one takes the rest.
const SECTIONS: &[(&str, &[&str])] = &[
    ("Breaking changes", &["breaking-change"]),
    ("Deprecations", &["deprecation"]),
    ("Features", &["feature", "enhancement"]),
    ("Fixes", &["bug", "fix", "regression"]),
    ("Documentation", &["documentation"]),
    ("Other changes", &[]),
];

/// Labels that customer notes leave out.
const INTERNAL_LABELS: &[&str] = &["refactor", "ci", "chore", "tooling", "dependencies", "internal"];

/// State the handlers share: the pull requests and the stored drafts.
pub struct Handlers {
    data: Data,
    drafts: Mutex<HashMap<String, String>>,
}

impl Handlers {
    /// Builds the handlers from the environment's configuration (`[handlers]` table).
    pub fn new(config: &Config) -> Result<Handlers, String> {
        let text = match config.handler_str("pull_requests", "").as_str() {
            "" => PULL_REQUESTS.to_string(),
            path => std::fs::read_to_string(path).map_err(|e| format!("pull_requests {path}: {e}"))?,
        };
        let data: Data = serde_json::from_str(&text).map_err(|e| format!("pull requests: {e}"))?;
        for (name, repository) in &data.repositories {
            for pr in &repository.pull_requests {
                if pr.merged_at.is_some() && (pr.merged_on().is_none() || pr.merge_commit_sha.is_none()) {
                    return Err(format!(
                        "pull requests: {name}#{}: merged_at or merge_commit_sha is wrong",
                        pr.number
                    ));
                }
            }
        }
        Ok(Handlers {
            data,
            drafts: Mutex::new(HashMap::new()),
        })
    }

    fn repository(&self, name: &str) -> Result<&Repository, ToolError> {
        self.data
            .repositories
            .get(name)
            .ok_or_else(|| ToolError::invalid(format!("{name} is not an approved repository")))
    }
}

fn is_bot(login: &str) -> bool {
    login.ends_with("-bot") || login.ends_with("[bot]")
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl Handler for Handlers {
    async fn list_merged_pull_requests(
        &self,
        _context: &Context,
        input: types::ListMergedPullRequestsInput,
    ) -> Result<types::ListMergedPullRequestsOutput, ToolError> {
        let repository = self.repository(&input.repository)?;
        let until = input.until.clone().unwrap_or_else(clock::today);
        if until < input.since {
            return Err(ToolError::invalid(format!(
                "until {until} is before since {}",
                input.since
            )));
        }
        let labels = input.labels.unwrap_or_default();
        let limit = input.limit.unwrap_or(100).clamp(1, 200) as usize;
        let mut matching: Vec<&PullRequest> = repository
            .pull_requests
            .iter()
            .filter(|pr| pr.merged_on().is_some_and(|d| d >= input.since && d <= until))
            .filter(|pr| labels.iter().all(|l| pr.labels.contains(l)))
            .collect();
        matching.sort_by(|a, b| b.merged_at.cmp(&a.merged_at).then(b.number.cmp(&a.number)));
        let truncated = matching.len() > limit;
        let pull_requests = matching
            .into_iter()
            .take(limit)
            .map(|pr| types::PullRequestSummary {
                number: pr.number,
                title: pr.title.clone(),
                author: pr.author.clone(),
                merged_at: pr.merged_at.clone().unwrap_or_default(),
                labels: pr.labels.clone(),
                html_url: pr.html_url.clone(),
            })
            .collect();
        Ok(types::ListMergedPullRequestsOutput {
            repository: input.repository,
            pull_requests,
            truncated,
        })
    }

    async fn get_pull_request(
        &self,
        _context: &Context,
        input: types::GetPullRequestInput,
    ) -> Result<types::GetPullRequestOutput, ToolError> {
        let repository = self.repository(&input.repository)?;
        let pr = repository
            .pull_requests
            .iter()
            .find(|pr| pr.number == input.number)
            .ok_or_else(|| {
                ToolError::not_found(format!("{} has no pull request #{}", input.repository, input.number))
            })?;
        let (Some(merged_at), Some(sha)) = (&pr.merged_at, &pr.merge_commit_sha) else {
            return Err(ToolError::not_found(format!(
                "{}#{} is not merged",
                input.repository, input.number
            )));
        };
        Ok(types::GetPullRequestOutput {
            number: pr.number,
            title: pr.title.clone(),
            body: truncate_bytes(&pr.body, MAX_BODY),
            author: pr.author.clone(),
            reviewers: pr.reviewers.clone(),
            labels: pr.labels.clone(),
            merged_at: merged_at.clone(),
            merge_commit_sha: sha.clone(),
            changed_files: pr.changed_files,
            html_url: pr.html_url.clone(),
        })
    }

    async fn draft_release_notes(
        &self,
        _context: &Context,
        input: types::DraftReleaseNotesInput,
    ) -> Result<types::DraftReleaseNotesOutput, ToolError> {
        use types::DraftReleaseNotesOutputExcludedItemReason as Reason;
        let repository = self.repository(&input.repository)?;
        let customers = matches!(input.audience, Some(types::DraftReleaseNotesInputAudience::Customers));
        let credit = input.credit_authors.unwrap_or(true);
        let mut included: Vec<&PullRequest> = Vec::new();
        let mut excluded = Vec::new();
        let mut unknown = Vec::new();
        for &number in &input.pull_requests {
            let exclude = |reason| types::DraftReleaseNotesOutputExcludedItem { number, reason };
            let Some(pr) = repository.pull_requests.iter().find(|pr| pr.number == number) else {
                let elsewhere = self
                    .data
                    .repositories
                    .values()
                    .any(|r| r.pull_requests.iter().any(|pr| pr.number == number));
                if elsewhere {
                    excluded.push(exclude(Reason::OtherRepository));
                } else {
                    unknown.push(format!("#{number}"));
                }
                continue;
            };
            if pr.merged_at.is_none() {
                excluded.push(exclude(Reason::NotMerged));
            } else if pr.has(&["skip-changelog"]) {
                excluded.push(exclude(Reason::SkipChangelogLabel));
            } else if customers && pr.has(INTERNAL_LABELS) {
                excluded.push(exclude(Reason::InternalOnly));
            } else {
                included.push(pr);
            }
        }
        if !unknown.is_empty() {
            return Err(ToolError::not_found(format!(
                "{} has no pull requests {}",
                input.repository,
                unknown.join(", ")
            )));
        }
        // Newest first within each section.
        included.sort_by(|a, b| b.merged_at.cmp(&a.merged_at).then(b.number.cmp(&a.number)));

        let mut markdown = format!("# {}\n\n", input.tag);
        let newest = included.iter().filter_map(|pr| pr.merged_on()).max();
        if let Some(date) = &newest {
            markdown.push_str(&format!(
                "_Draft for a maintainer to edit. Changes merged up to {date}._\n\n"
            ));
        }
        if let Some(previous) = &input.previous_tag {
            markdown.push_str(&format!(
                "**Full changelog**: https://github.com/{}/compare/{previous}...{}\n\n",
                input.repository, input.tag
            ));
        }
        let mut placed = vec![false; included.len()];
        for (title, labels) in SECTIONS {
            let mut lines = Vec::new();
            for (i, pr) in included.iter().enumerate() {
                if placed[i] || !(labels.is_empty() || pr.has(labels)) {
                    continue;
                }
                placed[i] = true;
                let thanks = if credit && !is_bot(&pr.author) {
                    format!(", thanks @{}", pr.author)
                } else {
                    String::new()
                };
                let title = pr.title.trim().trim_end_matches('.');
                lines.push(format!("- {title} ([#{}]({}){thanks})", pr.number, pr.html_url));
            }
            if !lines.is_empty() {
                markdown.push_str(&format!("## {title}\n\n{}\n\n", lines.join("\n")));
            }
        }
        if included.is_empty() {
            markdown.push_str("No user-facing changes.\n");
        }
        let markdown = markdown.trim_end().to_string() + "\n";
        let draft_id = clock::uuid_v4();
        self.drafts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(draft_id.clone(), markdown.clone());
        Ok(types::DraftReleaseNotesOutput {
            draft_id,
            markdown,
            included: included.iter().map(|pr| pr.number).collect(),
            excluded,
        })
    }

    async fn read_style_guide(&self, _context: &Context) -> Result<ResourceBody, ToolError> {
        Ok(ResourceBody::Text(STYLE_GUIDE.to_string()))
    }

    async fn read_draft(
        &self,
        _context: &Context,
        _uri: &str,
        params: types::DraftParams,
    ) -> Result<ResourceBody, ToolError> {
        let drafts = self.drafts.lock().unwrap_or_else(|e| e.into_inner());
        drafts
            .get(&params.draft_id)
            .map(|markdown| ResourceBody::Text(markdown.clone()))
            .ok_or_else(|| ToolError::not_found(format!("there is no release notes draft {}", params.draft_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::dispatch::Dispatcher;
    use charter_runtime::server::McpServer;
    use charter_runtime::surface::Surface;
    use serde_json::{Map, Value, json};

    const REPO: &str = "example-corp/atlas-sdk";

    fn server() -> McpServer {
        let surface = Surface::parse(crate::generated::SURFACE).unwrap();
        McpServer::new(surface, Dispatcher::new(Handlers::new(&Config::default()).unwrap())).unwrap()
    }

    async fn call(server: &McpServer, tool: &str, args: Value) -> Result<Value, String> {
        let args: Map<String, Value> = serde_json::from_value(args).unwrap();
        let result = server
            .call(tool, Some(args), Context::new("maintainer", "1"))
            .await
            .unwrap();
        if result.is_error == Some(true) {
            return Err(serde_json::to_string(&result.content).unwrap());
        }
        Ok(result.structured_content.expect("structured content"))
    }

    async fn read(server: &McpServer, uri: &str) -> Result<String, String> {
        let result = server
            .read(uri, Context::new("maintainer", "1"))
            .await
            .map_err(|e| e.to_string())?;
        match &result.contents[0] {
            charter_runtime::rmcp::model::ResourceContents::TextResourceContents { text, .. } => Ok(text.clone()),
            other => panic!("{other:?}"),
        }
    }

    fn numbers(out: &Value) -> Vec<i64> {
        out["pull_requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["number"].as_i64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn lists_merged_pull_requests_newest_first() {
        let server = server();
        let out = call(
            &server,
            "list_merged_pull_requests",
            json!({"repository": REPO, "since": "2026-11-01"}),
        )
        .await
        .unwrap();
        // 1410 is not merged; 1379 is older.
        assert_eq!(
            numbers(&out),
            [1412, 1409, 1407, 1405, 1401, 1398, 1396, 1394, 1391, 1388]
        );
        assert_eq!(out["truncated"], false);
        let out = call(
            &server,
            "list_merged_pull_requests",
            json!({"repository": REPO, "since": "2026-11-01", "until": "2026-11-15", "labels": ["bug"], "limit": 5}),
        )
        .await
        .unwrap();
        assert_eq!(numbers(&out), [1398]);
        let out = call(
            &server,
            "list_merged_pull_requests",
            json!({"repository": REPO, "since": "2026-10-01", "limit": 2}),
        )
        .await
        .unwrap();
        assert_eq!(
            (numbers(&out), out["truncated"].clone()),
            (vec![1412, 1409], json!(true))
        );
        let err = call(
            &server,
            "list_merged_pull_requests",
            json!({"repository": "example-corp/secret", "since": "2026-11-01"}),
        )
        .await
        .unwrap_err();
        assert!(err.contains("not an approved repository"), "{err}");
    }

    #[tokio::test]
    async fn gets_merged_pull_request_only() {
        let server = server();
        let out = call(&server, "get_pull_request", json!({"repository": REPO, "number": 1407}))
            .await
            .unwrap();
        assert_eq!(out["author"], "rkapoor");
        assert_eq!(out["reviewers"], json!(["mchen", "aokafor"]));
        assert_eq!(out["changed_files"], 11);
        assert!(out["body"].as_str().unwrap().contains("Migration guide"));
        let err = call(&server, "get_pull_request", json!({"repository": REPO, "number": 1410}))
            .await
            .unwrap_err();
        assert!(err.contains("not merged"), "{err}");
        let err = call(&server, "get_pull_request", json!({"repository": REPO, "number": 9}))
            .await
            .unwrap_err();
        assert!(err.contains("no pull request #9"), "{err}");
    }

    #[tokio::test]
    async fn drafts_developer_notes_grouped_by_label() {
        let server = server();
        let out = call(
            &server,
            "draft_release_notes",
            json!({
                "repository": REPO, "tag": "v2.4.0", "previous_tag": "v2.3.0",
                "pull_requests": [1412, 1410, 1409, 1407, 1405, 1401, 1398, 1396, 1394, 1391, 1388, 311]
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            out["included"],
            json!([1412, 1409, 1407, 1405, 1401, 1398, 1396, 1394, 1388])
        );
        assert_eq!(
            out["excluded"],
            json!([
                {"number": 1410, "reason": "not_merged"},
                {"number": 1391, "reason": "skip_changelog_label"},
                {"number": 311, "reason": "other_repository"}
            ])
        );
        let markdown = out["markdown"].as_str().unwrap();
        let order: Vec<usize> = [
            "## Breaking changes",
            "## Deprecations",
            "## Features",
            "## Fixes",
            "## Documentation",
            "## Other changes",
        ]
        .iter()
        .map(|h| markdown.find(h).unwrap_or_else(|| panic!("{h} missing:\n{markdown}")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{markdown}");
        assert!(markdown.contains("- Add streaming upload API for large files ([#1412](https://github.com/example-corp/atlas-sdk/pull/1412), thanks @mchen)"));
        assert!(markdown.contains("compare/v2.3.0...v2.4.0"));
        // Bots are not thanked.
        assert!(markdown.contains("Python 3.14 ([#1394](https://github.com/example-corp/atlas-sdk/pull/1394))"));

        let draft_id = out["draft_id"].as_str().unwrap();
        assert_eq!(
            read(&server, &format!("release-notes://drafts/{draft_id}"))
                .await
                .unwrap(),
            markdown
        );
    }

    #[tokio::test]
    async fn customer_notes_leave_out_internal_changes() {
        let server = server();
        let out = call(
            &server,
            "draft_release_notes",
            json!({
                "repository": REPO, "tag": "v2.4.0", "audience": "customers", "credit_authors": false,
                "pull_requests": [1412, 1396, 1394]
            }),
        )
        .await
        .unwrap();
        assert_eq!(out["included"], json!([1412]));
        assert_eq!(
            out["excluded"],
            json!([{"number": 1396, "reason": "internal_only"}, {"number": 1394, "reason": "internal_only"}])
        );
        let markdown = out["markdown"].as_str().unwrap();
        assert!(!markdown.contains("thanks"));
        assert!(!markdown.contains("Other changes"));
        let err = call(
            &server,
            "draft_release_notes",
            json!({"repository": REPO, "tag": "v2.4.0", "pull_requests": [1412, 77]}),
        )
        .await
        .unwrap_err();
        assert!(err.contains("no pull requests #77"), "{err}");
    }

    #[tokio::test]
    async fn style_guide_and_missing_draft() {
        let server = server();
        assert!(
            read(&server, "release-notes://style-guide")
                .await
                .unwrap()
                .contains("## Section order")
        );
        assert!(
            read(&server, "release-notes://drafts/1b4e28ba-2fa1-41d2-883f-0016d3cca427")
                .await
                .is_err()
        );
    }
}

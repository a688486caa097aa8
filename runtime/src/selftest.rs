//! What a generated crate's own tests use to hold the built server to its
//! lock: start the binary over stdio as a client would, list everything, and
//! compare each definition and its published hash with `charter.lock.json`.
//! Blocking and dependency-free on purpose: it runs inside `cargo test`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use std::collections::BTreeMap;

use rmcp::model::{CallToolResult, PromptMessage};
use serde_json::{Map, Value, json};

use super::dispatch::{BoxFuture, Context, Dispatch, ResourceBody, ToolError, ToolOutput};
use super::surface::HASH_META_KEY;

/// How long the server may take to answer every list request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// One definition as a client received it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// `tool`, `resource`, `resource_template` or `prompt`, as the lock spells it.
    pub kind: &'static str,
    pub definition: Value,
}

/// The list methods, each with the result field that holds its items and the lock's kind.
const LISTS: &[(&str, &str, &str)] = &[
    ("tools/list", "tools", "tool"),
    ("resources/list", "resources", "resource"),
    ("resources/templates/list", "resourceTemplates", "resource_template"),
    ("prompts/list", "prompts", "prompt"),
];

/// Starts `binary stdio` with its audit log and approval store in a scratch
/// directory (`{env_prefix}_AUDIT_PATH`, `{env_prefix}_APPROVALS_PATH`),
/// initializes, and lists every tool, resource, template and prompt.
pub fn list_over_stdio(binary: &str, env_prefix: &str) -> Result<Vec<Listed>, String> {
    let scratch = std::env::temp_dir().join(format!("charter-selftest-{}-{}", env_prefix, std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let mut child = Command::new(binary)
        .arg("stdio")
        .env(format!("{env_prefix}_AUDIT_PATH"), scratch.join("audit.jsonl"))
        .env(format!("{env_prefix}_APPROVALS_PATH"), scratch.join("approvals.sqlite"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let mut requests = vec![
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "charter-selftest", "version": "1"},
        }}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ];
    for (id, (method, _, _)) in LISTS.iter().enumerate() {
        requests.push(json!({"jsonrpc": "2.0", "id": id + 1, "method": method, "params": {}}));
    }
    let mut stdin = child.stdin.take().ok_or("the server's stdin is not piped")?;
    let stdout = child.stdout.take().ok_or("the server's stdout is not piped")?;
    for request in &requests {
        writeln!(stdin, "{request}").map_err(|e| format!("cannot write to the server: {e}"))?;
    }
    stdin.flush().map_err(|e| format!("cannot write to the server: {e}"))?;
    let (sender, answers) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut results: Vec<Option<Value>> = vec![None; LISTS.len()];
    let outcome = loop {
        if results.iter().all(Option::is_some) {
            break Ok(());
        }
        let line = match answers.recv_timeout(ANSWER_TIMEOUT) {
            Ok(line) => line,
            Err(_) => break Err("the server stopped answering before every list request was answered".to_string()),
        };
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            break Err(format!("the server wrote a line that is not JSON: {line}"));
        };
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            continue;
        };
        if let Some(error) = message.get("error") {
            break Err(format!("request {id} failed: {error}"));
        }
        if (1..=LISTS.len() as u64).contains(&id) {
            results[id as usize - 1] = message.get("result").cloned();
        }
    };
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&scratch);
    outcome?;
    let mut listed = Vec::new();
    for ((method, field, kind), result) in LISTS.iter().zip(results) {
        let result = result.unwrap_or_default();
        if result.get("nextCursor").is_some_and(|c| !c.is_null()) {
            return Err(format!("{method} paginated; the self-test reads one page"));
        }
        let items = result
            .get(*field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        listed.extend(items.into_iter().map(|definition| Listed { kind, definition }));
    }
    Ok(listed)
}

/// Compares what a client listed with `charter.lock.json`: the same
/// definitions, each with the lock's hash in `_meta` and the same content.
/// The runtime's own tools (approvals), which carry no contract hash, are
/// allowed besides. Returns every difference.
pub fn matches_lock(lock_json: &str, listed: &[Listed]) -> Result<(), Vec<String>> {
    let lock: Value =
        serde_json::from_str(lock_json).map_err(|e| vec![format!("charter.lock.json does not parse: {e}")])?;
    let pinned = lock
        .get("definitions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut differences = Vec::new();
    let key = |kind: &str, definition: &Value| {
        let name = definition.get("name").and_then(Value::as_str).unwrap_or_default();
        (kind.to_string(), name.to_string())
    };
    for entry in &pinned {
        let kind = entry.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = entry.get("name").and_then(Value::as_str).unwrap_or_default();
        let Some(seen) = listed
            .iter()
            .find(|l| key(l.kind, &l.definition) == (kind.to_string(), name.to_string()))
        else {
            differences.push(format!("{kind} `{name}` is pinned but not listed"));
            continue;
        };
        let mut definition = seen.definition.clone();
        let published = definition
            .as_object_mut()
            .and_then(|d| d.remove("_meta"))
            .and_then(|meta| meta.get(HASH_META_KEY).and_then(Value::as_str).map(String::from));
        let wanted = entry.get("sha256").and_then(Value::as_str);
        if published.as_deref() != wanted {
            differences.push(format!(
                "{kind} `{name}` publishes hash {published:?} where the lock pins {wanted:?}"
            ));
        }
        if Some(&definition) != entry.get("definition") {
            differences.push(format!(
                "{kind} `{name}` is listed as {definition} where the lock pins {}",
                entry["definition"]
            ));
        }
    }
    for seen in listed {
        let (kind, name) = key(seen.kind, &seen.definition);
        let pinned_here = pinned
            .iter()
            .any(|e| e["kind"] == kind.as_str() && e["name"] == name.as_str());
        let has_hash = seen
            .definition
            .pointer(&format!("/_meta/{}", HASH_META_KEY.replace('/', "~1")))
            .is_some();
        if !pinned_here && (has_hash || !name.starts_with("charter_")) {
            differences.push(format!("{kind} `{name}` is listed but not pinned"));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences)
    }
}

/// The text of an `isError` result; panics (failing the test) on a success.
pub fn error_text(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected an isError result, got {result:?}"
    );
    serde_json::to_string(&result.content).unwrap_or_default()
}

/// A dispatcher that fails the test if a request gets past the runtime's
/// gates: what a generated crate's tests put behind the server to prove a
/// malformed call is refused before any handler runs.
pub struct MustNotRun;

impl Dispatch for MustNotRun {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        _: Value,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        panic!("the handler of `{tool}` ran on a request the runtime must refuse")
    }
    fn read_resource<'a>(
        &'a self,
        resource: &'a str,
        _: &'a str,
        _: Map<String, Value>,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<ResourceBody, ToolError>> {
        panic!("the handler of `{resource}` ran on a request the runtime must refuse")
    }
    fn get_prompt<'a>(
        &'a self,
        prompt: &'a str,
        _: BTreeMap<String, String>,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<Vec<PromptMessage>, ToolError>> {
        panic!("the handler of `{prompt}` ran on a request the runtime must refuse")
    }
}

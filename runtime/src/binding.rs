//! Tools bound to one HTTP operation of a downstream: the runtime makes the
//! call itself, so a bound tool has no handler.
//!
//! The input reaching [`call`] has passed every gate a handler's input passes
//! (scopes, schema validation, limits, approval, intent record). What holds
//! here, whatever the input:
//!
//! - **The path cannot move.** Each path parameter is percent-encoded as
//!   exactly one segment: every byte outside RFC 3986's unreserved set is
//!   encoded, so `/`, `?`, `#`, `%` and `\` stay inside the segment, and `.`,
//!   `..` and empty values (which URL normalisation would turn into dot
//!   segments or `//`) are refused.
//! - **Headers cannot be split.** Header and cookie values with control
//!   characters (CR, LF, NUL, ...) are refused before anything is sent.
//! - **Only the declared downstream, with the server's own credential.** The
//!   request goes through the egress client the tool was bound to at start-up
//!   ([`Context::downstream`]): declared hosts only, the downstream's own
//!   credential, never the caller's token.
//! - **Retries only reads.** `GET` and `HEAD` are retried on connection
//!   errors, 429 and 503, at most [`MAX_RETRIES`] times within the tool's
//!   timeout, with jittered exponential backoff that honours `Retry-After`.
//! - **Only what the contract lists leaves.** A success body is projected onto
//!   the output schema before it is validated: properties a closed object
//!   schema does not declare are dropped (an API adds fields over time; the
//!   contract decides which reach the model), then the output schema is
//!   checked as for any tool.
//! - **Errors say what happened, not what the downstream sent.** A status
//!   outside `success` becomes an error result with the status, the method,
//!   the path template and a bounded excerpt (a problem+json `title` and
//!   `detail` where given); never the downstream's headers.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::audit::DownstreamCall;
use super::dispatch::{Context, ToolOutput};
use super::egress::{DownstreamResponse, Method};
use super::error::{ErrorKind, ToolError};
use super::surface::{BindingSpec, HttpMethod, ParameterLocation, ToolSpec};

/// Retries of a `GET` or `HEAD` after the first attempt.
pub const MAX_RETRIES: u32 = 2;
/// The first backoff; each retry doubles it, jittered by ±50%.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest excerpt of a downstream's error answer shown to the caller.
const EXCERPT_CHARS: usize = 512;
/// Headers a binding may not place an input in: the runtime owns them.
const RUNTIME_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "expect",
];

/// Where [`call`] leaves what the audit record needs, whatever the outcome.
pub type CallRecord = Arc<Mutex<Option<DownstreamCall>>>;

/// Checks a tool's binding at start-up; a binding the runtime cannot carry
/// out stops the server rather than failing each call.
pub fn check(tool: &ToolSpec) -> Result<(), String> {
    let Some(binding) = &tool.binding else {
        return Ok(());
    };
    let name = tool.name();
    let fail = |message: String| Err(format!("tool `{name}`'s binding: {message}"));
    if !tool.downstreams.contains(&binding.downstream) {
        return fail(format!(
            "it calls `{}`, which the tool's `downstreams` does not list",
            binding.downstream
        ));
    }
    let variables = match path_variables(&binding.path) {
        Ok(v) => v,
        Err(e) => return fail(format!("the path `{}` is malformed: {e}", binding.path)),
    };
    for variable in &variables {
        if !binding
            .parameters
            .iter()
            .any(|p| p.location == ParameterLocation::Path && p.name == *variable)
        {
            return fail(format!("path variable `{{{variable}}}` has no parameter"));
        }
    }
    let mut properties = std::collections::BTreeSet::new();
    for p in &binding.parameters {
        if !properties.insert(&p.property) {
            return fail(format!("`{}` is placed twice", p.property));
        }
        if p.location == ParameterLocation::Path && !variables.contains(&p.name.as_str()) {
            return fail(format!("path parameter `{}` is not in the path", p.name));
        }
        if p.location == ParameterLocation::Header && RUNTIME_HEADERS.contains(&p.name.to_ascii_lowercase().as_str()) {
            return fail(format!("the runtime owns the `{}` header", p.name));
        }
    }
    if binding.success.is_empty() || binding.success.iter().any(|s| !(200..=299).contains(s)) {
        return fail("its success statuses must be 2xx".into());
    }
    Ok(())
}

/// Calls the bound operation with `input` (already validated) and turns the
/// answer into the tool's output, by the call's deadline.
/// `full_url`: the tool's data class is logged in full, so the filled URL may
/// go into the audit record.
pub async fn call(
    tool: &ToolSpec,
    binding: &BindingSpec,
    input: Value,
    context: Context,
    record: CallRecord,
    full_url: bool,
) -> Result<ToolOutput, ToolError> {
    let budget = Duration::from_millis(tool.limits.timeout_ms.max(1));
    // Each request gives up before the call does (egress reads the call's
    // deadline); retries stop when the wait would run past it.
    let deadline = super::deadline::for_requests().unwrap_or_else(|| Instant::now() + budget);
    let mut audit = Recording {
        record,
        call: DownstreamCall {
            downstream: binding.downstream.clone(),
            method: binding.method.as_str().into(),
            path: binding.path.clone(),
            status: None,
            url: None,
            attempts: 0,
        },
    };
    let request = Request::build(binding, &input);
    if full_url && let Ok(request) = &request {
        audit.call.url = Some(request.url_for_audit());
    }
    async {
        let request = request?;
        let downstream = context.downstream(&binding.downstream)?;
        let what = format!("{} {}", binding.method, binding.path);
        loop {
            audit.call.attempts += 1;
            if Instant::now() >= deadline {
                return Err(ToolError::unavailable(format!(
                    "timed out: downstream `{}` did not answer {what} within {} ms",
                    binding.downstream,
                    budget.as_millis()
                )));
            }
            let mut builder = downstream
                .request(method(binding.method), &request.path)
                .query(&request.query_pairs())
                .max_response_bytes(tool.limits.max_response_bytes);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            if let Some(cookie) = &request.cookie {
                builder = builder.cookie(cookie);
            }
            if let Some(body) = &request.body {
                builder = builder.json(body);
            }
            let sent = builder.send().await;
            let retry_after = match &sent {
                Ok(response) => {
                    audit.call.status = Some(response.status().as_u16());
                    match response.status().as_u16() {
                        429 | 503 => Some(retry_after(response)),
                        _ => None,
                    }
                }
                Err(e) if e.kind == ErrorKind::Unavailable && e.message.contains("cannot connect") => Some(None),
                Err(_) => None,
            };
            if let Some(asked) = retry_after
                && binding.method.is_read()
                && audit.call.attempts <= MAX_RETRIES
            {
                let wait = asked.unwrap_or_else(|| backoff(audit.call.attempts));
                if Instant::now() + wait < deadline {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return answer(binding, &what, sent?).map(|output| match output {
                ToolOutput::Structured(mut value) => {
                    if let Some(schema) = tool.definition.get("outputSchema") {
                        project(&mut value, schema, schema);
                    }
                    ToolOutput::Structured(value)
                }
                other => other,
            });
        }
    }
    .await
}

/// The request's audit entry, left in the call's [`CallRecord`] when this is
/// dropped: after an answer, and just as much when the call times out or is
/// cancelled mid-request (its future dropped), for the request may have
/// reached the downstream and the outcome record must say it was sent.
struct Recording {
    record: CallRecord,
    call: DownstreamCall,
}

impl Drop for Recording {
    fn drop(&mut self) {
        *self.record.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.call.clone());
    }
}

fn method(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
    }
}

/// `Retry-After` as delta-seconds (HTTP dates are read as "no hint": the backoff applies).
fn retry_after(response: &DownstreamResponse) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `BACKOFF_BASE * 2^(attempt-1)`, jittered to between half and one and a half of it.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE * 2u32.saturating_pow(attempt.saturating_sub(1));
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let jitter = (hasher.finish() % 1000) as f64 / 1000.0 + 0.5;
    base.mul_f64(jitter)
}

/// A success status's body as the tool's output; any other status as an error.
fn answer(binding: &BindingSpec, what: &str, response: DownstreamResponse) -> Result<ToolOutput, ToolError> {
    let status = response.status();
    let name = &binding.downstream;
    if !binding.success.contains(&status.as_u16()) {
        let excerpt = excerpt(&response);
        let message = if status.is_success() {
            format!("downstream `{name}` answered {status} to {what}, which the contract does not list as success")
        } else {
            format!("downstream `{name}` answered {status} to {what}{excerpt}")
        };
        return Err(match status.as_u16() {
            404 => ToolError::not_found(message),
            408 | 429 | 500..=599 => ToolError::unavailable(message),
            // The caller sees what the downstream refused (bounded, no headers).
            400..=499 => ToolError::invalid(message),
            _ => ToolError::internal(message),
        });
    }
    let body = response.bytes();
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice::<Value>(body).map_err(|e| {
            ToolError::unavailable(format!(
                "downstream `{name}` answered {what} with a body that is not JSON: {e}"
            ))
        })?)
    };
    let output = match (&binding.response.field, value) {
        (_, None) => Value::Object(Map::new()),
        (Some(field), Some(value)) => Value::Object(Map::from_iter([(field.clone(), value)])),
        (None, Some(Value::Object(object))) => Value::Object(object),
        (None, Some(_)) => {
            return Err(ToolError::internal(format!(
                "downstream `{name}` answered {what} with JSON that is not an object; the binding needs `response.field`"
            )));
        }
    };
    Ok(ToolOutput::Structured(output))
}

/// Drops the properties closed object schemas do not declare, following
/// `properties`, `items`, type arrays and local `$ref`s into `$defs`; keywords
/// that combine schemas (`anyOf`, `oneOf`, `allOf`) are left to validation.
pub fn project(value: &mut Value, schema: &Value, root: &Value) {
    project_at(value, schema, root, 0);
}

fn project_at(value: &mut Value, schema: &Value, root: &Value, depth: usize) {
    // Recursive schemas over deep documents: validation reports what is left.
    if depth > 64 {
        return;
    }
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => match reference
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs")?.get(name))
        {
            Some(target) => target,
            None => return,
        },
        None => schema,
    };
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if schema.get("additionalProperties") == Some(&Value::Bool(false))
                && let Some(properties) = properties
            {
                object.retain(|key, _| properties.contains_key(key));
            }
            if let Some(properties) = properties {
                for (key, item) in object.iter_mut() {
                    if let Some(sub) = properties.get(key) {
                        project_at(item, sub, root, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    project_at(item, sub, root, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// What a caller may see of an error answer: a problem+json `title` and
/// `detail`, a JSON `message`, or the text, without control characters and
/// at most [`EXCERPT_CHARS`] long.
fn excerpt(response: &DownstreamResponse) -> String {
    let body = response.bytes();
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => {
            let field = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            match (field("title"), field("detail"), field("message")) {
                (Some(t), Some(d), _) => format!("{t}: {d}"),
                (t, d, m) => t.or(d).or(m).unwrap_or_default(),
            }
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if clean.is_empty() {
        return String::new();
    }
    let mut cut: String = clean.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < clean.len() {
        cut.push('…');
    }
    format!(": {cut}")
}

/// A request built from a validated input, before it is sent.
#[derive(Debug, PartialEq)]
struct Request {
    /// Relative to the downstream's base URL, each parameter one encoded segment.
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    cookie: Option<String>,
    body: Option<Map<String, Value>>,
}

impl Request {
    fn build(binding: &BindingSpec, input: &Value) -> Result<Request, ToolError> {
        let empty = Map::new();
        let input = input.as_object().unwrap_or(&empty);
        let mut path_values = Vec::new();
        let mut request = Request {
            path: String::new(),
            query: Vec::new(),
            headers: Vec::new(),
            cookie: None,
            body: None,
        };
        let mut cookies = Vec::new();
        for p in &binding.parameters {
            let Some(value) = input.get(&p.property).filter(|v| !v.is_null()) else {
                continue;
            };
            let invalid = |why: &str| ToolError::invalid(format!("invalid arguments: `{}` {why}", p.property));
            match p.location {
                ParameterLocation::Path => {
                    let text = scalar(value).ok_or_else(|| invalid("must be a string, number or boolean"))?;
                    if text.is_empty() || text == "." || text == ".." {
                        return Err(invalid("cannot be empty, `.` or `..`: it fills one path segment"));
                    }
                    path_values.push((p.name.as_str(), encode_segment(&text)));
                }
                ParameterLocation::Query => match value {
                    Value::Array(items) => {
                        let items = items
                            .iter()
                            .map(|i| scalar(i).ok_or_else(|| invalid("must hold only strings, numbers or booleans")))
                            .collect::<Result<Vec<_>, _>>()?;
                        if p.explode {
                            request.query.extend(items.into_iter().map(|i| (p.name.clone(), i)));
                        } else {
                            request.query.push((p.name.clone(), items.join(",")));
                        }
                    }
                    other => {
                        let text = scalar(other).ok_or_else(|| invalid("must be a string, number or boolean"))?;
                        request.query.push((p.name.clone(), text));
                    }
                },
                ParameterLocation::Header | ParameterLocation::Cookie => {
                    let text = match value {
                        Value::Array(items) => items
                            .iter()
                            .map(|i| scalar(i).ok_or_else(|| invalid("must hold only strings, numbers or booleans")))
                            .collect::<Result<Vec<_>, _>>()?
                            .join(","),
                        other => scalar(other).ok_or_else(|| invalid("must be a string, number or boolean"))?,
                    };
                    if text.chars().any(char::is_control) {
                        return Err(invalid(
                            "contains a control character (CR, LF, ...), which a header cannot carry",
                        ));
                    }
                    if p.location == ParameterLocation::Header {
                        request.headers.push((p.name.clone(), text));
                    } else {
                        cookies.push(format!("{}={}", p.name, encode_segment(&text)));
                    }
                }
                ParameterLocation::Body => {
                    request
                        .body
                        .get_or_insert_with(Map::new)
                        .insert(p.name.clone(), value.clone());
                }
            }
        }
        if !cookies.is_empty() {
            request.cookie = Some(cookies.join("; "));
        }
        if request.body.is_none() && !binding.method.is_read() && binding.method != HttpMethod::Delete {
            // A POST, PUT or PATCH whose body fields are all absent still sends an (empty) object.
            if binding.parameters.iter().any(|p| p.location == ParameterLocation::Body) {
                request.body = Some(Map::new());
            }
        }
        request.path = fill(&binding.path, &path_values).map_err(ToolError::internal)?;
        Ok(request)
    }

    fn query_pairs(&self) -> Vec<(&str, &str)> {
        self.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// The filled path and query, as the audit record shows it.
    fn url_for_audit(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
            .collect();
        format!("{}?{}", self.path, query.join("&"))
    }
}

/// A JSON scalar as it travels in a URL or header.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{name}`s of a path template, in order.
fn path_variables(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("a `{` is never closed")?;
        names.push(&after[..close]);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// The template with each `{name}` replaced by its encoded value.
fn fill(template: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("a `{` is never closed")?;
        let name = &after[..close];
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("path variable `{{{name}}}` has no value"))?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::surface::{BoundParameter, ResponseSpec};
    use super::*;
    use serde_json::json;

    fn param(property: &str, location: ParameterLocation, name: &str, explode: bool) -> BoundParameter {
        BoundParameter {
            property: property.into(),
            location,
            name: name.into(),
            explode,
        }
    }

    fn binding(method: HttpMethod) -> BindingSpec {
        BindingSpec {
            downstream: "github".into(),
            method,
            path: "/repos/{owner}/{repo}/compare/{base}...{head}".into(),
            parameters: vec![
                param("owner", ParameterLocation::Path, "owner", true),
                param("repo", ParameterLocation::Path, "repo", true),
                param("base", ParameterLocation::Path, "base", true),
                param("head", ParameterLocation::Path, "head", true),
                param("labels", ParameterLocation::Query, "labels", false),
                param("states", ParameterLocation::Query, "state", true),
                param("trace", ParameterLocation::Header, "X-Trace", true),
                param("session", ParameterLocation::Cookie, "sid", true),
                param("title", ParameterLocation::Body, "name", true),
            ],
            success: vec![200],
            response: ResponseSpec { field: None },
        }
    }

    #[test]
    fn each_path_parameter_is_one_encoded_segment() {
        for (hostile, encoded) in [
            ("../../admin", "..%2F..%2Fadmin"),
            ("%2e%2e%2f", "%252e%252e%252f"),
            ("a/b", "a%2Fb"),
            ("?x=", "%3Fx%3D"),
            ("#frag", "%23frag"),
            ("https://evil.example/x", "https%3A%2F%2Fevil.example%2Fx"),
            ("a\\b", "a%5Cb"),
            ("ünï", "%C3%BCn%C3%AF"),
        ] {
            let input = json!({ "owner": hostile, "repo": "r", "base": "v1", "head": "v2" });
            let request = Request::build(&binding(HttpMethod::Get), &input).unwrap();
            assert_eq!(request.path, format!("/repos/{encoded}/r/compare/v1...v2"), "{hostile}");
        }
        for dots in ["", ".", ".."] {
            let input = json!({ "owner": dots, "repo": "r", "base": "v1", "head": "v2" });
            let err = Request::build(&binding(HttpMethod::Get), &input).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Invalid, "{dots:?}");
            assert!(err.message.contains("`owner`"), "{}", err.message);
        }
    }

    #[test]
    fn query_header_cookie_and_body_are_encoded_where_they_go() {
        let input = json!({
            "owner": "o", "repo": "r", "base": 1, "head": true,
            "labels": ["bug", "a b"], "states": ["open", "closed"],
            "trace": "t-1", "session": "x;y", "title": "Release"
        });
        let request = Request::build(&binding(HttpMethod::Post), &input).unwrap();
        assert_eq!(request.path, "/repos/o/r/compare/1...true");
        assert_eq!(
            request.query,
            [("labels", "bug,a b"), ("state", "open"), ("state", "closed")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(request.headers, [("X-Trace".to_string(), "t-1".to_string())]);
        assert_eq!(request.cookie.as_deref(), Some("sid=x%3By"));
        assert_eq!(request.body, Some(Map::from_iter([("name".into(), json!("Release"))])));
        assert_eq!(
            request.url_for_audit(),
            "/repos/o/r/compare/1...true?labels=bug%2Ca%20b&state=open&state=closed"
        );
    }

    #[test]
    fn projection_keeps_what_closed_schemas_declare() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "items": { "type": "array", "items": { "$ref": "#/$defs/Pull" } },
                "open": { "type": "object", "properties": { "a": { "type": "integer" } } }
            },
            "$defs": {
                "Pull": {
                    "type": ["object", "null"],
                    "additionalProperties": false,
                    "properties": { "number": { "type": "integer" }, "user": { "$ref": "#/$defs/User" } }
                },
                "User": { "type": "object", "additionalProperties": false, "properties": { "login": { "type": "string" } } }
            }
        });
        let mut value = json!({
            "items": [
                { "number": 1, "secret_field": "x", "user": { "login": "ada", "email": "ada@example.com" } },
                null
            ],
            "open": { "a": 1, "b": 2 },
            "extra": true
        });
        project(&mut value, &schema, &schema);
        assert_eq!(
            value,
            json!({ "items": [{ "number": 1, "user": { "login": "ada" } }, null], "open": { "a": 1, "b": 2 } })
        );
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        for bad in ["a\r\nX-Injected: 1", "a\nb", "a\0b", "a\tb"] {
            for property in ["trace", "session"] {
                let input = json!({ "owner": "o", "repo": "r", "base": "a", "head": "b", property: bad });
                let err = Request::build(&binding(HttpMethod::Get), &input).unwrap_err();
                assert!(err.message.contains("control character"), "{}", err.message);
                assert!(!err.message.contains(bad), "the value is not echoed");
            }
        }
    }

    #[test]
    fn start_up_refuses_bindings_it_cannot_carry_out() {
        let tool = |b: BindingSpec| ToolSpec {
            binding: Some(b),
            downstreams: vec!["github".into()],
            ..serde_json::from_value(json!({
                "definition": { "name": "t" }, "hash": "", "effect": "read", "scopes": [], "data_class": null,
                "approval": { "mode": "none" }, "audit": { "arguments": true, "results": false },
                "limits": { "timeout_ms": 1000, "max_request_bytes": 1, "max_response_bytes": 1,
                            "rate": { "count": 1, "period_ms": 1 }, "concurrency": 1 },
                "content": [], "progress": false, "client_logging": false, "asks_client": [], "downstreams": []
            }))
            .unwrap()
        };
        assert!(check(&tool(binding(HttpMethod::Get))).is_ok());
        let mut no_var = binding(HttpMethod::Get);
        no_var.parameters.remove(0);
        assert!(check(&tool(no_var)).unwrap_err().contains("`{owner}` has no parameter"));
        let mut auth = binding(HttpMethod::Get);
        auth.parameters[6].name = "Authorization".into();
        assert!(
            check(&tool(auth))
                .unwrap_err()
                .contains("owns the `Authorization` header")
        );
        let mut redirect = binding(HttpMethod::Get);
        redirect.success = vec![302];
        assert!(check(&tool(redirect)).unwrap_err().contains("2xx"));
        let mut elsewhere = binding(HttpMethod::Get);
        elsewhere.downstream = "billing".into();
        assert!(check(&tool(elsewhere)).unwrap_err().contains("does not list"));
    }
}

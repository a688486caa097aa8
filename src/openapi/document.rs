//! The OpenAPI document: read once into a `serde_json::Value`, then viewed
//! through the small typed subset below (operations, parameters, bodies,
//! responses, security schemes). Nothing is converted up front: references are
//! followed only when an operation the user selected reaches them.

use serde_json::{Map, Value};

/// The methods an OpenAPI path item may hold, in the order the specification lists them.
pub const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// How deep a chain of `$ref`s to `$ref`s may go before it is treated as a cycle.
const MAX_REF_HOPS: usize = 32;

/// The text format the document was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// The OpenAPI minor version, which decides how schemas are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 3.0.x: schemas are OpenAPI's JSON Schema dialect (`nullable`, boolean `exclusiveMinimum`).
    V30,
    /// 3.1.x: schemas are JSON Schema 2020-12.
    V31,
}

/// A parsed document.
pub struct Document {
    pub root: Value,
    pub version: Version,
}

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Operation<'d> {
    pub id: Option<&'d str>,
    /// Lowercase, as the document writes it.
    pub method: &'static str,
    pub path: &'d str,
    /// JSON pointer to the operation object.
    pub pointer: String,
    pub op: &'d Map<String, Value>,
    /// The path item the operation sits in (for path-level parameters).
    pub item: &'d Map<String, Value>,
    pub item_pointer: String,
    pub tags: Vec<&'d str>,
}

impl Operation<'_> {
    /// `operationId `pulls/list`: GET /repos/{owner}/{repo}/pulls`, for comments and messages.
    pub fn describe(&self) -> String {
        match self.id {
            Some(id) => format!("operationId `{id}`: {} {}", self.method.to_uppercase(), self.path),
            None => format!("{} {} (no operationId)", self.method.to_uppercase(), self.path),
        }
    }
}

/// A JSON pointer token, escaped.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A JSON pointer token, unescaped.
pub fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

impl Document {
    /// Every operation, in document order (paths as written, methods in specification order).
    pub fn operations(&self) -> Vec<Operation<'_>> {
        let mut out = Vec::new();
        let Some(paths) = self.root.get("paths").and_then(Value::as_object) else {
            return out;
        };
        for (path, item) in paths {
            let item_pointer = format!("/paths/{}", escape(path));
            // A path item may itself be a `$ref` (to `#/components/pathItems/...` in 3.1).
            let Ok((item, item_pointer)) = self.resolve(item, &item_pointer) else {
                continue;
            };
            let Some(item) = item.as_object() else { continue };
            for method in METHODS {
                let Some(op) = item.get(*method).and_then(Value::as_object) else {
                    continue;
                };
                out.push(Operation {
                    id: op.get("operationId").and_then(Value::as_str),
                    method,
                    path,
                    pointer: format!("{item_pointer}/{method}"),
                    op,
                    item,
                    item_pointer: item_pointer.clone(),
                    tags: op
                        .get("tags")
                        .and_then(Value::as_array)
                        .map(|t| t.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default(),
                });
            }
        }
        out
    }

    /// Follows `$ref`s from a value until a value without one; returns it and its pointer.
    /// Only local references (`#/...`) are followed; anything else is refused with the reason.
    pub fn resolve<'a>(&'a self, value: &'a Value, pointer: &str) -> Result<(&'a Value, String), String> {
        let mut value = value;
        let mut pointer = pointer.to_owned();
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return Ok((value, pointer));
            };
            let target = local_pointer(reference)?;
            value = self
                .root
                .pointer(&target)
                .ok_or_else(|| format!("`$ref: {reference}` points at nothing in the document"))?;
            pointer = target;
        }
        Err(format!("the `$ref` chain at {pointer} does not end (a cycle?)"))
    }
}

/// The JSON pointer of a local reference, or why it cannot be followed.
pub fn local_pointer(reference: &str) -> Result<String, String> {
    match reference.strip_prefix('#') {
        Some(p) if p.is_empty() || p.starts_with('/') => Ok(percent_decode(p)),
        _ => Err(format!(
            "`$ref: {reference}` refers outside this document; charter imports self-contained descriptions only (bundle it first, e.g. with `redocly bundle`)"
        )),
    }
}

/// `%7B` and friends in a URI fragment.
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// Why a document could not be read, with where (1-based line and column) when known.
#[derive(Debug)]
pub struct ParseError {
    pub message: String,
    pub at: Option<(usize, usize)>,
}

/// Reads the document text: JSON when it starts with `{` (or the file is `.json`), YAML otherwise.
pub fn parse(text: &str, json_by_name: bool) -> Result<(Value, Format), ParseError> {
    let json = json_by_name || text.trim_start().starts_with('{');
    if json {
        serde_json::from_str(text)
            .map(|v| (v, Format::Json))
            .map_err(|e| ParseError {
                message: format!("invalid JSON: {}", strip_position(&e.to_string())),
                at: (e.line() > 0).then(|| (e.line(), e.column().max(1))),
            })
    } else {
        serde_saphyr::from_str::<Value>(text)
            .map(|v| (v, Format::Yaml))
            .map_err(|e| {
                let at = e.location().map(|l| (l.line() as usize, l.column() as usize));
                let message = e.to_string();
                let first = message.lines().next().unwrap_or("").to_owned();
                ParseError {
                    message: format!("invalid YAML: {}", strip_yaml_position(&first)),
                    at,
                }
            })
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn strip_yaml_position(message: &str) -> String {
    let m = message.strip_prefix("error: ").unwrap_or(message);
    // "line 1 column 4: unclosed bracket" -> "unclosed bracket"
    if m.starts_with("line ")
        && let Some(i) = m.find(": ")
    {
        return m[i + 2..].to_owned();
    }
    m.to_owned()
}

/// The version of an OpenAPI document, or why it is not one charter reads.
pub fn version(root: &Value) -> Result<Version, (String, &'static str)> {
    if root.get("swagger").is_some() {
        return Err((
            "this is a Swagger 2.0 description; charter reads OpenAPI 3.0 and 3.1".into(),
            "/swagger",
        ));
    }
    match root.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0.") || v == "3.0" => Ok(Version::V30),
        Some(v) if v.starts_with("3.1.") || v == "3.1" => Ok(Version::V31),
        Some(v) => Err((
            format!("OpenAPI {v} is not supported; charter reads 3.0.x and 3.1.x"),
            "/openapi",
        )),
        None => Err((
            "this is not an OpenAPI description: it has no `openapi` version field".into(),
            "",
        )),
    }
}

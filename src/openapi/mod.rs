//! `charter import openapi`: named operations of an OpenAPI 3.0 or 3.1
//! description to bound tools in a contract.
//!
//! **Why a subset of our own, over `serde_json::Value`.** `openapiv3` reads 3.0
//! only, and its typed model would have us deserialize (and allocate) GitHub's
//! whole 13 MB description, thousands of schemas, to use the few dozen an
//! import of twenty operations reaches. Here the document is parsed once into
//! a `Value` (serde_json for JSON, serde-saphyr for YAML), and the small part of
//! OpenAPI an import needs (operations, parameters, request bodies, responses,
//! security schemes, servers) is read through typed views over it
//! (`document`). `$ref`s are followed lazily, only from the operations
//! selected, and only `#/components/schemas` a tool reaches are converted
//! (`schema`). 3.0 and 3.1 differ only where the conversion reads schemas
//! (`nullable`, boolean exclusive bounds), so one code path serves both.
//!
//! The import never guesses in the permissive direction: an operation charter
//! cannot carry out exactly (an external reference, a non-JSON body, a
//! parameter style the binding cannot encode) is refused with the reason;
//! effects are never understated (every method but GET and HEAD is `write`
//! with approval unless the user downgrades it to `draft` by name); and the
//! descriptions, which the model reads, go through the same heuristics as
//! hand-written ones, with every finding reported.

pub mod document;
mod into;
pub mod locate;
pub mod render;
mod schema;
pub mod text;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use heck::{ToShoutySnakeCase, ToSnakeCase};
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::diagnostic::{Diagnostic, Place, Severity};
use crate::model::names::{is_plain_name, is_server_name};
use crate::suggest::did_you_mean;
use document::{Document, Operation, escape};
use locate::SourceText;
use schema::Converter;

/// Descriptions larger than this are refused before parsing.
pub const MAX_DOCUMENT_BYTES: u64 = 64 << 20;
/// More operations than this need `--all-selected`: a contract is reviewed by people.
pub const MAX_SELECTED: usize = 25;
/// Tool names are at most this long (MCP and the contract language).
const MAX_NAME: usize = 64;

/// Headers the binding cannot set (the runtime owns them); an operation needing one is refused.
const RUNTIME_HEADERS: &[&str] = &[
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "expect",
];

/// What to import and where it goes.
pub struct Request<'a> {
    pub spec: &'a Path,
    pub downstream: &'a str,
    pub operations: &'a [String],
    pub tags: &'a [String],
    /// `ID=draft` arguments, as given.
    pub effects: &'a [String],
    pub all_selected: bool,
    pub name: Option<&'a str>,
    /// The contract to add to (`--into`), and its text.
    pub into: Option<(&'a Path, &'a str)>,
    pub today: jiff::civil::Date,
}

/// A finished import.
#[derive(Debug)]
pub struct Imported {
    /// The new contract, or the `--into` contract with the import added.
    pub contract: String,
    /// Findings on the description (warnings), rendered.
    pub report: String,
    pub warnings: usize,
    /// The tools written, in order.
    pub tools: Vec<String>,
    /// For `--into`: what was added besides the tools.
    pub added: Vec<String>,
}

/// Why nothing was imported: a plain message (the command line was wrong) or rendered diagnostics.
#[derive(Debug)]
pub enum Failure {
    Usage(String),
    Diagnostics(String),
}

impl Failure {
    pub fn text(&self) -> &str {
        match self {
            Failure::Usage(t) | Failure::Diagnostics(t) => t,
        }
    }
}

/// One imported tool, before its name is settled.
struct Tool {
    /// The operationId, or `METHOD path` without one: what the name is derived from.
    key: String,
    comment: String,
    body: Map<String, Value>,
}

/// Runs the import.
pub fn import(req: &Request) -> Result<Imported, Failure> {
    let downstream = req.downstream;
    if !is_plain_name(downstream) {
        return Err(Failure::Usage(format!(
            "error: `{downstream}` is not a valid downstream name\n  help: use lowercase letters, digits, `_` and `-`, starting with a letter, e.g. `github`"
        )));
    }
    let server_name = req
        .name
        .map(str::to_owned)
        .unwrap_or_else(|| downstream.replace('_', "-"));
    if req.into.is_none() && !is_server_name(&server_name) {
        return Err(Failure::Usage(format!(
            "error: `{server_name}` is not a valid server name\n  help: pass --name with lowercase letters, digits and dashes, e.g. `release-notes`"
        )));
    }
    if req.operations.is_empty() && req.tags.is_empty() {
        return Err(Failure::Usage(
            "error: name the operations to import with --operation ID or --tag TAG\n  help: charter imports a named subset of an API, never all of it: a reviewer approves each tool"
                .into(),
        ));
    }

    let (src, root) = read_document(req.spec)?;
    let version = document::version(&root).map_err(|(message, pointer)| {
        fail(
            &src,
            vec![Diagnostic::error(
                "unsupported-document",
                message,
                Place::value(pointer),
            )],
        )
    })?;
    let doc = Document { root, version };
    let ops = doc.operations();

    // Selection, in document order.
    let mut usage = Vec::new();
    let ids: BTreeSet<&str> = ops.iter().filter_map(|o| o.id).collect();
    for id in req.operations {
        if !ids.contains(id.as_str()) {
            usage.push(unknown("operationId", id, ids.iter().copied()));
        }
    }
    let mut all_tags: BTreeSet<&str> = ops.iter().flat_map(|o| o.tags.iter().copied()).collect();
    if let Some(tags) = doc.root.get("tags").and_then(Value::as_array) {
        all_tags.extend(tags.iter().filter_map(|t| t.get("name")).filter_map(Value::as_str));
    }
    for tag in req.tags {
        if !ops.iter().any(|o| o.tags.contains(&tag.as_str())) {
            if all_tags.contains(tag.as_str()) {
                usage.push(format!("error: tag `{tag}` has no operations"));
            } else {
                usage.push(unknown("tag", tag, all_tags.iter().copied()));
            }
        }
    }
    let selected: Vec<&Operation> = ops
        .iter()
        .filter(|o| {
            o.id.is_some_and(|id| req.operations.iter().any(|s| s == id))
                || o.tags.iter().any(|t| req.tags.iter().any(|s| s == t))
        })
        .collect();
    if usage.is_empty() && selected.len() > MAX_SELECTED && !req.all_selected {
        usage.push(format!(
            "error: the selection holds {} operations, more than {MAX_SELECTED}\n  help: a contract is reviewed by people; import a narrower set, or pass --all-selected to import all {}",
            selected.len(),
            selected.len()
        ));
    }
    let mut drafts = HashSet::new();
    for arg in req.effects {
        let Some((id, effect)) = arg.split_once('=') else {
            usage.push(format!(
                "error: `--effect {arg}` is not `ID=draft`\n  help: e.g. `--effect repos/create-release=draft`"
            ));
            continue;
        };
        if effect != "draft" {
            usage.push(format!(
                "error: `--effect {arg}`: only `draft` can be given\n  help: effects are never understated: GET and HEAD are `read`, every other method is `write` with approval unless you name it a `draft`"
            ));
            continue;
        }
        match selected.iter().find(|o| o.id == Some(id)) {
            None => usage.push(format!(
                "error: `--effect {arg}` names `{id}`, which is not among the selected operations\n  help: select it with --operation {id}"
            )),
            Some(op) if matches!(op.method, "get" | "head") => usage.push(format!(
                "error: `--effect {arg}`: `{id}` is a {} and already `read`",
                op.method.to_uppercase()
            )),
            Some(_) => {
                drafts.insert(id.to_owned());
            }
        }
    }
    if !usage.is_empty() {
        return Err(Failure::Usage(usage.join("\n")));
    }

    // The existing contract, for `--into`.
    let existing = match req.into {
        Some((path, text)) => Some(into::Existing::read(path, text).map_err(Failure::Usage)?),
        None => None,
    };
    let data_class = "internal";

    // Tools.
    let mut conv = Converter::new(&doc);
    let mut tools = Vec::new();
    let mut refusals = Vec::new();
    for op in &selected {
        let draft = op.id.is_some_and(|id| drafts.contains(id));
        match tool(&doc, &mut conv, op, downstream, data_class, draft) {
            Ok(t) => tools.push(t),
            Err(reasons) => {
                for (message, pointer) in reasons {
                    refusals.push(
                        Diagnostic::error(
                            "unsupported-operation",
                            format!("{} cannot be imported: {message}", op.describe()),
                            Place::value(pointer),
                        )
                        .with_help(
                            "import the other operations without it, or write this tool by hand with `handler: rust`",
                        ),
                    );
                }
            }
        }
    }
    if !refusals.is_empty() {
        let count = refusals.len();
        let mut text = fail(&src, refusals).text().to_owned();
        text.push_str(&format!("error: {count} refusal(s); nothing was imported\n"));
        return Err(Failure::Diagnostics(text));
    }

    // Names.
    let names = tool_names(&tools);
    if let Some(existing) = &existing {
        let mut clashes = Vec::new();
        for name in &names {
            if let Some(other) = existing.tool_clash(name) {
                clashes.push(format!(
                    "error: the contract already has a tool `{other}`; the import would add `{name}`\n  help: charter never replaces a tool: remove or rename it first, or leave this operation out"
                ));
            }
        }
        if !clashes.is_empty() {
            return Err(Failure::Usage(clashes.join("\n")));
        }
    }

    // Definitions the written tools reach.
    let mut tools_map = Map::new();
    for (t, name) in tools.iter().zip(&names) {
        tools_map.insert(name.clone(), Value::Object(t.body.clone()));
    }
    let defs = reachable_defs(&Value::Object(tools_map), &conv.defs);

    // Findings.
    let mut findings = text_findings(&conv);
    let downstream_block = downstream_entry(&doc, &selected, downstream, &server_name, &mut findings);
    let warnings = findings.len();
    let report = if findings.is_empty() {
        String::new()
    } else {
        src.render(&mut findings)
    };

    let uses_read = tools.iter().any(|t| t.body["effect"] == "read");
    let uses_write = tools.iter().any(|t| t.body["effect"] != "read");
    let mut scopes = Map::new();
    let title = api_title(&doc);
    if uses_read {
        scopes.insert(
            format!("{downstream}.read"),
            Value::String(format!(
                "Call the read operations of {downstream} this contract imports."
            )),
        );
    }
    if uses_write {
        scopes.insert(
            format!("{downstream}.write"),
            Value::String(format!(
                "Call the operations of {downstream} this contract imports that change state or create drafts."
            )),
        );
    }

    let mut tools_text = String::new();
    let indent = existing.as_ref().map(|e| e.tools_indent()).unwrap_or(2);
    for (t, name) in tools.iter().zip(&names) {
        tools_text.push_str(&format!("{}# {}\n", " ".repeat(indent), printable(&t.comment)));
        render::entry(&mut tools_text, name, &Value::Object(t.body.clone()), indent);
    }
    let spec_name = req
        .spec
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let (contract, added) = match existing {
        Some(existing) => {
            let plan = into::Plan {
                downstream,
                downstream_block: &downstream_block,
                scopes: &scopes,
                data_class,
                defs: &defs,
                tools_text: &tools_text,
            };
            existing.insert(&plan).map_err(Failure::Usage)?
        }
        None => {
            let text = starter(&Starter {
                name: &server_name,
                today: req.today,
                title: &title,
                source: &spec_name,
                count: tools.len(),
                downstream,
                downstream_block: &downstream_block,
                scopes: &scopes,
                defs: &defs,
                tools_text: &tools_text,
            })
            .map_err(|e| Failure::Usage(format!("error: cannot render the contract: {e}")))?;
            let text = if text.ends_with('\n') { text } else { text + "\n" };
            (text, Vec::new())
        }
    };
    // The document is large; the process is about to end, so its memory is not worth freeing.
    std::mem::forget(doc);
    Ok(Imported {
        contract,
        report,
        warnings,
        tools: names,
        added,
    })
}

/// Reads and parses the description; syntax errors are diagnostics at their line and column.
fn read_document(path: &Path) -> Result<(SourceText, Value), Failure> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| Failure::Usage(format!("error: cannot read {shown}: {e}")))?;
    if meta.len() > MAX_DOCUMENT_BYTES {
        return Err(Failure::Usage(format!(
            "error: {shown} is {} bytes; descriptions of at most {MAX_DOCUMENT_BYTES} bytes are read",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Failure::Usage(format!("error: cannot read {shown}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::Usage(format!(
            "error: {shown} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let by_name = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    match document::parse(&text, by_name) {
        Ok((root, format)) => Ok((SourceText::new(shown, text, format), root)),
        Err(e) => {
            let format = if by_name || text.trim_start().starts_with('{') {
                document::Format::Json
            } else {
                document::Format::Yaml
            };
            let src = SourceText::new(shown, text, format);
            let mut d = Diagnostic::error("openapi-syntax", e.message, Place::default())
                .with_help("fix the description's syntax; nothing is imported from a document that does not parse");
            d.span = e.at.map(|(line, column)| src.at(line, column));
            Err(fail(&src, vec![d]))
        }
    }
}

/// Text for a YAML comment: YAML reads only printable characters, even there, so the rest (a
/// control character in an operationId, found by fuzzing) is shown as Rust writes an escape.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if render::yaml_plain_char(c) {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect()
}

fn fail(src: &SourceText, mut diagnostics: Vec<Diagnostic>) -> Failure {
    Failure::Diagnostics(src.render(&mut diagnostics))
}

fn unknown<'a>(what: &str, name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let mut message = format!("error: the description has no {what} `{name}`");
    if let Some(s) = did_you_mean(name, candidates) {
        message.push_str(&format!("\n  help: did you mean `{s}`?"));
    }
    message
}

fn api_title(doc: &Document) -> String {
    let title = doc
        .root
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("the API");
    text::clean(title, 80).0
}

/// The tool for one operation, or every reason it cannot be imported (with where).
fn tool(
    doc: &Document,
    conv: &mut Converter,
    op: &Operation,
    downstream: &str,
    data_class: &str,
    draft: bool,
) -> Result<Tool, Vec<(String, String)>> {
    let method = op.method.to_uppercase();
    let one = |message: String, pointer: &str| vec![(message, pointer.to_owned())];
    if !matches!(op.method, "get" | "head" | "post" | "put" | "patch" | "delete") {
        return Err(one(
            format!("charter binds GET, HEAD, POST, PUT, PATCH and DELETE, not {method}"),
            &op.pointer,
        ));
    }
    if let Err(e) = crate::model::path_variables(op.path) {
        return Err(one(
            format!("the path template is not one charter can fill: {e}"),
            &op.item_pointer,
        ));
    }
    let read = matches!(op.method, "get" | "head");
    let mut reasons = Vec::new();

    // Parameters: path-level first, operation-level overriding by (name, in).
    let mut params: IndexMap<(String, String), (&Value, String)> = IndexMap::new();
    for (list, base) in [
        (op.item.get("parameters"), op.item_pointer.as_str()),
        (op.op.get("parameters"), op.pointer.as_str()),
    ] {
        let Some(list) = list.and_then(Value::as_array) else {
            continue;
        };
        for (i, p) in list.iter().enumerate() {
            match doc.resolve(p, &format!("{base}/parameters/{i}")) {
                Ok((p, pointer)) => {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let location = p.get("in").and_then(Value::as_str).unwrap_or_default().to_owned();
                    params.insert((name, location), (p, pointer));
                }
                Err(e) => reasons.push((e, format!("{base}/parameters/{i}"))),
            }
        }
    }

    struct Prop {
        wire: String,
        location: &'static str,
        schema: Value,
        required: bool,
        explode: Option<bool>,
    }
    let mut claims: Vec<(u8, String, Prop)> = Vec::new();
    for ((name, location), (p, pointer)) in &params {
        let location: &'static str = match location.as_str() {
            "path" => "path",
            "query" => "query",
            "header" => "header",
            "cookie" => "cookie",
            other => {
                reasons.push((
                    format!("parameter `{name}` is in `{other}`, which is not a location"),
                    pointer.clone(),
                ));
                continue;
            }
        };
        if location == "header"
            && ["accept", "content-type", "authorization"].contains(&name.to_ascii_lowercase().as_str())
        {
            // OpenAPI: such header parameters are ignored; the runtime sets them.
            continue;
        }
        if location == "header" && RUNTIME_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            reasons.push((
                format!("header parameter `{name}` is one the runtime owns; a tool cannot set it"),
                pointer.clone(),
            ));
            continue;
        }
        if p.get("content").is_some() {
            reasons.push((
                format!("parameter `{name}` is described by `content` (a serialized media type); charter binds parameters with a `schema`"),
                format!("{pointer}/content"),
            ));
            continue;
        }
        let style = p.get("style").and_then(Value::as_str);
        let allowed = match location {
            "path" => matches!(style, None | Some("simple")),
            "query" => matches!(style, None | Some("form")),
            "header" => matches!(style, None | Some("simple")),
            _ => matches!(style, None | Some("form")),
        };
        if !allowed {
            reasons.push((
                format!(
                    "{location} parameter `{name}` has style `{}`, which the binding cannot encode (it sends {})",
                    style.unwrap_or_default(),
                    match location {
                        "path" => "path values as `simple` segments",
                        "header" => "header values as `simple` lists",
                        _ => "query values `form`-encoded",
                    }
                ),
                format!("{pointer}/style"),
            ));
            continue;
        }
        let Some(schema) = p.get("schema") else {
            reasons.push((format!("parameter `{name}` has no schema"), pointer.clone()));
            continue;
        };
        let converted = match conv.convert(schema, &format!("{pointer}/schema")) {
            Ok(s) => not_null(s),
            Err(e) => {
                reasons.push((e, format!("{pointer}/schema")));
                continue;
            }
        };
        let kind = kind_of(&converted, &conv.defs);
        let fits = matches!(
            (location, kind),
            (_, Kind::Scalar) | ("query" | "header", Kind::ScalarList)
        );
        if !fits {
            reasons.push((
                format!(
                    "{location} parameter `{name}` is {}, which charter cannot send in the {location}",
                    kind.describe()
                ),
                format!("{pointer}/schema"),
            ));
            continue;
        }
        let explode =
            (location == "query" && kind == Kind::ScalarList && p.get("explode") == Some(&Value::Bool(false)))
                .then_some(false);
        let mut schema = converted;
        if let Some(d) = p.get("description").and_then(Value::as_str)
            && let Value::Object(m) = &mut schema
            && !m.contains_key("description")
        {
            let d = conv.text(d, &format!("{pointer}/description"), text::MAX_DESCRIPTION);
            if !d.is_empty() {
                m.insert("description".into(), Value::String(d));
            }
        }
        if p.get("deprecated") == Some(&Value::Bool(true))
            && let Value::Object(m) = &mut schema
        {
            m.insert("deprecated".into(), Value::Bool(true));
        }
        let required = location == "path" || p.get("required") == Some(&Value::Bool(true));
        let rank = match location {
            "path" => 0,
            "query" => 1,
            "header" => 2,
            _ => 3,
        };
        let mut base = name.to_snake_case();
        if location == "header" {
            base = base.strip_prefix("x_").map(str::to_owned).unwrap_or(base);
        }
        claims.push((
            rank,
            base,
            Prop {
                wire: name.clone(),
                location,
                schema,
                required,
                explode,
            },
        ));
    }

    // The JSON request body's properties.
    if let Some(body) = op.op.get("requestBody") {
        match request_body(doc, conv, body, &format!("{}/requestBody", op.pointer)) {
            Ok(fields) => {
                if read && !fields.is_empty() {
                    reasons.push((
                        format!("a {method} request with a body cannot be bound"),
                        format!("{}/requestBody", op.pointer),
                    ));
                }
                for (name, schema, required) in fields {
                    claims.push((
                        4,
                        name.to_snake_case(),
                        Prop {
                            wire: name,
                            location: "body",
                            schema,
                            required,
                            explode: None,
                        },
                    ));
                }
            }
            Err(r) => reasons.push(r),
        }
    }

    // The output, from the first 2xx response.
    let output = response(doc, conv, op);
    let (output, success, field) = match output {
        Ok(o) => o,
        Err(r) => {
            reasons.push(r);
            (Value::Null, Vec::new(), None)
        }
    };
    if !reasons.is_empty() {
        return Err(reasons);
    }

    // Property names: locations in order path, query, header, cookie, body; a later claim on a
    // taken name is prefixed with its location.
    claims.sort_by_key(|c| c.0);
    let mut taken = HashSet::new();
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut parameters = Map::new();
    for (_, base, prop) in claims {
        let base = if base.is_empty() || !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
            format!("{}_{base}", prop.location).trim_end_matches('_').to_owned()
        } else {
            base
        };
        let mut name = base.clone();
        if taken.contains(&name) {
            name = format!("{}_{base}", prop.location);
        }
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{}_{base}_{n}", prop.location);
            n += 1;
        }
        taken.insert(name.clone());
        if prop.required {
            required.push(Value::String(name.clone()));
        }
        properties.insert(name.clone(), prop.schema);
        let binding = if prop.wire == name && prop.explode.is_none() {
            Value::String(prop.location.into())
        } else {
            let mut m = Map::new();
            m.insert("in".into(), Value::String(prop.location.into()));
            if prop.wire != name {
                m.insert("name".into(), Value::String(prop.wire.clone()));
            }
            if let Some(e) = prop.explode {
                m.insert("explode".into(), Value::Bool(e));
            }
            Value::Object(m)
        };
        parameters.insert(name, binding);
    }

    let mut body = Map::new();
    let summary = op.op.get("summary").and_then(Value::as_str).unwrap_or_default();
    let long = op.op.get("description").and_then(Value::as_str).unwrap_or_default();
    if !summary.trim().is_empty() {
        let title = conv.text(summary, &format!("{}/summary", op.pointer), 200);
        body.insert("title".into(), Value::String(title));
    }
    let combined = if long.trim().is_empty() {
        summary.to_owned()
    } else if summary.trim().is_empty() || long.trim_start().starts_with(summary.trim()) {
        long.to_owned()
    } else if summary.trim_end().ends_with(['.', '!', '?']) {
        format!("{}\n\n{long}", summary.trim_end())
    } else {
        format!("{}.\n\n{long}", summary.trim_end())
    };
    let at = if long.trim().is_empty() {
        "summary"
    } else {
        "description"
    };
    let mut description = conv.text(&combined, &format!("{}/{at}", op.pointer), text::MAX_DESCRIPTION);
    if description.is_empty() {
        description = format!("Calls {method} {} on the {downstream} downstream.", op.path);
    }
    body.insert("description".into(), Value::String(description));
    let effect = if read {
        "read"
    } else if draft {
        "draft"
    } else {
        "write"
    };
    body.insert("effect".into(), Value::String(effect.into()));
    let scope = if read { "read" } else { "write" };
    body.insert("scopes".into(), json!([format!("{downstream}.{scope}")]));
    body.insert("data_class".into(), Value::String(data_class.into()));
    body.insert("downstreams".into(), json!([downstream]));
    let mut input = Map::new();
    input.insert("type".into(), json!("object"));
    input.insert("additionalProperties".into(), json!(false));
    if !required.is_empty() {
        input.insert("required".into(), Value::Array(required));
    }
    input.insert("properties".into(), Value::Object(properties));
    body.insert("input".into(), Value::Object(input));
    body.insert("output".into(), output);
    let mut binding = Map::new();
    binding.insert("downstream".into(), json!(downstream));
    binding.insert("method".into(), json!(method));
    binding.insert("path".into(), json!(op.path));
    if !parameters.is_empty() {
        binding.insert("parameters".into(), Value::Object(parameters));
    }
    binding.insert("success".into(), json!(success));
    if let Some(field) = field {
        binding.insert("response".into(), json!({ "field": field }));
    }
    body.insert("binding".into(), Value::Object(binding));
    if effect == "write" {
        body.insert("approval".into(), json!({ "mode": "user" }));
    }
    Ok(Tool {
        key: op
            .id
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{} {}", op.method, op.path)),
        comment: op.describe(),
        body,
    })
}

/// Why an operation cannot be imported, and the JSON pointer of the place.
type Refusal = (String, String);
/// A field of the JSON request body: its wire name, converted schema and whether it is required.
type BodyField = (String, Value, bool);
/// An operation's output schema, success statuses and the output property holding the body.
type Output = (Value, Vec<u16>, Option<String>);

/// A request body's fields, or why it cannot be bound.
fn request_body(doc: &Document, conv: &mut Converter, body: &Value, pointer: &str) -> Result<Vec<BodyField>, Refusal> {
    let (body, pointer) = doc.resolve(body, pointer).map_err(|e| (e, pointer.to_owned()))?;
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    if content.is_empty() {
        return Ok(Vec::new());
    }
    let Some((media, entry)) = content.iter().find(|(m, _)| is_json(m)) else {
        let kinds: Vec<&str> = content.keys().map(String::as_str).collect();
        return Err((
            format!(
                "the request body is {}; charter binds JSON request bodies only",
                kinds.join(", ")
            ),
            format!("{pointer}/content"),
        ));
    };
    let at = format!("{pointer}/content/{}/schema", escape(media));
    let Some(schema) = entry.get("schema") else {
        return Err((
            "the JSON request body has no schema".into(),
            format!("{pointer}/content"),
        ));
    };
    let (schema, at) = doc.resolve(schema, &at).map_err(|e| (e, at.clone()))?;
    let Some(obj) = schema.as_object() else {
        return Err(("the request body's schema is not an object schema".into(), at));
    };
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if obj.contains_key(combinator) {
            return Err((
                format!(
                    "the request body's schema combines schemas with `{combinator}`; charter binds the properties of one object"
                ),
                format!("{at}/{combinator}"),
            ));
        }
    }
    let ty = obj.get("type");
    let object = ty.is_none_or(|t| t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object"))));
    let Some(props) = obj.get("properties").and_then(Value::as_object).filter(|_| object) else {
        return Err((
            match ty {
                Some(t) if !object => format!(
                    "the request body is {}, not an object; charter binds a JSON object's properties",
                    render::flow(t).unwrap_or_default()
                ),
                _ => "the request body is an object without `properties`; charter binds named fields only".into(),
            },
            at,
        ));
    };
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (name, sub) in props {
        let schema = conv
            .convert(sub, &format!("{at}/properties/{}", escape(name)))
            .map_err(|e| (e, format!("{at}/properties/{}", escape(name))))?;
        out.push((name.clone(), schema, required.contains(&name.as_str())));
    }
    Ok(out)
}

/// `application/json`, `application/problem+json`, `application/json; charset=utf-8`, ...
fn is_json(media: &str) -> bool {
    let essence = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The output schema, success statuses and response field of an operation.
fn response(doc: &Document, conv: &mut Converter, op: &Operation) -> Result<Output, Refusal> {
    let pointer = format!("{}/responses", op.pointer);
    let Some(responses) = op.op.get("responses").and_then(Value::as_object) else {
        return Err(("it documents no responses".into(), op.pointer.clone()));
    };
    let mut success: BTreeSet<u16> = BTreeSet::new();
    let mut first: Option<&str> = None;
    let mut codes: Vec<(&str, u16)> = Vec::new();
    for code in responses.keys() {
        if let Ok(n) = code.parse::<u16>()
            && (200..=299).contains(&n)
        {
            codes.push((code, n));
        }
    }
    codes.sort_by_key(|c| c.1);
    for (code, n) in &codes {
        success.insert(*n);
        first.get_or_insert(code);
    }
    if let Some(range) = responses.keys().find(|k| k.eq_ignore_ascii_case("2XX")) {
        success.extend(200..=206);
        first.get_or_insert(range);
    }
    let Some(first) = first else {
        return Err((
            "it documents no 2xx response, so charter cannot tell success from failure".into(),
            pointer,
        ));
    };
    let at = format!("{pointer}/{}", escape(first));
    let (resp, at) = doc.resolve(&responses[first], &at).map_err(|e| (e, at.clone()))?;
    let success: Vec<u16> = success.into_iter().collect();
    let content = resp.get("content").and_then(Value::as_object);
    let Some(content) = content.filter(|c| !c.is_empty()) else {
        // No body: the runtime's empty body is `{}`.
        return Ok((
            json!({ "type": "object", "additionalProperties": false }),
            success,
            None,
        ));
    };
    let Some((media, entry)) = content.iter().find(|(m, _)| is_json(m)) else {
        let kinds: Vec<&str> = content.keys().map(String::as_str).collect();
        return Err((
            format!(
                "its {first} response is {}; charter binds JSON responses only",
                kinds.join(", ")
            ),
            format!("{at}/content"),
        ));
    };
    let at = format!("{at}/content/{}/schema", escape(media));
    let Some(schema) = entry.get("schema") else {
        return Err((format!("its {first} JSON response has no schema"), at));
    };
    let converted = conv.convert(schema, &at).map_err(|e| (e, at.clone()))?;
    let field = match (&converted, kind_of(&converted, &conv.defs)) {
        (Value::Object(m), _) if m.len() == 1 && m.contains_key("$ref") => {
            let name = m["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .unwrap_or("value");
            name.to_snake_case()
        }
        (Value::Object(m), Kind::Object)
            if m.get("type") == Some(&json!("object")) || (!m.contains_key("type") && m.contains_key("properties")) =>
        {
            return Ok((converted, success, None));
        }
        (_, Kind::ScalarList | Kind::List) => "items".into(),
        _ => "value".into(),
    };
    let field = if field.is_empty() { "value".to_owned() } else { field };
    let output = json!({
        "type": "object",
        "required": [field],
        "properties": { field.clone(): converted },
    });
    Ok((output, success, Some(field)))
}

/// What a converted schema holds, as far as the binding cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Scalar,
    ScalarList,
    List,
    Object,
    Other,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Scalar => "a single value",
            Kind::ScalarList => "a list of values",
            Kind::List => "a list of objects or lists",
            Kind::Object => "an object",
            Kind::Other => "a schema without one scalar type",
        }
    }
}

fn kind_of(schema: &Value, defs: &BTreeMap<String, Value>) -> Kind {
    fn resolve<'a>(mut s: &'a Value, defs: &'a BTreeMap<String, Value>) -> &'a Value {
        for _ in 0..16 {
            match s
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            {
                Some(name) => match defs.get(name) {
                    Some(d) => s = d,
                    None => return s,
                },
                None => return s,
            }
        }
        s
    }
    fn scalar(s: &Value) -> bool {
        match s.get("type") {
            Some(Value::String(t)) => matches!(t.as_str(), "string" | "integer" | "number" | "boolean"),
            None => s
                .get("enum")
                .and_then(Value::as_array)
                .is_some_and(|v| !v.is_empty() && v.iter().all(|i| !i.is_object() && !i.is_array() && !i.is_null())),
            _ => false,
        }
    }
    let s = resolve(schema, defs);
    if scalar(s) {
        return Kind::Scalar;
    }
    match s.get("type") {
        Some(Value::String(t)) if t == "array" => match s.get("items") {
            Some(items) if scalar(resolve(items, defs)) => Kind::ScalarList,
            _ => Kind::List,
        },
        Some(Value::String(t)) if t == "object" => Kind::Object,
        None if s.get("properties").is_some() => Kind::Object,
        _ => Kind::Other,
    }
}

/// A parameter's schema without `null`: a request carries a value or leaves the parameter out.
fn not_null(schema: Value) -> Value {
    let Value::Object(mut m) = schema else { return schema };
    if let Some(Value::Array(types)) = m.get("type") {
        let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        let ty = if rest.len() == 1 {
            rest[0].clone()
        } else {
            Value::Array(rest)
        };
        m.insert("type".into(), ty);
    }
    if let Some(Value::Array(values)) = m.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::Array(any)) = m.get("anyOf")
        && any.len() == 2
        && let Some(other) = any.iter().find(|s| s != &&json!({ "type": "null" }))
        && any.contains(&json!({ "type": "null" }))
    {
        let mut inner = other.clone();
        if let (Value::Object(inner), Some(d)) = (&mut inner, m.get("description")) {
            inner.entry("description").or_insert(d.clone());
        }
        return inner;
    }
    Value::Object(m)
}

/// Tool names from operationIds: snake_case, at most 64 characters; a collision or an
/// overflow gets the first 55 characters and 8 hex digits of the operationId's SHA-256.
fn tool_names(tools: &[Tool]) -> Vec<String> {
    let bases: Vec<String> = tools
        .iter()
        .map(|t| {
            let snake = t.key.to_snake_case();
            if snake.starts_with(|c: char| c.is_ascii_alphabetic()) {
                snake
            } else {
                format!("op_{snake}")
            }
        })
        .collect();
    bases
        .iter()
        .zip(tools)
        .map(|(base, t)| {
            let clash = bases.iter().filter(|b| *b == base).count() > 1;
            if base.len() > MAX_NAME || clash {
                let hash = crate::digest::sha256_hex(t.key.as_bytes());
                let head: String = base.chars().take(55).collect();
                format!("{}_{}", head.trim_end_matches('_'), &hash[..8])
            } else {
                base.clone()
            }
        })
        .collect()
}

/// The `$defs` the tools reach, directly or through other definitions, sorted by name.
fn reachable_defs(tools: &Value, defs: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(name) = m
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                {
                    out.push(name.to_owned());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut todo = Vec::new();
    refs(tools, &mut todo);
    let mut out = BTreeMap::new();
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(def) = defs.get(&name) {
            refs(def, &mut todo);
            out.insert(name, def.clone());
        }
    }
    out
}

/// Findings on the texts the import read.
fn text_findings(conv: &Converter) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (pointer, notes) in &conv.texts {
        if !notes.hidden.is_empty() {
            out.push(
                Diagnostic::new(
                    "hidden-characters",
                    Severity::Warning,
                    format!(
                        "this text holds characters a reader cannot see ({}); they were dropped",
                        notes.hidden.join(", ")
                    ),
                    Place::value(pointer.clone()),
                )
                .with_help(
                    "the imported text is what a reviewer sees; check that it still says what the operation does",
                ),
            );
        }
        if notes.hiding_markup {
            out.push(
                Diagnostic::new(
                    "hidden-markup",
                    Severity::Warning,
                    "this text hides part of itself with markup (an HTML comment, `<details>`, an invisible style, ...); the markup was removed",
                    Place::value(pointer.clone()),
                )
                .with_help("the hidden part is not imported; read the original to see what it said, and whether the operation can be trusted"),
            );
        }
        if let Some((phrase, why)) = &notes.instruction {
            out.push(
                Diagnostic::new(
                    "instruction-in-description",
                    Severity::Warning,
                    format!("this text reads like an instruction to the model: \"{phrase}\" {why}"),
                    Place::value(pointer.clone()).within(phrase.clone()),
                )
                .with_label("imported as written")
                .with_help("the text was imported as written; rewrite it in the contract as a description, or `charter check` fails on it"),
            );
        }
    }
    out
}

/// The downstream's entry (`base_url`, `egress`, credentials), at two spaces, with findings.
fn downstream_entry(
    doc: &Document,
    selected: &[&Operation],
    downstream: &str,
    server: &str,
    findings: &mut Vec<Diagnostic>,
) -> String {
    let env = downstream.to_shouty_snake_case();
    let title = api_title(doc);
    // The base URL: the first server, variables replaced by their defaults.
    let server_url = doc.root.pointer("/servers/0/url").and_then(Value::as_str);
    let mut url = server_url.unwrap_or("").to_owned();
    if let Some(vars) = doc.root.pointer("/servers/0/variables").and_then(Value::as_object) {
        for (name, var) in vars {
            if let Some(default) = var.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{name}}}"), default);
            }
        }
    }
    let parsed = url::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    let (base_url, egress) = match &parsed {
        Some(u) => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port_or_known_default().unwrap_or(443);
            (url.trim_end_matches('/').to_owned(), format!("{host}:{port}"))
        }
        None => {
            findings.push(
                Diagnostic::new(
                    "import-placeholder",
                    Severity::Warning,
                    match server_url {
                        Some(u) => format!("the first server URL `{u}` is not an absolute http(s) URL; the downstream's `base_url` is a placeholder"),
                        None => "the description names no server; the downstream's `base_url` is a placeholder".into(),
                    },
                    Place::value(if server_url.is_some() { "/servers/0/url" } else { "" }),
                )
                .with_help("set `base_url` and `egress` to the API's real address"),
            );
            (
                format!("https://{downstream}.example.com"),
                format!("{downstream}.example.com:443"),
            )
        }
    };

    // Credentials from the security schemes the selected operations name.
    let global = doc.root.get("security");
    let mut names: Vec<(String, Vec<String>)> = Vec::new();
    for op in selected {
        let Some(reqs) = op.op.get("security").or(global).and_then(Value::as_array) else {
            continue;
        };
        for req in reqs {
            for (name, scopes) in req.as_object().into_iter().flatten() {
                let scopes: Vec<String> = scopes
                    .as_array()
                    .map(|s| s.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                match names.iter_mut().find(|(n, _)| n == name) {
                    Some((_, have)) => {
                        for s in scopes {
                            if !have.contains(&s) {
                                have.push(s);
                            }
                        }
                    }
                    None => names.push((name.clone(), scopes)),
                }
            }
        }
    }
    let schemes = doc
        .root
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object);
    if names.is_empty()
        && let Some(schemes) = schemes
    {
        names = schemes.keys().map(|k| (k.clone(), Vec::new())).collect();
    }
    let mut credentials = None;
    let mut unsupported = Vec::new();
    for (name, scopes) in &names {
        let pointer = format!("/components/securitySchemes/{}", escape(name));
        let Some(scheme) = doc.root.pointer(&pointer) else {
            continue;
        };
        let Ok((scheme, pointer)) = doc.resolve(scheme, &pointer) else {
            continue;
        };
        let ty = scheme.get("type").and_then(Value::as_str).unwrap_or_default();
        let http = scheme
            .get("scheme")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ty == "http" && http == "bearer" {
            credentials = Some(format!(
                "    credentials:\n      service_token: {{ env: {env}_TOKEN }}   # from the `{name}` scheme (HTTP bearer)\n      scopes: []   # edit: the permissions this token carries in {}\n",
                render::scalar_str(&title, false)
            ));
            break;
        }
        if ty == "oauth2"
            && let Some(flow) = scheme.pointer("/flows/clientCredentials")
            && let Some(token_url) = flow.get("tokenUrl").and_then(Value::as_str)
        {
            let scope_list = Value::Array(scopes.iter().cloned().map(Value::String).collect());
            credentials = Some(format!(
                "    credentials:\n      client_credentials:   # from the `{name}` scheme (OAuth 2.0 client credentials)\n        token_url: {}\n        client_id: {server}   # edit: the client registered for this server\n        client_secret: {{ env: {env}_CLIENT_SECRET }}\n      scopes: {}\n",
                render::scalar_str(token_url, false),
                render::flow(&scope_list).unwrap_or_default()
            ));
            break;
        }
        unsupported.push((name.clone(), describe_scheme(scheme), pointer));
    }
    let credentials = match credentials {
        Some(c) => c,
        None => {
            let why = match unsupported.first() {
                Some((name, what, pointer)) => {
                    findings.push(
                        Diagnostic::new(
                            "import-placeholder",
                            Severity::Warning,
                            format!("security scheme `{name}` is {what}, which charter's credentials do not express; the downstream gets a service-token placeholder"),
                            Place::value(pointer.clone()),
                        )
                        .with_help("charter sends a service token as a bearer token, or uses OAuth 2.0 client credentials; set the downstream's credentials before use"),
                    );
                    format!("the `{name}` scheme is {what}: edit to match")
                }
                None => "edit: the description declares no security scheme".into(),
            };
            format!(
                "    credentials:\n      service_token: {{ env: {env}_TOKEN }}   # {why}\n      scopes: []   # edit: the permissions this token carries\n"
            )
        }
    };
    format!(
        "  {downstream}:\n    description: {}\n    base_url: {}\n    egress: [{}]\n{credentials}",
        render::scalar_str(&format!("{title}, imported from its OpenAPI description."), false),
        render::scalar_str(&base_url, false),
        render::scalar_str(&egress, true),
    )
}

fn describe_scheme(scheme: &Value) -> String {
    let ty = scheme.get("type").and_then(Value::as_str).unwrap_or("unknown");
    match ty {
        "apiKey" => format!(
            "an API key in the {} `{}`",
            scheme.get("in").and_then(Value::as_str).unwrap_or("request"),
            scheme.get("name").and_then(Value::as_str).unwrap_or("?")
        ),
        "http" => format!(
            "HTTP `{}` authentication",
            scheme.get("scheme").and_then(Value::as_str).unwrap_or("?")
        ),
        "oauth2" => "OAuth 2.0 without a client-credentials flow".into(),
        "openIdConnect" => "OpenID Connect".into(),
        "mutualTLS" => "mutual TLS".into(),
        other => format!("of type `{other}`"),
    }
}

struct Starter<'a> {
    name: &'a str,
    today: jiff::civil::Date,
    title: &'a str,
    source: &'a str,
    count: usize,
    downstream: &'a str,
    downstream_block: &'a str,
    scopes: &'a Map<String, Value>,
    defs: &'a BTreeMap<String, Value>,
    tools_text: &'a str,
}

const TEMPLATE: &str = include_str!("../../templates/import.yaml.j2");

/// A complete starter contract around the imported tools.
fn starter(s: &Starter) -> Result<String, minijinja::Error> {
    let mut scopes = String::new();
    render::entries(&mut scopes, s.scopes, 4);
    let mut defs = String::new();
    for (name, def) in s.defs {
        render::entry(&mut defs, name, def, 2);
    }
    let review = s.today.checked_add(jiff::Span::new().months(6)).unwrap_or(s.today);
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_template("import.yaml", TEMPLATE)?;
    let q = |t: String| render::scalar_str(&t, false);
    let line = |indent: usize, key: &str, t: String| {
        let mut out = String::new();
        render::entry(&mut out, key, &Value::String(t), indent);
        out.trim_end().to_owned()
    };
    env.get_template("import.yaml")?.render(minijinja::context! {
        name => s.name,
        env => s.name.to_shouty_snake_case(),
        review => review.to_string(),
        file => format!("{}.yaml", s.name),
        source => s.source,
        title => s.title,
        count => s.count,
        description => line(2, "description", format!(
            "Calls {} operation{} of the {} downstream ({}), each tool bound to one operation of its OpenAPI description.",
            s.count,
            if s.count == 1 { "" } else { "s" },
            s.downstream,
            s.title,
        )),
        when => q(format!("The assistant no longer needs the imported {} operations.", s.downstream)),
        class_description => q(format!("What the imported {} operations send and return.", s.downstream)),
        scopes => scopes,
        downstream => s.downstream_block,
        defs => defs,
        tools => s.tools_text,
    })
}

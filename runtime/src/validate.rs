//! JSON Schema validation of what comes in and what goes out, with validators
//! compiled once at start-up from the contract's exact schemas.

use serde_json::Value;

/// A compiled schema.
pub struct Validator {
    inner: jsonschema::Validator,
}

impl Validator {
    /// Compiles `schema` (JSON Schema 2020-12, formats asserted).
    pub fn new(what: &str, schema: &Value) -> Result<Validator, String> {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(schema)
            .map(|inner| Validator { inner })
            .map_err(|e| format!("{what}: the schema does not compile: {e}"))
    }

    /// Every violation, each as `at /path: what is wrong`, in document order.
    /// At most `limit` are listed so a hostile input cannot inflate the reply.
    pub fn violations(&self, instance: &Value, limit: usize) -> Vec<String> {
        // The common case, valid input, without collecting errors.
        if self.inner.is_valid(instance) {
            return Vec::new();
        }
        let mut found: Vec<String> = self
            .inner
            .iter_errors(instance)
            .take(limit)
            .map(|error| {
                let path = error.instance_path().as_str();
                let path = if path.is_empty() { "/" } else { path };
                format!("at {path}: {}", truncate(&error.to_string(), 200))
            })
            .collect();
        found.dedup();
        found
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        self.inner.is_valid(instance)
    }
}

/// Why a tool's arguments were refused: the reason and the message for the
/// audit record (places only, never values) and the reply to the caller.
#[derive(Debug)]
pub struct Refused {
    pub reason: &'static str,
    pub audit: String,
    pub reply: String,
}

/// How many schema violations one reply lists.
pub const MAX_VIOLATIONS: usize = 20;

/// Checks a tool's arguments against its size limit and its input schema:
/// the one check every tool gets, the contract's and the runtime's own.
pub fn check_input(
    name: &str,
    schema: &Value,
    input: &Validator,
    max_bytes: u64,
    arguments: &Value,
) -> Result<(), Refused> {
    let size = json_len(arguments);
    if size > max_bytes {
        let message = format!("arguments are {size} bytes; `{name}` accepts at most {max_bytes}");
        return Err(Refused {
            reason: "request_too_large",
            audit: message.clone(),
            reply: message,
        });
    }
    // The common case, valid arguments, walks the value once and builds nothing.
    if input.is_valid(arguments) {
        return Ok(());
    }
    let mut violations = unknown_properties(schema, arguments);
    let named_unknown = !violations.is_empty();
    violations.extend(
        input
            .violations(arguments, MAX_VIOLATIONS)
            .into_iter()
            .filter(|v| !(named_unknown && v.starts_with("at /: False schema"))),
    );
    // The caller's message quotes values; the audit record names only where, so
    // a value the data class redacts cannot reach the log through an error.
    let places: Vec<&str> = violations
        .iter()
        .map(|v| v.strip_prefix("at ").and_then(|v| v.split(": ").next()).unwrap_or("/"))
        .collect();
    Err(Refused {
        reason: "invalid_arguments",
        audit: format!("invalid arguments at {}", places.join(", ")),
        reply: format!("invalid arguments for `{name}`:\n- {}", violations.join("\n- ")),
    })
}

/// The length of `value` as compact JSON, counted without writing the text.
pub fn json_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => u64::MAX,
    }
}

/// Arguments a closed object schema does not declare, each named with what
/// the schema accepts: clearer than the validator's generic "false schema".
pub fn unknown_properties(schema: &Value, instance: &Value) -> Vec<String> {
    let (Some(object), Some(Value::Bool(false))) = (instance.as_object(), schema.get("additionalProperties")) else {
        return Vec::new();
    };
    let declared: Vec<&str> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let unknown: Vec<&String> = object.keys().filter(|k| !declared.contains(&k.as_str())).collect();
    if unknown.is_empty() {
        return Vec::new();
    }
    let accepted = if declared.is_empty() {
        "none".to_string()
    } else {
        declared.join(", ")
    };
    unknown
        .into_iter()
        .map(|k| {
            format!(
                "at /{}: unknown argument `{}` (accepted: {accepted})",
                k.replace('~', "~0").replace('/', "~1"),
                truncate(k, 100)
            )
        })
        .collect()
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_violation_with_its_path() {
        let schema = json!({
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": 5}, "limit": {"type": "integer", "minimum": 1}},
            "required": ["query"],
            "additionalProperties": false
        });
        let v = Validator::new("t", &schema).unwrap();
        assert!(v.violations(&json!({"query": "abc"}), 10).is_empty());
        let found = v.violations(&json!({"query": "toolong", "limit": 0, "extra": 1}), 10);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|f| f.starts_with("at /query:")), "{found:?}");
        assert!(found.iter().any(|f| f.starts_with("at /limit:")), "{found:?}");
        assert!(
            found.iter().any(|f| f.starts_with("at /:") && f.contains("extra")),
            "{found:?}"
        );
        assert_eq!(v.violations(&json!({"query": 1, "limit": 0, "x": 1}), 1).len(), 1);
    }

    #[test]
    fn unknown_arguments_are_named() {
        let schema = json!({"type": "object", "properties": {"q": {}}, "additionalProperties": false});
        let found = unknown_properties(&schema, &json!({"q": 1, "x/y": 2}));
        assert_eq!(found, ["at /x~1y: unknown argument `x/y` (accepted: q)"]);
        assert!(unknown_properties(&json!({"type": "object"}), &json!({"x": 1})).is_empty());
    }

    #[test]
    fn formats_are_asserted() {
        let v = Validator::new("t", &json!({"type": "string", "format": "date"})).unwrap();
        assert!(v.is_valid(&json!("2026-11-23")));
        assert!(!v.is_valid(&json!("23/11/2026")));
    }

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
    }
}

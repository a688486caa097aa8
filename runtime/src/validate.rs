//! JSON Schema validation of what comes in and what goes out, with validators
//! compiled once at start-up from the contract's exact schemas.
//!
//! Schemas within the subset the surface crate defines
//! ([`SimpleSchema`](super::surface::simple_schema::SimpleSchema): types, enums,
//! lengths, bounds, items, properties, local `$ref`s) are checked by that
//! code; the rest by the `jsonschema` crate, which the generator compiles in
//! (feature `json-schema`) only for contracts that have such a schema.

use serde_json::Value;

use super::surface::simple_schema::SimpleSchema;

/// A compiled schema.
pub struct Validator {
    inner: Inner,
}

enum Inner {
    Simple(SimpleSchema),
    #[cfg(feature = "json-schema")]
    Full(Box<jsonschema::Validator>),
}

impl Validator {
    /// Compiles `schema` (JSON Schema 2020-12, formats asserted).
    pub fn new(what: &str, schema: &Value) -> Result<Validator, String> {
        if let Some(simple) = SimpleSchema::compile(schema) {
            return Ok(Validator {
                inner: Inner::Simple(simple),
            });
        }
        Validator::full(what, schema)
    }

    #[cfg(feature = "json-schema")]
    fn full(what: &str, schema: &Value) -> Result<Validator, String> {
        jsonschema_validator(schema)
            .map(|full| Validator {
                inner: Inner::Full(Box::new(full)),
            })
            .map_err(|e| format!("{what}: the schema does not compile: {e}"))
    }

    #[cfg(not(feature = "json-schema"))]
    fn full(what: &str, _schema: &Value) -> Result<Validator, String> {
        Err(format!(
            "{what}: the schema uses keywords beyond the built-in validator's (such as `pattern`, `format` or \
             `oneOf`), and this build has no `json-schema` feature; `charter generate` turns it on for \
             contracts that need it: regenerate the crate"
        ))
    }

    /// Every violation, each as `at /path: what is wrong`, in document order.
    /// At most `limit` are listed so a hostile input cannot inflate the reply.
    pub fn violations(&self, instance: &Value, limit: usize) -> Vec<String> {
        // The common case, valid input, without collecting errors.
        if self.is_valid(instance) {
            return Vec::new();
        }
        let at = |path: &str, message: &str| {
            let path = if path.is_empty() { "/" } else { path };
            format!("at {path}: {}", truncate(message, 200))
        };
        let mut found: Vec<String> = match &self.inner {
            Inner::Simple(simple) => simple
                .violations(instance, limit)
                .iter()
                .map(|(path, message)| at(path, message))
                .collect(),
            #[cfg(feature = "json-schema")]
            Inner::Full(full) => full
                .iter_errors(instance)
                .take(limit)
                .map(|error| at(error.instance_path().as_str(), &error.to_string()))
                .collect(),
        };
        found.dedup();
        found
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        match &self.inner {
            Inner::Simple(simple) => simple.is_valid(instance),
            #[cfg(feature = "json-schema")]
            Inner::Full(full) => full.is_valid(instance),
        }
    }
}

/// `schema` compiled by the jsonschema crate as the runtime uses it: 2020-12, formats asserted.
/// Public for the differential fuzz target, which must hold the subset to this same configuration.
#[cfg(feature = "json-schema")]
pub fn jsonschema_validator(schema: &Value) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
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
    use crate::surface::simple_schema::SimpleSchema;
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

    /// The built-in subset and `jsonschema` agree on every schema and instance
    /// here: the same verdict, and violations at the same places.
    #[test]
    fn the_builtin_subset_agrees_with_jsonschema() {
        let schemas = [
            json!({"type": "object", "required": ["text"], "additionalProperties": false,
                "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 3}}}),
            json!({"type": "object", "required": ["n"], "properties": {
                "n": {"type": "integer", "minimum": 1, "maximum": 10},
                "x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1.5}}}),
            json!({"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1, "maxItems": 2}),
            json!({"enum": [1, "1", null, true, [1], {"a": 1}]}),
            json!({"const": {"a": [1, 2]}}),
            json!({"type": ["string", "null"], "minLength": 2}),
            json!({"type": "object", "additionalProperties": {"type": "boolean"}, "minProperties": 1, "maxProperties": 2}),
            json!({"$defs": {"Id": {"type": "string", "maxLength": 3}}, "type": "object",
                "properties": {"id": {"$ref": "#/$defs/Id"}, "ids": {"type": "array", "items": {"$ref": "#/$defs/Id"}}}}),
            json!(true),
            json!(false),
            json!({"type": "integer"}),
            json!({"type": "number", "maximum": 9007199254740992_u64}),
            json!({"properties": {"a~b/c": {"type": "null"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"o": {"type": "object", "required": ["a", "b"],
                "properties": {"a": {"const": 1}}, "additionalProperties": false}}}),
            json!({"required": ["n", "x", "z"], "properties": {"n": {}, "x": {"type": "number"}}}),
            json!({"anyOf": [{"type": "string", "maxLength": 1}, {"type": "integer", "minimum": 1}]}),
            json!({"oneOf": [{"type": "number"}, {"type": "integer"}, {"type": "null"}]}),
            json!({"type": "object", "properties": {"o": {"oneOf": [
                {"type": "object", "required": ["a"], "properties": {"a": {"const": 1}}},
                {"type": "object", "required": ["b"]}]}}}),
            json!({"allOf": [{"type": "object", "required": ["n"]}, {"properties": {"n": {"maximum": 1}}}],
                "additionalProperties": {"type": "boolean"}}),
            json!({"$defs": {"One": {"const": 1}}, "type": "array",
                "items": {"anyOf": [{"$ref": "#/$defs/One"}, {"type": "string", "minLength": 2}]}}),
            json!({"type": "object", "properties": {"text": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                "oneOf": [{"required": ["text"]}, {"required": ["id"]}]}),
        ];
        let instances = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(1),
            json!(-1),
            json!(1.0),
            json!(1.5),
            json!(10),
            json!(11),
            json!(0.0),
            json!(1e300),
            json!(-1e300),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(9007199254740993_u64),
            json!(9007199254740992.0),
            json!(""),
            json!("a"),
            json!("ab"),
            json!("abcd"),
            json!("ü"),
            json!("éé"),
            json!("😀😀😀"),
            json!("😀😀😀😀"),
            json!("1"),
            json!([]),
            json!(["a"]),
            json!(["a", "b"]),
            json!(["a", "c"]),
            json!(["a", "b", "a"]),
            json!([1]),
            json!([1.0]),
            json!({}),
            json!({"n": 1}),
            json!({"n": 0}),
            json!({"n": 1.0}),
            json!({"n": "1"}),
            json!({"n": 1, "x": 0}),
            json!({"n": 1, "x": 1.5}),
            json!({"n": 1, "x": 1.4999}),
            json!({"n": 10.5}),
            json!({"a": [1, 2]}),
            json!({"a": [1.0, 2.0]}),
            json!({"a": [2, 1]}),
            json!({"a": 1}),
            json!({"a": 1.0}),
            json!({"text": "hi"}),
            json!({"text": ""}),
            json!({"text": "hi", "extra": 1}),
            json!({"text": 1, "x": 1, "y": 2}),
            json!({"id": "abcd"}),
            json!({"id": "abc", "ids": ["a", "abcd", 3]}),
            json!({"x": true, "y": false, "z": true}),
            json!({"x": 1}),
            json!({"a~b/c": null}),
            json!({"a~b/c": 1}),
            json!({"o": {"a": 2, "c": 1}}),
            json!({"o": {"a": 1, "b": 1}}),
            json!({"o": {"a": 1}}),
            json!({"o": {"b": 2}}),
            json!({"o": {"a": 2}}),
            json!({"n": 1, "z": true}),
            json!({"n": 1, "z": 1}),
            json!([1, "ab", "a"]),
            json!([1.0, "xyz"]),
            json!({"text": null}),
            json!({"text": "hi", "id": 1}),
            json!({"text": 1, "id": 1}),
        ];
        for schema in &schemas {
            let simple = SimpleSchema::compile(schema).unwrap_or_else(|| panic!("outside the subset: {schema}"));
            let full = jsonschema_validator(schema).unwrap();
            for instance in &instances {
                let verdict = full.is_valid(instance);
                assert_eq!(
                    simple.is_valid(instance),
                    verdict,
                    "schema {schema}, instance {instance}"
                );
                let places = |found: Vec<String>| {
                    let mut places: Vec<String> = found.into_iter().collect();
                    places.sort();
                    places.dedup();
                    places
                };
                let ours = places(simple.violations(instance, 100).into_iter().map(|(p, _)| p).collect());
                let theirs = places(
                    full.iter_errors(instance)
                        .map(|e| e.instance_path().as_str().to_string())
                        .collect(),
                );
                assert_eq!(ours, theirs, "schema {schema}, instance {instance}");
            }
        }
    }

    /// Formats and patterns: the built-in checks and `jsonschema` agree on each string here.
    #[test]
    fn the_builtin_formats_and_patterns_agree_with_jsonschema() {
        let strings = [
            "",
            "a",
            "2026-12-04",
            "2026-02-29",
            "2024-02-29",
            "2000-02-29",
            "1900-02-29",
            "2026-13-01",
            "2026-04-31",
            "2026-12-4",
            "２０２６-12-04",
            "2026-12-04T10:20:30Z",
            "2026-12-04t10:20:30z",
            "2026-12-04T10:20:30.123+01:00",
            "2026-12-04T10:20:30.+01:00",
            "2026-12-04T23:59:60Z",
            "2026-12-04T22:59:60-01:00",
            "2026-12-04T23:59:60+00:01",
            "2026-12-04T00:00:60-23:59",
            "2026-12-04T10:20:30",
            "2026-12-04 10:20:30Z",
            "2026-12-04T24:00:00Z",
            "2026-12-04T10:60:00Z",
            "2026-12-04T10:20:30+24:00",
            "2026-12-04T10:20:30+01:60",
            "2026-12-04T10:20:30+0100",
            "10:20:30Z",
            "10:20:30.5-05:30",
            "23:59:60Z",
            "10:20Z",
            "123e4567-e89b-12d3-a456-426614174000",
            "123E4567-E89B-12D3-A456-426614174000",
            "123e4567e89b12d3a456426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "123e4567-e89b-12d3-a456-42661417400g",
            "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
            "https://example.com",
            "https://example.com/a/b?c=d#e",
            "http://user:pw@example.com:8080/x",
            "http://example.com:80a/",
            "http://exa mple.com",
            "http://example.com/%zz",
            "http://example.com/%41",
            "mailto:a@example.com",
            "urn:isbn:0451450523",
            "example.com",
            "//example.com/x",
            "/relative",
            "http://[::1]:8080/",
            "http://[2001:db8::7]/c=GB",
            "http://[v7.abc]/",
            "http://[::1%25eth0]/",
            "http://[::1",
            "http://]/",
            "http://[1.2.3.4]/",
            "http://@example.com",
            "http://a@b@c/",
            "http://example.com/a?b?c#d?e",
            "http://example.com/#a#b",
            "http://ex%41mple.com/",
            "a+b.c-d:x",
            "1http://x",
            "http://例え.jp/",
            "http://example.com/ü",
            "http://example.com/\"quote",
            "POL-1234",
            "POL-12345",
            "CHG1234567",
            "v1.2.3",
            "v1.2.3-rc.1",
            "v1.2",
            "example-corp/atlas-sdk",
            "example-corp/at las",
            "en",
            "en-US",
            "en-us",
            "ab",
            "-ab",
            "a-b-c",
            "0123456789abcdef0123456789abcdef01234567",
        ];
        let schemas = [
            json!({"format": "date"}),
            json!({"format": "time"}),
            json!({"format": "date-time"}),
            json!({"format": "uuid"}),
            json!({"format": "uri"}),
            json!({"pattern": "^POL-[0-9]{4}$"}),
            json!({"pattern": "^CHG[0-9]{7}$"}),
            json!({"pattern": "^v[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}(-[0-9A-Za-z.]{1,20})?$"}),
            json!({"pattern": "^example-corp/[A-Za-z0-9._-]{1,100}$"}),
            json!({"pattern": "^[a-z]{2}(-[A-Z]{2})?$"}),
            json!({"pattern": "^[a-z][a-z0-9-]{0,48}[a-z0-9]$"}),
            json!({"pattern": "^[0-9a-f]{40}$"}),
            json!({"pattern": "[0-9]{2,}"}),
            json!({"pattern": "^(a|b)+$"}),
            json!({"pattern": "^[^a-c]*$"}),
        ];
        for schema in &schemas {
            let simple = SimpleSchema::compile(schema).unwrap_or_else(|| panic!("outside the subset: {schema}"));
            let full = jsonschema_validator(schema).unwrap();
            for text in strings {
                let instance = json!(text);
                assert_eq!(
                    simple.is_valid(&instance),
                    full.is_valid(&instance),
                    "schema {schema}, string {text:?}"
                );
            }
        }
        let unique = json!({"type": "array", "uniqueItems": true});
        let simple = SimpleSchema::compile(&unique).unwrap();
        let full = jsonschema::validator_for(&unique).unwrap();
        for instance in [
            json!([]),
            json!([1, 2]),
            json!([1, 1.0]),
            json!([1, "1"]),
            json!([{"a": 1, "b": 2}, {"b": 2, "a": 1.0}]),
            json!([[1, 2], [2, 1]]),
            json!([null, false, 0, ""]),
            json!([9007199254740993_u64, 9007199254740992.0]),
            json!([0.5, 0.5]),
            json!([-0.0, 0]),
            json!([{"a": [1]}, {"a": [1.0]}]),
        ] {
            assert_eq!(
                simple.is_valid(&instance),
                full.is_valid(&instance),
                "uniqueItems, {instance}"
            );
        }
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

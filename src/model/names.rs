//! Names: the contract's spelling kept beside the Rust forms generated code uses.

use heck::{ToSnakeCase, ToUpperCamelCase};
use serde::Serialize;

/// A name as the contract wrote it and as Rust identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Name {
    /// Exactly as written; what MCP clients see.
    pub original: String,
    /// snake_case, safe as a Rust function, field or module name.
    pub snake: String,
    /// UpperCamelCase, safe as a Rust type name.
    pub pascal: String,
}

/// Rust's strict and reserved keywords (2024 edition), plus names that would
/// shadow what generated code relies on.
const RESERVED: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
    "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract",
    "become", "box", "do", "final", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
    "union", "main", "std", "core", "alloc", "Option", "Result", "Some", "None", "Ok", "Err", "String", "Vec", "Box",
];

impl Name {
    /// The Rust forms of a contract name. Keywords get a trailing underscore
    /// (`type` -> `type_`), which unlike `r#type` works for modules and types too.
    pub fn new(original: &str) -> Name {
        // Property names from API descriptions can be `+1`, `-1` or `2fa`: spell the sign, and
        // give a leading digit a letter, so every name is an identifier.
        let spelled = match original.as_bytes().first() {
            Some(b'+') => format!("plus {}", &original[1..]),
            Some(b'-') => format!("minus {}", &original[1..]),
            _ => original.to_owned(),
        };
        let identifier = |s: String, prefix: &str| match s.chars().next() {
            None => prefix.to_owned(),
            Some(c) if c.is_ascii_digit() => format!("{prefix}{s}"),
            Some(_) => s,
        };
        let snake = escape(identifier(spelled.to_snake_case(), "n"));
        let pascal = escape(identifier(spelled.to_upper_camel_case(), "N"));
        Name {
            original: original.to_owned(),
            snake,
            pascal,
        }
    }
}

fn escape(ident: String) -> String {
    if RESERVED.contains(&ident.as_str()) {
        format!("{ident}_")
    } else {
        ident
    }
}

/// Whether a name can be a tool, resource or prompt name: a letter, then
/// letters, digits, `_`, `-` or `.` (MCP's tool-name alphabet), 64 at most.
pub fn is_capability_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Whether a name is lowercase kebab or snake: a letter, then lowercase letters, digits, `-` or `_`.
pub fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

/// Whether a scope name is well formed, e.g. `pulls.read` or `tickets:draft`.
pub fn is_scope_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | ':'))
}

/// Whether a server name can be a crate and package name: lowercase, digits, dashes.
pub fn is_server_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && (2..=64).contains(&name.len())
        && !name.ends_with('-')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether a string is a conventional environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_name_becomes_an_identifier() {
        for (original, snake, pascal) in [
            ("+1", "plus_1", "Plus1"),
            ("-1", "minus_1", "Minus1"),
            ("2fa", "n2fa", "N2fa"),
            ("", "n", "N"),
        ] {
            let name = Name::new(original);
            assert_eq!(
                (name.snake.as_str(), name.pascal.as_str()),
                (snake, pascal),
                "{original:?}"
            );
        }
    }

    #[test]
    fn rust_forms_escape_keywords_and_punctuation() {
        let n = Name::new("list-merged.pull_requests");
        assert_eq!(n.snake, "list_merged_pull_requests");
        assert_eq!(n.pascal, "ListMergedPullRequests");
        assert_eq!(Name::new("type").snake, "type_");
        assert_eq!(Name::new("self").pascal, "Self_");
    }

    #[test]
    fn name_alphabets() {
        assert!(is_capability_name("search_policies"));
        assert!(is_capability_name("search.policies-v2"));
        assert!(!is_capability_name("2fast"));
        assert!(!is_capability_name("has space"));
        assert!(is_server_name("release-notes"));
        assert!(!is_server_name("Release"));
        assert!(!is_server_name("trailing-"));
        assert!(is_scope_name("pulls.read"));
        assert!(is_env_name("GITHUB_TOKEN"));
        assert!(!is_env_name("github_token"));
    }
}

//! RFC 6570 level-1 URI templates (`policy://documents/{id}`): matching a
//! concrete URI back to its variables. Level 1 is all the contract allows, so
//! every variable is a simple string expansion that stops at `/`, `?` or `#`.

use serde_json::{Map, Value};

/// A parsed template: literal text alternating with variable names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl UriTemplate {
    pub fn parse(template: &str) -> Result<UriTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in URI template `{template}`"))?;
            let name = &rest[open + 1..open + close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{{{name}}}` in `{template}` is not a level-1 variable"));
            }
            if matches!(parts.last(), Some(Part::Variable(_))) {
                return Err(format!("two variables without text between them in `{template}`"));
            }
            parts.push(Part::Variable(name.to_string()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(UriTemplate { parts })
    }

    /// The variables of `uri` if it matches, percent-decoded.
    pub fn matches(&self, uri: &str) -> Option<Map<String, Value>> {
        let mut variables = Map::new();
        let mut rest = uri;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(text) => rest = rest.strip_prefix(text.as_str())?,
                Part::Variable(name) => {
                    let end = match self.parts.get(i + 1) {
                        Some(Part::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let raw = &rest[..end];
                    if raw.is_empty() || raw.contains(['/', '?', '#']) {
                        return None;
                    }
                    variables.insert(name.clone(), Value::String(percent_decode(raw)?));
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(variables)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_variables_between_literals() {
        let t = UriTemplate::parse("tickets://{queue}/items/{id}").unwrap();
        let vars = t.matches("tickets://billing/items/T%2D42").unwrap();
        assert_eq!(vars["queue"], "billing");
        assert_eq!(vars["id"], "T-42");
        assert!(t.matches("tickets://billing/items/").is_none());
        assert!(t.matches("tickets://a/b/items/1").is_none());
        assert!(t.matches("tickets://billing/items/1/extra").is_none());
        assert!(t.matches("other://billing/items/1").is_none());
    }

    #[test]
    fn refuses_what_level_one_cannot_express() {
        assert!(UriTemplate::parse("x://{+path}").is_err());
        assert!(UriTemplate::parse("x://{a}{b}").is_err());
        assert!(UriTemplate::parse("x://{a").is_err());
    }

    #[test]
    fn bad_percent_escapes_do_not_match() {
        let t = UriTemplate::parse("x://{id}").unwrap();
        assert!(t.matches("x://%zz").is_none());
        assert!(t.matches("x://%ff").is_none());
    }
}

//! Prompt rendering: the contract's text with `{{argument}}` placeholders
//! filled in. Argument values are inserted as they are; they are never
//! re-scanned, so a value cannot smuggle in another placeholder.

use std::collections::BTreeMap;

/// Renders `text`, replacing each `{{name}}` with its argument (empty when an
/// optional argument was not given).
pub fn render(text: &str, arguments: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                match arguments.get(name) {
                    Some(value) => out.push_str(value),
                    None if is_name(name) => {}
                    None => out.push_str(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_once() {
        let args = BTreeMap::from([("topic".to_string(), "{{secret}}".to_string())]);
        assert_eq!(render("About {{ topic }}: {{other}}.", &args), "About {{secret}}: .");
        assert_eq!(render("unclosed {{topic", &args), "unclosed {{topic");
    }
}

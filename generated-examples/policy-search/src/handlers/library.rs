//! The policy library: Markdown policy documents with a small front-matter header, parsed into
//! numbered sections and searched by keyword overlap.
//!
//! A document looks like this:
//!
//! ```text
//! ---
//! policy_id: POL-0142
//! title: Password and Authentication Standard
//! area: security
//! version: "3.1"
//! owner: security-engineering
//! effective_date: 2026-03-01
//! classification: internal
//! status: approved
//! ---
//! # Password and Authentication Standard
//!
//! ## 3 Passwords
//!
//! ### 3.2 Rotation
//!
//! Passwords are not rotated on a fixed schedule. ...
//! ```
//!
//! Only `status: approved` documents are served. Several versions of one policy may be present;
//! the one in effect on a date is the approved version with the latest `effective_date` on or
//! before that date.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The policies shipped with the example, used unless `[handlers] policies_dir` names a folder.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "POL-0099-retired.md",
        include_str!("../../data/policies/POL-0099-retired.md"),
    ),
    ("POL-0142-v2.4.md", include_str!("../../data/policies/POL-0142-v2.4.md")),
    ("POL-0142-v3.1.md", include_str!("../../data/policies/POL-0142-v3.1.md")),
    ("POL-0207-v1.3.md", include_str!("../../data/policies/POL-0207-v1.3.md")),
    ("POL-0315-v2.0.md", include_str!("../../data/policies/POL-0315-v2.0.md")),
    ("POL-0388-v1.1.md", include_str!("../../data/policies/POL-0388-v1.1.md")),
    ("POL-0420-v1.0.md", include_str!("../../data/policies/POL-0420-v1.0.md")),
    (
        "POL-0501-draft.md",
        include_str!("../../data/policies/POL-0501-draft.md"),
    ),
];

/// Longest quote the contract accepts, in characters.
const MAX_QUOTE_CHARS: usize = 1200;

#[derive(Debug, Clone)]
pub struct Policy {
    pub policy_id: String,
    pub title: String,
    pub area: String,
    pub version: String,
    pub owner: String,
    pub effective_date: String,
    pub classification: String,
    pub status: String,
    /// The Markdown after the front matter.
    pub body: String,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone)]
pub struct Section {
    /// e.g. `3.2`.
    pub number: String,
    /// The heading without its number, e.g. `Rotation`.
    pub heading: String,
    /// The section in Markdown, its heading and subsections included.
    pub text: String,
    /// The paragraphs directly under this heading (not those of subsections).
    pub paragraphs: Vec<String>,
}

impl Policy {
    pub fn section(&self, number: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.number == number)
    }
}

/// Every policy document, approved or not, all versions.
#[derive(Debug, Clone)]
pub struct Library {
    policies: Vec<Policy>,
}

/// One passage that matched a query.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    pub policy: &'a Policy,
    pub section: &'a Section,
    pub quote: String,
    pub score: f64,
}

impl Library {
    pub fn embedded() -> Result<Library, String> {
        Library::from_documents(EMBEDDED.iter().map(|(name, text)| (name.to_string(), text.to_string())))
    }

    /// Reads every `*.md` file of `dir`.
    pub fn from_dir(dir: &Path) -> Result<Library, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("policies_dir {}: {e}", dir.display()))?;
        let mut documents = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| format!("policies_dir {}: {e}", dir.display()))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("md") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            documents.push((path.display().to_string(), text));
        }
        documents.sort();
        Library::from_documents(documents)
    }

    fn from_documents(documents: impl IntoIterator<Item = (String, String)>) -> Result<Library, String> {
        let mut policies = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, text) in documents {
            let policy = parse(&text).map_err(|e| format!("policy document {name}: {e}"))?;
            if !seen.insert((policy.policy_id.clone(), policy.version.clone())) {
                return Err(format!(
                    "policy document {name}: {} version {} appears twice",
                    policy.policy_id, policy.version
                ));
            }
            policies.push(policy);
        }
        Ok(Library { policies })
    }

    /// The approved versions in effect on `date` (YYYY-MM-DD), one per policy, by policy id.
    pub fn effective_on(&self, date: &str) -> Vec<&Policy> {
        let mut current: BTreeMap<&str, &Policy> = BTreeMap::new();
        for policy in &self.policies {
            if policy.status != "approved" || policy.effective_date.as_str() > date {
                continue;
            }
            let newer = match current.get(policy.policy_id.as_str()) {
                Some(existing) => policy.effective_date > existing.effective_date,
                None => true,
            };
            if newer {
                current.insert(&policy.policy_id, policy);
            }
        }
        current.into_values().collect()
    }

    /// The approved version of `policy_id` in effect on `date`.
    pub fn get(&self, policy_id: &str, date: &str) -> Option<&Policy> {
        self.effective_on(date).into_iter().find(|p| p.policy_id == policy_id)
    }

    /// Passages of the policies in effect on `date` (in `areas`, when given) that share words
    /// with `query`, best first.
    pub fn search<'a>(&'a self, query: &str, areas: Option<&[String]>, date: &str) -> Vec<Hit<'a>> {
        let terms = terms(query);
        if terms.is_empty() {
            return Vec::new();
        }
        let mut hits = Vec::new();
        for policy in self.effective_on(date) {
            if let Some(areas) = areas
                && !areas.iter().any(|a| a == &policy.area)
            {
                continue;
            }
            let title_words = words(&policy.title);
            for section in &policy.sections {
                let heading_words = words(&section.heading);
                for paragraph in &section.paragraphs {
                    let paragraph_words = words(paragraph);
                    let mut score = 0.0;
                    for term in &terms {
                        if paragraph_words.iter().any(|w| same_word(w, term)) {
                            score += 1.0;
                        } else if heading_words.iter().any(|w| same_word(w, term)) {
                            score += 0.6;
                        } else if title_words.iter().any(|w| same_word(w, term)) {
                            score += 0.3;
                        }
                    }
                    // A passage must contain at least one query word itself.
                    if !terms.iter().any(|t| paragraph_words.iter().any(|w| same_word(w, t))) {
                        continue;
                    }
                    let score = (score / terms.len() as f64).clamp(0.0, 1.0);
                    hits.push(Hit {
                        policy,
                        section,
                        quote: truncate_chars(paragraph, MAX_QUOTE_CHARS),
                        score: (score * 1000.0).round() / 1000.0,
                    });
                }
            }
        }
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.policy.policy_id.cmp(&b.policy.policy_id))
                .then_with(|| section_key(&a.section.number).cmp(&section_key(&b.section.number)))
        });
        hits
    }
}

fn section_key(number: &str) -> Vec<u32> {
    number.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// Parses one document: front matter, then numbered Markdown headings.
pub fn parse(text: &str) -> Result<Policy, String> {
    let text = text.replace("\r\n", "\n");
    let rest = text
        .strip_prefix("---\n")
        .ok_or("missing front matter (`---` on the first line)")?;
    let (header, body) = rest
        .split_once("\n---\n")
        .ok_or("front matter is not closed by `---`")?;
    let mut fields = BTreeMap::new();
    for line in header.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("front matter line `{line}` has no `:`"))?;
        let value = value.trim().trim_matches('"').to_string();
        fields.insert(key.trim().to_string(), value);
    }
    let mut field = |key: &str| fields.remove(key).ok_or_else(|| format!("front matter lacks `{key}`"));
    let policy_id = field("policy_id")?;
    let valid_id =
        policy_id.len() == 8 && policy_id.starts_with("POL-") && policy_id[4..].bytes().all(|b| b.is_ascii_digit());
    if !valid_id {
        return Err(format!("policy_id `{policy_id}` is not like POL-0142"));
    }
    let version = field("version")?;
    if !is_version(&version) {
        return Err(format!("version `{version}` is not like 3.1"));
    }
    let effective_date = field("effective_date")?;
    if !is_date(&effective_date) {
        return Err(format!("effective_date `{effective_date}` is not a YYYY-MM-DD date"));
    }
    let classification = field("classification")?;
    if !matches!(classification.as_str(), "internal" | "confidential") {
        return Err(format!(
            "classification `{classification}` is not internal or confidential"
        ));
    }
    let area = field("area")?;
    const AREAS: &[&str] = &[
        "security",
        "privacy",
        "people",
        "finance",
        "procurement",
        "legal",
        "it",
        "health-and-safety",
    ];
    if !AREAS.contains(&area.as_str()) {
        return Err(format!("area `{area}` is not one of {}", AREAS.join(", ")));
    }
    let body = body.trim_start_matches('\n').to_string();
    let sections = sections(&body)?;
    Ok(Policy {
        policy_id,
        title: field("title")?,
        area,
        version,
        owner: field("owner")?,
        effective_date,
        classification,
        status: field("status")?,
        body,
        sections,
    })
}

/// A heading line's level, number and title: `### 3.2 Rotation` is (3, "3.2", "Rotation").
fn numbered_heading(line: &str) -> Option<(usize, String, String)> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    if level < 2 {
        return None;
    }
    let rest = line[level..].strip_prefix(' ')?.trim();
    let (number, title) = rest.split_once(' ').unwrap_or((rest, ""));
    let number = number.trim_end_matches('.');
    let valid = !number.is_empty()
        && number.split('.').count() <= 4
        && number
            .split('.')
            .all(|p| !p.is_empty() && p.len() <= 2 && !p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| (level, number.to_string(), title.trim().to_string()))
}

fn sections(body: &str) -> Result<Vec<Section>, String> {
    let lines: Vec<&str> = body.lines().collect();
    let headings: Vec<(usize, usize, String, String)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| numbered_heading(line).map(|(level, number, title)| (i, level, number, title)))
        .collect();
    let mut sections = Vec::new();
    for (k, (start, level, number, heading)) in headings.iter().enumerate() {
        // The section runs to the next heading at its level or above; its own paragraphs stop
        // at the next heading of any level.
        let end = headings[k + 1..]
            .iter()
            .find(|(_, l, _, _)| l <= level)
            .map_or(lines.len(), |(i, _, _, _)| *i);
        let own_end = headings.get(k + 1).map_or(lines.len(), |(i, _, _, _)| *i);
        let text = lines[*start..end].join("\n").trim().to_string();
        let paragraphs = lines[start + 1..own_end]
            .join("\n")
            .split("\n\n")
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if sections.iter().any(|s: &Section| &s.number == number) {
            return Err(format!("section {number} appears twice"));
        }
        sections.push(Section {
            number: number.clone(),
            heading: heading.clone(),
            text,
            paragraphs,
        });
    }
    if sections.is_empty() {
        return Err("no numbered sections (headings like `## 1 Purpose`)".into());
    }
    Ok(sections)
}

fn is_version(v: &str) -> bool {
    let mut parts = v.split('.');
    let ok = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

pub fn is_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "be", "by", "can", "do", "does", "for", "from", "how", "i", "in", "is", "it", "may", "me",
    "my", "of", "on", "or", "our", "the", "to", "we", "what", "when", "which", "who", "with", "you", "your", "must",
    "should", "there", "this", "that", "long", "many", "much",
];

/// The lower-case words of a query, stop words dropped, each once.
fn terms(query: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    words(query)
        .into_iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Two words match when they are equal or share a stem: `rotated` matches `rotation`,
/// `passwords` matches `password`.
fn same_word(word: &str, term: &str) -> bool {
    if word == term {
        return true;
    }
    let stem = |w: &str| -> String { w.chars().take(5).collect() };
    word.chars().count() >= 5 && term.chars().count() >= 5 && stem(word) == stem(term)
        || word.trim_end_matches('s') == term.trim_end_matches('s')
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => text[..end].to_string(),
    }
}

/// Today's date in UTC as YYYY-MM-DD.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_documents_parse() {
        let library = Library::embedded().unwrap();
        let current = library.effective_on("2026-11-01");
        let ids: Vec<_> = current.iter().map(|p| p.policy_id.as_str()).collect();
        assert_eq!(ids, ["POL-0142", "POL-0207", "POL-0315", "POL-0388", "POL-0420"]);
        assert_eq!(library.get("POL-0142", "2026-11-01").unwrap().version, "3.1");
        assert_eq!(library.get("POL-0142", "2025-01-01").unwrap().version, "2.4");
        assert!(library.get("POL-0142", "2024-01-01").is_none());
    }

    #[test]
    fn sections_nest() {
        let library = Library::embedded().unwrap();
        let policy = library.get("POL-0142", "2026-11-01").unwrap();
        let three = policy.section("3").unwrap();
        assert_eq!(three.heading, "Passwords");
        assert!(three.text.contains("### 3.2 Rotation"));
        assert!(three.paragraphs.is_empty());
        let rotation = policy.section("3.2").unwrap();
        assert!(rotation.text.starts_with("### 3.2 Rotation"));
        assert!(!rotation.text.contains("3.3"));
        assert_eq!(rotation.paragraphs.len(), 1);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert!(is_date(&today()));
    }

    #[test]
    fn stems_match() {
        assert!(same_word("rotated", "rotation"));
        assert!(same_word("passwords", "password"));
        assert!(!same_word("pass", "passport"));
    }
}

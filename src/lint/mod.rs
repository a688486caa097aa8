//! Production rules: what a careful reviewer would reject, checked on the model.
//!
//! Each rule has a stable id (used in suppressions, SARIF and `charter
//! explain`), a severity, a one-line summary and a longer explanation. A
//! contract may suppress a rule for the whole contract or for one tool,
//! resource, prompt or downstream, but only with a written reason, and the
//! suppression shows in every report. Some rules cannot be suppressed: they
//! describe something no reason makes safe.

mod rules;
pub mod text;

use crate::diagnostic::{Diagnostic, Place, Severity, Source};
use crate::model::{Model, Status, Suppression};
use crate::suggest::did_you_mean;

pub use rules::RULES;

/// A production rule.
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// One line: what the rule refuses.
    pub summary: &'static str,
    /// Why it matters and how to fix it.
    pub explain: &'static str,
    /// Whether a contract may switch the rule off with a reason.
    pub suppressible: bool,
    /// Whether an `experimental` server gets a warning instead of an error:
    /// process rules (owner, disable path, review) bind from `preview` on.
    pub relaxed_when_experimental: bool,
    check: fn(&Context, &mut Findings),
}

/// Checks that are not production rules but still have an explanation:
/// the parse and model stages' diagnostics.
pub const CHECKS: &[(&str, &str)] = &[
    (
        "yaml-syntax",
        "The file is not valid YAML. The message says what the parser expected; fix the syntax at the marked place.",
    ),
    (
        "duplicate-key",
        "A mapping names the same key twice. YAML parsers disagree on which one wins, so a reviewer could read one value while the server uses the other: charter refuses both.",
    ),
    (
        "empty-contract",
        "The file is empty. Run `charter init` for a commented starter contract.",
    ),
    (
        "unsupported-version",
        "The `charter:` field names a contract language version this charter does not read. Version 1 is the only one.",
    ),
    (
        "unknown-field",
        "A field the contract language does not define. A misspelt field would otherwise be ignored silently, and a control the author meant to set would be missing. The help line suggests the closest field.",
    ),
    (
        "missing-field",
        "A required field is absent. The help line says what the field is for.",
    ),
    (
        "wrong-type",
        "A value has the wrong type, e.g. a list where a mapping is expected.",
    ),
    (
        "invalid-value",
        "A value is of the right type but not acceptable: a malformed URL, duration, rate, date, version or one that is out of range. The message says what is expected.",
    ),
    (
        "invalid-name",
        "A name cannot be used: tool, resource and prompt names start with a letter and use letters, digits, `_`, `-` and `.`; server names are lowercase package names; scopes and data classes are lowercase.",
    ),
    (
        "name-collision",
        "Two names differ only in punctuation or case and would become the same Rust identifier in the generated server. Rename one.",
    ),
    (
        "unknown-reference",
        "A tool, resource or prompt refers to a scope, data class, downstream or resource the contract does not declare.",
    ),
    (
        "invalid-schema",
        "A JSON Schema in the contract is malformed or not of the kind required: tool inputs and outputs describe objects, template variables describe strings.",
    ),
    (
        "schema-unknown-keyword",
        "A schema uses a keyword JSON Schema does not define. Validators ignore unknown keywords, so a misspelt `maxLenght` would silently remove the bound.",
    ),
    (
        "schema-unknown-format",
        "A schema names a `format` no validator checks. Use one of the standard formats or a `pattern`.",
    ),
    (
        "schema-required-unknown",
        "A schema's `required` list names a property that is not in `properties`, usually a typo that leaves the real field optional.",
    ),
    (
        "schema-ref",
        "A `$ref` is not a local `#/$defs/Name` reference, or names no definition. Contracts are self-contained: remote references would change under reviewers.",
    ),
    (
        "untyped-template-variable",
        "A URI template variable has no schema under `parameters`, so any value would be served.",
    ),
    (
        "prompt-unknown-argument",
        "A prompt's text uses a `{{placeholder}}` that is not one of its arguments; it would reach the model unreplaced.",
    ),
    (
        "prompt-unused-argument",
        "A prompt argument is never used in the text, so what the user types is silently dropped.",
    ),
    (
        "invalid-binding",
        "A tool's `binding` to an HTTP operation cannot be carried out as written: a path variable without a parameter, an input property placed nowhere or twice, a value that cannot travel where it is placed (a list in the path), a header the runtime owns (`Authorization`, `Cookie`, `Host`, ...), a success status that is not 2xx, or a `response.field` the output does not have. The message names the part and the help line the fix.",
    ),
    (
        "prompt-asks-without-handler",
        "A prompt lists `asks_client` but has no handler. Only a handler can ask the client anything while building the messages; fixed text cannot.",
    ),
    (
        "unknown-rule",
        "A suppression names a rule that does not exist. `charter explain` lists the rules.",
    ),
    (
        "suppression-not-allowed",
        "A suppression names a rule that cannot be suppressed, because no written reason makes what it detects safe.",
    ),
    (
        "suppression-without-reason",
        "A suppression has no real reason. Reviewers read the reason in every report, so write why the rule does not apply here.",
    ),
    (
        "unused-suppression",
        "A suppression matches no finding: the rule passes here. Remove it, so the next real finding is not hidden.",
    ),
];

/// What a rule sees: the model and the date reviews are measured against.
pub struct Context<'a> {
    pub model: &'a Model,
    /// The contract's text: some rules read it whole (comments and keys included).
    pub source: &'a Source,
    pub today: jiff::civil::Date,
    /// Text the model reads (descriptions, titles), with where it is.
    pub visible_texts: Vec<(String, &'a str)>,
    /// Every text in the contract, for rules about hidden content.
    pub all_texts: Vec<(String, &'a str)>,
}

/// What the rules found, before suppressions apply.
#[derive(Default)]
pub struct Findings {
    items: Vec<(&'static str, Diagnostic)>,
}

impl Findings {
    /// Reports `rule` at `pointer`; severity comes from the rule.
    pub fn add(&mut self, rule: &'static str, message: impl Into<String>, place: Place) -> &mut Diagnostic {
        let severity = rule_by_id(rule).map(|r| r.severity).unwrap_or(Severity::Error);
        self.items.push((rule, Diagnostic::new(rule, severity, message, place)));
        &mut self.items.last_mut().expect("just pushed").1
    }
}

pub fn rule_by_id(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Runs every rule and applies the contract's suppressions.
pub fn lint(model: &Model, source: &Source, today: jiff::civil::Date) -> Vec<Diagnostic> {
    let visible_texts = rules::model_visible_texts(model);
    let all_texts = rules::all_texts(model);
    let cx = Context {
        model,
        source,
        today,
        visible_texts,
        all_texts,
    };
    let mut findings = Findings::default();
    for rule in RULES {
        let before = findings.items.len();
        (rule.check)(&cx, &mut findings);
        if rule.relaxed_when_experimental && model.server.status == Status::Experimental {
            for (_, d) in &mut findings.items[before..] {
                d.severity = Severity::Warning;
            }
        }
    }
    let mut out: Vec<Diagnostic> = Vec::new();
    let suppressions = all_suppressions(model);
    let mut used = vec![false; suppressions.len()];
    for (rule, mut d) in findings.items {
        let matching = suppressions.iter().enumerate().find(|(_, (scope, s))| {
            s.rule == rule
                && (scope.is_empty() || d.place.pointer == *scope || d.place.pointer.starts_with(&format!("{scope}/")))
        });
        if let Some((i, (_, s))) = matching
            && rule_by_id(rule).is_some_and(|r| r.suppressible)
        {
            used[i] = true;
            d.suppressed = Some(s.reason.clone());
        }
        out.push(d);
    }
    for (i, (_, s)) in suppressions.iter().enumerate() {
        out.extend(check_suppression(s, used[i]));
    }
    out
}

/// Every suppression with the pointer of the element it covers ("" for the whole contract).
fn all_suppressions(model: &Model) -> Vec<(String, &Suppression)> {
    let mut out: Vec<(String, &Suppression)> = model.suppressions.iter().map(|s| (String::new(), s)).collect();
    let scoped = model
        .tools
        .iter()
        .map(|t| (&t.pointer, &t.suppressions))
        .chain(model.resources.iter().map(|r| (&r.pointer, &r.suppressions)))
        .chain(model.prompts.iter().map(|p| (&p.pointer, &p.suppressions)))
        .chain(model.downstreams.iter().map(|d| (&d.pointer, &d.suppressions)));
    for (pointer, list) in scoped {
        out.extend(list.iter().map(|s| (pointer.clone(), s)));
    }
    out
}

fn check_suppression(s: &Suppression, used: bool) -> Option<Diagnostic> {
    let place = Place::value(format!("{}/rule", s.pointer));
    let Some(rule) = rule_by_id(&s.rule) else {
        let ids = RULES.iter().map(|r| r.id);
        let d = Diagnostic::error(
            "unknown-rule",
            format!("no production rule is named `{}`", s.rule),
            place,
        );
        return Some(match did_you_mean(&s.rule, ids) {
            Some(id) => d.with_help(format!("did you mean `{id}`?")),
            None => d.with_help("`charter explain` lists the rules"),
        });
    };
    if !rule.suppressible {
        return Some(
            Diagnostic::error(
                "suppression-not-allowed",
                format!("`{}` cannot be suppressed", rule.id),
                place,
            )
            .with_label("this rule has no exceptions")
            .with_help(format!("{}; see `charter explain {}`", rule.summary, rule.id)),
        );
    }
    let reason = s.reason.trim();
    if reason.split_whitespace().count() < 3
        || ["todo", "tbd", "n/a", "none", "ok"].contains(&reason.to_lowercase().as_str())
    {
        return Some(
            Diagnostic::error(
                "suppression-without-reason",
                format!("the suppression of `{}` gives no real reason", rule.id),
                Place::value(format!("{}/reason", s.pointer)),
            )
            .with_help("write, in a sentence, why the rule does not apply here; reviewers read it in every report"),
        );
    }
    (!used).then(|| {
        Diagnostic::new(
            "unused-suppression",
            Severity::Warning,
            format!("`{}` is suppressed here but finds nothing", rule.id),
            place,
        )
        .with_help("remove the suppression so a future finding is not hidden")
    })
}

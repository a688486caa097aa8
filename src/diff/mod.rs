//! `charter diff`: what changed between two versions of a contract, and
//! whether the change needs re-review.
//!
//! Both sides are compared as models (the validated IR), never as YAML text,
//! so reordering keys or rewording comments is no change, and a `$ref` moved
//! into `$defs` is no change either. Every change is a [`Finding`] with a
//! stable rule id (see [`rules::RULES`]), a [`Class`] (breaking for clients,
//! needs re-review, or compatible), the JSON pointer of what changed and the
//! old and new values. The worst class decides the semver bump the new
//! version needs, which is compared with the bump the contract declares.
//!
//! Either side may also be a tool-surface lock ([`crate::lock::Lock`]): then only
//! what clients see (the tool, resource and prompt definitions, and prompt
//! texts) is compared.

pub mod git;
pub mod render;
pub mod rules;
mod schema;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::contract::yaml::Span;
use crate::diagnostic::Source;
use crate::model::Model;

pub use rules::{RULES, Rule, RuleId};

/// How a change affects clients and reviewers, from least to most serious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Existing clients keep working and the access boundary did not move.
    Compatible,
    /// The access boundary moved, or text the model reads changed: a reviewer must look again.
    Review,
    /// Existing clients can break.
    Breaking,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Compatible => "compatible",
            Class::Review => "review",
            Class::Breaking => "breaking",
        }
    }

    /// The smallest version bump a change of this class needs.
    pub fn bump(self) -> Bump {
        match self {
            Class::Compatible => Bump::Patch,
            Class::Review => Bump::Minor,
            Class::Breaking => Bump::Major,
        }
    }
}

/// A semver bump, from none to major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bump {
    None,
    Patch,
    Minor,
    Major,
}

impl Bump {
    pub fn as_str(self) -> &'static str {
        match self {
            Bump::None => "none",
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
        }
    }
}

/// One change.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The rule, written as its stable id from [`RULES`].
    pub rule: RuleId,
    pub class: Class,
    pub message: String,
    /// JSON pointer into the contract of what changed.
    pub pointer: String,
    /// The change is best shown in the old contract (something was removed).
    #[serde(skip)]
    pub in_old: bool,
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// Where `pointer` is in the old contract, when the old side is a contract.
    #[serde(skip)]
    pub old_span: Option<Span>,
    /// Where `pointer` (or the nearest thing that exists) is in the new contract.
    #[serde(skip)]
    pub new_span: Option<Span>,
}

impl Finding {
    /// The place the finding is reported at: in the old file for removals, else in the new one.
    pub fn primary_span(&self) -> (bool, Option<Span>) {
        if self.in_old && self.old_span.is_some() {
            (true, self.old_span)
        } else {
            (false, self.new_span)
        }
    }
}

/// One side of a diff: a contract with its source, or a lock.
#[derive(Debug)]
pub enum Side {
    Contract { source: Source, model: Box<Model> },
    Lock { path: String, lock: crate::lock::Lock },
}

impl Side {
    pub fn path(&self) -> &str {
        match self {
            Side::Contract { source, .. } => &source.path,
            Side::Lock { path, .. } => path,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Side::Contract { .. } => "contract",
            Side::Lock { .. } => "lock",
        }
    }

    pub fn version(&self) -> &semver::Version {
        match self {
            Side::Contract { model, .. } => &model.server.version,
            Side::Lock { lock, .. } => &lock.version,
        }
    }

    fn source(&self) -> Option<&Source> {
        match self {
            Side::Contract { source, .. } => Some(source),
            Side::Lock { .. } => None,
        }
    }
}

/// The declared version bump against the one the changes need.
#[derive(Debug, Clone, Serialize)]
pub struct VersionCheck {
    #[serde(serialize_with = "crate::model::units::display")]
    pub old: semver::Version,
    #[serde(serialize_with = "crate::model::units::display")]
    pub new: semver::Version,
    /// What the version change amounts to (for 0.x versions, a minor bump counts as major).
    pub declared: Bump,
    /// What the changes need.
    pub required: Bump,
    pub ok: bool,
    /// Why the bump is too small, when it is.
    pub problem: Option<String>,
    /// `/server/version` in the new contract.
    #[serde(skip)]
    pub span: Option<Span>,
}

/// The whole comparison.
#[derive(Debug)]
pub struct Report {
    pub old_path: String,
    pub new_path: String,
    pub old_kind: &'static str,
    pub new_kind: &'static str,
    /// Sorted: breaking first, then review, then compatible; each by place.
    pub findings: Vec<Finding>,
    pub version: VersionCheck,
}

impl Report {
    pub fn count(&self, class: Class) -> usize {
        self.findings.iter().filter(|f| f.class == class).count()
    }

    pub fn worst(&self) -> Option<Class> {
        self.findings.iter().map(|f| f.class).max()
    }
}

/// Which findings fail the command (exit status 1). A bump that is too small always fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Fail only when the declared version bump is too small.
    None,
    /// Also fail on any breaking change.
    Breaking,
    /// Also fail on any change that needs re-review (or is breaking).
    Review,
    /// Also fail on any change at all.
    Any,
}

impl Report {
    /// True when the exit status should be 1.
    pub fn fails(&self, fail_on: FailOn) -> bool {
        let threshold = match fail_on {
            FailOn::None => None,
            FailOn::Breaking => Some(Class::Breaking),
            FailOn::Review => Some(Class::Review),
            FailOn::Any => Some(Class::Compatible),
        };
        !self.version.ok || threshold.is_some_and(|t| self.worst().is_some_and(|w| w >= t))
    }
}

/// Compares two sides. Contract against contract compares everything; when
/// either side is a lock, only the client-visible surface is compared.
pub fn compare(old: &Side, new: &Side) -> Report {
    let mut d = rules::Findings::default();
    match (old, new) {
        (Side::Contract { model: o, .. }, Side::Contract { model: n, .. }) => rules::compare_models(&mut d, o, n),
        _ => rules::compare_surfaces(&mut d, &rules::items_of(old), &rules::items_of(new), None),
    }
    let mut findings = d.findings;
    for f in &mut findings {
        // What was added or removed as a whole is shown at its key (`refund_order:`), the rest at its value.
        let key = f.old.is_none() || f.new.is_none();
        if let Some(source) = old.source()
            && (f.in_old || f.old.is_some())
        {
            f.old_span = locate(source, &f.pointer, key);
        }
        if let Some(source) = new.source() {
            f.new_span = locate(source, &f.pointer, key);
        }
    }
    findings.sort_by_key(|f| {
        let (in_old, span) = f.primary_span();
        (
            std::cmp::Reverse(f.class),
            in_old,
            span.map(|s| s.start).unwrap_or(0),
            // By id text, as the order of findings has always been.
            f.rule.as_str(),
            f.pointer.clone(),
        )
    });
    let version = version_check(old, new, &findings);
    Report {
        old_path: old.path().to_owned(),
        new_path: new.path().to_owned(),
        old_kind: old.kind(),
        new_kind: new.kind(),
        findings,
        version,
    }
}

fn locate(source: &Source, pointer: &str, key: bool) -> Option<Span> {
    source.root.as_ref().map(|root| root.locate(pointer, key))
}

/// The bump from `old` to `new`. For 0.x versions a minor bump is allowed to
/// break (it counts as major) and a patch bump may add (it counts as minor).
pub fn declared_bump(old: &semver::Version, new: &semver::Version) -> Bump {
    if new <= old {
        return Bump::None;
    }
    let zero = old.major == 0 && new.major == 0;
    if new.major > old.major {
        Bump::Major
    } else if new.minor > old.minor {
        if zero { Bump::Major } else { Bump::Minor }
    } else if new.patch > old.patch {
        if zero { Bump::Minor } else { Bump::Patch }
    } else {
        // Only the pre-release or build part moved.
        Bump::Patch
    }
}

fn version_check(old: &Side, new: &Side, findings: &[Finding]) -> VersionCheck {
    let (o, n) = (old.version().clone(), new.version().clone());
    let required = findings.iter().map(|f| f.class.bump()).max().unwrap_or(Bump::None);
    let declared = declared_bump(&o, &n);
    let problem = if n < o {
        Some(format!("the version went backwards, from {o} to {n}"))
    } else if declared < required {
        let worst = findings.iter().map(|f| f.class).max().unwrap_or(Class::Compatible);
        let why = match worst {
            Class::Breaking => "there are breaking changes",
            Class::Review => "there are changes that need re-review",
            Class::Compatible => "the contract changed",
        };
        let declared_text = if declared == Bump::None {
            format!("the version stayed {n}")
        } else {
            format!("{o} -> {n} is a {} bump", declared.as_str())
        };
        Some(format!(
            "{why}, which needs a {} version bump, but {declared_text}",
            required.as_str()
        ))
    } else {
        None
    };
    let span = new.source().and_then(|s| locate(s, "/server/version", false));
    VersionCheck {
        old: o,
        new: n,
        declared,
        required,
        ok: problem.is_none(),
        problem,
        span,
    }
}

/// Escapes a name for use as one JSON pointer token.
pub(crate) fn esc(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// The names of `a` that are not in `b`, in `a`'s order.
pub(crate) fn missing<'a, T: PartialEq>(a: &'a [T], b: &[T]) -> Vec<&'a T> {
    a.iter().filter(|x| !b.contains(x)).collect()
}

/// Two lists hold the same elements, whatever the order.
pub(crate) fn same_set<T: Ord + Clone>(a: &[T], b: &[T]) -> bool {
    a.iter().cloned().collect::<BTreeSet<_>>() == b.iter().cloned().collect::<BTreeSet<_>>()
}

//! `SERVER audit report FILE...`: the weekly review of a server's audit logs.
//!
//! Each file's chain is verified first (a broken chain is reported at the
//! top; what can be read is still reported). The records of every file (one
//! per pod) are merged by time and those within the period kept. The report
//! answers what a reviewer asks each week: which calls were denied or failed,
//! for what reason and for whom; how approvals were decided, and whether some
//! were decided too fast to have been read or by an approver who approves
//! everything; which capabilities nobody called (the contract can narrow);
//! and which callers keep being denied (the server is too narrow, or badly
//! explained).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use super::audit::{Entry, Event, verify};
use super::surface::Surface;

/// Approvers with at least this many decisions and no rejection are flagged.
const RUBBER_STAMP_DECISIONS: usize = 5;
/// Callers denied at least this many times are flagged.
const REPEATEDLY_DENIED: usize = 3;

/// What to report on.
#[derive(Debug, Clone)]
pub struct Options {
    pub files: Vec<PathBuf>,
    /// Records from `now - since` to `now`.
    pub since: Duration,
    pub now: SystemTime,
    /// Decisions faster than this are flagged.
    pub fast_decision: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub from: String,
    pub until: String,
    pub files: Vec<FileCheck>,
    /// Records in the period, across every file.
    pub records: usize,
    pub denied: Vec<Count>,
    pub failed: Vec<Count>,
    pub approvals: Vec<ApprovalDecision>,
    pub approvers_who_approve_everything: Vec<Approver>,
    pub never_called: Vec<Capability>,
    pub repeatedly_denied: Vec<DeniedCaller>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    pub file: String,
    pub intact: bool,
    /// The verification's own words: the chain's extent, or the first broken link.
    pub detail: String,
}

/// Calls of one capability by one caller, ended one way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Count {
    pub kind: String,
    pub name: String,
    /// The denial reason, or the failed outcome (`error`, `timeout`, ...).
    pub reason: String,
    pub caller: String,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalDecision {
    pub id: String,
    pub tool: String,
    pub requester: String,
    pub requested_at: String,
    /// `approved`, `rejected`, or `undecided` in the period.
    pub decision: String,
    pub approver: Option<String>,
    pub seconds_to_decision: Option<f64>,
    /// Decided faster than the threshold: too fast to have read the operation.
    pub too_fast: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Approver {
    pub approver: String,
    pub decisions: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Capability {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeniedCaller {
    pub caller: String,
    pub denials: usize,
    /// Each reason with its count.
    pub reasons: BTreeMap<String, usize>,
}

/// One record with where it came from.
struct Line {
    time: SystemTime,
    entry: Entry,
}

/// Builds the report. Unreadable lines are skipped (the chain check above
/// them says where the file is damaged).
pub fn build(surface: &Surface, options: &Options) -> Report {
    let from = options.now.checked_sub(options.since).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut files = Vec::new();
    let mut lines = Vec::new();
    for file in &options.files {
        let (intact, detail) = match verify(file) {
            Ok(summary) => (true, summary.to_string()),
            Err(broken) => (false, broken.to_string()),
        };
        files.push(FileCheck {
            file: file.display().to_string(),
            intact,
            detail,
        });
        lines.extend(
            read(file)
                .into_iter()
                .filter(|l| l.time >= from && l.time <= options.now),
        );
    }
    // One timeline across the pods' files.
    lines.sort_by(|a, b| a.time.cmp(&b.time).then(a.entry.seq.cmp(&b.entry.seq)));

    let mut denied: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
    let mut failed: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
    let mut called: BTreeSet<(String, String)> = BTreeSet::new();
    let mut requested: Vec<(String, String, String, SystemTime)> = Vec::new();
    let mut decided: BTreeMap<String, (bool, String, SystemTime)> = BTreeMap::new();
    for line in &lines {
        let record = &line.entry.record;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let kind = text(&record.kind);
        let name = text(&record.name);
        let caller = record.subject.clone().unwrap_or_else(|| "(unknown)".into());
        match record.event {
            Event::Denied => {
                called.insert((kind.clone(), name.clone()));
                *denied.entry((kind, name, text(&record.reason), caller)).or_default() += 1;
            }
            Event::Outcome => {
                called.insert((kind.clone(), name.clone()));
                let outcome = text(&record.outcome);
                if outcome != "ok" {
                    *failed.entry((kind, name, outcome, caller)).or_default() += 1;
                }
            }
            Event::Intent => {
                called.insert((kind, name));
            }
            Event::ApprovalRequested => {
                if let Some(id) = field(&record.approval, "id") {
                    called.insert((kind, name.clone()));
                    requested.push((id, name, caller, line.time));
                }
            }
            Event::ApprovalDecided => {
                let approval = &record.approval;
                if let (Some(id), Some(approved)) = (
                    field(approval, "id"),
                    approval
                        .as_ref()
                        .and_then(|a| a.get("approved"))
                        .and_then(Value::as_bool),
                ) {
                    let approver = field(approval, "approver").unwrap_or(caller);
                    decided.insert(id, (approved, approver, line.time));
                }
            }
            _ => {}
        }
    }

    let counts = |map: BTreeMap<(String, String, String, String), usize>| {
        let mut counts: Vec<Count> = map
            .into_iter()
            .map(|((kind, name, reason, caller), count)| Count {
                kind,
                name,
                reason,
                caller,
                count,
            })
            .collect();
        counts.sort_by(|a, b| b.count.cmp(&a.count).then(a.cmp(b)));
        counts
    };
    let mut per_caller: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for ((_, _, reason, caller), count) in &denied {
        *per_caller
            .entry(caller.clone())
            .or_default()
            .entry(reason.clone())
            .or_default() += count;
    }
    let mut repeatedly_denied: Vec<DeniedCaller> = per_caller
        .into_iter()
        .map(|(caller, reasons)| DeniedCaller {
            denials: reasons.values().sum(),
            caller,
            reasons,
        })
        .filter(|c| c.denials >= REPEATEDLY_DENIED)
        .collect();
    repeatedly_denied.sort_by(|a, b| b.denials.cmp(&a.denials).then(a.caller.cmp(&b.caller)));

    let mut approvals = Vec::new();
    let mut by_approver: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (id, tool, requester, at) in requested {
        let decision = decided.get(&id);
        let seconds = decision
            .and_then(|(_, _, when)| when.duration_since(at).ok())
            .map(|d| d.as_secs_f64());
        if let Some((approved, approver, _)) = decision {
            let entry = by_approver.entry(approver.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(!approved);
        }
        approvals.push(ApprovalDecision {
            id,
            tool,
            requester,
            requested_at: humantime::format_rfc3339_millis(at).to_string(),
            decision: match decision {
                Some((true, ..)) => "approved".into(),
                Some((false, ..)) => "rejected".into(),
                None => "undecided".into(),
            },
            approver: decision.map(|(_, approver, _)| approver.clone()),
            seconds_to_decision: seconds.map(|s| (s * 10.0).round() / 10.0),
            too_fast: seconds.is_some_and(|s| s < options.fast_decision.as_secs_f64()),
        });
    }
    let approvers_who_approve_everything = by_approver
        .into_iter()
        .filter(|(_, (decisions, rejections))| *decisions >= RUBBER_STAMP_DECISIONS && *rejections == 0)
        .map(|(approver, (decisions, _))| Approver { approver, decisions })
        .collect();

    let capabilities = surface
        .tools
        .iter()
        .map(|t| ("tool", t.name()))
        .chain(surface.resources.iter().map(|r| ("resource", r.name())))
        .chain(surface.prompts.iter().map(|p| ("prompt", p.name())));
    let never_called = capabilities
        .filter(|(kind, name)| !called.contains(&(kind.to_string(), name.to_string())))
        .map(|(kind, name)| Capability {
            kind: kind.into(),
            name: name.into(),
        })
        .collect();

    Report {
        server: surface.server.name.clone(),
        from: humantime::format_rfc3339_seconds(from).to_string(),
        until: humantime::format_rfc3339_seconds(options.now).to_string(),
        files,
        records: lines.len(),
        denied: counts(denied),
        failed: counts(failed),
        approvals,
        approvers_who_approve_everything,
        never_called,
        repeatedly_denied,
    }
}

fn field(value: &Option<Value>, key: &str) -> Option<String> {
    value.as_ref()?.get(key)?.as_str().map(String::from)
}

/// Every whole record of `file` with its time; damaged lines are left out.
fn read(file: &Path) -> Vec<Line> {
    let Ok(handle) = std::fs::File::open(file) else {
        return Vec::new();
    };
    BufReader::new(handle)
        .lines()
        .map_while(Result::ok)
        .filter_map(|text| {
            let entry = Entry::parse(&text).ok()?;
            let time = humantime::parse_rfc3339(&entry.time).ok()?;
            Some(Line { time, entry })
        })
        .collect()
}

impl Report {
    /// Whether every file's chain verified.
    pub fn intact(&self) -> bool {
        self.files.iter().all(|f| f.intact)
    }

    /// The report as a reviewer reads it.
    pub fn markdown(&self, fast_decision: Duration) -> String {
        let mut out = String::new();
        let cell = |text: &str| text.replace('|', "\\|");
        out.push_str(&format!("# Audit review: {}\n\n", self.server));
        out.push_str(&format!(
            "{} to {}: {} records.\n\n",
            self.from, self.until, self.records
        ));
        out.push_str("## Chains\n\n| File | Chain |\n|---|---|\n");
        for f in &self.files {
            let state = if f.intact { "intact" } else { "**BROKEN**" };
            out.push_str(&format!("| `{}` | {state}: {} |\n", cell(&f.file), cell(&f.detail)));
        }
        if !self.intact() {
            out.push_str(
                "\n**A chain is broken: records were edited, removed or reordered. What follows is what could \
                 be read; treat it as incomplete.**\n",
            );
        }
        let table = |out: &mut String, title: &str, what: &str, rows: &[Count]| {
            out.push_str(&format!("\n## {title}\n\n"));
            if rows.is_empty() {
                out.push_str("None.\n");
                return;
            }
            out.push_str(&format!(
                "| Capability | {what} | Caller | Count |\n|---|---|---|---|\n"
            ));
            for r in rows {
                out.push_str(&format!(
                    "| {} `{}` | {} | {} | {} |\n",
                    r.kind,
                    cell(&r.name),
                    cell(&r.reason),
                    cell(&r.caller),
                    r.count
                ));
            }
        };
        table(&mut out, "Denied calls", "Reason", &self.denied);
        table(&mut out, "Failed calls", "Outcome", &self.failed);
        out.push_str("\n## Approvals\n\n");
        if self.approvals.is_empty() {
            out.push_str("None requested.\n");
        } else {
            out.push_str("| Operation | Tool | Requester | Requested | Decision | Approver | Time to decision |\n");
            out.push_str("|---|---|---|---|---|---|---|\n");
            for a in &self.approvals {
                let time = match a.seconds_to_decision {
                    Some(s) if a.too_fast => format!("**{s} s: too fast to have read it**"),
                    Some(s) => format!("{s} s"),
                    None => "-".into(),
                };
                out.push_str(&format!(
                    "| `{}` | `{}` | {} | {} | {} | {} | {time} |\n",
                    &a.id[..a.id.len().min(12)],
                    cell(&a.tool),
                    cell(&a.requester),
                    a.requested_at,
                    a.decision,
                    cell(a.approver.as_deref().unwrap_or("-")),
                ));
            }
            let fast = self.approvals.iter().filter(|a| a.too_fast).count();
            if fast > 0 {
                out.push_str(&format!(
                    "\n{fast} decision(s) came within {} s of the request: ask whether the approver read the operation.\n",
                    fast_decision.as_secs()
                ));
            }
        }
        if !self.approvers_who_approve_everything.is_empty() {
            out.push_str("\nApprovers who approved everything they decided:\n\n");
            for a in &self.approvers_who_approve_everything {
                out.push_str(&format!(
                    "- {} ({} decisions, no rejection)\n",
                    cell(&a.approver),
                    a.decisions
                ));
            }
        }
        out.push_str("\n## Never called\n\n");
        if self.never_called.is_empty() {
            out.push_str("Every capability was called.\n");
        } else {
            out.push_str("Not called in the period: the contract could narrow.\n\n");
            for c in &self.never_called {
                out.push_str(&format!("- {} `{}`\n", c.kind, c.name));
            }
        }
        out.push_str("\n## Callers repeatedly denied\n\n");
        if self.repeatedly_denied.is_empty() {
            out.push_str("None.\n");
        } else {
            out.push_str(
                "Denied three times or more: the server may be too narrow for them, or its tools badly explained.\n\n",
            );
            out.push_str("| Caller | Denials | Reasons |\n|---|---|---|\n");
            for c in &self.repeatedly_denied {
                let reasons: Vec<String> = c.reasons.iter().map(|(r, n)| format!("{r} ({n})")).collect();
                out.push_str(&format!(
                    "| {} | {} | {} |\n",
                    cell(&c.caller),
                    c.denials,
                    reasons.join(", ")
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, Decision, Record};
    use serde_json::json;

    fn surface() -> Surface {
        let tool = |name: &str, effect: &str| {
            json!({
                "definition": {
                    "name": name, "description": "A tool.",
                    "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false}
                },
                "hash": "0".repeat(64), "effect": effect, "scopes": [], "data_class": null,
                "approval": {"mode": "none"}, "audit": {"arguments": true, "results": false},
                "limits": {"timeout_ms": 5000, "max_request_bytes": 4096, "max_response_bytes": 65536,
                           "rate": {"count": 100, "period_ms": 1000}, "concurrency": 4},
                "content": ["text"], "progress": false, "client_logging": false, "asks_client": [],
                "downstreams": [],
            })
        };
        let surface = json!({
            "server": {"name": "review-test", "title": null, "version": "1.0.0", "description": "Tests the report.",
                       "env_prefix": "REVIEW_TEST", "disable": {"env": null, "file": null}},
            "http": {"origins": [], "max_request_bytes": 65536},
            "oauth": null, "scopes": [], "data_classes": {}, "downstreams": [],
            "tools": [tool("read_things", "read"), tool("change_things", "write"), tool("unused", "read")],
            "resources": [], "prompts": [],
        });
        Surface::parse(&surface.to_string()).unwrap()
    }

    fn call(event: Event, name: &str, subject: &str) -> Record {
        let mut record = Record::new(event);
        record.kind = Some("tool".into());
        record.name = Some(name.into());
        record.subject = Some(subject.into());
        record
    }

    fn denied(name: &str, subject: &str, reason: &str) -> Record {
        let mut record = call(Event::Denied, name, subject);
        record.decision = Some(Decision::Deny);
        record.reason = Some(reason.into());
        record
    }

    fn outcome(name: &str, subject: &str, outcome: &str) -> Record {
        let mut record = call(Event::Outcome, name, subject);
        record.outcome = Some(outcome.into());
        record
    }

    fn requested(id: &str, requester: &str) -> Record {
        let mut record = call(Event::ApprovalRequested, "change_things", requester);
        record.approval = Some(json!({"mode": "reviewer", "id": id, "operation_sha256": "a".repeat(64)}));
        record
    }

    fn decided(id: &str, approver: &str, approved: bool) -> Record {
        let mut record = call(Event::ApprovalDecided, "charter_decide_approval", approver);
        record.approval = Some(json!({"id": id, "approved": approved, "approver": approver}));
        record
    }

    async fn write(path: &Path, records: Vec<Record>) {
        let log = AuditLog::open(path).unwrap();
        for record in records {
            log.durable(record).await.unwrap();
        }
        log.close().await;
    }

    fn options(files: Vec<PathBuf>) -> Options {
        Options {
            files,
            since: Duration::from_secs(7 * 86_400),
            now: SystemTime::now() + Duration::from_secs(60),
            fast_decision: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn two_pods_merge_into_one_review() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            dir.path().join("audit-pod-0.jsonl"),
            dir.path().join("audit-pod-1.jsonl"),
        );
        write(
            &a,
            vec![
                denied("change_things", "mallory", "insufficient_scope"),
                denied("change_things", "mallory", "insufficient_scope"),
                outcome("read_things", "alice", "ok"),
                outcome("read_things", "alice", "timeout"),
                requested("op-1", "alice"),
            ],
        )
        .await;
        write(
            &b,
            vec![
                denied("read_things", "mallory", "rate_limited"),
                decided("op-1", "lead", true),
                requested("op-2", "alice"),
            ],
        )
        .await;
        let report = build(&surface(), &options(vec![a, b]));
        assert!(report.intact());
        assert_eq!(report.records, 8);
        assert_eq!(
            (
                report.denied[0].name.as_str(),
                report.denied[0].reason.as_str(),
                report.denied[0].count
            ),
            ("change_things", "insufficient_scope", 2)
        );
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].reason, "timeout");
        // Both requests are listed. They are looked up by id: records written within the same
        // millisecond on two pods have no order between them, and this test writes that fast.
        assert_eq!(report.approvals.len(), 2);
        let approval = |id: &str| {
            report
                .approvals
                .iter()
                .find(|a| a.id == id)
                .unwrap_or_else(|| panic!("no approval {id} in {:?}", report.approvals))
        };
        // Decided on the other pod, within a second: flagged.
        let first = approval("op-1");
        assert_eq!(first.decision, "approved");
        assert_eq!(first.approver.as_deref(), Some("lead"));
        assert!(first.too_fast);
        assert_eq!(approval("op-2").decision, "undecided");
        assert_eq!(
            report.never_called,
            vec![Capability {
                kind: "tool".into(),
                name: "unused".into()
            }]
        );
        assert_eq!(report.repeatedly_denied.len(), 1);
        assert_eq!(report.repeatedly_denied[0].caller, "mallory");
        assert_eq!(report.repeatedly_denied[0].denials, 3);
        let text = report.markdown(Duration::from_secs(10));
        assert!(
            text.contains("| tool `change_things` | insufficient_scope | mallory | 2 |"),
            "{text}"
        );
        assert!(text.contains("too fast to have read it"), "{text}");
        assert!(text.contains("- tool `unused`"), "{text}");
    }

    #[tokio::test]
    async fn approvers_who_never_reject_are_named_and_the_period_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut records = Vec::new();
        for i in 0..5 {
            records.push(requested(&format!("op-{i}"), "alice"));
            records.push(decided(&format!("op-{i}"), "stamp", true));
        }
        records.push(requested("op-x", "alice"));
        records.push(decided("op-x", "careful", false));
        write(&path, records).await;
        let report = build(&surface(), &options(vec![path.clone()]));
        let names: Vec<&str> = report
            .approvers_who_approve_everything
            .iter()
            .map(|a| a.approver.as_str())
            .collect();
        assert_eq!(names, ["stamp"]);
        // A period that ended before the records: nothing in it.
        let mut past = options(vec![path]);
        past.now = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(build(&surface(), &past).records, 0);
    }

    #[tokio::test]
    async fn a_broken_chain_is_reported_and_the_rest_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write(
            &path,
            vec![
                denied("read_things", "eve", "insufficient_scope"),
                denied("read_things", "eve", "insufficient_scope"),
            ],
        )
        .await;
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"eve\"", "\"someone-else\"", 1)).unwrap();
        let report = build(&surface(), &options(vec![path]));
        assert!(!report.intact());
        assert!(report.markdown(Duration::from_secs(10)).contains("**BROKEN**"));
        assert_eq!(report.denied.iter().map(|d| d.count).sum::<usize>(), 2);
    }
}

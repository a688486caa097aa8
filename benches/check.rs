//! `charter check` on a generated 200-tool contract: whole-process wall time
//! (what a user and CI wait for) and in-process time per stage.
//! Run with `cargo bench --bench check`; figures go in BENCHMARKS.md.

use std::process::Command;
use std::time::{Duration, Instant};

const TOOLS: usize = 200;
const RUNS: usize = 30;

fn contract() -> String {
    let mut text = String::from(
        r#"charter: 1
server:
  name: bench
  version: 1.0.0
  description: A generated contract with many tools, for measuring charter check.
  owner: { team: platform, contact: platform@example.com, escalation: "pagerduty:platform" }
  status: production
  review: { next: 2099-01-01 }
  retirement: { disable: { env: BENCH_DISABLED }, when: Never; this is a benchmark. }
data_classes:
  internal: { description: Internal records., sensitivity: internal, logs: full }
access:
  transports: [stdio, http]
  oauth: { issuer: "https://id.example.com", audience: "https://mcp.example.com/bench" }
  scopes:
    records.read: Read records.
downstreams:
  records:
    description: The records API.
    base_url: https://records.example.com
    egress: [records.example.com:443]
    credentials: { service_token: { env: RECORDS_TOKEN }, scopes: ["records:read"] }
$defs:
  RecordId: { type: string, pattern: "^[a-z0-9]{8}$" }
suppress:
  - rule: server-too-broad
    reason: This contract exists to measure charter on a large surface.
tools:
"#,
    );
    for i in 0..TOOLS {
        text.push_str(&format!(
            r##"  get_record_{i}:
    description: Returns record {i} of the records API with its owner and state.
    effect: read
    scopes: [records.read]
    data_class: internal
    downstreams: [records]
    input:
      type: object
      required: [id]
      properties:
        id: {{ $ref: "#/$defs/RecordId" }}
        fields: {{ type: array, maxItems: 10, items: {{ type: string, enum: [owner, state, created] }} }}
        note: {{ type: string, maxLength: 200, description: A note shown in the audit log. }}
    output:
      type: object
      required: [id, state]
      properties:
        id: {{ $ref: "#/$defs/RecordId" }}
        state: {{ type: string, enum: [open, closed] }}
        owner: {{ type: string, format: email }}
    limits: {{ rate: 60/minute, timeout: 5s }}
    handler: rust
"##
        ));
    }
    text
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label:<34} min {:>7.2} ms   median {:>7.2} ms   p90 {:>7.2} ms",
        samples[0].as_secs_f64() * 1e3,
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.9).as_secs_f64() * 1e3,
    );
}

fn main() {
    let text = contract();
    let dir = std::env::temp_dir().join(format!("charter-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.yaml");
    std::fs::write(&path, &text).unwrap();
    println!(
        "contract: {TOOLS} tools, {} bytes, {} lines; {RUNS} runs each",
        text.len(),
        text.lines().count()
    );

    let binary = env!("CARGO_BIN_EXE_charter");
    let mut process = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new(binary).arg("check").arg(&path).output().unwrap();
        process.push(start.elapsed());
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    }
    report("charter check (whole process)", process);

    let today: jiff::civil::Date = "2026-11-23".parse().unwrap();
    let mut parse = Vec::new();
    let mut total = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut source = charter::diagnostic::Source::new("bench.yaml", text.clone());
        let raw = charter::contract::parse(&mut source).unwrap();
        parse.push(start.elapsed());
        let model = charter::model::lower(&raw).unwrap();
        let _ = charter::lint::lint(&model, &source, today);
        total.push(start.elapsed());
    }
    report("parse (in process)", parse);
    report("parse + model + lint (in process)", total);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Shared by the benchmarks: a synthetic contract and timing reports.
#![allow(dead_code)]

use std::time::Duration;

/// A production contract with `tools` read tools over one downstream.
pub fn contract(tools: usize) -> String {
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
    for i in 0..tools {
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

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label:<34} min {:>7.2} ms   median {:>7.2} ms   p90 {:>7.2} ms",
        samples[0].as_secs_f64() * 1e3,
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.9).as_secs_f64() * 1e3,
    );
}

//! The client side: `tools/call` over keep-alive HTTP from a few concurrent
//! tasks, every reply checked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::workload::Workload;

/// One server as the client sees it.
pub struct Target {
    pub url: String,
    pub workload: Workload,
    /// Bearer tokens to rotate over (one subject each); empty when the server checks none.
    pub tokens: Vec<String>,
    /// Where the rotation stands: the next request uses `tokens[next % len]`.
    pub next: AtomicUsize,
}

/// What one batch of calls came to.
#[derive(Default)]
pub struct Outcome {
    /// Per successful call, microseconds from send to the whole reply read.
    pub latencies_us: Vec<u32>,
    pub wall: Duration,
    /// 429s (the rate limit) and `rate_limited` results.
    pub throttled: usize,
    /// Anything else that was not a successful, structured result.
    pub failed: usize,
    /// The first failure, to show.
    pub first_failure: Option<String>,
}

impl Outcome {
    pub fn requests(&self) -> usize {
        self.latencies_us.len() + self.throttled + self.failed
    }
}

pub fn client() -> reqwest::Client {
    // The workspace builds reqwest with `rustls-no-provider` (the runtime's choice), so a
    // client needs a provider installed even for plain HTTP. ring, as the runtime
    // (runtime/src/tls.rs says why, and why rustls deprecates it).
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .expect("a plain-HTTP client builds")
}

/// The request body: one `tools/call` of the workload's tool.
pub fn body(workload: Workload, id: usize) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": workload.tool(), "arguments": workload.arguments() },
    })
    .to_string()
}

/// Sends `count` calls from `concurrency` tasks.
pub async fn run(client: &reqwest::Client, target: &Arc<Target>, count: usize, concurrency: usize) -> Outcome {
    let remaining = Arc::new(AtomicUsize::new(count));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, target, remaining) = (client.clone(), target.clone(), remaining.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            while remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                let sent = Instant::now();
                match call(&client, &target).await {
                    Ok(()) => outcome
                        .latencies_us
                        .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Err(Failure::Throttled) => outcome.throttled += 1,
                    Err(Failure::Other(why)) => {
                        outcome.failed += 1;
                        outcome.first_failure.get_or_insert(why);
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let outcome = task.await.expect("a load task panicked");
        total.latencies_us.extend(outcome.latencies_us);
        total.throttled += outcome.throttled;
        total.failed += outcome.failed;
        if total.first_failure.is_none() {
            total.first_failure = outcome.first_failure;
        }
    }
    total.wall = started.elapsed();
    total
}

enum Failure {
    Throttled,
    Other(String),
}

async fn call(client: &reqwest::Client, target: &Target) -> Result<(), Failure> {
    let n = target.next.fetch_add(1, Ordering::Relaxed);
    let mut request = client
        .post(&target.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(body(target.workload, n));
    if !target.tokens.is_empty() {
        request = request.header(
            "authorization",
            format!("Bearer {}", target.tokens[n % target.tokens.len()]),
        );
    }
    let response = request.send().await.map_err(|e| Failure::Other(format!("send: {e}")))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Failure::Other(format!("read: {e}")))?;
    if status.as_u16() == 429 {
        return Err(Failure::Throttled);
    }
    if !status.is_success() {
        return Err(Failure::Other(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    let reply: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::Other(format!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes))))?;
    let result = &reply["result"];
    if result["isError"] == true {
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        if text.contains("rate limit") {
            return Err(Failure::Throttled);
        }
        return Err(Failure::Other(format!("isError result: {text}")));
    }
    if !target.workload.answered(result) {
        return Err(Failure::Other(format!("no structured result: {reply}")));
    }
    Ok(())
}

/// Sends one call with no token, or a chosen one, and returns the HTTP status.
pub async fn status_of(
    client: &reqwest::Client,
    workload: Workload,
    url: &str,
    token: Option<&str>,
) -> Result<u16, String> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(body(workload, 0));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

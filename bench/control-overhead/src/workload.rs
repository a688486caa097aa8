//! The two tools the bench calls: `echo`, whose handler costs nothing, so a
//! call's cost is the server's alone; and `search_policies`, a realistic tool
//! whose handler (scoring embedded policies) is most of each call.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Echo,
    PolicySearch,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Echo, Workload::PolicySearch];

    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Echo => "echo",
            Workload::PolicySearch => "policy-search",
        }
    }

    /// The example crate's generated surface.
    pub fn surface(self) -> &'static str {
        match self {
            Workload::Echo => echo::generated::SURFACE,
            Workload::PolicySearch => policy_search::generated::SURFACE,
        }
    }

    /// The example's release binary, built beside this one.
    pub fn binary(self) -> &'static str {
        match self {
            Workload::Echo => "echo",
            Workload::PolicySearch => "policy-search",
        }
    }

    /// The tool every call names.
    pub fn tool(self) -> &'static str {
        match self {
            Workload::Echo => "echo",
            Workload::PolicySearch => "search_policies",
        }
    }

    /// The contract's resource URL, which tokens are issued for.
    pub fn audience(self) -> &'static str {
        match self {
            Workload::Echo => "https://mcp.example.com/echo",
            Workload::PolicySearch => "https://mcp.example.com/policy-search",
        }
    }

    /// The scope the tool needs.
    pub fn scope(self) -> &'static str {
        match self {
            Workload::Echo => "echo.call",
            Workload::PolicySearch => "policies.search",
        }
    }

    /// The prefix of the example's environment settings.
    pub fn env_prefix(self) -> &'static str {
        match self {
            Workload::Echo => "ECHO_",
            Workload::PolicySearch => "POLICY_SEARCH_",
        }
    }

    /// Calls one token subject makes over the whole run at most: under the
    /// tool's rate limit and burst (echo 1000/second, search_policies
    /// 60/minute), so no call is throttled however fast the run, yet every
    /// call is counted against a subject.
    pub fn calls_per_subject(self) -> usize {
        match self {
            Workload::Echo => 960,
            Workload::PolicySearch => 48,
        }
    }

    /// The arguments of every call: the example's e2e call for
    /// search_policies (scripts/e2e-calls.json), a short text for echo.
    pub fn arguments(self) -> Value {
        match self {
            Workload::Echo => json!({ "text": "password rotation" }),
            Workload::PolicySearch => json!({ "query": "password rotation" }),
        }
    }

    /// Whether a successful call's `result` is the tool's structured answer.
    pub fn answered(self, result: &Value) -> bool {
        let structured = &result["structuredContent"];
        match self {
            Workload::Echo => structured["text"] == "password rotation" && structured["length"] == 17,
            Workload::PolicySearch => structured["citations"].is_array(),
        }
    }

    /// Default batch sizes: the echo server answers ten times faster.
    pub fn default_requests(self) -> usize {
        match self {
            Workload::Echo => 20_000,
            Workload::PolicySearch => 3_000,
        }
    }
}

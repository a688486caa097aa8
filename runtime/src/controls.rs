//! The policy gates every request passes before a handler runs: who is
//! calling and with which scopes, the kill switch, rate limits and the
//! concurrency cap. The HTTP layer uses the same gates to answer with status
//! codes (403, 429) before the protocol layer sees the request.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::surface::{Limits, Surface};

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`; on stdio, the operating-system user.
    pub subject: String,
    /// The OAuth client the token was issued to (`azp` / `client_id`), if any.
    pub client: Option<String>,
    /// The scopes the caller holds; `None` means every scope (the local user on stdio).
    pub scopes: Option<BTreeSet<String>>,
    /// `http` or `stdio`.
    pub transport: &'static str,
}

impl Identity {
    /// The local user, who owns a stdio server and so holds every scope.
    pub fn local_user(subject: String) -> Identity {
        Identity {
            subject,
            client: None,
            scopes: None,
            transport: "stdio",
        }
    }

    /// Requests on HTTP without OAuth in the contract (development, loopback only).
    pub fn anonymous() -> Identity {
        Identity {
            subject: "anonymous".into(),
            client: None,
            scopes: None,
            transport: "http",
        }
    }

    /// The scopes of `required` this caller lacks.
    pub fn missing_scopes<'a>(&self, required: &'a [String]) -> Vec<&'a str> {
        match &self.scopes {
            None => Vec::new(),
            Some(held) => required
                .iter()
                .filter(|s| !held.contains(s.as_str()))
                .map(String::as_str)
                .collect(),
        }
    }

    pub fn holds(&self, scope: &str) -> bool {
        self.scopes.as_ref().is_none_or(|held| held.contains(scope))
    }
}

/// Why a request was refused before its handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The caller lacks these scopes.
    InsufficientScope(Vec<String>),
    /// Over the rate limit; try again after this long.
    RateLimited(Duration),
    /// The concurrency cap is reached.
    Busy,
    /// The kill switch is on for the server or this tool.
    Disabled { whole_server: bool },
    /// The limit shared by the replicas cannot be checked, and this call may
    /// not fall back to the replica's own (drafts and writes, by default).
    RateLimitUnavailable,
}

impl Denial {
    /// A stable reason for audit records and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::InsufficientScope(_) => "insufficient_scope",
            Denial::RateLimited(_) => "rate_limited",
            Denial::Busy => "busy",
            Denial::Disabled { .. } => "disabled",
            Denial::RateLimitUnavailable => "rate_limit_unavailable",
        }
    }

    /// What the caller is told: what happened and what to do.
    pub fn message(&self, kind: &str, name: &str) -> String {
        match self {
            Denial::InsufficientScope(scopes) => format!(
                "{kind} `{name}` requires the scope{} {}, which the caller's token does not carry; \
                 ask for a token with {}",
                if scopes.len() == 1 { "" } else { "s" },
                scopes.join(" "),
                if scopes.len() == 1 { "it" } else { "them" },
            ),
            Denial::RateLimited(wait) => format!(
                "rate limit reached for {kind} `{name}`; retry after {} s",
                retry_after_secs(*wait)
            ),
            Denial::Busy => format!("{kind} `{name}` is at its concurrency limit; retry shortly"),
            Denial::Disabled { whole_server: true } => {
                "this server is switched off by its operators (kill switch); no calls are accepted".into()
            }
            Denial::Disabled { whole_server: false } => {
                format!("{kind} `{name}` is switched off by its operators (kill switch)")
            }
            Denial::RateLimitUnavailable => format!(
                "{kind} `{name}` was not run: its rate limit is shared by the server's replicas and cannot be \
                 checked right now, and calls that change state are not run unchecked; retry shortly"
            ),
        }
    }
}

/// Whole seconds to wait, rounded up, at least one: the `Retry-After` value.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

/// What the kill switch currently refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switched {
    pub whole_server: bool,
    pub tools: BTreeSet<String>,
}

impl Switched {
    /// Parses a kill-switch value: empty, `1`, `true`, `yes`, `on` or `all`
    /// switch off the whole server; otherwise tool names separated by commas,
    /// spaces or lines (`#` starts a comment).
    pub fn parse(text: &str, empty_means_all: bool) -> Switched {
        let mut switched = Switched::default();
        let words: Vec<&str> = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default())
            .flat_map(|line| line.split([',', ' ', '\t']))
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            switched.whole_server = empty_means_all;
            return switched;
        }
        for word in words {
            match word.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" | "all" => switched.whole_server = true,
                "0" | "false" | "no" | "off" => {}
                _ => {
                    switched.tools.insert(word.to_string());
                }
            }
        }
        switched
    }

    fn merge(&mut self, other: Switched) {
        self.whole_server |= other.whole_server;
        self.tools.extend(other.tools);
    }
}

/// The kill switch: an environment variable read at start-up and a file
/// re-read every second, so operators can switch the server or single tools
/// off without a restart (create or edit the file; delete it to switch back on).
pub struct KillSwitch {
    from_env: Switched,
    file: Option<PathBuf>,
    current: RwLock<Switched>,
}

impl KillSwitch {
    pub fn new(env_value: Option<String>, file: Option<PathBuf>) -> KillSwitch {
        let from_env = env_value.map(|v| Switched::parse(&v, false)).unwrap_or_default();
        let switch = KillSwitch {
            current: RwLock::new(from_env.clone()),
            from_env,
            file,
        };
        switch.reload();
        switch
    }

    pub fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }

    /// Re-reads the file; returns the new state when it changed.
    pub fn reload(&self) -> Option<Switched> {
        let mut state = self.from_env.clone();
        if let Some(path) = &self.file {
            match std::fs::read_to_string(path) {
                Ok(text) => state.merge(Switched::parse(&text, true)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // A file that exists but cannot be read is treated as "off": failing
                // open here would let a broken permission quietly re-enable a server.
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "kill-switch file unreadable; refusing all calls");
                    state.whole_server = true;
                }
            }
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if *current == state {
            return None;
        }
        *current = state.clone();
        Some(state)
    }

    /// `Some(whole_server)` when calls to `tool` (or to anything, for `None`) are refused.
    pub fn check(&self, tool: Option<&str>) -> Option<bool> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        if current.whole_server {
            return Some(true);
        }
        match tool {
            Some(tool) if current.tools.contains(tool) => Some(false),
            _ => None,
        }
    }

    pub fn state(&self) -> Switched {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A rate limiter per caller for one tool, resource or prompt, and its concurrency cap.
struct Gate {
    rate: DefaultKeyedRateLimiter<String>,
    running: Arc<Semaphore>,
    /// Whether the call only reads (resources and prompts do): what it may do
    /// when the shared limit cannot be checked.
    reads_only: bool,
    #[cfg_attr(not(feature = "redis"), expect(dead_code))]
    count: u32,
    #[cfg_attr(not(feature = "redis"), expect(dead_code))]
    period: Duration,
}

impl Gate {
    fn new(limits: &Limits, reads_only: bool) -> Gate {
        let count = NonZeroU32::new(limits.rate.count.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_millis(limits.rate.period_ms.max(1));
        // `count` calls per `period`, all of them usable at once (the burst).
        let quota = Quota::with_period(period / count.get())
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(count);
        Gate {
            rate: DefaultKeyedRateLimiter::keyed(quota),
            running: Arc::new(Semaphore::new(limits.concurrency.max(1) as usize)),
            reads_only,
            count: count.get(),
            period,
        }
    }
}

/// The rate and concurrency gates of every tool, resource and prompt.
pub struct Limiter {
    tools: BTreeMap<String, Gate>,
    resources: BTreeMap<String, Gate>,
    prompts: BTreeMap<String, Gate>,
    /// Limits shared by the replicas through Redis, when configured.
    #[cfg(feature = "redis")]
    shared: Option<Arc<super::shared_limits::SharedLimits>>,
}

impl Limiter {
    pub fn new(surface: &Surface) -> Limiter {
        let tools = surface
            .tools
            .iter()
            .map(|t| {
                let reads_only = t.effect == super::surface::Effect::Read;
                (t.name().to_string(), Gate::new(&t.limits, reads_only))
            })
            .collect();
        let resources = surface
            .resources
            .iter()
            .map(|r| (r.name().to_string(), Gate::new(&r.limits, true)))
            .collect();
        let prompts = surface
            .prompts
            .iter()
            .map(|p| (p.name().to_string(), Gate::new(&p.limits, true)))
            .collect();
        Limiter {
            tools,
            resources,
            prompts,
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// Limits a tool the runtime adds itself (the approval tools), like a contract's.
    pub fn add_tool(&mut self, name: &str, limits: &Limits, reads_only: bool) {
        self.tools.insert(name.to_string(), Gate::new(limits, reads_only));
    }

    /// Shares the limits with the other replicas through Redis.
    #[cfg(feature = "redis")]
    pub fn share(&mut self, shared: Arc<super::shared_limits::SharedLimits>) {
        self.shared = Some(shared);
    }

    /// The Redis the replicas share, when configured.
    #[cfg(feature = "redis")]
    pub fn shared(&self) -> Option<Arc<super::shared_limits::SharedLimits>> {
        self.shared.clone()
    }

    fn gate(&self, kind: &str, name: &str) -> Option<&Gate> {
        match kind {
            "tool" => self.tools.get(name),
            "resource" => self.resources.get(name),
            "prompt" => self.prompts.get(name),
            _ => None,
        }
    }

    /// Counts one call by `subject` against the rate limit of `kind`/`name`:
    /// the limit shared by the replicas when Redis is configured, else (or,
    /// when Redis cannot answer, as the call's fallback allows) this
    /// replica's own.
    // `&String`: governor looks a caller up by a reference to its key type, so a `&str` would cost a copy per call.
    #[allow(clippy::ptr_arg)]
    pub async fn check_rate(&self, kind: &'static str, name: &str, subject: &String) -> Result<(), Denial> {
        let Some(gate) = self.gate(kind, name) else {
            return Ok(());
        };
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            use super::config::Fallback;
            use super::shared_limits::Verdict;
            match shared.check(kind, name, subject, gate.count, gate.period).await {
                Verdict::Admitted => return Ok(()),
                Verdict::Limited(wait) => return Err(Denial::RateLimited(wait)),
                Verdict::Unavailable => {
                    let fallback = if gate.reads_only { shared.reads } else { shared.writes };
                    if fallback == Fallback::Refuse {
                        return Err(Denial::RateLimitUnavailable);
                    }
                }
            }
        }
        let _ = gate.reads_only;
        gate.rate
            .check_key(subject)
            .map_err(|not_until| Denial::RateLimited(not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// A slot to run in, or `Busy` when the cap is reached (callers retry;
    /// queueing would only hide overload until timeouts fire).
    pub fn acquire(&self, kind: &'static str, name: &str) -> Result<Option<OwnedSemaphorePermit>, Denial> {
        let Some(gate) = self.gate(kind, name) else {
            return Ok(None);
        };
        gate.running
            .clone()
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| Denial::Busy)
    }

    /// Forgets callers whose limits have fully replenished, so memory stays
    /// bounded by recent callers.
    pub fn forget_idle(&self) {
        for gate in self
            .tools
            .values()
            .chain(self.resources.values())
            .chain(self.prompts.values())
        {
            gate.rate.retain_recent();
            gate.rate.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_switch_values() {
        assert!(Switched::parse("", true).whole_server);
        assert!(!Switched::parse("", false).whole_server);
        assert!(Switched::parse("true", false).whole_server);
        let some = Switched::parse("save_draft, update_priority\n# comment\n", true);
        assert!(!some.whole_server);
        assert_eq!(some.tools.len(), 2);
    }

    #[test]
    fn kill_switch_file_is_reread() {
        let path = std::env::temp_dir().join(format!("charter-kill-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let switch = KillSwitch::new(None, Some(path.clone()));
        assert_eq!(switch.check(Some("a")), None);
        std::fs::write(&path, "a\n").unwrap();
        assert!(switch.reload().is_some());
        assert_eq!(switch.check(Some("a")), Some(false));
        assert_eq!(switch.check(Some("b")), None);
        std::fs::write(&path, "").unwrap();
        switch.reload();
        assert_eq!(switch.check(Some("b")), Some(true));
        std::fs::remove_file(&path).unwrap();
        switch.reload();
        assert_eq!(switch.check(Some("a")), None);
    }

    /// A mounted ConfigMap as the kubelet writes it: keys are symlinks through
    /// `..data`, which is swapped atomically to a new directory on each update,
    /// and a key removed from the ConfigMap loses its symlink.
    #[cfg(unix)]
    #[test]
    fn a_configmap_mounted_as_a_directory_is_followed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path();
        let version = |name: &str, value: Option<&str>| {
            let data = mount.join(name);
            std::fs::create_dir(&data).unwrap();
            if let Some(value) = value {
                std::fs::write(data.join("disabled"), value).unwrap();
            }
            let next = mount.join("..data_tmp");
            symlink(name, &next).unwrap();
            std::fs::rename(&next, mount.join("..data")).unwrap();
        };
        let key = mount.join("disabled");
        version("..v1", None);
        let switch = KillSwitch::new(None, Some(key.clone()));
        assert_eq!(switch.check(None), None);
        // kubectl patch ... '{"data":{"disabled":"all"}}'
        version("..v2", Some("all"));
        symlink("..data/disabled", &key).unwrap();
        switch.reload();
        assert_eq!(switch.check(None), Some(true));
        // '{"data":{"disabled":"tool_a"}}'
        version("..v3", Some("tool_a"));
        switch.reload();
        assert_eq!(switch.check(None), None);
        assert_eq!(switch.check(Some("tool_a")), Some(false));
        // The key removed: the kubelet removes its symlink.
        version("..v4", None);
        std::fs::remove_file(&key).unwrap();
        switch.reload();
        assert_eq!(switch.check(Some("tool_a")), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2000)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn without_redis_reads_fall_back_and_writes_are_refused() {
        use super::super::config::RateLimits;
        use super::super::surface::Rate;
        let dir = tempfile::tempdir().unwrap();
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = dir.path().join("url");
        std::fs::write(&url, format!("redis://127.0.0.1:{port}/")).unwrap();
        let config = RateLimits {
            redis_url_file: Some(url.display().to_string()),
            ..RateLimits::default()
        };
        let shared =
            super::super::shared_limits::SharedLimits::from_config(&config, "t", super::super::metrics::Metrics::new())
                .unwrap()
                .unwrap();
        let limits = Limits {
            timeout_ms: 1000,
            max_request_bytes: 1024,
            max_response_bytes: 1024,
            rate: Rate {
                count: 2,
                period_ms: 60_000,
            },
            concurrency: 4,
        };
        let mut limiter = Limiter {
            tools: BTreeMap::from([
                ("look".to_string(), Gate::new(&limits, true)),
                ("change".to_string(), Gate::new(&limits, false)),
            ]),
            resources: BTreeMap::new(),
            prompts: BTreeMap::new(),
            shared: None,
        };
        limiter.share(shared);
        assert_eq!(
            limiter.check_rate("tool", "change", &"alice".to_string()).await,
            Err(Denial::RateLimitUnavailable)
        );
        // Reads are limited by this replica alone: two admitted, the third limited.
        assert_eq!(limiter.check_rate("tool", "look", &"alice".to_string()).await, Ok(()));
        assert_eq!(limiter.check_rate("tool", "look", &"alice".to_string()).await, Ok(()));
        assert!(matches!(
            limiter.check_rate("tool", "look", &"alice".to_string()).await,
            Err(Denial::RateLimited(_))
        ));
    }
}

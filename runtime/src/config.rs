//! Where the server runs: the values that differ per environment and so do
//! not belong in the contract. Read from a TOML file (`--config`), then
//! overridden by environment variables named `{PREFIX}_...`, where PREFIX is
//! the server's name in SCREAMING_SNAKE_CASE. Secrets never sit here: only
//! references to the environment variables or files that hold them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What kind of deployment this is: `production` (the default) or any
    /// other name (`staging`, `development`, `local`, ...). Outside production
    /// a downstream's `base_url` may point at a stand-in the contract does
    /// not declare; in production it may not.
    pub environment: Environment,
    pub http: Http,
    pub stdio: Stdio,
    pub log: Log,
    pub oauth: OAuth,
    pub audit: Audit,
    pub approvals: Approvals,
    pub rate_limits: RateLimits,
    pub request_state: RequestState,
    pub kill_switch: KillSwitch,
    /// Base URLs of downstream systems for this environment, by contract name.
    /// In production each must name a `host:port` the contract declares for
    /// that downstream (its base URL or `egress`); elsewhere it may name a
    /// stand-in (e.g. a loopback server replaying recorded answers).
    pub downstreams: BTreeMap<String, Downstream>,
    /// Settings the team's handlers read (paths, feature switches), free-form.
    pub handlers: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Address to listen on; `--listen` overrides it.
    pub listen: String,
    /// Accepted `Host` header values (DNS-rebinding protection). Loopback names by default.
    pub allowed_hosts: Vec<String>,
    /// Accepted browser `Origin` values, added to the contract's `access.origins`.
    /// Requests with any other Origin are refused; requests without one pass.
    pub allowed_origins: Vec<String>,
    /// Path the MCP endpoint is served at.
    pub path: String,
    /// Serve `/metrics` on this address instead of the MCP port, so the
    /// network can admit only the monitoring system to it.
    pub metrics_listen: Option<String>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "127.0.0.1:8080".into(),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            path: "/mcp".into(),
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stdio {
    /// Longest accepted JSON-RPC line; a longer line is discarded (rmcp keeps
    /// serving the next one) instead of growing memory without bound.
    pub max_line_bytes: usize,
}

impl Default for Stdio {
    fn default() -> Self {
        Stdio {
            max_line_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A level, then `target=level` pairs, e.g. `info` or `warn,my_server=debug`.
    pub filter: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            filter: "info,rmcp=warn".into(),
        }
    }
}

/// Per-environment OAuth settings. The contract names the production issuer
/// and audience; staging and tests point these at their own identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth {
    pub issuer: Option<String>,
    /// This deployment's resource URL, which tokens must carry in `aud`.
    pub audience: Option<String>,
    pub jwks_uri: Option<String>,
    /// Fewest seconds between two JWKS fetches caused by unknown key ids.
    pub refresh_min_interval_secs: u64,
    /// Keys are refetched after this many seconds even when every key id is known.
    pub max_age_secs: u64,
}

impl Default for OAuth {
    fn default() -> Self {
        OAuth {
            issuer: None,
            audience: None,
            jwks_uri: None,
            refresh_min_interval_secs: 30,
            max_age_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// The JSON-lines audit log; it is appended to and hash-chained across restarts.
    pub path: String,
    /// How often a `chain_head` record is written and its seq and hash logged
    /// to stderr (e.g. `5m`), so a tail cut off the file shows against the
    /// heads the log pipeline kept. `0s` turns it off.
    #[serde(with = "humantime_serde_compat")]
    pub head_interval: std::time::Duration,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            path: "audit.jsonl".into(),
            head_interval: std::time::Duration::from_secs(300),
        }
    }
}

/// Durations written as `5m`, `30s`, `1h`.
mod humantime_serde_compat {
    use serde::Deserialize as _;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("`{text}` is not a duration ({e}): write e.g. `5m` or `30s`"))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Approvals {
    /// The SQLite database of operations waiting for a reviewer (one replica, or stdio).
    pub path: String,
    /// The environment variable holding a PostgreSQL URL (`postgres://USER:PASSWORD@HOST/DB`):
    /// pending approvals are then kept there, shared by every replica. The URL holds a password,
    /// so the configuration names where it is, never the URL itself.
    pub postgres_url_env: Option<String>,
    /// A file holding the PostgreSQL URL (a mounted secret), instead of `postgres_url_env`.
    pub postgres_url_file: Option<String>,
    /// The most connections each replica keeps to PostgreSQL.
    pub postgres_pool_size: usize,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals {
            path: "approvals.sqlite3".into(),
            postgres_url_env: None,
            postgres_url_file: None,
            postgres_pool_size: 8,
        }
    }
}

impl Approvals {
    /// The PostgreSQL URL, when one is configured.
    pub fn postgres_url(&self) -> Result<Option<String>, String> {
        secret_setting(
            "approvals",
            "postgres_url",
            self.postgres_url_env.as_deref(),
            self.postgres_url_file.as_deref(),
        )
    }
}

/// The key that seals the state of multi-round requests (`[request_state]`,
/// SEP-2322): a tool that asks the client, or a write the user confirms, ends
/// with `input_required` and the client retries with the sealed state. With
/// more than one replica every replica needs the same key, or a retry that
/// lands elsewhere is refused; without one each process draws its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestState {
    /// The environment variable holding the key (at least 32 bytes).
    pub key_env: Option<String>,
    /// A file holding the key (a mounted secret), instead of `key_env`.
    pub key_file: Option<String>,
    /// Seconds a client has to answer and retry.
    pub ttl_secs: u64,
}

impl Default for RequestState {
    fn default() -> Self {
        RequestState {
            key_env: None,
            key_file: None,
            ttl_secs: 600,
        }
    }
}

impl RequestState {
    /// The shared key, when one is configured.
    pub fn key(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(secret_setting(
            "request_state",
            "key",
            self.key_env.as_deref(),
            self.key_file.as_deref(),
        )?
        .map(|key| key.trim().as_bytes().to_vec()))
    }
}

/// Rate limits shared by replicas through Redis (`[rate_limits]`). Without a
/// Redis URL each replica limits on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// The environment variable holding a Redis URL (`redis://[:PASSWORD@]HOST:PORT/[DB]`).
    pub redis_url_env: Option<String>,
    /// A file holding the Redis URL (a mounted secret), instead of `redis_url_env`.
    pub redis_url_file: Option<String>,
    /// The start of every key (default: the server's name), so servers can share one Redis.
    pub key_prefix: Option<String>,
    /// How long a call waits for Redis before the fallback applies.
    pub timeout_ms: u64,
    /// Reads while Redis cannot answer: `local` (each replica's own limit, the default) or `refuse`.
    pub on_redis_error_reads: Fallback,
    /// Drafts and writes while Redis cannot answer: `refuse` (the default) or `local`.
    pub on_redis_error_writes: Fallback,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            redis_url_env: None,
            redis_url_file: None,
            key_prefix: None,
            timeout_ms: 250,
            on_redis_error_reads: Fallback::Local,
            on_redis_error_writes: Fallback::Refuse,
        }
    }
}

impl RateLimits {
    /// The Redis URL, when one is configured.
    pub fn redis_url(&self) -> Result<Option<String>, String> {
        secret_setting(
            "rate_limits",
            "redis_url",
            self.redis_url_env.as_deref(),
            self.redis_url_file.as_deref(),
        )
    }

    /// Where the URL comes from, for error messages.
    pub fn redis_url_source(&self) -> String {
        match (&self.redis_url_env, &self.redis_url_file) {
            (Some(env), _) => format!("the environment variable {env} (rate_limits.redis_url_env)"),
            (None, Some(file)) => format!("{file} (rate_limits.redis_url_file)"),
            (None, None) => "rate_limits".into(),
        }
    }
}

/// What a call does when the shared rate limit cannot be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Count it against this replica's own limiter.
    Local,
    /// Refuse it.
    Refuse,
}

impl<'de> Deserialize<'de> for Fallback {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "local" => Ok(Fallback::Local),
            "refuse" => Ok(Fallback::Refuse),
            other => Err(serde::de::Error::custom(format!(
                "`{other}` is not a fallback: write `local` (this replica's own limit) or `refuse`"
            ))),
        }
    }
}

/// A secret named by the configuration: the environment variable `{key}_env`
/// or the file `{key}_file` of `[section]` holds it. Errors say which setting
/// points where, never the value.
fn secret_setting(section: &str, key: &str, env: Option<&str>, file: Option<&str>) -> Result<Option<String>, String> {
    let value = match (env, file) {
        (Some(_), Some(_)) => {
            return Err(format!("[{section}] sets both {key}_env and {key}_file: keep one"));
        }
        (Some(name), None) => std::env::var(name)
            .map_err(|_| format!("[{section}] {key}_env names the environment variable {name}, which is not set"))?,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            format!(
                "[{section}] {key}_file names {path}, which cannot be read: {}",
                e.kind()
            )
        })?,
        (None, None) => return Ok(None),
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(format!("[{section}] {key}: the value it points to is empty"));
    }
    Ok(Some(value))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillSwitch {
    /// A file whose presence switches the server (empty file) or the tools it
    /// lists off; replaces the contract's `retirement.disable.file`.
    pub file: Option<String>,
}

/// The deployment's environment name. `production` unless configured
/// otherwise, so a forgotten setting keeps the strict rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Environment(String);

impl Default for Environment {
    fn default() -> Self {
        Environment(Environment::PRODUCTION.into())
    }
}

impl Environment {
    pub const PRODUCTION: &'static str = "production";

    /// An environment by name: lowercase letters, digits, `-` and `_`.
    /// Abbreviations of production (`prod`, `prd`, `live`) are refused: they
    /// would silently get the relaxed rules of a non-production environment.
    pub fn new(name: &str) -> Result<Environment, String> {
        let well_formed = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(format!(
                "environment `{name}` is not a valid name: use lowercase letters, digits, `-` and `_`, \
                 e.g. `production`, `staging` or `local`"
            ));
        }
        if matches!(name, "prod" | "prd" | "live") {
            return Err(format!(
                "environment `{name}` reads like production but is not `production`, so it would relax \
                 production's rules: write `production`, or name a non-production environment unmistakably \
                 (e.g. `staging`)"
            ));
        }
        Ok(Environment(name.into()))
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    pub fn is_production(&self) -> bool {
        self.0 == Environment::PRODUCTION
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downstream {
    pub base_url: String,
}

impl Config {
    /// Reads `path` (if given), then applies the environment overrides.
    pub fn load(path: Option<&Path>, env_prefix: &str) -> Result<Config, String> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read configuration {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("configuration {}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(env_prefix, |name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Applies `{PREFIX}_ENVIRONMENT`, `{PREFIX}_LISTEN`, `_METRICS_LISTEN`, `_ALLOWED_HOSTS`, `_ALLOWED_ORIGINS` (comma
    /// separated), `_LOG`, `_OAUTH_ISSUER`, `_OAUTH_AUDIENCE`, `_OAUTH_JWKS_URI`,
    /// `_AUDIT_PATH`, `_AUDIT_HEAD_INTERVAL`, `_APPROVALS_PATH`, `_APPROVALS_POSTGRES_URL_ENV`/`_FILE`,
    /// `_RATE_LIMITS_REDIS_URL_ENV`/`_FILE`, `_KILL_SWITCH_FILE`,
    /// `_DOWNSTREAM_{NAME}_BASE_URL` and `_HANDLERS_{KEY}`.
    pub fn apply_env(&mut self, prefix: &str, var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let list = |value: String| -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        if let Some(v) = var(&format!("{prefix}_ENVIRONMENT")) {
            self.environment = Environment(v);
        }
        // Checked here, after the file and the environment, so either source's mistake is caught.
        self.environment = Environment::new(&self.environment.0).map_err(|e| {
            format!("{e} (it is set by `environment` in the configuration file or {prefix}_ENVIRONMENT)")
        })?;
        if let Some(v) = var(&format!("{prefix}_LISTEN")) {
            self.http.listen = v;
        }
        if let Some(v) = var(&format!("{prefix}_METRICS_LISTEN")) {
            self.http.metrics_listen = Some(v);
        }
        if let Some(v) = var(&format!("{prefix}_ALLOWED_HOSTS")) {
            self.http.allowed_hosts = list(v);
        }
        if let Some(v) = var(&format!("{prefix}_ALLOWED_ORIGINS")) {
            self.http.allowed_origins = list(v);
        }
        if let Some(v) = var(&format!("{prefix}_LOG")) {
            self.log.filter = v;
        }
        if let Some(v) = var(&format!("{prefix}_OAUTH_ISSUER")) {
            self.oauth.issuer = Some(v);
        }
        if let Some(v) = var(&format!("{prefix}_OAUTH_AUDIENCE")) {
            self.oauth.audience = Some(v);
        }
        if let Some(v) = var(&format!("{prefix}_OAUTH_JWKS_URI")) {
            self.oauth.jwks_uri = Some(v);
        }
        if let Some(v) = var(&format!("{prefix}_AUDIT_PATH")) {
            self.audit.path = v;
        }
        if let Some(v) = var(&format!("{prefix}_AUDIT_HEAD_INTERVAL")) {
            self.audit.head_interval = humantime::parse_duration(&v)
                .map_err(|e| format!("{prefix}_AUDIT_HEAD_INTERVAL: `{v}` is not a duration ({e}): write e.g. `5m`"))?;
        }
        if let Some(v) = var(&format!("{prefix}_APPROVALS_PATH")) {
            self.approvals.path = v;
        }
        if let Some(v) = var(&format!("{prefix}_APPROVALS_POSTGRES_URL_ENV")) {
            self.approvals.postgres_url_env = Some(v);
        }
        if let Some(v) = var(&format!("{prefix}_APPROVALS_POSTGRES_URL_FILE")) {
            self.approvals.postgres_url_file = Some(v);
        }
        if let Some(v) = var(&format!("{prefix}_RATE_LIMITS_REDIS_URL_ENV")) {
            self.rate_limits.redis_url_env = Some(v);
        }
        if let Some(v) = var(&format!("{prefix}_RATE_LIMITS_REDIS_URL_FILE")) {
            self.rate_limits.redis_url_file = Some(v);
        }
        if let Some(v) = var(&format!("{prefix}_KILL_SWITCH_FILE")) {
            self.kill_switch.file = Some(v);
        }
        for (name, downstream) in &mut self.downstreams {
            let key = format!("{prefix}_DOWNSTREAM_{}_BASE_URL", screaming(name));
            if let Some(v) = var(&key) {
                downstream.base_url = v;
            }
        }
        let keys: Vec<String> = self.handlers.keys().cloned().collect();
        for key in keys {
            if let Some(v) = var(&format!("{prefix}_HANDLERS_{}", screaming(&key))) {
                self.handlers.insert(key, toml::Value::String(v));
            }
        }
        if let Err(e) = self.log.filter.parse::<tracing_subscriber::filter::Targets>() {
            return Err(format!(
                "[log] filter `{}` is not a filter ({e}): write a level, then `target=level` pairs, e.g. `info,rmcp=warn` \
                 (set by the configuration file or {prefix}_LOG)",
                self.log.filter
            ));
        }
        for origin in &self.http.allowed_origins {
            if origin != "null" && !origin.contains("://") {
                return Err(format!(
                    "allowed origin `{origin}` has no scheme: write it as `https://{origin}`"
                ));
            }
        }
        Ok(())
    }

    /// A handler setting as a string, or `default` when unset.
    pub fn handler_str(&self, key: &str, default: &str) -> String {
        match self.handlers.get(key) {
            Some(toml::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => default.to_string(),
        }
    }
}

fn screaming(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let mut config: Config = toml::from_str(
            r#"
            [http]
            listen = "0.0.0.0:9000"
            allowed_origins = ["https://app.example.com"]
            [downstreams.policy-store]
            base_url = "http://127.0.0.1:1"
            [handlers]
            root = "/srv/docs"
            "#,
        )
        .unwrap();
        let env = BTreeMap::from([
            ("SRV_LISTEN", "127.0.0.1:7000"),
            ("SRV_DOWNSTREAM_POLICY_STORE_BASE_URL", "https://policies.internal"),
            ("SRV_HANDLERS_ROOT", "/data"),
        ]);
        config.apply_env("SRV", |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:7000");
        assert_eq!(config.downstreams["policy-store"].base_url, "https://policies.internal");
        assert_eq!(config.handler_str("root", ""), "/data");
        assert_eq!(config.http.allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn unknown_keys_and_schemeless_origins_are_refused() {
        assert!(toml::from_str::<Config>("[http]\nlisten_addr = \"x\"").is_err());
        let mut config = Config::default();
        config.http.allowed_origins = vec!["app.example.com".into()];
        let err = config.apply_env("SRV", |_| None).unwrap_err();
        assert!(err.contains("https://app.example.com"), "{err}");
    }

    #[test]
    fn a_log_filter_that_does_not_parse_is_refused_at_load() {
        for good in [
            "info",
            "info,rmcp=warn",
            "warn,my_server=debug",
            "charter_runtime::audit=trace",
        ] {
            let mut config = Config::default();
            config
                .apply_env("SRV", |k| (k == "SRV_LOG").then(|| good.to_owned()))
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let mut config = Config::default();
        let err = config
            .apply_env("SRV", |k| (k == "SRV_LOG").then(|| "info,rmcp=loud".to_owned()))
            .unwrap_err();
        assert!(err.contains("`info,rmcp=loud`") && err.contains("SRV_LOG"), "{err}");
    }

    #[test]
    fn the_environment_is_production_unless_named() {
        let mut config = Config::default();
        config.apply_env("SRV", |_| None).unwrap();
        assert!(config.environment.is_production());
        let mut config: Config = toml::from_str("environment = \"staging\"").unwrap();
        config.apply_env("SRV", |_| None).unwrap();
        assert_eq!(config.environment.name(), "staging");
        assert!(!config.environment.is_production());
        config
            .apply_env("SRV", |k| (k == "SRV_ENVIRONMENT").then(|| "production".to_owned()))
            .unwrap();
        assert!(config.environment.is_production());
        for (name, expected) in [
            ("prod", "reads like production but is not `production`"),
            ("live", "reads like production"),
            ("Staging", "is not a valid name"),
            ("", "is not a valid name"),
        ] {
            let mut config = Config::default();
            let err = config
                .apply_env("SRV", |k| (k == "SRV_ENVIRONMENT").then(|| name.to_owned()))
                .unwrap_err();
            assert!(err.contains(expected), "{name}: {err}");
            assert!(err.contains("SRV_ENVIRONMENT"), "{err}");
        }
    }
}

//! Rate limits shared by every replica, in Redis (feature `redis`).
//!
//! One Lua script runs GCRA atomically on the Redis server with Redis's own
//! clock (`TIME`), so replicas with skewed clocks still share one budget and
//! `count` calls per `period` are admitted across all of them, with the same
//! burst as the per-process limiter (all `count` usable at once). Keys hold a
//! hash of the caller, never the subject itself, and expire when idle.
//!
//! When Redis cannot answer within the timeout, the caller decides by effect
//! (see [`Fallback`]): by default reads fall back to the per-replica limiter
//! and drafts and writes are refused, so an outage never lifts a write limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use super::config::{Fallback, RateLimits};
use super::metrics::Metrics;

/// GCRA: `tat` is the theoretical arrival time of the next call, in
/// microseconds of Redis's clock. A call is admitted when it would not push
/// `tat` more than `burst` intervals past now; otherwise the answer is how
/// long until it would.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_until = now + burst * interval
if new_tat > allowed_until then
  return {0, new_tat - allowed_until}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
";

/// The answer for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    /// Over the shared limit; retry after this long.
    Limited(Duration),
    /// Redis did not answer.
    Unavailable,
}

/// The shared limiter: a Redis connection (made on first use, then kept and
/// re-established by [`ConnectionManager`]) and the script.
pub struct SharedLimits {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    pub reads: Fallback,
    pub writes: Fallback,
    down: AtomicBool,
    metrics: Metrics,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only the prefix.
        f.debug_struct("SharedLimits").field("prefix", &self.prefix).finish()
    }
}

impl SharedLimits {
    /// From `[rate_limits]`; `None` when no Redis is configured. `server` is
    /// the default key prefix.
    pub fn from_config(
        config: &RateLimits,
        server: &str,
        metrics: Metrics,
    ) -> Result<Option<Arc<SharedLimits>>, String> {
        let Some(url) = config.redis_url()? else {
            return Ok(None);
        };
        let client = redis::Client::open(url.as_str()).map_err(|e| {
            format!(
                "the Redis URL in {} is not valid: {} (write it as redis://[:PASSWORD@]HOST:PORT/[DB])",
                config.redis_url_source(),
                e.to_string().replace(&url, "<redacted>")
            )
        })?;
        metrics.set_rate_limit_shared(false);
        Ok(Some(Arc::new(SharedLimits {
            client,
            connection: Mutex::new(None),
            script: redis::Script::new(GCRA),
            prefix: config.key_prefix.clone().unwrap_or_else(|| server.to_string()),
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            reads: config.on_redis_error_reads,
            writes: config.on_redis_error_writes,
            down: AtomicBool::new(false),
            metrics,
        })))
    }

    /// Counts one call by `subject` against `count` per `period` for `kind`/`name`.
    pub async fn check(&self, kind: &str, name: &str, subject: &str, count: u32, period: Duration) -> Verdict {
        let key = format!("{}:{kind}:{name}:{}", self.prefix, subject_key(subject));
        let count = count.max(1);
        let interval = (period.as_micros() / u128::from(count)).max(1) as u64;
        let answer = tokio::time::timeout(self.timeout, self.invoke(&key, interval, count)).await;
        match answer {
            Ok(Ok((admitted, wait_us))) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared by every replica");
                }
                self.metrics.set_rate_limit_shared(true);
                if admitted == 1 {
                    Verdict::Admitted
                } else {
                    Verdict::Limited(Duration::from_micros(wait_us.max(1) as u64))
                }
            }
            failed => {
                let broken = matches!(failed, Ok(Err(_)));
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {} ms", self.timeout.as_millis()),
                };
                self.metrics.rate_limit_backend_error();
                self.metrics.set_rate_limit_shared(false);
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = %error,
                        "Redis cannot be reached: draft and write calls are {} and reads are {} until it answers",
                        describe(self.writes),
                        describe(self.reads)
                    );
                }
                // A broken connection is made anew on the next call.
                if broken {
                    *self.connection.lock().await = None;
                }
                Verdict::Unavailable
            }
        }
    }

    /// Marks `token` as used for `ttl` across every replica: `Ok(true)` the
    /// first time, `Ok(false)` after (a confirmation's request state, spent
    /// once whichever replica the retry reaches). No answer is an error: the
    /// caller refuses rather than risk a second run.
    pub async fn spend_once(&self, token: &str, ttl: Duration) -> Result<bool, String> {
        let key = format!("{}:spent:{}", self.prefix, subject_key(token));
        let set = async {
            let mut connection = self.connection().await?;
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<Option<String>>(&mut connection)
                .await
        };
        match tokio::time::timeout(self.timeout, set).await {
            Ok(Ok(first)) => Ok(first.is_some()),
            Ok(Err(e)) => {
                *self.connection.lock().await = None;
                Err(format!("Redis refused: {e}"))
            }
            Err(_) => Err(format!("Redis gave no answer within {} ms", self.timeout.as_millis())),
        }
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        match slot.as_ref() {
            Some(connection) => Ok(connection.clone()),
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                let connection = ConnectionManager::new_with_config(self.client.clone(), config).await?;
                *slot = Some(connection.clone());
                Ok(connection)
            }
        }
    }

    async fn invoke(&self, key: &str, interval: u64, count: u32) -> redis::RedisResult<(i64, i64)> {
        let mut connection = self.connection().await?;
        self.script
            .key(key)
            .arg(interval)
            .arg(count)
            .invoke_async(&mut connection)
            .await
    }
}

fn describe(fallback: Fallback) -> &'static str {
    match fallback {
        Fallback::Local => "limited by each replica alone",
        Fallback::Refuse => "refused",
    }
}

/// The caller as it appears in Redis keys: a hash, so the keyspace holds no identities.
fn subject_key(subject: &str) -> String {
    let digest = Sha256::digest(subject.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Against a real Redis on loopback (`scripts/services start`, which sets
/// `CHARTER_TEST_REDIS_URL` through `scripts/services env`); a private
/// `redis-server` for the outage and recovery case.
#[cfg(test)]
mod tests {
    use super::*;

    fn shared_url() -> String {
        std::env::var("CHARTER_TEST_REDIS_URL").unwrap_or_else(|_| {
            panic!(
                "CHARTER_TEST_REDIS_URL is not set: run `scripts/services start` and `eval \"$(scripts/services env)\"`"
            )
        })
    }

    fn limits_at(url_file: &std::path::Path, prefix: &str) -> (Arc<SharedLimits>, Metrics) {
        let config = RateLimits {
            redis_url_file: Some(url_file.display().to_string()),
            key_prefix: Some(prefix.into()),
            ..RateLimits::default()
        };
        let metrics = Metrics::new();
        let shared = SharedLimits::from_config(&config, "test", metrics.clone())
            .unwrap()
            .unwrap();
        (shared, metrics)
    }

    fn url_file(dir: &tempfile::TempDir, url: &str) -> std::path::PathBuf {
        let path = dir.path().join(format!("redis-url-{}", url.len()));
        std::fs::write(&path, url).unwrap();
        path
    }

    /// Keys of this test alone: the clock and the process id, hashed.
    fn unique_prefix() -> String {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        format!("charter-test-{}", &subject_key(&seed)[..12])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_admit_the_contracts_count_in_all() {
        let dir = tempfile::tempdir().unwrap();
        let file = url_file(&dir, &shared_url());
        let prefix = unique_prefix();
        let (a, _) = limits_at(&file, &prefix);
        let (b, _) = limits_at(&file, &prefix);
        let mut calls = Vec::new();
        for i in 0..40 {
            let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
            calls.push(tokio::spawn(async move {
                replica
                    .check("tool", "set_priority", "alice", 10, Duration::from_secs(60))
                    .await
            }));
        }
        let mut admitted = 0;
        let mut limited = Vec::new();
        for call in calls {
            match call.await.unwrap() {
                Verdict::Admitted => admitted += 1,
                Verdict::Limited(wait) => limited.push(wait),
                Verdict::Unavailable => panic!("Redis did not answer"),
            }
        }
        assert_eq!(admitted, 10, "40 calls across two replicas against 10 a minute");
        // One call's worth of the window (6 s) at most, since the burst is spent.
        assert!(
            limited
                .iter()
                .all(|w| *w > Duration::ZERO && *w <= Duration::from_secs(6)),
            "{limited:?}"
        );
        // Another caller has a budget of its own.
        assert_eq!(
            a.check("tool", "set_priority", "bob", 10, Duration::from_secs(60))
                .await,
            Verdict::Admitted
        );
        // So does another tool.
        assert_eq!(
            b.check("tool", "other", "alice", 10, Duration::from_secs(60)).await,
            Verdict::Admitted
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_budget_refills_at_the_contracts_rate() {
        let dir = tempfile::tempdir().unwrap();
        let (limits, _) = limits_at(&url_file(&dir, &shared_url()), &unique_prefix());
        for _ in 0..2 {
            assert_eq!(
                limits.check("tool", "t", "carol", 2, Duration::from_secs(1)).await,
                Verdict::Admitted
            );
        }
        let Verdict::Limited(wait) = limits.check("tool", "t", "carol", 2, Duration::from_secs(1)).await else {
            panic!("a third call within the burst was admitted");
        };
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
        assert_eq!(
            limits.check("tool", "t", "carol", 2, Duration::from_secs(1)).await,
            Verdict::Admitted
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_hold_no_subject_and_expire() {
        let url = shared_url();
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique_prefix();
        let (limits, _) = limits_at(&url_file(&dir, &url), &prefix);
        assert_eq!(
            limits
                .check("tool", "t", "dave@example.com", 5, Duration::from_secs(10))
                .await,
            Verdict::Admitted
        );
        let mut connection = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(!keys[0].contains("dave"), "the subject is in the key: {}", keys[0]);
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&keys[0])
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 12_000, "ttl {ttl} ms");
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn start_redis(port: u16, dir: &std::path::Path) -> std::process::Child {
        let mut child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/setup-tools");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return child;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_is_unavailable_and_counted_and_recovery_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut redis = start_redis(port, dir.path());
        let (limits, metrics) = limits_at(&url_file(&dir, &format!("redis://127.0.0.1:{port}/")), &unique_prefix());
        assert_eq!(
            limits.check("tool", "t", "erin", 5, Duration::from_secs(60)).await,
            Verdict::Admitted
        );
        redis.kill().unwrap();
        redis.wait().unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            limits.check("tool", "t", "erin", 5, Duration::from_secs(60)).await,
            Verdict::Unavailable
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "waited {:?} for a dead Redis",
            started.elapsed()
        );
        assert!(
            metrics.render().contains("mcp_rate_limit_backend_errors_total 1"),
            "{}",
            metrics.render()
        );
        assert!(metrics.render().contains("mcp_rate_limit_shared 0"));
        let mut redis = start_redis(port, dir.path());
        let mut verdict = Verdict::Unavailable;
        for _ in 0..50 {
            verdict = limits.check("tool", "t", "erin", 5, Duration::from_secs(60)).await;
            if verdict == Verdict::Admitted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(verdict, Verdict::Admitted, "no recovery after Redis returned");
        assert!(metrics.render().contains("mcp_rate_limit_shared 1"));
        redis.kill().unwrap();
        redis.wait().unwrap();
    }

    #[test]
    fn a_url_that_is_not_redis_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = RateLimits {
            redis_url_file: Some(url_file(&dir, "http://user:s3cret@cache:6379/").display().to_string()),
            ..RateLimits::default()
        };
        let err = SharedLimits::from_config(&config, "test", Metrics::new()).unwrap_err();
        assert!(err.contains("is not valid") && err.contains("redis://"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let config = RateLimits {
            redis_url_env: Some("CHARTER_TEST_UNSET_VARIABLE".into()),
            ..RateLimits::default()
        };
        let err = SharedLimits::from_config(&config, "test", Metrics::new()).unwrap_err();
        assert!(
            err.contains("CHARTER_TEST_UNSET_VARIABLE") && err.contains("not set"),
            "{err}"
        );
    }
}

//! The Redis side: the contract the Rails app reads (README, "Redis
//! contract"), the deploy lock's commands, and the atomic, compare-and-set
//! activation.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Script, Value};

use crate::config::{mask_url, Config};
use crate::contract::{ActivationEvent, Keys};
use crate::error::Failure;
use crate::release::ReleaseRecord;
use crate::state::LiveState;

/// Outcome of an activation attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    Applied {
        previous: Option<String>,
    },
    /// `current` was not what the caller planned against.
    LostRace {
        current: Option<String>,
    },
}

/// A connection to a single server or a cluster.
#[derive(Clone)]
enum Conn {
    /// Reconnects by itself after a dropped connection, so retried reads and
    /// the read-back after a failed activation go over a fresh connection.
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(p, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(p, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

pub struct Registry {
    conn: Conn,
    pub keys: Keys,
    url: String,
    history_limit: usize,
}

const ACTIVATE: &str = r#"
-- KEYS: current, manifest, history, release record
-- ARGV: expected current ('' = none), new id, manifest JSON, event JSON, history cap, channel, force
local cur = redis.call('GET', KEYS[1])
if ARGV[7] ~= '1' and (cur or '') ~= ARGV[1] then
  return {'lost', cur or ''}
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return {'unregistered', ''}
end
local event = cjson.decode(ARGV[4])
if cur then event['previous'] = cur else event['previous'] = cjson.null end
local text = cjson.encode(event)
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('LPUSH', KEYS[3], text)
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
redis.call('PUBLISH', ARGV[6], text)
return {'ok', cur or ''}
"#;

const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

impl Registry {
    /// Connect and PING, within `redis_timeout_secs` in all: a server that
    /// never answers (a `rediss://` URL pointed at a plain-TCP Redis, a
    /// firewall dropping packets) fails in that time, saying what is likely.
    pub async fn connect(config: &Config) -> anyhow::Result<Registry> {
        let app = config.app()?;
        let masked = mask_url(&config.redis_url);
        let timeout = Duration::from_secs(config.redis_timeout_secs);
        let conn = match tokio::time::timeout(timeout, open(config, &masked, timeout)).await {
            Ok(conn) => conn?,
            Err(_) => {
                let hint = if config.redis_url.starts_with("rediss:") {
                    "; the URL asks for TLS (rediss://): if this Redis serves plain TCP, use redis://"
                } else {
                    "; check REDIS_URL, the port, and that nothing drops the connection (a TLS-only Redis needs rediss://)"
                };
                return Err(Failure::operation(format!(
                    "no answer from Redis at {masked} within {}s{hint}",
                    config.redis_timeout_secs
                )));
            }
        };
        Ok(Registry {
            conn,
            keys: Keys::new(app),
            url: masked,
            history_limit: config.history_limit,
        })
    }

    /// Run a read, retried on connection errors and timeouts.
    async fn read<T, F, Fut>(&mut self, f: F) -> anyhow::Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match f(self.conn.clone()).await {
                Ok(v) => return Ok(v),
                Err(e)
                    if attempt < 4
                        && (e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 3;
                    attempt += 1;
                }
                Err(e) => return Err(redis_error(&self.url, "read from", e)),
            }
        }
    }

    /// Live release id and manifest, in one round trip (MGET).
    pub async fn live(&mut self) -> anyhow::Result<LiveState> {
        let (cur, man) = (self.keys.current.clone(), self.keys.manifest.clone());
        let (current, manifest): (Option<String>, Option<String>) = self
            .read(|mut c| {
                let (cur, man) = (cur.clone(), man.clone());
                async move {
                    let v: Vec<Option<String>> = redis::cmd("MGET")
                        .arg(&cur)
                        .arg(&man)
                        .query_async(&mut c)
                        .await?;
                    Ok((v.first().cloned().flatten(), v.get(1).cloned().flatten()))
                }
            })
            .await?;
        let manifest = match manifest {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                Failure::operation(format!(
                    "{} in Redis is not valid JSON ({e}); it was not written by cutover, re-activate a release to repair it",
                    self.keys.manifest
                ))
            })?),
            None => None,
        };
        Ok(LiveState { current, manifest })
    }

    /// A release record, or None if Redis does not know it.
    pub async fn record(&mut self, id: &str) -> anyhow::Result<Option<ReleaseRecord>> {
        Ok(self.records(&[id.to_string()]).await?.pop().flatten())
    }

    /// Release records in one round trip (MGET), None where Redis has none.
    pub async fn records(&mut self, ids: &[String]) -> anyhow::Result<Vec<Option<ReleaseRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.release(id)).collect();
        let texts: Vec<Option<String>> = self
            .read(|mut c| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await }
            })
            .await?;
        keys.iter()
            .zip(texts)
            .map(|(key, text)| {
                text.map(|t| {
                    serde_json::from_str(&t).map_err(|e| {
                        Failure::operation(format!(
                            "release record {key} in Redis is not valid JSON ({e})"
                        ))
                    })
                })
                .transpose()
            })
            .collect()
    }

    /// The first `limit` entries of a sorted set (newest first) or list.
    async fn range(
        &mut self,
        command: &'static str,
        key: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<String>> {
        let key = key.to_string();
        self.read(|mut c| {
            let key = key.clone();
            async move {
                redis::cmd(command)
                    .arg(&key)
                    .arg(0)
                    .arg(limit as i64 - 1)
                    .query_async(&mut c)
                    .await
            }
        })
        .await
    }

    /// Release ids, newest first (by upload time).
    pub async fn release_ids(&mut self, limit: usize) -> anyhow::Result<Vec<String>> {
        let key = self.keys.releases.clone();
        self.range("ZREVRANGE", &key, limit).await
    }

    /// Activation events, newest first.
    pub async fn history(&mut self, limit: usize) -> anyhow::Result<Vec<ActivationEvent>> {
        let key = self.keys.history.clone();
        let raw = self.range("LRANGE", &key, limit).await?;
        Ok(raw
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    /// Record a release (immutable: an existing record is kept) and add it to the set.
    pub async fn register(&mut self, record: &ReleaseRecord) -> anyhow::Result<()> {
        let json = serde_json::to_string(&record.summary()).expect("records serialize");
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.keys.release(&record.id))
            .arg(json)
            .arg("NX")
            .ignore()
            .cmd("ZADD")
            .arg(&self.keys.releases)
            .arg("NX")
            .arg(record.created_at_ms)
            .arg(&record.id)
            .ignore();
        pipe.query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.url, "write to", e))
    }

    /// Switch the live release in one atomic step, if `current` is still `expected`.
    pub async fn activate(
        &mut self,
        expected: Option<&str>,
        id: &str,
        manifest: &serde_json::Value,
        event: &ActivationEvent,
        force: bool,
    ) -> anyhow::Result<Activation> {
        let manifest = serde_json::to_string(manifest).expect("manifests serialize");
        let event_json = serde_json::to_string(event).expect("events serialize");
        let result: RedisResult<(String, String)> = Script::new(ACTIVATE)
            .key(&self.keys.current)
            .key(&self.keys.manifest)
            .key(&self.keys.history)
            .key(self.keys.release(id))
            .arg(expected.unwrap_or(""))
            .arg(id)
            .arg(&manifest)
            .arg(&event_json)
            .arg(self.history_limit)
            .arg(&self.keys.channel)
            .arg(if force { "1" } else { "0" })
            .invoke_async(&mut self.conn)
            .await;
        let none_if_empty = |s: String| if s.is_empty() { None } else { Some(s) };
        match result {
            Ok((status, cur)) if status == "ok" => Ok(Activation::Applied {
                previous: none_if_empty(cur),
            }),
            // Our own release already live means the script ran before (a
            // retry after a lost answer): that is success, not a lost race.
            Ok((status, cur)) if status == "lost" && cur == id => Ok(Activation::Applied {
                previous: expected.map(str::to_string),
            }),
            Ok((status, cur)) if status == "lost" => Ok(Activation::LostRace {
                current: none_if_empty(cur),
            }),
            Ok((status, _)) if status == "unregistered" => Err(Failure::operation(format!(
                "release {id} is not registered in Redis ({} missing); deploy it again",
                self.keys.release(id)
            ))),
            Ok((status, _)) => Err(Failure::operation(format!(
                "unexpected activation reply {status:?} from Redis"
            ))),
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                // The script may or may not have run. Read back; never guess.
                let original = redis_error(&self.url, "activate on", e);
                match self.live().await {
                    Ok(live) if live.current.as_deref() == Some(id) => {
                        let head = self.history(1).await.ok().and_then(|h| h.into_iter().next());
                        if head.as_ref().is_some_and(|h| h.release == id && h.at == event.at) {
                            Ok(Activation::Applied { previous: head.and_then(|h| h.previous) })
                        } else {
                            Ok(Activation::Applied { previous: expected.map(str::to_string) })
                        }
                    }
                    Ok(live) => Err(Failure::operation(format!(
                        "{original}; read back after the connection dropped: activation did NOT apply, {} is still live; run the command again",
                        live.current.as_deref().unwrap_or("no release")
                    ))),
                    Err(read_err) => Err(Failure::operation(format!(
                        "{original}; could not read back whether activation applied ({}): run `cutover status` before doing anything else",
                        crate::error::one_line(&read_err)
                    ))),
                }
            }
            Err(e) => Err(redis_error(&self.url, "activate on", e)),
        }
    }

    /// Try once to take the deploy lock. Returns the current holder if it is taken.
    pub async fn try_lock(&mut self, token: &str, ttl: Duration) -> anyhow::Result<Option<String>> {
        let set: Option<String> = redis::cmd("SET")
            .arg(&self.keys.lock)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.url, "take the deploy lock on", e))?;
        if set.is_some() {
            return Ok(None);
        }
        let holder: Option<String> = redis::cmd("GET")
            .arg(&self.keys.lock)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.url, "read the deploy lock on", e))?;
        Ok(Some(holder.unwrap_or_default()))
    }

    /// Extend our lock; false if it is no longer ours.
    pub async fn renew_lock(&mut self, token: &str, ttl: Duration) -> anyhow::Result<bool> {
        let n: i64 = Script::new(RENEW)
            .key(&self.keys.lock)
            .arg(token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.url, "renew the deploy lock on", e))?;
        Ok(n == 1)
    }

    /// Release the lock if it is still ours.
    pub async fn unlock(&mut self, token: &str) -> anyhow::Result<()> {
        let _: i64 = Script::new(UNLOCK)
            .key(&self.keys.lock)
            .arg(token)
            .invoke_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.url, "release the deploy lock on", e))?;
        Ok(())
    }

    /// A fresh handle on the same connection (for the lock renewer).
    pub fn handle(&self) -> Registry {
        Registry {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            url: self.url.clone(),
            history_limit: self.history_limit,
        }
    }
}

/// Open a connection (a single server or a cluster) and PING it, so a bad
/// server fails here, with a clear message, rather than halfway through.
async fn open(config: &Config, masked: &str, timeout: Duration) -> anyhow::Result<Conn> {
    let url = config.redis_url.as_str();
    let mut conn = if config.redis_cluster {
        let client = redis::cluster::ClusterClient::builder(vec![url])
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| Failure::input(format!("invalid redis_url {masked}: {e}")))?;
        Conn::Cluster(
            client
                .get_async_connection()
                .await
                .map_err(|e| redis_error(masked, "connect to", e))?,
        )
    } else {
        let client = redis::Client::open(url).map_err(|e| {
            Failure::input(format!(
                "invalid redis_url {masked}: {e}; expected redis://[:password@]host:port[/db]"
            ))
        })?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        Conn::Single(
            ConnectionManager::new_with_config(client, cfg)
                .await
                .map_err(|e| redis_error(masked, "connect to", e))?,
        )
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| redis_error(masked, "connect to", e))?;
    Ok(conn)
}

/// One line for a Redis failure, with the URL masked and the fix named.
fn redis_error(masked_url: &str, op: &str, e: redis::RedisError) -> anyhow::Error {
    let code = e.code().unwrap_or("");
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if matches!(code, "WRONGPASS" | "NOAUTH")
        || e.kind() == redis::ErrorKind::AuthenticationFailed
        || lower.contains("wrongpass")
        || lower.contains("noauth")
        || lower.contains("authentication failed")
    {
        return Failure::input(format!(
            "Redis at {masked_url} rejected the credentials ({}); fix the password in REDIS_URL",
            if code.is_empty() {
                "authentication failed"
            } else {
                code
            }
        ));
    }
    if code == "READONLY" || text.contains("READONLY") {
        return Failure::input(format!(
            "Redis at {masked_url} is a read-only replica (READONLY); point REDIS_URL at the primary"
        ));
    }
    if lower.contains("cluster support disabled") {
        return Failure::input(format!(
            "Redis at {masked_url} is not a Redis Cluster; turn redis_cluster off (--redis-cluster, CUTOVER_REDIS_CLUSTER, cutover.toml)"
        ));
    }
    if code == "MOVED" || code == "ASK" || text.starts_with("Moved") {
        return Failure::input(format!(
            "Redis at {masked_url} is a Redis Cluster node ({code}); turn redis_cluster on (--redis-cluster, CUTOVER_REDIS_CLUSTER=true or redis_cluster = true)"
        ));
    }
    if e.is_connection_refusal() || e.is_io_error() || e.is_timeout() {
        return Failure::operation(format!(
            "cannot {op} Redis at {masked_url}: {text}; check REDIS_URL and that Redis is running and reachable"
        ));
    }
    Failure::operation(format!("Redis at {masked_url} failed to {op}: {text}"))
}

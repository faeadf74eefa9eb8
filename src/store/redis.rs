//! The Redis side: the contract the Rails app reads (README, "Redis
//! contract"), the deploy lock's commands, and the atomic, compare-and-set
//! activation.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, ClientTlsConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline,
    RedisFuture, RedisResult, Script, TlsCertificates, TlsMode, Value,
};

use crate::config::sentinel::SentinelUrl;
use crate::config::{mask_url, Config};
use crate::contract::{ActivationEvent, Keys, Pin, PinChange};
use crate::error::Failure;
use crate::release::ReleaseRecord;
use crate::state::{LiveState, Stored};

use super::scripts;

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
    /// The app is pinned and the switch respects pins: nothing changed.
    Pinned(Pin),
}

/// A connection of one of the kinds [`Target`] describes. The rest of the
/// registry sends commands through it and never asks which kind it is.
#[derive(Clone)]
enum Conn {
    /// Reconnects by itself after a dropped connection, so retried reads and
    /// the read-back after a failed activation go over a fresh connection.
    Single(ConnectionManager),
    /// Follows MOVED and ASK (slot migrations, failovers) by itself.
    Cluster(ClusterConnection),
    /// The master a Sentinel names, asked again after the connection fails.
    Sentinel(SentinelConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.command(cmd),
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
            Conn::Sentinel(c) => c.commands(p, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.db,
        }
    }
}

/// A connection to the master that Sentinel names. After a connection
/// error, a timeout or READONLY (the master was demoted), the next command
/// asks the Sentinels again, so a retried read and the read-back after a
/// lost activation answer reach the new master. A command is never resent
/// here: whether to retry is the caller's decision.
#[derive(Clone)]
struct SentinelConn {
    state: Arc<tokio::sync::Mutex<SentinelState>>,
    db: i64,
}

struct SentinelState {
    client: SentinelClient,
    master: Option<MultiplexedConnection>,
    config: AsyncConnectionConfig,
}

impl SentinelConn {
    async fn master(&self) -> RedisResult<MultiplexedConnection> {
        let mut state = self.state.lock().await;
        if let Some(conn) = &state.master {
            return Ok(conn.clone());
        }
        let client = state.client.async_get_client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&state.config)
            .await?;
        state.master = Some(conn.clone());
        Ok(conn)
    }

    /// After this error, ask the Sentinels again before the next command.
    async fn check<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.code() == Some("READONLY")
            {
                self.state.lock().await.master = None;
            }
        }
        result
    }

    fn command<'a>(&'a self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let mut conn = self.master().await?;
            let result = conn.req_packed_command(cmd).await;
            self.check(result).await
        }
        .boxed()
    }

    fn commands<'a>(
        &'a self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let mut conn = self.master().await?;
            let result = conn.req_packed_commands(p, offset, count).await;
            self.check(result).await
        }
        .boxed()
    }
}

/// Where to connect: one URL, a Redis Cluster through a seed node, or a
/// master behind Sentinel, each with the TLS options. Built from the
/// configuration before anything connects, so a bad file or URL is bad
/// input (exit 2) with nothing changed.
#[derive(Clone)]
pub struct Target {
    kind: Kind,
    /// CA certificates and client certificate from the configured files.
    certs: Option<TlsCertificates>,
    /// Skip verifying the server's certificate.
    insecure: bool,
    /// The URL as messages show it: password masked.
    shown: String,
}

#[derive(Clone)]
enum Kind {
    Single(String),
    /// A seed node's URL.
    Cluster(String),
    Sentinel {
        url: SentinelUrl,
        /// The Sentinels' own password.
        password: Option<String>,
    },
}

impl Target {
    /// The target `url` names, with the TLS and Sentinel settings of `config`.
    pub fn new(url: &str, config: &Config) -> anyhow::Result<Target> {
        let shown = mask_url(url);
        let read = |key: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                Failure::input(format!(
                    "cannot read {key} {}: {e}; give the path of a PEM file",
                    path.display()
                ))
            })
        };
        let client_tls = match (&config.redis_tls_cert_file, &config.redis_tls_key_file) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read("redis_tls_cert_file", cert)?,
                client_key: read("redis_tls_key_file", key)?,
            }),
            _ => None,
        };
        let root_cert = match &config.redis_ca_file {
            Some(path) => Some(read("redis_ca_file", path)?),
            None => None,
        };
        let certs = (client_tls.is_some() || root_cert.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        });
        let insecure = config.redis_tls_insecure || url.ends_with("#insecure");
        let kind = if SentinelUrl::is_sentinel(url) {
            Kind::Sentinel {
                url: SentinelUrl::parse(url).map_err(|e| {
                    Failure::input(format!("invalid redis_url {shown}: expected {e}"))
                })?,
                password: config.redis_sentinel_password.clone(),
            }
        } else if config.redis_cluster {
            Kind::Cluster(url.to_string())
        } else {
            Kind::Single(url.to_string())
        };
        Ok(Target {
            kind,
            certs,
            insecure,
            shown,
        })
    }

    /// Whether the primary can move under us (a failover, a slot
    /// migration): then a connection lost or a write refused as READONLY
    /// means "not applied, run again", not a wrong configuration.
    fn follows_failover(&self) -> bool {
        !matches!(self.kind, Kind::Single(_))
    }

    /// The single server's client, with the TLS options.
    fn single_client(&self, url: &str) -> RedisResult<redis::Client> {
        let mut info = url.into_connection_info()?;
        if self.insecure {
            if let ConnectionAddr::TcpTls {
                host,
                port,
                tls_params,
                ..
            } = info.addr().clone()
            {
                info = info.set_addr(ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: true,
                    tls_params,
                });
            }
        }
        match &self.certs {
            Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
            None => redis::Client::open(info),
        }
    }

    fn sentinel_client(
        &self,
        url: &SentinelUrl,
        password: Option<&str>,
    ) -> RedisResult<SentinelClient> {
        let nodes = url
            .sentinels
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
        let mut builder =
            SentinelClientBuilder::new(nodes, &url.master, SentinelServerType::Master)?
                .set_client_to_redis_db(url.db);
        if let Some(user) = &url.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(pass) = &url.password {
            builder = builder.set_client_to_redis_password(pass);
        }
        if let Some(pass) = password {
            builder = builder.set_client_to_sentinel_password(pass);
        }
        builder.build()
    }
}

pub struct Registry {
    conn: Conn,
    target: Target,
    pub keys: Keys,
    url: String,
    history_limit: usize,
    /// Bound on every command (`redis_timeout_secs`).
    timeout: Duration,
}

/// What the deploy lock key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub owner: String,
    /// Milliseconds left; None when the key has no expiry.
    pub ttl_ms: Option<i64>,
}

/// The permissions a command needs, as Redis commands with their keys and
/// channels (checked without running them: [`scripts::PROBE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Take the lock, record releases and switch (deploy, activate, rollback).
    Switch,
    /// Read the lock and delete it (unlock).
    Unlock,
    /// Take the lock and forget releases (prune).
    Prune,
}

fn timed_out(timeout: Duration) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {}s", timeout.as_secs()),
    ))
}

impl Registry {
    /// Connect and PING, within `redis_timeout_secs` in all: a server that
    /// never answers (a `rediss://` URL pointed at a plain-TCP Redis, a
    /// firewall dropping packets) fails in that time, saying what is likely.
    pub async fn connect(config: &Config) -> anyhow::Result<Registry> {
        let app = config.app()?;
        let masked = mask_url(&config.redis_url);
        let timeout = Duration::from_secs(config.redis_timeout_secs);
        let target = Target::new(&config.redis_url, config)?;
        let conn = match tokio::time::timeout(timeout, open(&target, timeout)).await {
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
            target,
            keys: Keys::new(app),
            url: masked,
            history_limit: config.history_limit,
            timeout,
        })
    }

    /// One write (a command or script), bounded by the timeout.
    async fn call<T>(
        &self,
        op: &str,
        run: impl std::future::Future<Output = RedisResult<T>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r.map_err(|e| redis_error(&self.target, op, e)),
            Err(_) => Err(Failure::operation(format!(
                "Redis at {} did not answer within {}s to {op} it; check that it is not overloaded or blocked (SLOWLOG), then run again",
                self.url,
                self.timeout.as_secs()
            ))),
        }
    }

    /// Run a read, retried on connection errors and timeouts: at most four
    /// attempts, each bounded by the timeout.
    async fn read<T, F, Fut>(&mut self, f: F) -> anyhow::Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let result = tokio::time::timeout(self.timeout, f(self.conn.clone()))
                .await
                .unwrap_or_else(|_| Err(timed_out(self.timeout)));
            match result {
                Ok(v) => return Ok(v),
                Err(e)
                    if attempt < 4
                        && (e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 3;
                    attempt += 1;
                }
                Err(e) => return Err(redis_error(&self.target, "read from", e)),
            }
        }
    }

    /// A key that MGET reported absent may hold another type: say so,
    /// naming the key, rather than treat it as absent.
    async fn absent_or_wrong_type(&mut self, key: &str) -> anyhow::Result<()> {
        let owned = key.to_string();
        let kind: String = self
            .read(|mut c| {
                let key = owned.clone();
                async move { redis::cmd("TYPE").arg(&key).query_async(&mut c).await }
            })
            .await?;
        if kind == "none" {
            return Ok(());
        }
        Err(Failure::operation(format!(
            "{key} in Redis at {} holds a {kind}, not a string: something else wrote it. \
             Check what uses this key, then delete it (a deploy or `cutover activate` writes it again)",
            self.url
        )))
    }

    /// Live release id and manifest, in one round trip (MGET). A manifest
    /// that is missing or not JSON is reported in `damage`, never an error:
    /// switching must not depend on the old live manifest.
    pub async fn live(&mut self) -> anyhow::Result<LiveState> {
        let keys = [
            self.keys.current.clone(),
            self.keys.manifest.clone(),
            self.keys.pin.clone(),
        ];
        let (cur, man) = (keys[0].clone(), keys[1].clone());
        let values: Vec<Option<String>> = self
            .read(|mut c| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await }
            })
            .await?;
        let mut values = values.into_iter();
        let (current, manifest, pin) = (
            values.next().flatten(),
            values.next().flatten(),
            values.next().flatten(),
        );
        if current.is_none() {
            self.absent_or_wrong_type(&cur).await?;
        }
        if manifest.is_none() {
            self.absent_or_wrong_type(&man).await?;
        }
        let mut live = LiveState {
            current,
            manifest: None,
            damage: None,
            pin: pin.map(|text| {
                serde_json::from_str(&text).unwrap_or(Pin {
                    release: None,
                    by: None,
                    at: String::new(),
                    message: Some(format!("(unreadable pin: {text})")),
                })
            }),
            targets: Vec::new(),
        };
        match manifest.map(|text| serde_json::from_str(&text)) {
            Some(Ok(v)) => live.manifest = Some(v),
            Some(Err(e)) => live.damage = Some(format!("{man} is not valid JSON ({e})")),
            None if live.current.is_some() => live.damage = Some(format!("{man} is missing")),
            None => {}
        }
        Ok(live)
    }

    /// A release record as Redis holds it.
    pub async fn record(&mut self, id: &str) -> anyhow::Result<Stored<ReleaseRecord>> {
        Ok(self
            .records(&[id.to_string()])
            .await?
            .pop()
            .unwrap_or(Stored::Missing))
    }

    /// Release records in one round trip (MGET).
    pub async fn records(&mut self, ids: &[String]) -> anyhow::Result<Vec<Stored<ReleaseRecord>>> {
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
        Ok(texts
            .into_iter()
            .map(|text| match text {
                None => Stored::Missing,
                Some(t) => match serde_json::from_str(&t) {
                    Ok(r) => Stored::Valid(r),
                    Err(e) => Stored::Broken(format!("not a valid release record ({e})")),
                },
            })
            .collect())
    }

    /// The first `limit` entries (0: all) of a sorted set (newest first) or list.
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

    /// Release ids, newest first (by upload time); `limit` 0: all.
    pub async fn release_ids(&mut self, limit: usize) -> anyhow::Result<Vec<String>> {
        let key = self.keys.releases.clone();
        self.range("ZREVRANGE", &key, limit).await
    }

    /// Activation events, newest first; entries that are not events are skipped.
    pub async fn history(&mut self, limit: usize) -> anyhow::Result<Vec<ActivationEvent>> {
        let key = self.keys.history.clone();
        let raw = self.range("LRANGE", &key, limit).await?;
        Ok(raw
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    /// The server's `maxmemory-policy`; None when CONFIG is refused (managed
    /// services often disable it).
    pub async fn maxmemory_policy(&mut self) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn.clone();
        let reply: RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await;
        Ok(reply.ok().and_then(|v| v.get(1).cloned()))
    }

    /// Releases that were rolled back from.
    pub async fn rolled_back(&mut self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let key = self.keys.rolled_back.clone();
        self.read(|mut c| {
            let key = key.clone();
            async move { redis::cmd("SMEMBERS").arg(&key).query_async(&mut c).await }
        })
        .await
    }

    /// Set the pin (`pin`), or clear it (`None`, `unpin`). Returns whether
    /// a pin was there before.
    pub async fn set_pin(&mut self, pin: Option<&Pin>) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let cmd = match pin {
            Some(p) => {
                let mut c = redis::cmd("SET");
                c.arg(&self.keys.pin)
                    .arg(serde_json::to_string(p).expect("pins serialize"))
                    .arg("GET");
                c
            }
            None => {
                let mut c = redis::cmd("GETDEL");
                c.arg(&self.keys.pin);
                c
            }
        };
        let before: Option<String> = self
            .call("change the pin on", cmd.query_async(&mut conn))
            .await?;
        Ok(before.is_some())
    }

    /// Forget releases: their records, and their ids in the set of releases
    /// and of rolled-back releases (one atomic MULTI).
    pub async fn unregister(&mut self, ids: &[String]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let keys: Vec<String> = ids.iter().map(|id| self.keys.release(id)).collect();
        pipe.cmd("DEL").arg(&keys).ignore();
        pipe.cmd("ZREM").arg(&self.keys.releases).arg(ids).ignore();
        pipe.cmd("SREM")
            .arg(&self.keys.rolled_back)
            .arg(ids)
            .ignore();
        let mut conn = self.conn.clone();
        self.call("forget releases on", pipe.query_async::<()>(&mut conn))
            .await
    }

    /// Record a release and add it to the set. An existing record is kept
    /// (records are immutable), unless `replace_broken` and it is not JSON.
    pub async fn register(
        &mut self,
        record: &ReleaseRecord,
        replace_broken: bool,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_string(&record.summary()).expect("records serialize");
        let script = Script::new(scripts::REGISTER);
        let mut inv = script.prepare_invoke();
        inv.key(self.keys.release(&record.id))
            .key(&self.keys.releases)
            .arg(json)
            .arg(record.created_at_ms)
            .arg(&record.id)
            .arg(if replace_broken { "1" } else { "0" });
        let mut conn = self.conn.clone();
        let _: i64 = self
            .call("record a release on", inv.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    /// Switch the live release in one atomic step, if `current` is still
    /// `expected` (or `force`), doing `pin` with the pin and marking
    /// `rolled_back` as a release that was rolled back from.
    #[allow(clippy::too_many_arguments)]
    pub async fn activate(
        &mut self,
        expected: Option<&str>,
        id: &str,
        manifest: &serde_json::Value,
        event: &ActivationEvent,
        force: bool,
        pin: &PinChange,
        rolled_back: Option<&str>,
    ) -> anyhow::Result<Activation> {
        let manifest = serde_json::to_string(manifest).expect("manifests serialize");
        let event_json = serde_json::to_string(event).expect("events serialize");
        let script = Script::new(scripts::ACTIVATE);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.current)
            .key(&self.keys.manifest)
            .key(&self.keys.history)
            .key(self.keys.release(id))
            .key(&self.keys.pin)
            .key(&self.keys.rolled_back)
            .arg(expected.unwrap_or(""))
            .arg(id)
            .arg(&manifest)
            .arg(&event_json)
            .arg(self.history_limit)
            .arg(&self.keys.channel)
            .arg(if force { "1" } else { "0" });
        match pin {
            PinChange::Respect => inv.arg("respect").arg(""),
            PinChange::Set(p) => inv
                .arg("set")
                .arg(serde_json::to_string(p).expect("pins serialize")),
            PinChange::Clear => inv.arg("clear").arg(""),
        };
        inv.arg(rolled_back.unwrap_or(""));
        let mut conn = self.conn.clone();
        let result: RedisResult<(String, String)> =
            tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn))
                .await
                .unwrap_or_else(|_| Err(timed_out(self.timeout)));
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
            Ok((status, pin)) if status == "pinned" => Ok(Activation::Pinned(
                serde_json::from_str(&pin).unwrap_or(Pin {
                    release: None,
                    by: None,
                    at: String::new(),
                    message: Some(pin),
                }),
            )),
            Ok((status, _)) if status == "unregistered" => Err(Failure::operation(format!(
                "release {id} is not registered in Redis ({} missing); deploy it again",
                self.keys.release(id)
            ))),
            Ok((status, _)) => Err(Failure::operation(format!(
                "unexpected activation reply {status:?} from Redis"
            ))),
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                self.read_back(id, event, expected, e).await
            }
            Err(e) => Err(redis_error(&self.target, "activate on", e)
                .context("nothing was switched")
                .context(format!("the switch to {id} was refused"))),
        }
    }

    /// The activation's answer was lost: it may or may not have run. Read
    /// back; never guess.
    async fn read_back(
        &mut self,
        id: &str,
        event: &ActivationEvent,
        expected: Option<&str>,
        e: redis::RedisError,
    ) -> anyhow::Result<Activation> {
        let original = crate::error::one_line(&redis_error(&self.target, "activate on", e));
        // Over a new connection: the old one may still be waiting for the
        // lost answer. The script is atomic; it has either run or not. The
        // new connection finds the primary again (through Sentinel, or the
        // cluster's slots), which may take a failover's time: try until
        // twice the timeout has passed.
        let deadline = tokio::time::Instant::now() + self.timeout * 2;
        let mut delay = Duration::from_millis(100);
        let live = loop {
            let fresh = tokio::time::timeout(self.timeout, open(&self.target, self.timeout)).await;
            if let Ok(Ok(conn)) = fresh {
                self.conn = conn;
            }
            match self.live().await {
                Err(_) if tokio::time::Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                result => break result,
            }
        };
        match live {
            Ok(live) if live.current.as_deref() == Some(id) => {
                let head = self
                    .history(1)
                    .await
                    .ok()
                    .and_then(|h| h.into_iter().next());
                let previous = match head {
                    Some(h) if h.release == id && h.at == event.at => h.previous,
                    _ => expected.map(str::to_string),
                };
                Ok(Activation::Applied { previous })
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

    /// The commands a command kind sends, with this app's keys and channel.
    fn needed(&self, needs: Needs) -> Vec<String> {
        let k = &self.keys;
        match needs {
            Needs::Unlock => vec![
                "SCRIPT LOAD x".to_string(),
                format!("GET {}", k.lock),
                format!("PTTL {}", k.lock),
                format!("DEL {}", k.lock),
            ],
            Needs::Switch => vec![
                // Scripts are run by SHA, loaded when Redis lacks them.
                "SCRIPT LOAD x".to_string(),
                format!("SET {} x NX PX 1", k.lock),
                format!("GET {}", k.lock),
                format!("PTTL {}", k.lock),
                format!("PEXPIRE {} 1", k.lock),
                format!("DEL {}", k.lock),
                format!("MGET {} {}", k.current, k.manifest),
                format!("TYPE {}", k.current),
                format!("SET {} x", k.release("probe")),
                format!("ZADD {} NX 1 x", k.releases),
                format!("SET {} x", k.current),
                format!("SET {} x", k.manifest),
                format!("LPUSH {} x", k.history),
                format!("LTRIM {} 0 1", k.history),
                format!("PUBLISH {} x", k.channel),
                format!("SET {} x", k.pin),
                format!("DEL {}", k.pin),
                format!("SADD {} x", k.rolled_back),
                format!("SREM {} x", k.rolled_back),
                format!("SMEMBERS {}", k.rolled_back),
            ],
            Needs::Prune => vec![
                "SCRIPT LOAD x".to_string(),
                format!("SET {} x NX PX 1", k.lock),
                format!("GET {}", k.lock),
                format!("PEXPIRE {} 1", k.lock),
                format!("DEL {}", k.lock),
                format!("DEL {}", k.release("probe")),
                format!("ZREM {} x", k.releases),
                format!("SREM {} x", k.rolled_back),
                "MULTI".to_string(),
                "EXEC".to_string(),
            ],
        }
    }

    /// Fail (exit 2) before any work when the Redis user may not run what
    /// the command needs, naming each missing command, key and channel.
    /// Checked without running them; scripting itself by running the check.
    pub async fn check_permissions(&mut self, needs: Needs) -> anyhow::Result<()> {
        let script = Script::new(scripts::PROBE);
        let mut inv = script.prepare_invoke();
        for line in self.needed(needs) {
            inv.arg(line);
        }
        let mut conn = self.conn.clone();
        let missing: Vec<String> = self
            .call("check permissions on", inv.invoke_async(&mut conn))
            .await?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(Failure::input(format!(
            "the Redis user at {} may not run what cutover needs: {}; grant it (README, \"Minimal ACL\")",
            self.url,
            missing.join("; ")
        )))
    }

    /// Try once to take the deploy lock. Returns the current holder if it is taken.
    pub async fn try_lock(
        &mut self,
        token: &str,
        ttl: Duration,
    ) -> anyhow::Result<Option<LockHolder>> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.keys.lock)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let set: Option<String> = self
            .call("take the deploy lock on", cmd.query_async(&mut conn))
            .await?;
        if set.is_some() {
            return Ok(None);
        }
        // It may have expired in between: then nobody holds it, try again.
        Ok(Some(self.lock_holder().await?.unwrap_or(LockHolder {
            owner: String::new(),
            ttl_ms: Some(0),
        })))
    }

    /// Who holds the deploy lock, and for how long; None when nobody does.
    pub async fn lock_holder(&mut self) -> anyhow::Result<Option<LockHolder>> {
        let key = self.keys.lock.clone();
        let (owner, ttl): (Option<String>, i64) = self
            .read(|mut c| {
                let key = key.clone();
                async move {
                    redis::pipe()
                        .cmd("GET")
                        .arg(&key)
                        .cmd("PTTL")
                        .arg(&key)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(owner.map(|owner| LockHolder {
            owner,
            ttl_ms: (ttl >= 0).then_some(ttl),
        }))
    }

    /// Extend our lock; false if it is no longer ours.
    pub async fn renew_lock(&mut self, token: &str, ttl: Duration) -> anyhow::Result<bool> {
        let script = Script::new(scripts::RENEW);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.lock)
            .arg(token)
            .arg(ttl.as_millis() as u64);
        let mut conn = self.conn.clone();
        let n: i64 = self
            .call("renew the deploy lock on", inv.invoke_async(&mut conn))
            .await?;
        Ok(n == 1)
    }

    /// Delete the lock if it still holds `owner`. True if it did.
    pub async fn unlock(&mut self, owner: &str) -> anyhow::Result<bool> {
        let script = Script::new(scripts::UNLOCK);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.lock).arg(owner);
        let mut conn = self.conn.clone();
        let n: i64 = self
            .call("release the deploy lock on", inv.invoke_async(&mut conn))
            .await?;
        Ok(n == 1)
    }

    /// The target's URL, password masked.
    pub fn name(&self) -> &str {
        &self.url
    }

    /// A fresh handle on the same connection (for the lock renewer).
    pub fn handle(&self) -> Registry {
        Registry {
            conn: self.conn.clone(),
            target: self.target.clone(),
            keys: self.keys.clone(),
            url: self.url.clone(),
            history_limit: self.history_limit,
            timeout: self.timeout,
        }
    }
}

/// Open a connection of the target's kind and PING it, so a bad server
/// fails here, with a clear message, rather than halfway through. The one
/// place that knows the kinds.
async fn open(target: &Target, timeout: Duration) -> anyhow::Result<Conn> {
    let mut conn = match &target.kind {
        Kind::Single(url) => {
            let client = target
                .single_client(url)
                .map_err(|e| bad_settings(target, e))?;
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(100))
                .set_max_delay(Duration::from_secs(1));
            Conn::Single(
                ConnectionManager::new_with_config(client, cfg)
                    .await
                    .map_err(|e| redis_error(target, "connect to", e))?,
            )
        }
        Kind::Cluster(url) => {
            let mut builder = redis::cluster::ClusterClient::builder(vec![url.as_str()])
                .connection_timeout(timeout)
                .response_timeout(timeout);
            if let Some(certs) = &target.certs {
                builder = builder.certs(certs.clone());
            }
            if target.insecure {
                builder = builder.tls(TlsMode::Insecure);
            }
            let client = builder.build().map_err(|e| bad_settings(target, e))?;
            Conn::Cluster(
                client
                    .get_async_connection()
                    .await
                    .map_err(|e| redis_error(target, "connect to", e))?,
            )
        }
        Kind::Sentinel { url, password } => {
            let client = target
                .sentinel_client(url, password.as_deref())
                .map_err(|e| bad_settings(target, e))?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout));
            let conn = SentinelConn {
                state: Arc::new(tokio::sync::Mutex::new(SentinelState {
                    client,
                    master: None,
                    config,
                })),
                db: url.db,
            };
            match conn.master().await {
                Ok(_) => Conn::Sentinel(conn),
                Err(e) if e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel => {
                    return Err(no_master(target, &url.master, &conn).await)
                }
                Err(e) => return Err(redis_error(target, "connect to", e)),
            }
        }
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| redis_error(target, "connect to", e))?;
    Ok(conn)
}

/// A client the crate refused to build: a bad URL (or a TLS file that is
/// not what its key says).
fn bad_settings(target: &Target, e: redis::RedisError) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("PEM") || text.contains("certificate") || text.contains("private key") {
        return Failure::input(format!(
            "the TLS files for Redis at {} are not usable ({text}); redis_ca_file and redis_tls_cert_file take PEM certificates, redis_tls_key_file its PEM private key",
            target.shown
        ));
    }
    let expected = match target.kind {
        Kind::Sentinel { .. } => crate::config::sentinel::EXPECTED,
        _ => "redis://[user:password@]host:port[/db] or rediss://...",
    };
    Failure::input(format!(
        "invalid redis_url {}: {text}; expected {expected}",
        target.shown
    ))
}

/// No Sentinel named a master that is up: say whether they do not know
/// the name (a configuration error) or know it without a master up (a
/// failover under way).
async fn no_master(target: &Target, name: &str, conn: &SentinelConn) -> anyhow::Error {
    let known = async {
        let sentinel = conn
            .state
            .lock()
            .await
            .client
            .async_get_sentinel_client()
            .await?;
        let mut c = sentinel.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(name)
            .query_async::<Value>(&mut c)
            .await
    }
    .await;
    match known {
        Err(e) if e.to_string().contains("No such master") => Failure::input(format!(
            "the Sentinels at {} monitor no master named {name:?}; put the name they use (SENTINEL MASTERS lists them) after the Sentinels in REDIS_URL: {}",
            target.shown,
            crate::config::sentinel::EXPECTED
        )),
        _ => Failure::operation(format!(
            "the Sentinels at {} name no master {name:?} that is up (a failover may be under way); nothing was switched: run again",
            target.shown
        )),
    }
}

/// One line for a Redis failure, with the URL masked and the fix named.
fn redis_error(target: &Target, op: &str, e: redis::RedisError) -> anyhow::Error {
    let masked_url = target.shown.as_str();
    let code = e.code().unwrap_or("");
    // A server error as Redis wrote it: "WRONGTYPE key holds ...".
    let text = match (e.code(), e.detail()) {
        (Some(c), Some(d)) => format!("{c} {d}"),
        _ => e.to_string(),
    };
    let lower = text.to_ascii_lowercase();
    let sentinel = matches!(target.kind, Kind::Sentinel { .. });
    if matches!(code, "WRONGPASS" | "NOAUTH")
        || e.kind() == redis::ErrorKind::AuthenticationFailed
        || lower.contains("wrongpass")
        || lower.contains("noauth")
        || lower.contains("authentication failed")
    {
        let fix = if sentinel {
            "fix the master's password in REDIS_URL, or the Sentinels' in redis_sentinel_password"
        } else {
            "fix the password in REDIS_URL"
        };
        return Failure::input(format!(
            "Redis at {masked_url} rejected the credentials ({}); {fix}",
            if code.is_empty() {
                "authentication failed"
            } else {
                code
            }
        ));
    }
    if code == "NOPERM" || text.contains("NOPERM") {
        return Failure::input(format!(
            "the Redis user at {masked_url} may not run what cutover needs ({}); grant it (README, \"Minimal ACL\")",
            e.detail().unwrap_or(&text).trim()
        ));
    }
    if code == "READONLY" || text.contains("READONLY") {
        if target.follows_failover() {
            return Failure::operation(format!(
                "Redis at {masked_url} refused to {op} it as READONLY: its master was demoted by a failover while cutover ran; nothing was switched: run again"
            ));
        }
        return Failure::input(format!(
            "Redis at {masked_url} is a read-only replica (READONLY); point REDIS_URL at the primary"
        ));
    }
    if lower.contains("cluster support disabled") {
        return Failure::input(format!(
            "Redis at {masked_url} is not a Redis Cluster; turn redis_cluster off (--redis-cluster, CUTOVER_REDIS_CLUSTER, cutover.toml)"
        ));
    }
    if (code == "MOVED" || code == "ASK" || text.starts_with("Moved")) && !target.follows_failover()
    {
        return Failure::input(format!(
            "Redis at {masked_url} is a Redis Cluster node ({code}); turn redis_cluster on (--redis-cluster, CUTOVER_REDIS_CLUSTER=true or redis_cluster = true)"
        ));
    }
    if e.kind() == redis::ErrorKind::InvalidClientConfig {
        let fix = if lower.contains("keymismatch") || lower.contains("keys may not be consistent") {
            "redis_tls_key_file is not the private key of redis_tls_cert_file: give the key that certificate was made for"
        } else {
            "check redis_url and the TLS settings (redis_ca_file, redis_tls_cert_file, redis_tls_key_file)"
        };
        return Failure::input(format!("cannot {op} Redis at {masked_url}: {text}; {fix}"));
    }
    if let Some(fix) = tls_fix(&lower) {
        return Failure::input(format!(
            "cannot {op} Redis at {masked_url} over TLS: {text}; {fix}"
        ));
    }
    let again = if target.follows_failover() {
        "; nothing was switched: if a failover or slot migration is under way, run again in a few seconds"
    } else {
        ""
    };
    if e.is_connection_refusal() || e.is_io_error() || e.is_timeout() {
        return Failure::operation(format!(
            "cannot {op} Redis at {masked_url}: {text}; check REDIS_URL and that Redis is running and reachable{again}"
        ));
    }
    Failure::operation(format!("cannot {op} Redis at {masked_url}: {text}{again}"))
}

/// The fix for a TLS handshake the server or cutover refused, from the
/// error's text (rustls' words); None when it is not such an error.
fn tls_fix(lower: &str) -> Option<&'static str> {
    if lower.contains("certificaterequired") || lower.contains("certificate required") {
        Some("this Redis asks for a client certificate: set redis_tls_cert_file and redis_tls_key_file")
    } else if lower.contains("unknownissuer")
        || lower.contains("unknown ca")
        || lower.contains("badsignature")
    {
        Some("its certificate is not signed by a CA cutover trusts: set redis_ca_file to the PEM of the CA that signed it (or, for a provider's self-signed certificate, redis_tls_insecure = true)")
    } else if lower.contains("notvalidforname") {
        Some("its certificate is not made out for this host name: connect with the name the certificate names")
    } else if lower.contains("invalid peer certificate") || lower.contains("decrypterror") {
        Some("check redis_ca_file, or the certificate the server presents")
    } else if lower.contains("alert")
        && (lower.contains("badcertificate")
            || lower.contains("bad certificate")
            || lower.contains("decrypt"))
    {
        Some("the server refused the client certificate: check redis_tls_cert_file and redis_tls_key_file against the CA the server trusts")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{exit_code, one_line};

    fn target(url: &str, cluster: bool) -> Target {
        let mut config = Config::default();
        config.redis_cluster = cluster;
        Target::new(url, &config).unwrap()
    }

    fn readonly() -> redis::RedisError {
        redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
            "READONLY",
            "You can't write against a read only replica.".to_string(),
        ))
    }

    #[test]
    fn readonly_is_a_failover_where_the_primary_moves_and_a_fix_where_it_cannot() {
        // A plain URL at a replica: the configuration is wrong.
        let err = redis_error(&target("redis://h:1", false), "activate on", readonly());
        assert_eq!(exit_code(&err), 2, "{err}");
        assert!(one_line(&err).contains("point REDIS_URL at the primary"));
        // Behind Sentinel or in a cluster, the master was demoted under us.
        for t in [
            target("redis+sentinel://:pw@h:26379/mymaster", false),
            target("redis://h:1", true),
        ] {
            let err = redis_error(&t, "activate on", readonly());
            assert_eq!(exit_code(&err), 1, "{err}");
            let line = one_line(&err);
            assert!(
                line.contains("READONLY") && line.contains("nothing was switched: run again"),
                "{line}"
            );
            assert!(!line.contains("pw@"), "{line}");
        }
    }
}

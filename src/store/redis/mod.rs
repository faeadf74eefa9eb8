//! The Redis side: the contract the Rails app reads (docs/redis.md, "Redis
//! contract") and the atomic, compare-and-set activation. How a connection
//! is made and its errors are told is in [`connection`]; the deploy lock and
//! the permission check in [`access`].

mod access;
pub use access::BroadUser;
mod connection;
mod writes;

pub use connection::Endpoint;
use std::time::Duration;

use redis::RedisResult;

use crate::config::{mask_url, Config};
use crate::contract::{ActivationEvent, Keys, Pin};
use crate::error::Failure;
use crate::release::ReleaseRecord;
use crate::state::{LiveState, Stored};

use super::scripts;
use connection::{open, redis_error, timed_out, Conn};

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
    /// A rollout runs (its canary, as stored) and the switch refuses then:
    /// nothing changed.
    RolloutRunning(String),
    /// `rollout complete`: the canary is no longer the release (its
    /// release now: '' none, '?' unreadable); nothing changed.
    CanaryChanged(String),
}

/// How a rollout step went on one Redis target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutApplied {
    /// Written; the canary's release before ('' none).
    Applied {
        canary_before: String,
    },
    /// `current` or the canary was not what was planned against.
    LostRace {
        current: String,
        canary: String,
    },
    Pinned(Pin),
}

pub struct Registry {
    conn: Conn,
    endpoint: Endpoint,
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
    /// The lock key holds this type of value, not a string (something else
    /// wrote it); `owner` is then empty.
    pub wrong_type: Option<String>,
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
    /// Read the readers' reports (`--wait-converged`, after the switch:
    /// checked before it).
    Fleet,
}

impl Registry {
    /// Connect and PING, within `redis_timeout_secs` in all: a server that
    /// never answers (a `rediss://` URL pointed at a plain-TCP Redis, a
    /// firewall dropping packets) fails in that time, saying what is likely.
    pub async fn connect(config: &Config) -> anyhow::Result<Registry> {
        let app = config.app()?;
        let masked = mask_url(&config.redis_url);
        let timeout = Duration::from_secs(config.redis_timeout_secs);
        let endpoint = Endpoint::new(&config.redis_url, config)?;
        let conn = match tokio::time::timeout(timeout, open(&endpoint, timeout)).await {
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
            endpoint,
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
            Ok(r) => r.map_err(|e| redis_error(&self.endpoint, op, e)),
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
                Err(e) => return Err(redis_error(&self.endpoint, "read from", e)),
            }
        }
    }

    /// The type of the value at `key` ("none" when absent).
    async fn key_type(&mut self, key: &str) -> anyhow::Result<String> {
        let owned = key.to_string();
        self.read(|mut c| {
            let key = owned.clone();
            async move { redis::cmd("TYPE").arg(&key).query_async(&mut c).await }
        })
        .await
    }

    /// A key that MGET reported absent may hold another type: say so,
    /// naming the key, rather than treat it as absent.
    async fn absent_or_wrong_type(&mut self, key: &str) -> anyhow::Result<()> {
        let kind = self.key_type(key).await?;
        if kind == "none" {
            return Ok(());
        }
        Err(self.wrong_type(key, &kind))
    }

    /// One of the app's keys holds a value of the wrong type (something
    /// else wrote it): the error names the key, its type, and the command
    /// that clears it. The lock's is a refusal (exit 3), like a held lock.
    pub(crate) fn wrong_type(&self, key: &str, kind: &str) -> anyhow::Error {
        let k = &self.keys;
        let (what, fix) = if key == k.lock {
            (
                "the deploy lock (a string)",
                "no deploy can take the lock until it goes. If nothing of yours uses this key, `cutover unlock --force` deletes it",
            )
        } else if key == k.pin {
            (
                "a pin (a string)",
                "If nothing of yours uses this key, `cutover unpin` deletes it",
            )
        } else if key == k.rolled_back {
            (
                "the set of releases rolled back from",
                "a plain `cutover rollback` cannot tell where to go. `cutover rollback --to RELEASE` or `cutover activate RELEASE` replaces it",
            )
        } else {
            (
                "a string",
                "Check what uses this key, then delete it (a deploy or `cutover activate` writes it again)",
            )
        };
        let message = format!(
            "{key} in Redis at {} holds a {kind}, not {what}: something else wrote it; {fix}",
            self.url
        );
        if key == k.lock {
            Failure::refused(message)
        } else {
            Failure::operation(message)
        }
    }

    /// A WRONGTYPE error a script gave on one of the app's keys, told as
    /// [`Registry::wrong_type`] tells it; None for any other error.
    fn explain_wrong_type(&self, e: &redis::RedisError) -> Option<anyhow::Error> {
        if e.code() != Some("WRONGTYPE") {
            return None;
        }
        // The scripts say "WRONGTYPE <key> holds a <type>, not a <want>".
        let mut words = e.detail()?.split_whitespace();
        let key = words.next()?;
        let kind = words.nth(2)?.trim_end_matches(',');
        let k = &self.keys;
        [&k.lock, &k.pin, &k.rolled_back]
            .iter()
            .any(|ours| ours.as_str() == key)
            .then(|| self.wrong_type(key, kind))
    }

    /// Live release id and manifest, in one round trip (MGET). A manifest
    /// that is missing or not JSON is reported in `damage`, never an error:
    /// switching must not depend on the old live manifest.
    pub async fn live(&mut self) -> anyhow::Result<LiveState> {
        let keys = [
            self.keys.current.clone(),
            self.keys.manifest.clone(),
            self.keys.pin.clone(),
            self.keys.signature.clone(),
            self.keys.pruned.clone(),
            self.keys.canary.clone(),
        ];
        let (cur, man) = (keys[0].clone(), keys[1].clone());
        let values: Vec<Option<String>> = self
            .read(|mut c| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await }
            })
            .await?;
        let mut values = values.into_iter();
        let (current, manifest, pin, signature, pruned, canary) = (
            values.next().flatten(),
            values.next().flatten(),
            values.next().flatten(),
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
        // A pin key of another type pins nothing cutover wrote, but the
        // switch cannot write it: shown as an unreadable pin, which `unpin`
        // deletes.
        let pin = match pin {
            None => match self.key_type(&self.keys.pin.clone()).await? {
                kind if kind == "none" => None,
                kind => Some(format!(
                    "{} holds a {kind}, not a pin: something else wrote it; `cutover unpin` deletes it",
                    self.keys.pin
                )),
            },
            text => text,
        };
        // A canary key of another type, or JSON that is not a canary, is
        // damage a rollout replaces and `rollout abort` deletes.
        // The release as the scripts read it (CANARY_OF in scripts.rs).
        let canary_stored = canary.as_ref().map(|text| {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("release")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "?".into())
        });
        let canary = match canary {
            Some(text) => Some(crate::canary::Canary::parse(&text)),
            None => match self.key_type(&self.keys.canary.clone()).await? {
                kind if kind == "none" => None,
                kind => Some(Err(format!("it holds a {kind}"))),
            },
        };
        let canary_stored = match (&canary, canary_stored) {
            (Some(Err(_)), None) => Some("?".to_string()),
            (_, stored) => stored,
        };
        let canary_damage = match &canary {
            Some(Err(why)) => Some(format!(
                "{} is unreadable ({why}); readers serve no canary. `cutover rollout abort` deletes it",
                self.keys.canary
            )),
            _ => None,
        };
        let mut live = LiveState {
            canary: canary.and_then(Result::ok),
            canary_damage,
            canary_stored,
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
            pruned,
            targets: Vec::new(),
            signature,
            manifest_sha256: manifest
                .as_deref()
                .map(|m| crate::signing::sha256_hex(m.as_bytes())),
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
            .zip(ids)
            .map(|(text, id)| match text {
                None => Stored::Missing,
                Some(t) => match serde_json::from_str::<ReleaseRecord>(&t) {
                    // A record under another release's key (copied, or
                    // written by hand) is as damaged as one that is not
                    // JSON: activating must write the release's own again.
                    Ok(r) if r.id != *id => Stored::Broken(format!(
                        "the record of another release ({}), not {id}'s",
                        r.id
                    )),
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
        let kind = self.key_type(&key).await?;
        if kind != "none" && kind != "set" {
            return Err(self.wrong_type(&key, &kind));
        }
        self.read(|mut c| {
            let key = key.clone();
            async move { redis::cmd("SMEMBERS").arg(&key).query_async(&mut c).await }
        })
        .await
    }

    /// The retired releases and when each stopped being served (ms). An
    /// absent set is empty; a key of another type is an error naming it.
    pub async fn retired(&mut self) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
        let key = self.keys.retired.clone();
        let kind = self.key_type(&key).await?;
        if kind == "none" {
            return Ok(Default::default());
        }
        if kind != "zset" {
            return Err(self.wrong_type(&key, &kind));
        }
        let pairs: Vec<(String, f64)> = self
            .read(|mut c| {
                let key = key.clone();
                async move {
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(pairs.into_iter().map(|(id, at)| (id, at as i64)).collect())
    }

    /// The readers' reports (docs/redis.md, "The fleet"): each member of
    /// the fleet set with its report (None when it expired before the
    /// member was trimmed). An absent set is an empty fleet; a key of
    /// another type is an error naming it.
    pub async fn fleet(&mut self) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let key = self.keys.fleet.clone();
        let kind = self.key_type(&key).await?;
        if kind == "none" {
            return Ok(Vec::new());
        }
        if kind != "zset" {
            return Err(self.wrong_type(&key, &kind));
        }
        let ids: Vec<String> = self
            .read(|mut c| {
                let key = key.clone();
                async move {
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        // The reports share the app's slot: one MGET per 500.
        for chunk in ids.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|id| self.keys.process(id)).collect();
            let reports: Vec<Option<String>> = self
                .read(|mut c| {
                    let keys = keys.clone();
                    async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await }
                })
                .await?;
            out.extend(chunk.iter().cloned().zip(reports));
        }
        Ok(out)
    }

    /// The endpoint's URL, password masked.
    pub fn name(&self) -> &str {
        &self.url
    }

    /// A fresh handle on the same connection (for the lock renewer).
    pub fn handle(&self) -> Registry {
        Registry {
            conn: self.conn.clone(),
            endpoint: self.endpoint.clone(),
            keys: self.keys.clone(),
            url: self.url.clone(),
            history_limit: self.history_limit,
            timeout: self.timeout,
        }
    }
}

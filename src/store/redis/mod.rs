//! The Redis side: the contract the Rails app reads (docs/redis.md, "Redis
//! contract") and the atomic, compare-and-set activation. How a connection
//! is made and its errors are told is in [`connection`]; the deploy lock and
//! the permission check in [`access`].

mod access;
mod connection;

pub use connection::Endpoint;
use std::time::Duration;

use redis::{RedisResult, Script};

use crate::config::{mask_url, Config};
use crate::contract::{ActivationEvent, Keys, Pin, PinChange};
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
        ];
        let (cur, man) = (keys[0].clone(), keys[1].clone());
        let values: Vec<Option<String>> = self
            .read(|mut c| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await }
            })
            .await?;
        let mut values = values.into_iter();
        let (current, manifest, pin, signature, pruned) = (
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
                // DEL, not GETDEL: it also clears a pin key of another type.
                let mut c = redis::cmd("DEL");
                c.arg(&self.keys.pin);
                let n: i64 = self
                    .call("change the pin on", c.query_async(&mut conn))
                    .await?;
                return Ok(n > 0);
            }
        };
        let before: anyhow::Result<Option<String>> = self
            .call("change the pin on", cmd.query_async(&mut conn))
            .await;
        if before.is_err() {
            let key = self.keys.pin.clone();
            let kind = self.key_type(&key).await?;
            if kind != "string" && kind != "none" {
                return Err(self.wrong_type(&key, &kind));
            }
        }
        Ok(before?.is_some())
    }

    /// Mark that a prune is about to delete (`cutover:{APP}:pruned`): a
    /// deploy that listed the bucket before sees another mark under the
    /// lock and lists it again.
    pub async fn mark_pruned(&mut self, mark: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.keys.pruned).arg(mark);
        self.call("mark a prune on", cmd.query_async::<()>(&mut conn))
            .await
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
            .arg(if replace_broken { "1" } else { "0" })
            // An unsigned record gains the signature of a signed one.
            .arg(if record.signature.is_some() { "1" } else { "0" });
        let mut conn = self.conn.clone();
        let _: i64 = self
            .call("record a release on", inv.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    /// Switch the live release to `event.release` with `manifest` and its
    /// `signature` (None: deleted) in one atomic step, if `current` is
    /// still `event.previous` (or `force`), doing `pin` with the pin and
    /// marking `rolled_back` as a release that was rolled back from.
    #[allow(clippy::too_many_arguments)]
    pub async fn activate(
        &mut self,
        event: &ActivationEvent,
        manifest: &serde_json::Value,
        signature: Option<&str>,
        force: bool,
        pin: &PinChange,
        rolled_back: Option<&str>,
    ) -> anyhow::Result<Activation> {
        let (expected, id) = (event.previous.as_deref(), event.release.as_str());
        // The bytes a signature covers: the one serialization.
        let manifest = crate::contract::manifest_text(manifest);
        let event_json = serde_json::to_string(event).expect("events serialize");
        let script = Script::new(scripts::ACTIVATE);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.current)
            .key(&self.keys.manifest)
            .key(&self.keys.history)
            .key(self.keys.release(id))
            .key(&self.keys.pin)
            .key(&self.keys.rolled_back)
            .key(&self.keys.signature)
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
        inv.arg(signature.unwrap_or(""));
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
            Err(e) => Err(self
                .explain_wrong_type(&e)
                .unwrap_or_else(|| redis_error(&self.endpoint, "activate on", e))
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
        let original = crate::error::one_line(&redis_error(&self.endpoint, "activate on", e));
        // Over a new connection: the old one may still be waiting for the
        // lost answer. The script is atomic; it has either run or not. The
        // new connection finds the primary again (through Sentinel, or the
        // cluster's slots), which may take a failover's time: try until
        // twice the timeout has passed.
        let deadline = tokio::time::Instant::now() + self.timeout * 2;
        let mut delay = Duration::from_millis(100);
        let live = loop {
            let fresh =
                tokio::time::timeout(self.timeout, open(&self.endpoint, self.timeout)).await;
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

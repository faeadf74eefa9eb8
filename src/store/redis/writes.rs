//! The contract's writes: the pin, the prune mark, registering and
//! forgetting releases, and the atomic, compare-and-set activation (with
//! reading its outcome back when the answer was lost).

use std::time::Duration;

use redis::{RedisResult, Script};

use super::connection::{open, redis_error, timed_out};
use super::{scripts, Activation, Registry, RolloutApplied};
use crate::contract::{ActivationEvent, CanaryMode, Pin, PinChange};
use crate::error::Failure;
use crate::release::ReleaseRecord;

impl Registry {
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
        canary: CanaryMode,
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
            .key(&self.keys.canary)
            .key(&self.keys.canary_manifest)
            .key(&self.keys.canary_signature)
            .key(&self.keys.retired)
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
        inv.arg(signature.unwrap_or(""))
            .arg(canary.as_str())
            .arg(crate::release::now().1);
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
            Ok((status, canary)) if status == "rollout" => Ok(Activation::RolloutRunning(canary)),
            Ok((status, canary)) if status == "canary" => Ok(Activation::CanaryChanged(canary)),
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

    /// Set, change or take off the canary in one atomic step (the ROLLOUT
    /// script), if `current` and the canary's release are still
    /// `expect_current` and `expect_canary` ('' none, '?' unreadable).
    /// `canary`: the canary's JSON, with its manifest and signature when it
    /// is a new one ('raise' writes the JSON alone); None aborts.
    #[allow(clippy::too_many_arguments)]
    pub async fn rollout(
        &mut self,
        event: &ActivationEvent,
        expect_current: &str,
        expect_canary: &str,
        canary: Option<&crate::canary::Canary>,
        manifest: Option<&serde_json::Value>,
        signature: Option<&str>,
    ) -> anyhow::Result<RolloutApplied> {
        let mode = match (canary, manifest) {
            (None, _) => "abort",
            (Some(_), Some(_)) => "set",
            (Some(_), None) => "raise",
        };
        let release = canary.map(|c| c.release.as_str()).unwrap_or("");
        let script = Script::new(scripts::ROLLOUT);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.current)
            .key(&self.keys.canary)
            .key(&self.keys.canary_manifest)
            .key(&self.keys.canary_signature)
            .key(&self.keys.history)
            .key(&self.keys.pin)
            .key(&self.keys.retired)
            .key(self.keys.release(release))
            .arg(mode)
            .arg(expect_current)
            .arg(expect_canary)
            .arg(
                canary
                    .map(|c| serde_json::to_string(c).expect("canaries serialize"))
                    .unwrap_or_default(),
            )
            .arg(
                manifest
                    .map(crate::contract::manifest_text)
                    .unwrap_or_default(),
            )
            .arg(signature.unwrap_or(""))
            .arg(serde_json::to_string(event).expect("events serialize"))
            .arg(self.history_limit)
            .arg(&self.keys.channel)
            .arg(crate::release::now().1)
            .arg(release);
        let mut conn = self.conn.clone();
        let result: RedisResult<(String, String, String)> =
            tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn))
                .await
                .unwrap_or_else(|_| Err(timed_out(self.timeout)));
        match result {
            Ok((status, _, before)) if status == "ok" => Ok(RolloutApplied::Applied {
                canary_before: before,
            }),
            Ok((status, current, canary)) if status == "lost" => {
                Ok(RolloutApplied::LostRace { current, canary })
            }
            Ok((status, pin, _)) if status == "pinned" => Ok(RolloutApplied::Pinned(
                serde_json::from_str(&pin).unwrap_or(Pin {
                    release: None,
                    by: None,
                    at: String::new(),
                    message: Some(pin),
                }),
            )),
            Ok((status, _, _)) if status == "unregistered" => Err(Failure::operation(format!(
                "release {release} is not registered in Redis ({} missing); deploy it again",
                self.keys.release(release)
            ))),
            Ok((status, _, _)) => Err(Failure::operation(format!(
                "unexpected rollout reply {status:?} from Redis"
            ))),
            // The answer was lost: the script ran or not. Never guess.
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                Err(Failure::operation(format!(
                    "{}; the rollout may or may not have been written: run `cutover status` before doing anything else",
                    crate::error::one_line(&redis_error(&self.endpoint, "roll out on", e))
                )))
            }
            Err(e) => Err(self
                .explain_wrong_type(&e)
                .unwrap_or_else(|| redis_error(&self.endpoint, "roll out on", e))
                .context("nothing was changed")
                .context("the rollout was refused")),
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
}

//! What a command may do on the app's keys: the permission check before
//! any work, and the deploy lock's commands (taken with NX, renewed and
//! released only by its owner's token).

use std::time::Duration;

use redis::Script;

use crate::error::Failure;

use super::{scripts, LockHolder, Needs, Registry};

/// The probe that tells a deployer (it runs scripts on the app's keys).
const SCRIPTS: &str = "run scripts";

/// A Redis user that may do more than a reader: what, of the live keys'
/// writes, FLUSHALL and CONFIG SET.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadUser {
    pub user: String,
    pub may: Vec<String>,
}

impl Registry {
    /// The commands a command kind sends, with this app's keys and channel.
    fn needed(&self, needs: Needs) -> Vec<String> {
        let k = &self.keys;
        match needs {
            Needs::Unlock => vec![
                "SCRIPT LOAD x".to_string(),
                format!("GET {}", k.lock),
                format!("TYPE {}", k.lock),
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
            Needs::Fleet => vec![
                format!("TYPE {}", k.fleet),
                format!("ZRANGE {} 0 -1", k.fleet),
                format!("MGET {}", k.process("probe")),
            ],
            Needs::Prune => vec![
                "SCRIPT LOAD x".to_string(),
                format!("SET {} x NX PX 1", k.lock),
                format!("GET {}", k.lock),
                format!("PEXPIRE {} 1", k.lock),
                format!("DEL {}", k.lock),
                format!("SET {} x", k.pruned),
                format!("DEL {}", k.release("probe")),
                format!("ZREM {} x", k.releases),
                format!("SREM {} x", k.rolled_back),
                "MULTI".to_string(),
                "EXEC".to_string(),
            ],
        }
    }

    /// The other Redis users (enabled, and not this connection's) that may
    /// do more than a reader or a deployer: write the app's live keys
    /// without being a deployer (one that runs scripts on them, as cutover
    /// switches), or wipe or reconfigure the server; each with what it
    /// may do, as `ACL DRYRUN` says. None when this user may
    /// not list users or dry-run commands (the minimal ACL, most managed
    /// services).
    pub async fn broad_users(&mut self) -> anyhow::Result<Option<Vec<BroadUser>>> {
        let k = &self.keys;
        let probes: Vec<(String, Vec<String>)> = [&k.current, &k.manifest, &k.signature]
            .into_iter()
            .map(|key| {
                (
                    format!("write {key}"),
                    vec!["SET".into(), key.clone(), "x".into()],
                )
            })
            .chain([
                (
                    SCRIPTS.to_string(),
                    ["EVAL", "return 1", "1", &k.current]
                        .map(String::from)
                        .to_vec(),
                ),
                ("run FLUSHALL".to_string(), vec!["FLUSHALL".to_string()]),
                (
                    "run CONFIG SET".to_string(),
                    ["CONFIG", "SET", "maxmemory", "0"]
                        .map(String::from)
                        .to_vec(),
                ),
            ])
            .collect();
        let mut conn = self.conn.clone();
        let t = self.timeout;
        let me: Option<String> =
            tokio::time::timeout(t, redis::cmd("ACL").arg("WHOAMI").query_async(&mut conn))
                .await
                .ok()
                .and_then(Result::ok);
        let list: Option<Vec<String>> =
            tokio::time::timeout(t, redis::cmd("ACL").arg("LIST").query_async(&mut conn))
                .await
                .ok()
                .and_then(Result::ok);
        let (Some(me), Some(list)) = (me, list) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for line in list {
            let mut words = line.split_whitespace().skip(1);
            let (Some(user), Some(state)) = (words.next(), words.next()) else {
                continue;
            };
            if user == me || state != "on" {
                continue;
            }
            let mut may = Vec::new();
            let mut scripts = false;
            for (what, args) in &probes {
                let reply: Option<String> = tokio::time::timeout(
                    t,
                    redis::cmd("ACL")
                        .arg("DRYRUN")
                        .arg(user)
                        .arg(args)
                        .query_async(&mut conn),
                )
                .await
                .ok()
                .and_then(Result::ok);
                match reply.as_deref() {
                    Some("OK") if what == SCRIPTS => scripts = true,
                    Some("OK") => may.push(what.clone()),
                    Some(_) => {}
                    None => return Ok(None),
                }
            }
            // A user that runs scripts on the keys and may write them is a
            // deployer like cutover's own (it switches by script): broad
            // only with what no printed line grants (FLUSHALL, CONFIG SET).
            if scripts && may.iter().all(|w| w.starts_with("write ")) {
                may.clear();
            }
            if !may.is_empty() {
                out.push(BroadUser {
                    user: user.to_string(),
                    may,
                });
            }
        }
        Ok(Some(out))
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
            "the Redis user at {} may not run what cutover needs: {}; grant it (docs/redis.md, \"Minimal ACL\")",
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
        match self.lock_holder().await? {
            Some(LockHolder {
                wrong_type: Some(kind),
                ..
            }) => Err(self.wrong_type(&self.keys.lock, &kind)),
            holder => Ok(Some(holder.unwrap_or(LockHolder {
                owner: String::new(),
                ttl_ms: Some(0),
                wrong_type: None,
            }))),
        }
    }

    /// Who holds the deploy lock, and for how long; None when nobody does.
    pub async fn lock_holder(&mut self) -> anyhow::Result<Option<LockHolder>> {
        let key = self.keys.lock.clone();
        let kind = self.key_type(&key).await?;
        if kind != "string" && kind != "none" {
            let ttl: i64 = self
                .read(|mut c| {
                    let key = key.clone();
                    async move { redis::cmd("PTTL").arg(&key).query_async(&mut c).await }
                })
                .await?;
            return Ok(Some(LockHolder {
                owner: String::new(),
                ttl_ms: (ttl >= 0).then_some(ttl),
                wrong_type: Some(kind),
            }));
        }
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
            wrong_type: None,
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
        self.unlock_held(owner, None).await
    }

    /// Delete the lock if it still holds `owner`, or, with `wrong_type`,
    /// a value of that type (a key something else wrote). True if it did.
    pub async fn unlock_held(
        &mut self,
        owner: &str,
        wrong_type: Option<&str>,
    ) -> anyhow::Result<bool> {
        let script = Script::new(scripts::UNLOCK);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.lock)
            .arg(owner)
            .arg(wrong_type.unwrap_or("string"));
        let mut conn = self.conn.clone();
        let n: i64 = self
            .call("release the deploy lock on", inv.invoke_async(&mut conn))
            .await?;
        Ok(n == 1)
    }
}

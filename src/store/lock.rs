//! The deploy lock: one owner at a time per app, with a TTL renewed while
//! the owner works, released only by its owner (docs/redis.md, "Redis contract").
//! With several Redis targets, one lock on each, taken in a fixed order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Failure;
use crate::events::{Event, Observer};

use super::redis::{LockHolder, Registry};
use super::registries::Registries;

/// How the holder's lock ends, for messages.
fn expiry(holder: &LockHolder, key: &str) -> String {
    match holder.ttl_ms {
        Some(ms) => format!("it expires within {}s unless its owner renews it", (ms + 999) / 1000),
        None => format!(
            "it has NO expiry, so it will not clear by itself: no running cutover sets it that way. \
             If no deploy is running, clear it with `cutover unlock --force` (key {key})"
        ),
    }
}

/// The deploy lock, held while a command writes, renewed in the background.
pub struct LockGuard {
    /// Another deploy held the lock first: what it planned against may have changed.
    pub waited: bool,
    /// One per Redis target, in the order taken.
    held: Vec<Held>,
}

/// The lock on one Redis target.
struct Held {
    registry: Registry,
    token: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl LockGuard {
    /// Take the lock on every target, in a fixed order (by name), waiting up
    /// to the configured time for each; then exit 3 naming the holder, with
    /// the locks already taken given back.
    pub async fn acquire(
        config: &Config,
        targets: &Registries,
        owner: &str,
        observer: &dyn Observer,
    ) -> anyhow::Result<LockGuard> {
        let token = format!(
            "{owner}/{}/{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let deadline = Instant::now() + Duration::from_secs(config.lock_wait_secs);
        let mut guard = LockGuard {
            waited: false,
            held: Vec::new(),
        };
        for registry in targets.lock_order() {
            match Held::acquire(config, registry, &token, deadline, observer).await {
                Ok((held, waited)) => {
                    guard.waited |= waited;
                    guard.held.push(held);
                }
                Err(e) => {
                    guard.release().await;
                    return Err(e);
                }
            }
        }
        Ok(guard)
    }

    /// Fails if the lock expired under us (e.g. the process was stopped too long).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.held.iter().any(|h| h.lost.load(Ordering::SeqCst)) {
            return Err(Failure::refused(
                "the deploy lock expired while this deploy ran, so another deploy may be running; nothing was switched. Run it again",
            ));
        }
        Ok(())
    }

    pub async fn release(self) {
        for held in self.held.into_iter().rev() {
            held.release().await;
        }
    }
}

impl Held {
    /// Wait until `deadline` for the lock on one target. Returns whether
    /// another deploy held it first.
    async fn acquire(
        config: &Config,
        registry: &Registry,
        token: &str,
        deadline: Instant,
        observer: &dyn Observer,
    ) -> anyhow::Result<(Held, bool)> {
        let mut reg = registry.handle();
        let token = token.to_string();
        let ttl = Duration::from_secs(config.lock_ttl_secs);
        let mut announced = false;
        loop {
            match reg.try_lock(&token, ttl).await? {
                None => break,
                // The lock expired between our SET NX and the GET: try again at once.
                Some(holder) if holder.owner.is_empty() => continue,
                Some(holder) => {
                    let key = reg.keys.lock.clone();
                    if Instant::now() >= deadline {
                        return Err(Failure::refused(format!(
                            "another deploy of this app holds the lock ({:?}, key {key}); waited {}s; {}",
                            holder.owner,
                            config.lock_wait_secs,
                            expiry(&holder, &key)
                        )));
                    }
                    if !announced {
                        observer.event(Event::Info(format!(
                            "waiting for the deploy lock held by {}; {}",
                            holder.owner,
                            expiry(&holder, &key)
                        )));
                        announced = true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let mut reg = reg.handle();
            let token = token.clone();
            let lost = lost.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match reg.renew_lock(&token, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {} // try again next tick; the TTL covers two misses
                    }
                }
            })
        };
        Ok((
            Held {
                registry: reg,
                token,
                lost,
                renewer,
            },
            announced,
        ))
    }

    async fn release(mut self) {
        self.renewer.abort();
        let _ = self.registry.unlock(&self.token).await;
    }
}

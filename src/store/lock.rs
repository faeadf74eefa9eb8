//! The deploy lock: one owner at a time per app, with a TTL renewed while
//! the owner works, released only by its owner (README, "Redis contract").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Failure;
use crate::events::{Event, Observer};

use super::redis::{LockHolder, Registry};

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
    registry: Registry,
    token: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl LockGuard {
    /// Wait up to the configured time for the lock; then exit 3 naming the holder.
    pub async fn acquire(
        config: &Config,
        registry: &Registry,
        owner: &str,
        observer: &dyn Observer,
    ) -> anyhow::Result<LockGuard> {
        let mut reg = registry.handle();
        let token = format!(
            "{owner}/{}/{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let ttl = Duration::from_secs(config.lock_ttl_secs);
        let deadline = Instant::now() + Duration::from_secs(config.lock_wait_secs);
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
        Ok(LockGuard {
            waited: announced,
            registry: reg,
            token,
            lost,
            renewer,
        })
    }

    /// Fails if the lock expired under us (e.g. the process was stopped too long).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Failure::refused(
                "the deploy lock expired while this deploy ran, so another deploy may be running; nothing was switched. Run it again",
            ));
        }
        Ok(())
    }

    pub async fn release(mut self) {
        self.renewer.abort();
        let _ = self.registry.unlock(&self.token).await;
    }
}

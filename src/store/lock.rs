//! The deploy lock: one owner at a time per app, with a TTL renewed while
//! the owner works, released only by its owner (README, "Redis contract").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Failure;
use crate::events::{Event, Observer};

use super::redis::Registry;

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
                Some(holder) if holder.is_empty() => continue,
                Some(holder) => {
                    if Instant::now() >= deadline {
                        return Err(Failure::refused(format!(
                            "another deploy of this app holds the lock ({holder:?}, key {}); waited {}s. \
                             Wait for it to finish; a crashed deploy's lock expires within {}s",
                            reg.keys.lock, config.lock_wait_secs, config.lock_ttl_secs
                        )));
                    }
                    if !announced {
                        observer.event(Event::Info(format!(
                            "waiting for the deploy lock held by {holder}"
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

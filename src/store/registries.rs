//! The Redis targets the app reads: one Redis, or several (pods), each with
//! its own copy of the contract. One Redis is the case of one target.
//!
//! Reads that plan (records, history, release ids) come from the first
//! target; `live` reads every target; writes before the switch (register,
//! pin, forget) go to every target and are idempotent, so a rerun repairs a
//! target that missed them; the executor switches each target that does
//! not serve the release yet, each atomically, and reports per target.

use futures::future::join_all;

use crate::config::Config;
use crate::contract::{ActivationEvent, Keys, Pin};
use crate::release::ReleaseRecord;
use crate::state::{LiveState, Stored, TargetLive};

use super::redis::{LockHolder, Needs, Registry};

pub struct Registries {
    /// In the configured order (never empty).
    regs: Vec<Registry>,
}

impl Registries {
    /// Connect to every target at once. Any that cannot be reached fails
    /// the command before it does anything.
    pub async fn connect(config: &Config) -> anyhow::Result<Registries> {
        let configs: Vec<Config> = config
            .redis_urls
            .iter()
            .map(|u| config.for_redis(u))
            .collect();
        let regs = join_all(configs.iter().map(Registry::connect)).await;
        let regs = regs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Registries { regs })
    }

    pub fn keys(&self) -> &Keys {
        &self.regs[0].keys
    }

    /// More than one target.
    pub fn several(&self) -> bool {
        self.regs.len() > 1
    }

    /// The targets' names (URLs, passwords masked), in order.
    pub fn names(&self) -> Vec<String> {
        self.regs.iter().map(|r| r.name().to_string()).collect()
    }

    /// The fleet reporting to each target, in order, with the target's name.
    pub async fn fleets(&mut self) -> anyhow::Result<Vec<(String, crate::fleet::Fleet)>> {
        let now = crate::release::now().1;
        let mut out = Vec::new();
        for r in &mut self.regs {
            let members = r.fleet().await?;
            out.push((r.name().to_string(), crate::fleet::Fleet::of(members, now)));
        }
        Ok(out)
    }

    /// Every target, for reads that show each (status, history).
    pub fn each(&mut self) -> impl Iterator<Item = &mut Registry> {
        self.regs.iter_mut()
    }

    fn first(&mut self) -> &mut Registry {
        &mut self.regs[0]
    }

    /// The live state of the first target; with several, what each holds.
    pub async fn live(&mut self) -> anyhow::Result<LiveState> {
        let lives = join_all(self.regs.iter_mut().map(|r| r.live())).await;
        let lives = lives.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let mut first = lives[0].clone();
        if self.regs.len() > 1 {
            first.targets = self
                .regs
                .iter()
                .zip(lives)
                .map(|(r, l)| TargetLive {
                    name: r.name().to_string(),
                    canary_stored: l.canary_stored,
                    canary: l.canary,
                    current: l.current,
                    manifest: l.manifest,
                    signature: l.signature,
                })
                .collect();
        }
        Ok(first)
    }

    pub async fn record(&mut self, id: &str) -> anyhow::Result<Stored<ReleaseRecord>> {
        self.first().record(id).await
    }

    pub async fn records(&mut self, ids: &[String]) -> anyhow::Result<Vec<Stored<ReleaseRecord>>> {
        self.first().records(ids).await
    }

    pub async fn release_ids(&mut self, limit: usize) -> anyhow::Result<Vec<String>> {
        self.first().release_ids(limit).await
    }

    pub async fn history(&mut self, limit: usize) -> anyhow::Result<Vec<ActivationEvent>> {
        self.first().history(limit).await
    }

    pub async fn rolled_back(&mut self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        self.first().rolled_back().await
    }

    /// The retired releases of every target, each with the latest time a
    /// target retired it.
    pub async fn retired(&mut self) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
        let mut all = std::collections::BTreeMap::new();
        for r in &mut self.regs {
            for (id, at) in r.retired().await? {
                let e = all.entry(id).or_insert(at);
                *e = (*e).max(at);
            }
        }
        Ok(all)
    }

    /// Who holds the deploy lock on the first target that has one.
    pub async fn lock_holder(&mut self) -> anyhow::Result<Option<LockHolder>> {
        for r in &mut self.regs {
            if let Some(h) = r.lock_holder().await? {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    /// Fail before any work unless every target lets cutover do `needs`.
    pub async fn check_permissions(&mut self, needs: Needs) -> anyhow::Result<()> {
        for r in &mut self.regs {
            r.check_permissions(needs).await?;
        }
        Ok(())
    }

    /// Record a release on every target.
    pub async fn register(
        &mut self,
        record: &ReleaseRecord,
        replace_broken: bool,
    ) -> anyhow::Result<()> {
        let done = join_all(
            self.regs
                .iter_mut()
                .map(|r| r.register(record, replace_broken)),
        )
        .await;
        done.into_iter().collect()
    }

    /// Set or clear the pin on every target; whether any had one.
    pub async fn set_pin(&mut self, pin: Option<&Pin>) -> anyhow::Result<bool> {
        let mut had = false;
        for r in &mut self.regs {
            had |= r.set_pin(pin).await?;
        }
        Ok(had)
    }

    /// Mark a prune on every target (see [`Registry::mark_pruned`]).
    pub async fn mark_pruned(&mut self, mark: &str) -> anyhow::Result<()> {
        for r in &mut self.regs {
            r.mark_pruned(mark).await?;
        }
        Ok(())
    }

    /// Forget releases on every target.
    pub async fn unregister(&mut self, ids: &[String]) -> anyhow::Result<()> {
        for r in &mut self.regs {
            r.unregister(ids).await?;
        }
        Ok(())
    }

    /// Delete the lock wherever it still holds `owner`; whether any did.
    pub async fn unlock(&mut self, owner: &str, wrong_type: Option<&str>) -> anyhow::Result<bool> {
        let mut any = false;
        for r in &mut self.regs {
            any |= r.unlock_held(owner, wrong_type).await?;
        }
        Ok(any)
    }

    /// The targets in the order their locks are taken: by name, the same
    /// for every process whatever the configured order.
    pub fn lock_order(&self) -> Vec<&Registry> {
        let mut regs: Vec<&Registry> = self.regs.iter().collect();
        regs.sort_by(|a, b| a.name().cmp(b.name()));
        regs
    }
}

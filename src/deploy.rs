//! Executing: the steps that touch S3 and Redis, in order. Planning stays
//! in `plan`; this module only carries a plan out.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::config::{list_prefix, object_key, Config};
use crate::error::Failure;
use crate::events::{Event, Observer, Phase};
use crate::manifest::Manifest;
use crate::plan::{
    compare_listed, plan, Action, Inspected, Listed, LiveState, Plan, Provenance, RemoteObject,
};
use crate::registry::{Activation, ActivationEvent, Registry};
use crate::release::{now, ReleaseRecord};
use crate::s3::{PutOutcome, S3Store};
use crate::scan::Build;

/// S3 key of a release's record, outside the public prefix.
pub fn record_key(config: &Config, id: &str) -> anyhow::Result<String> {
    Ok(format!("{}releases/{id}.json", config.meta_prefix()?))
}

/// The remote side a plan is made against: one listing of the public prefix
/// and the live state in Redis, read at once. Read-only.
pub async fn remote_state(
    config: &Config,
    store: &S3Store,
    registry: &mut Registry,
    observer: &dyn Observer,
) -> anyhow::Result<(HashMap<String, RemoteObject>, LiveState)> {
    let prefix = config.list_prefix();
    let (remote, live) = tokio::join!(store.list(&prefix, observer), registry.live());
    Ok((remote?, live?))
}

/// Plan against the remote state, then settle the files the listing alone
/// could not decide (HEAD, or reading the object). Read-only.
#[allow(clippy::too_many_arguments)]
pub async fn make_plan(
    config: &Config,
    store: &S3Store,
    build: &Build,
    manifest: &Manifest,
    remote: &HashMap<String, RemoteObject>,
    live: &LiveState,
    message: Option<String>,
    observer: &dyn Observer,
) -> anyhow::Result<Plan> {
    let mut plan = plan(
        build,
        manifest,
        remote,
        live,
        Provenance {
            config,
            message,
            created: now(),
        },
    )?;
    let unsure: Vec<String> = plan.needs_inspection().map(|f| f.key.clone()).collect();
    if !unsure.is_empty() {
        let found = inspect_all(config, store, unsure, observer).await?;
        plan.resolve(&found);
        // An object listed but gone by now is simply uploaded.
        for f in plan
            .files
            .iter_mut()
            .filter(|f| f.action == Action::Inspect)
        {
            f.action = Action::Upload;
            f.remote = None;
        }
    }
    for w in &plan.warnings {
        observer.event(Event::Warning(w.clone()));
    }
    Ok(plan)
}

/// Look closer at objects the listing could not decide, `concurrency` at a
/// time. Objects gone by now are left out of the result.
async fn inspect_all(
    config: &Config,
    store: &S3Store,
    keys: Vec<String>,
    observer: &dyn Observer,
) -> anyhow::Result<HashMap<String, Inspected>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    observer.event(Event::Started {
        phase: Phase::Verifying,
        files: keys.len() as u64,
        bytes: 0,
    });
    let found: Vec<(String, Option<Inspected>)> = stream::iter(keys)
        .map(|key| async move {
            let r = store.inspect(&key).await;
            observer.event(Event::Advanced {
                phase: Phase::Verifying,
                files: 1,
                bytes: 0,
            });
            r.map(|i| (key, i))
        })
        .buffer_unordered(config.concurrency)
        .try_collect()
        .await?;
    observer.event(Event::Finished {
        phase: Phase::Verifying,
    });
    Ok(found
        .into_iter()
        .filter_map(|(k, i)| i.map(|i| (k, i)))
        .collect())
}

/// The error for a plan with conflicts: names the files, says what to do.
pub fn conflict_error(plan: &Plan, bucket: &str) -> anyhow::Error {
    let conflicts: Vec<String> = plan
        .conflicts()
        .map(|f| {
            format!(
                "{} (S3 has {}, build has {} bytes sha256 {})",
                f.key,
                f.remote.as_deref().unwrap_or("other bytes"),
                f.size,
                &f.sha256[..12]
            )
        })
        .collect();
    let shown = conflicts
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if conflicts.len() > 10 {
        format!(" and {} more", conflicts.len() - 10)
    } else {
        String::new()
    };
    Failure::conflict(format!(
        "{} object(s) in s3://{bucket} would be overwritten with other bytes: {shown}{more}; nothing was uploaded. \
         Give changed files new names (webpack [contenthash]) or deploy to another prefix",
        conflicts.len()
    ))
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct UploadStats {
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    /// Files another deploy put there with the same bytes since planning.
    pub already_there: u64,
    pub seconds: f64,
    pub bytes_per_second: f64,
}

/// Upload every planned file, `concurrency` at a time. Stops at the first
/// failure; multipart uploads still in flight are aborted.
pub async fn upload(
    config: &Config,
    store: &S3Store,
    root: &Path,
    plan: &Plan,
    observer: &dyn Observer,
) -> anyhow::Result<UploadStats> {
    let (files, bytes) = plan.count(Action::Upload);
    let started = Instant::now();
    observer.event(Event::Started {
        phase: Phase::Uploading,
        files: files as u64,
        bytes,
    });
    let threshold = config.multipart_threshold;
    let results: anyhow::Result<Vec<(u64, PutOutcome)>> = stream::iter(plan.uploads())
        .map(|f| async move {
            let outcome = store.put_file(root, f, threshold).await?;
            observer.event(Event::Advanced {
                phase: Phase::Uploading,
                files: 1,
                bytes: f.size,
            });
            Ok((f.size, outcome))
        })
        .buffer_unordered(config.concurrency)
        .try_collect()
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            store.abort_in_flight().await;
            return Err(e);
        }
    };
    observer.event(Event::Finished {
        phase: Phase::Uploading,
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut stats = UploadStats {
        seconds,
        ..Default::default()
    };
    for (size, outcome) in results {
        match outcome {
            PutOutcome::Uploaded => {
                stats.uploaded_files += 1;
                stats.uploaded_bytes += size;
            }
            PutOutcome::AlreadyThere => stats.already_there += 1,
        }
    }
    stats.bytes_per_second = if seconds > 0.0 {
        stats.uploaded_bytes as f64 / seconds
    } else {
        0.0
    };
    Ok(stats)
}

/// Write the full record (with its file list) to S3, after all its objects.
pub async fn write_record(
    config: &Config,
    store: &S3Store,
    record: &ReleaseRecord,
) -> anyhow::Result<String> {
    let key = record_key(config, &record.id)?;
    let body = serde_json::to_vec_pretty(record).expect("records serialize");
    store.put_record(&key, body).await?;
    Ok(key)
}

/// Read a release's full record from S3.
pub async fn read_record(
    config: &Config,
    store: &S3Store,
    id: &str,
) -> anyhow::Result<Option<ReleaseRecord>> {
    let key = record_key(config, id)?;
    match store.get_bytes(&key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Failure::verification(format!(
                "release record s3://{}/{key} is not valid JSON ({e})",
                store.bucket()
            ))
        }),
    }
}

/// Check every object of a release is in S3 with its bytes: one listing,
/// plus a closer look only where the ETag cannot tell.
pub async fn verify_objects(
    config: &Config,
    store: &S3Store,
    record: &ReleaseRecord,
    observer: &dyn Observer,
) -> anyhow::Result<()> {
    let files = record.files.as_ref().ok_or_else(|| {
        Failure::verification(format!(
            "the record of release {} has no file list; deploy the build again",
            record.id
        ))
    })?;
    let listing = store.list(&list_prefix(&record.prefix), observer).await?;
    let mut missing = Vec::new();
    let mut corrupt = Vec::new();
    // (key, expected sha256) of objects the listing could not decide.
    let mut unsure: Vec<(String, &str)> = Vec::new();
    for f in files {
        let key = object_key(&record.prefix, &f.path);
        match listing
            .get(&key)
            .map(|o| (o, compare_listed(o, f.size, &[&f.etag])))
        {
            None => missing.push(key),
            Some((o, Listed::OtherSize)) => {
                corrupt.push(format!("{key} ({} bytes, expected {})", o.size, f.size))
            }
            Some((_, Listed::Same)) => {}
            Some((_, Listed::Unsure)) => unsure.push((key, &f.sha256)),
        }
    }
    let keys = unsure.iter().map(|(k, _)| k.clone()).collect();
    let found = inspect_all(config, store, keys, observer).await?;
    for (key, sha) in unsure {
        match found.get(&key) {
            None => missing.push(key),
            Some(i) if i.sha256_hex != sha => {
                corrupt.push(format!("{key} (sha256 {}, expected {sha})", i.sha256_hex))
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() && corrupt.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "{} missing: {}",
            missing.len(),
            list_some(&missing)
        ));
    }
    if !corrupt.is_empty() {
        parts.push(format!(
            "{} with other bytes: {}",
            corrupt.len(),
            list_some(&corrupt)
        ));
    }
    Err(Failure::verification(format!(
        "release {} is not intact in s3://{}: {}; nothing was switched. Deploy its build again to restore the objects",
        record.id,
        store.bucket(),
        parts.join("; ")
    )))
}

fn list_some(items: &[String]) -> String {
    let shown = items
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 10 {
        format!("{shown} and {} more", items.len() - 10)
    } else {
        shown
    }
}

/// Switch `current` to `record` if it is still `expected`. A lost race is a conflict.
pub async fn switch(
    registry: &mut Registry,
    expected: Option<&str>,
    record: &ReleaseRecord,
    action: &str,
    by: Option<String>,
    message: Option<String>,
    force: bool,
) -> anyhow::Result<Option<String>> {
    let event = ActivationEvent {
        release: record.id.clone(),
        previous: expected.map(str::to_string),
        action: action.to_string(),
        at: now().0,
        by,
        message,
    };
    match registry.activate(expected, record, &event, force).await? {
        Activation::Applied { previous } => Ok(previous),
        Activation::LostRace { current } => Err(Failure::conflict(format!(
            "the live release changed to {} while this {action} ran (it planned against {}); nothing was switched. \
             Run it again, or pass --force to switch anyway",
            current.as_deref().unwrap_or("none"),
            expected.unwrap_or("none")
        ))),
    }
}

/// The deploy lock, held while `work` runs and renewed in the background.
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
                        return Err(Failure::conflict(format!(
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
            return Err(Failure::conflict(
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

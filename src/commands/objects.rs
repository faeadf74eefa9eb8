//! Read-only checks of objects in S3, shared by the commands: a closer look
//! where a listing cannot tell, and whether a release is intact.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::contract::{list_prefix, object_key};
use crate::error::Failure;
use crate::events::{Event, Observer, Phase};
use crate::release::ReleaseRecord;
use crate::render::some;
use crate::state::{Inspected, Listed};
use crate::store::s3::S3Store;

/// Look closer at objects a listing could not decide, `concurrency` at a
/// time. Objects gone by now are left out of the result.
pub async fn inspect_all(
    store: &S3Store,
    keys: Vec<String>,
    concurrency: usize,
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
        .buffer_unordered(concurrency)
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

/// Check every object of a release is in S3 with its bytes: one listing,
/// plus a closer look only where the ETag cannot tell. Exit 4 naming what
/// is missing or corrupt.
pub async fn verify_release(
    store: &S3Store,
    record: &ReleaseRecord,
    concurrency: usize,
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
    // Objects the listing could not decide, with what they should be.
    let mut unsure: Vec<(String, &crate::release::ReleaseFile)> = Vec::new();
    for f in files {
        let key = object_key(&record.prefix, &f.path);
        match listing
            .get(&key)
            .map(|o| (o, o.compare(f.size, &[&f.etag])))
        {
            None => missing.push(key),
            Some((o, Listed::OtherSize)) => {
                corrupt.push(format!("{key} ({} bytes, expected {})", o.size, f.size))
            }
            Some((_, Listed::Same)) => {}
            Some((_, Listed::Unsure)) => unsure.push((key, f)),
        }
    }
    let keys = unsure.iter().map(|(k, _)| k.clone()).collect();
    let found = inspect_all(store, keys, concurrency, observer).await?;
    for (key, f) in unsure {
        match found.get(&key) {
            None => missing.push(key),
            Some(i) if !i.matches(&f.sha256, f.md5()) => {
                corrupt.push(format!("{key} ({i}, expected sha256 {})", f.sha256))
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() && corrupt.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} missing: {}", missing.len(), some(&missing, 10)));
    }
    if !corrupt.is_empty() {
        parts.push(format!(
            "{} with other bytes: {}",
            corrupt.len(),
            some(&corrupt, 10)
        ));
    }
    Err(Failure::verification(format!(
        "release {} is not intact in s3://{}: {}; nothing was switched. Deploy its build again to restore the objects",
        record.id,
        store.bucket(),
        parts.join("; ")
    )))
}

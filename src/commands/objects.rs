//! Read-only checks of objects in S3, shared by the commands: a closer look
//! where a listing cannot tell, and whether a release is intact.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::build::headers::Headers;
use crate::contract::{mutable_key, object_key, url_path};
use crate::error::Failure;
use crate::events::{Event, Observer, Phase};
use crate::plan::ObjectCopy;
use crate::release::{CdnCheck, ReleaseFile, ReleaseRecord};
use crate::render::some;
use crate::state::Inspected;
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

/// What is wrong with a release's objects in S3, one line each: missing,
/// or with other bytes. One HEAD per object (see [`classify`]); with
/// `read`, every object is read and hashed.
///
/// A mutable file is checked at its content-addressed copy
/// (`META/mutable/<sha256>`): its public key may hold another release's.
pub async fn release_problems(
    store: &S3Store,
    record: &ReleaseRecord,
    meta_prefix: &str,
    concurrency: usize,
    read: bool,
    observer: &dyn Observer,
) -> anyhow::Result<Vec<String>> {
    let found = classify(store, record, meta_prefix, concurrency, read, observer).await?;
    Ok(found
        .into_iter()
        .filter_map(|(key, f, state)| match state {
            Found::Intact => None,
            Found::Missing => Some(format!("{key}: missing")),
            Found::Other(what) => Some(format!(
                "{key}: other bytes ({what}, expected sha256 {})",
                f.sha256
            )),
        })
        .collect())
}

/// What S3 holds at an object's key, compared with the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Intact,
    Missing,
    /// Other bytes: what S3 says they are.
    Other(String),
}

/// Every object of a release (mutable files at their content-addressed
/// copies) with what S3 holds there: one HEAD per object, `concurrency` at a
/// time, so the cost is proportional to the release, not to the prefix
/// (which holds every release not yet pruned). A HEAD gives S3's own
/// evidence of the bytes (its SHA-256 checksum, else a plain-MD5 ETag),
/// stronger than a listing's size. With `read`, every object is read and
/// hashed instead.
pub async fn classify<'r>(
    store: &S3Store,
    record: &'r ReleaseRecord,
    meta_prefix: &str,
    concurrency: usize,
    read: bool,
    observer: &dyn Observer,
) -> anyhow::Result<Vec<(String, &'r ReleaseFile, Found)>> {
    let files = record.files.as_ref().ok_or_else(|| {
        Failure::verification(format!(
            "the record of release {} has no file list; deploy the build again",
            record.id
        ))
    })?;
    let keyed: Vec<(String, &ReleaseFile)> = files
        .iter()
        .map(|f| {
            let key = if f.mutable {
                mutable_key(meta_prefix, &f.sha256)
            } else {
                object_key(&record.prefix, &f.path)
            };
            (key, &**f)
        })
        .collect();
    let keys = keyed.iter().map(|(k, _)| k.clone()).collect();
    let found = if read {
        read_all(store, keys, concurrency, observer).await?
    } else {
        inspect_all(store, keys, concurrency, observer).await?
    };
    Ok(keyed
        .into_iter()
        .map(|(key, f)| {
            let state = match found.get(&key) {
                None => Found::Missing,
                Some(i) if !i.matches(&f.sha256, f.md5()) => Found::Other(i.to_string()),
                Some(_) => Found::Intact,
            };
            (key, f, state)
        })
        .collect())
}

/// Read objects and hash them (`verify --read`).
async fn read_all(
    store: &S3Store,
    keys: Vec<String>,
    concurrency: usize,
    observer: &dyn Observer,
) -> anyhow::Result<HashMap<String, Inspected>> {
    observer.event(Event::Started {
        phase: Phase::Verifying,
        files: keys.len() as u64,
        bytes: 0,
    });
    let found: Vec<(String, Option<String>)> = stream::iter(keys)
        .map(|key| async move {
            let r = store.read_sha256(&key).await;
            observer.event(Event::Advanced {
                phase: Phase::Verifying,
                files: 1,
                bytes: 0,
            });
            r.map(|sha| (key, sha))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    observer.event(Event::Finished {
        phase: Phase::Verifying,
    });
    Ok(found
        .into_iter()
        .filter_map(|(k, sha)| sha.map(|s| (k, Inspected::Sha256(s))))
        .collect())
}

/// Check every object of a release is in S3 with its bytes, before a
/// switch: exit 4 naming what is missing or corrupt.
pub async fn verify_release(
    store: &S3Store,
    record: &ReleaseRecord,
    meta_prefix: &str,
    concurrency: usize,
    observer: &dyn Observer,
) -> anyhow::Result<()> {
    let problems =
        release_problems(store, record, meta_prefix, concurrency, false, observer).await?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::verification(format!(
        "release {} is not intact in s3://{}: {}; nothing was switched. Deploy its build again to restore the objects",
        record.id,
        store.bucket(),
        some(&problems, 10)
    )))
}

/// The mutable files of a release whose public object does not hold the
/// release's bytes: copies that restore them from their content-addressed
/// copies (same bytes, the release's headers).
pub async fn mutable_restores(
    store: &S3Store,
    record: &ReleaseRecord,
    meta_prefix: &str,
    concurrency: usize,
    observer: &dyn Observer,
) -> anyhow::Result<Vec<ObjectCopy>> {
    let mutable: Vec<&ReleaseFile> = record
        .files
        .iter()
        .flatten()
        .filter(|f| f.mutable)
        .map(|f| &**f)
        .collect();
    let keys: Vec<String> = mutable
        .iter()
        .map(|f| object_key(&record.prefix, &f.path))
        .collect();
    let found = inspect_all(store, keys.clone(), concurrency, observer).await?;
    Ok(mutable
        .into_iter()
        .zip(keys)
        .filter(|(f, key)| {
            !found
                .get(key)
                .is_some_and(|i| i.matches(&f.sha256, f.md5()))
        })
        .map(|(f, key)| ObjectCopy {
            from_bucket: None,
            from: mutable_key(meta_prefix, &f.sha256),
            to: key,
            headers: f.headers.clone().unwrap_or_else(|| Headers {
                content_type: crate::build::headers::content_type(&f.path),
                content_encoding: None,
                cache_control: "no-cache".into(),
            }),
            sha256: f.sha256.clone(),
            if_match: None,
        })
        .collect())
}

/// The files of a release to fetch through the CDN: every file its
/// manifest's entrypoints name (or, without entrypoints, every script and
/// stylesheet it names), plus `sample` others spread over the rest.
pub fn cdn_checks(record: &ReleaseRecord, sample: usize) -> Vec<CdnCheck> {
    let files = record.files.as_deref().unwrap_or_default();
    let url_of = |f: &ReleaseFile| {
        format!(
            "{}/{}",
            record.cdn_url,
            url_path(&object_key(&record.prefix, &f.path))
        )
    };
    let by_url: HashMap<String, &ReleaseFile> = files.iter().map(|f| (url_of(f), &**f)).collect();
    let mut urls = Vec::new();
    match record.manifest.get("entrypoints") {
        Some(entrypoints) => collect_strings(entrypoints, &mut urls),
        None => urls.extend(
            crate::build::manifest::entries(&record.manifest)
                .into_values()
                .filter(|u| u.ends_with(".js") || u.ends_with(".css")),
        ),
    }
    let mut chosen: Vec<&ReleaseFile> = Vec::new();
    for url in &urls {
        if let Some(f) = by_url.get(url) {
            if !chosen.iter().any(|c| c.path == f.path) {
                chosen.push(f);
            }
        }
    }
    let rest: Vec<&ReleaseFile> = files
        .iter()
        .map(|f| &**f)
        .filter(|f| !chosen.iter().any(|c| c.path == f.path))
        .collect();
    if sample > 0 && !rest.is_empty() {
        let step = (rest.len() as f64 / sample.min(rest.len()) as f64).max(1.0);
        for i in 0..sample.min(rest.len()) {
            chosen.push(rest[(i as f64 * step) as usize]);
        }
    }
    chosen
        .into_iter()
        .map(|f| CdnCheck {
            url: url_of(f),
            path: f.path.clone(),
            sha256: f.sha256.clone(),
            headers: f.headers.clone(),
        })
        .collect()
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "integrity")
            .for_each(|(_, i)| collect_strings(i, out)),
        _ => {}
    }
}

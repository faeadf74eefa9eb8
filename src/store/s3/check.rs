//! Closer looks at many objects: one HEAD (or, with `read`, one GET that
//! hashes the bytes) per key, `concurrency` at a time, so the cost is
//! proportional to what is looked at, not to the prefix.

use std::collections::HashMap;
use std::future::Future;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::S3Store;
use crate::build::headers::Headers;
use crate::contract::{mutable_key, object_key};
use crate::error::Failure;
use crate::events::{Event, Observer, Phase};
use crate::release::{ReleaseFile, ReleaseRecord};
use crate::state::{Found, Inspected};

impl S3Store {
    /// A closer look at each of `keys`: S3's own evidence of the bytes
    /// (its SHA-256 checksum, else a plain-MD5 ETag). Keys that are gone
    /// are left out of the result.
    pub async fn inspect_all(
        &self,
        keys: Vec<String>,
        concurrency: usize,
        observer: &dyn Observer,
    ) -> anyhow::Result<HashMap<String, Inspected>> {
        each_key(keys, concurrency, observer, |k| async move {
            self.inspect(&k).await
        })
        .await
    }

    /// The headers (and ETag) S3 has on each of `keys`; gone ones left out.
    pub async fn headers_all(
        &self,
        keys: Vec<String>,
        concurrency: usize,
        observer: &dyn Observer,
    ) -> anyhow::Result<HashMap<String, (Headers, String)>> {
        each_key(keys, concurrency, observer, |k| async move {
            self.head_headers(&k).await
        })
        .await
    }

    /// Every object of a release (mutable files at their content-addressed
    /// copies, `META/mutable/<sha256>`: their public key may hold another
    /// release's) with what S3 holds there. With `read`, every object is
    /// read and hashed instead of HEADed.
    pub async fn release_objects<'r>(
        &self,
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
        let files_by_key: HashMap<String, &ReleaseFile> =
            keyed.iter().map(|(k, f)| (k.clone(), *f)).collect();
        let keys = keyed.iter().map(|(k, _)| k.clone()).collect();
        let found = if read {
            let read = |k: String| async move {
                self.read_sha256(&k)
                    .await
                    .map(|sha| sha.map(Inspected::Sha256))
            };
            each_key(keys, concurrency, observer, read).await?
        } else {
            let files_by_key = &files_by_key;
            let look = |k: String| async move {
                match files_by_key.get(&k) {
                    Some(f) => self.inspect_as(&k, f).await,
                    None => self.inspect(&k).await,
                }
            };
            each_key(keys, concurrency, observer, look).await?
        };
        Ok(keyed
            .into_iter()
            .map(|(key, f)| {
                let state = match found.get(&key) {
                    None => Found::Missing,
                    Some(i) if i.verdict(f) != Some(true) => Found::Other(i.to_string()),
                    Some(_) => Found::Intact,
                };
                (key, f, state)
            })
            .collect())
    }

    /// What the public keys of a release's mutable files hold now (they
    /// change under their name): the keys that hold something.
    pub async fn mutable_objects(
        &self,
        record: &ReleaseRecord,
        concurrency: usize,
        observer: &dyn Observer,
    ) -> anyhow::Result<HashMap<String, Inspected>> {
        let keys = record
            .files
            .iter()
            .flatten()
            .filter(|f| f.mutable)
            .map(|f| object_key(&record.prefix, &f.path))
            .collect();
        self.inspect_all(keys, concurrency, observer).await
    }
}

/// `look` at each key, `concurrency` at a time, with progress; keys it
/// finds nothing at are left out.
async fn each_key<T, F, Fut>(
    keys: Vec<String>,
    concurrency: usize,
    observer: &dyn Observer,
    look: F,
) -> anyhow::Result<HashMap<String, T>>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    observer.event(Event::Started {
        phase: Phase::Verifying,
        files: keys.len() as u64,
        bytes: 0,
    });
    let look = &look;
    let found: Vec<(String, Option<T>)> = stream::iter(keys)
        .map(|key| async move {
            let r = look(key.clone()).await;
            observer.event(Event::Advanced {
                phase: Phase::Verifying,
                files: 1,
                bytes: 0,
            });
            r.map(|found| (key, found))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    observer.event(Event::Finished {
        phase: Phase::Verifying,
    });
    Ok(found
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

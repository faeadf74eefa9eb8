//! Closer looks at many objects: one HEAD (or, with `read`, one GET that
//! hashes the bytes) per key, `concurrency` at a time, so the cost is
//! proportional to what is looked at, not to the prefix. A release's
//! objects are first looked for in listings of the stretches of the prefix
//! they sit in, while the pages keep proving enough of them (see
//! [`S3Store::listed_intact`]).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::list::{From, PAGE_KEYS_S3};
use super::S3Store;
use crate::build::headers::Headers;
use crate::contract::{list_prefix, mutable_key, object_key};
use crate::error::Failure;
use crate::events::{Event, Observer, Phase};
use crate::release::{ReleaseFile, ReleaseRecord};
use crate::state::{Found, Inspected, Listed};

/// A listing page of a release's keys goes on to the next page only while
/// it proved at least this share (percent) of its entries: below it, the
/// stretch is crowded with other releases' objects, and HEADing the rest
/// costs fewer requests than paging through them.
const LISTING_MIN_SHARE: usize = 10;
/// Keys per stretch: under a page (1,000), so that a few other objects
/// among them still fit in its first page.
const STRETCH_KEYS: usize = 900;

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
        let listed = if read || keyed.is_empty() {
            HashSet::new()
        } else {
            self.listed_intact(&list_prefix(&record.prefix), &files_by_key, concurrency)
                .await?
        };
        let keys: Vec<String> = keyed
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        started(observer, keyed.len());
        advanced(observer, listed.len());
        let found = if read {
            let read = |k: String| async move {
                self.read_sha256(&k)
                    .await
                    .map(|sha| sha.map(Inspected::Sha256))
            };
            looking(keys, concurrency, observer, read).await?
        } else {
            let files_by_key = &files_by_key;
            let look = |k: String| async move {
                match files_by_key.get(&k) {
                    Some(f) => self.inspect_as(&k, f).await,
                    None => self.inspect(&k).await,
                }
            };
            looking(keys, concurrency, observer, look).await?
        };
        finished(observer, keyed.len());
        Ok(keyed
            .into_iter()
            .map(|(key, f)| {
                let state = match found.get(&key) {
                    _ if listed.contains(&key) => Found::Intact,
                    None => Found::Missing,
                    Some(i) if i.verdict(f) != Some(true) => Found::Other(i.to_string()),
                    Some(_) => Found::Intact,
                };
                (key, f, state)
            })
            .collect())
    }

    /// The keys of `files` (those under `root`) that listings prove intact:
    /// listed with the size and the ETag their record has (S3's ETag of the
    /// upload: the MD5 of the bytes, or of the parts' MD5s). Only a proof:
    /// a key listed otherwise, or not listed, is left to a closer look, so
    /// a missing or changed object is found and named exactly as without
    /// the listings. Listing refused (403): no proof, every key HEADed.
    ///
    /// The keys are taken in order, [`STRETCH_KEYS`] at a time; each
    /// stretch is listed from just before its first key, in pages as long
    /// as the keys it has left (and an eighth more), while a page proves at
    /// least [`LISTING_MIN_SHARE`] of its entries and has not passed the
    /// stretch's last key, `concurrency` stretches at a time, once the
    /// listing of the first key alone showed that listings carry ETags
    /// here ([`S3Store::listings_prove`]; s3s-fs's carry none). So a
    /// release alone under its prefix costs about one request per 900
    /// objects instead of one HEAD each, and a prefix crowded with other
    /// objects a few pages more than the HEADs alone.
    async fn listed_intact(
        &self,
        root: &str,
        files: &HashMap<String, &ReleaseFile>,
        concurrency: usize,
    ) -> anyhow::Result<HashSet<String>> {
        let mut keys: Vec<&str> = files
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with(root))
            .collect();
        keys.sort_unstable();
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        if !self.listings_prove(keys[0]).await? {
            return Ok(HashSet::new());
        }
        // Set when listings cannot prove anything here after all: they carry
        // no ETags, or S3 refuses them (403).
        let unlisted = AtomicBool::new(false);
        let proven: Vec<HashSet<String>> = stream::iter(keys.chunks(STRETCH_KEYS))
            .map(|stretch| self.list_stretch(root, stretch, files, &unlisted))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        Ok(proven.into_iter().flatten().collect())
    }

    /// Whether listings here can prove anything: the listing of one key
    /// alone (the key as the prefix, one entry) carries its ETag. False
    /// when it carries none (s3s-fs) or S3 refuses to list (403); true when
    /// the key is not there (the stretches will tell). One small request on
    /// any server, also on one that walks the whole bucket for every
    /// listing and reads only the entries it returns.
    async fn listings_prove(&self, key: &str) -> anyhow::Result<bool> {
        match self.page(key, None, &From::Start, 1).await {
            Ok(page) => Ok(page
                .objects
                .first()
                .is_none_or(|(_, obj)| !obj.etag.is_empty())),
            Err(e) if e.status == Some(403) => Ok(false),
            Err(e) => Err(e.error),
        }
    }

    /// One stretch of sorted keys under `root`, listed (see
    /// [`S3Store::listed_intact`]): the keys proven intact.
    async fn list_stretch(
        &self,
        root: &str,
        stretch: &[&str],
        files: &HashMap<String, &ReleaseFile>,
        unlisted: &AtomicBool,
    ) -> anyhow::Result<HashSet<String>> {
        let mut proven = HashSet::new();
        let (Some(first), Some(last)) = (stretch.first(), stretch.last()) else {
            return Ok(proven);
        };
        // Just before the first key: the key without its last character.
        let mut cut = first.to_string();
        cut.pop();
        let mut from = From::After(cut);
        // A page as long as the keys left, and some (other objects among
        // them), at most S3's 1,000: a server pays for each entry it lists.
        let mut want = stretch.len();
        let mut per_key = 1.0;
        loop {
            if unlisted.load(Relaxed) {
                break;
            }
            let size = (want as f64 * per_key * 1.125) as i32 + 8;
            let page = match self.page(root, None, &from, size.min(PAGE_KEYS_S3)).await {
                Ok(page) => page,
                // Credentials that may not list the bucket (a policy older
                // than this check): the HEADs decide, as they did before.
                Err(e) if e.status == Some(403) => {
                    unlisted.store(true, Relaxed);
                    break;
                }
                Err(e) => return Err(e.error),
            };
            let (mut here, mut past) = (0, false);
            for (key, obj) in &page.objects {
                if key.as_str() > *last {
                    past = true;
                    break;
                }
                let Some(f) = files.get(key) else { continue };
                if obj.compare(f.size, &[f.etag.trim_matches('"')]) == Listed::Same {
                    proven.insert(key.clone());
                    here += 1;
                }
            }
            if page.objects.iter().all(|(_, obj)| obj.etag.is_empty()) && !page.objects.is_empty() {
                unlisted.store(true, Relaxed);
            }
            let crowded = here * 100 < page.objects.len() * LISTING_MIN_SHARE;
            if let Some((key, _)) = page.objects.last() {
                want = stretch.len() - stretch.partition_point(|k| *k <= key.as_str());
                per_key = page.objects.len() as f64 / here.max(1) as f64;
            }
            match page.next {
                Some(token) if !past && !crowded => from = From::Token(token),
                _ => break,
            }
        }
        Ok(proven)
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
    let n = keys.len();
    started(observer, n);
    let found = looking(keys, concurrency, observer, look).await?;
    finished(observer, n);
    Ok(found)
}

/// The progress of looking at `n` keys (none: no progress shown).
fn started(observer: &dyn Observer, n: usize) {
    if n > 0 {
        observer.event(Event::Started {
            phase: Phase::Verifying,
            files: n as u64,
            bytes: 0,
        });
    }
}

fn advanced(observer: &dyn Observer, n: usize) {
    if n > 0 {
        observer.event(Event::Advanced {
            phase: Phase::Verifying,
            files: n as u64,
            bytes: 0,
        });
    }
}

fn finished(observer: &dyn Observer, n: usize) {
    if n > 0 {
        observer.event(Event::Finished {
            phase: Phase::Verifying,
        });
    }
}

/// [`each_key`] without the start and end of its progress.
async fn looking<T, F, Fut>(
    keys: Vec<String>,
    concurrency: usize,
    observer: &dyn Observer,
    look: F,
) -> anyhow::Result<HashMap<String, T>>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
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
    Ok(found
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

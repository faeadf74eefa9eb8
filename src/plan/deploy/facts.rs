//! What a deploy plans from ([`DeployFacts`]) and the questions it asks of
//! S3 before it can plan: the MD5s it needs, the keys the listing cannot
//! decide, the headers a changed rule may have left behind. How each file
//! looks before any closer look ([`Seen::first_look`]) is decided here too.

use std::collections::HashMap;

use crate::build::headers::{headers_for, is_mutable, Headers};
use crate::build::manifest::Manifest;
use crate::build::{Build, BuildFile};
use crate::config::Config;
use crate::release::ReleaseFile;
use crate::state::{ContentIndex, Inspected, Listed, Listing, LiveState, RemoteObject};

use super::Decision;

/// Everything a deploy plans from, read before planning (`commands/deploy`
/// gathers it): the scanned build, one listing of the public prefix, the
/// newest release records as a content index (with the live release's),
/// the live state in Redis, and the answers to the questions the first
/// reads left open ([`md5_needed`], [`to_inspect`], [`header_checks`]).
pub struct DeployFacts<'a> {
    pub build: &'a Build,
    pub manifest: &'a Manifest,
    pub remote: &'a Listing,
    pub index: &'a ContentIndex,
    pub live: &'a LiveState,
    /// What a closer look (HEAD) found at the keys [`to_inspect`] named;
    /// a key left out is gone.
    pub inspected: &'a HashMap<String, Inspected>,
    /// The headers (and ETag) S3 has on the objects [`header_checks`] named.
    pub heads: &'a HashMap<String, (Headers, String)>,
}

/// One file of the build as the facts show it, before any closer look.
pub(super) struct Seen<'f> {
    pub(super) file: &'f BuildFile,
    pub(super) key: String,
    pub(super) mutable: bool,
    pub(super) sha256: String,
    pub(super) listed: Option<&'f RemoteObject>,
    /// What the records say the key holds, where S3's listing agrees.
    pub(super) known: Option<&'f ReleaseFile>,
}

impl Seen<'_> {
    /// The records and S3's listing agree that the key holds these bytes.
    pub(super) fn settled(&self) -> bool {
        self.known
            .is_some_and(|k| k.sha256.eq_ignore_ascii_case(&self.sha256))
    }

    /// The decision the listing and the records allow (Inspect: they
    /// cannot tell), and what S3 holds when that matters.
    pub(super) fn first_look(&self) -> (Decision, Option<String>) {
        match self.known {
            // The records say S3 holds these bytes, and S3's listing agrees.
            Some(_) if self.settled() => (Decision::Skip, None),
            // ...or other bytes: a closer look decides (conflict, or not).
            Some(k) => (Decision::Inspect, Some(format!("sha256 {}", k.sha256))),
            None => classify(self.file, self.listed, self.mutable),
        }
    }
}

/// Every file of the build but the manifest files of its format (published
/// through Redis, with compressed copies of them), as the facts show it.
pub(super) fn seen<'f>(
    config: &'f Config,
    facts: &'f DeployFacts<'f>,
) -> impl Iterator<Item = Seen<'f>> + 'f {
    facts
        .build
        .files
        .iter()
        .filter(|f| !facts.manifest.excluded.contains(&f.path))
        .map(move |f| {
            let key = config.object_key(&f.path);
            let mutable = is_mutable(&f.path, &config.mutable);
            let listed = facts.remote.get(&key);
            let known = listed
                .and_then(|o| facts.index.confirms(&key, o))
                .filter(|_| !mutable);
            Seen {
                file: f,
                key,
                mutable,
                sha256: f.digests.sha256_hex(),
                listed,
                known,
            }
        })
}

/// Question 1: the files of the build whose MD5 the plan needs: all but
/// those S3's listing and the release records together prove are in S3 with
/// these bytes. A file to upload needs it for its record (the ETag later
/// listings are compared with), a listed one that the records do not settle
/// to be compared with the listing's ETag or a HEAD's.
pub fn md5_needed(config: &Config, facts: &DeployFacts) -> Vec<String> {
    seen(config, facts)
        .filter(|s| s.file.digests.md5.is_none() && !s.settled())
        .map(|s| s.file.path.clone())
        .collect()
}

/// Question 2 (after the MD5s): the keys the listing cannot decide, to be
/// looked at closer (HEAD): listed with the same size but an ETag that
/// proves nothing, or other bytes than the records say; and the
/// content-addressed copy of every mutable file.
pub fn to_inspect(config: &Config, facts: &DeployFacts) -> anyhow::Result<Vec<String>> {
    let meta = config.meta_prefix()?;
    Ok(seen(config, facts)
        .flat_map(|s| {
            let unsure = (s.first_look().0 == Decision::Inspect).then(|| s.key.clone());
            let copy = s
                .mutable
                .then(|| crate::contract::mutable_key(&meta, &s.sha256));
            unsure.into_iter().chain(copy)
        })
        .collect())
}

/// Question 3: the keys of files the live release recorded with these
/// bytes but other headers than this build gives them (a header rule
/// changed). What S3 has on them ([`DeployFacts::heads`]) decides whether
/// they are rewritten in place.
pub fn header_checks(config: &Config, facts: &DeployFacts) -> Vec<String> {
    let Some(recorded) = live_headers(facts) else {
        return Vec::new();
    };
    seen(config, facts)
        .filter(|s| {
            recorded.get(s.file.path.as_str()).is_some_and(|(sha, h)| {
                *sha == s.sha256 && h.is_some_and(|h| *h != headers(config, facts.manifest, s))
            })
        })
        .map(|s| s.key)
        .collect()
}

/// The live release's files as it recorded them: path → (SHA-256, headers).
fn live_headers<'f>(
    facts: &'f DeployFacts,
) -> Option<HashMap<&'f str, (&'f str, Option<&'f Headers>)>> {
    let record = facts.index.record(facts.live.current.as_deref()?)?;
    Some(
        record
            .files
            .iter()
            .flatten()
            .map(|f| (f.path.as_str(), (f.sha256.as_str(), f.headers.as_ref())))
            .collect(),
    )
}

/// The headers a file is uploaded with. Mutable files get the short
/// Cache-Control, whatever their name.
pub(super) fn headers(config: &Config, manifest: &Manifest, s: &Seen) -> Headers {
    headers_for(
        s.file,
        manifest.is_fingerprinted(&s.file.path) && !s.mutable,
        &config.cache_control,
        &config.header_rules,
    )
}

fn classify(
    file: &BuildFile,
    remote: Option<&RemoteObject>,
    mutable: bool,
) -> (Decision, Option<String>) {
    let Some(obj) = remote else {
        return (Decision::Upload, None);
    };
    // Ours (MD5, or the multipart MD5-of-MD5s), or a single-part upload by
    // someone else; without the MD5s, only the size can tell.
    let etags = file
        .digests
        .md5
        .as_ref()
        .map(|m| [m.expected_etag(), hex::encode(m.md5)])
        .unwrap_or_default();
    match obj.compare(file.size, &[&etags[0], &etags[1]]) {
        Listed::OtherSize if mutable => (Decision::Replace, None),
        Listed::OtherSize => (Decision::Conflict, Some(format!("{} bytes", obj.size))),
        Listed::Same => (Decision::Skip, None),
        Listed::Unsure => (
            Decision::Inspect,
            Some(format!("etag {}", obj.etag.trim_matches('"'))),
        ),
    }
}

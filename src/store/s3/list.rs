//! Listing a prefix in as few requests as the server allows.

use futures::{StreamExt, TryStreamExt};

use super::{status, S3Store};
use crate::events::{Event, Observer, Phase};
use crate::state::{Listing, RemoteObject};

/// Keys asked for per listing page. AWS S3 answers at most 1,000 whatever
/// is asked (and says the page is truncated); servers that honour more need
/// fewer pages, which matters where every page costs a walk of the whole
/// prefix (s3s-fs). A server that refuses the size is asked again with 1,000.
pub(super) const PAGE_KEYS: i32 = 10_000;
pub(super) const PAGE_KEYS_S3: i32 = 1_000;

impl S3Store {
    /// Everything under `prefix`. First one page of the whole prefix, which
    /// is all of it when it fits (one request: what a server that walks the
    /// whole bucket for every page needs); when it does not, the first level
    /// with a delimiter, then each sub-prefix (`js/`, `css/`, ...) listed in
    /// full, several at once, since pages of one listing can only be fetched
    /// one after another.
    pub async fn list(&self, prefix: &str, observer: &dyn Observer) -> anyhow::Result<Listing> {
        observer.event(Event::Started {
            phase: Phase::Listing,
            files: 0,
            bytes: 0,
        });
        let mut whole = Listing::new();
        let (_, complete) = self
            .list_pages(prefix, None, &mut whole, &crate::events::Quiet, true)
            .await?;
        if complete {
            observer.event(Event::Advanced {
                phase: Phase::Listing,
                files: whole.len() as u64,
                bytes: 0,
            });
            observer.event(Event::Finished {
                phase: Phase::Listing,
            });
            return Ok(whole);
        }
        let mut out = Listing::new();
        let (subs, _) = self
            .list_pages(prefix, Some("/"), &mut out, &crate::events::Quiet, false)
            .await?;
        observer.event(Event::Advanced {
            phase: Phase::Listing,
            files: out.len() as u64,
            bytes: 0,
        });
        let parts: Vec<Listing> = futures::stream::iter(subs)
            .map(|sub| async move {
                let mut part = Listing::new();
                self.list_pages(&sub, None, &mut part, observer, false)
                    .await?;
                anyhow::Ok(part)
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        for part in parts {
            out.extend(part);
        }
        observer.event(Event::Finished {
            phase: Phase::Listing,
        });
        Ok(out)
    }

    /// Page through one listing into `out` (only its first page with
    /// `first_only`); returns its common prefixes, and whether it listed
    /// everything.
    async fn list_pages(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        out: &mut Listing,
        observer: &dyn Observer,
        first_only: bool,
    ) -> anyhow::Result<(Vec<String>, bool)> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut subs = Vec::new();
        let mut from = From::Start;
        loop {
            let page_keys = self.page_keys.load(Relaxed);
            let page = match self.page(prefix, delimiter, &from, page_keys).await {
                Ok(page) => page,
                // Pages larger than S3's are refused here: ask for S3's.
                Err(e) if page_keys > PAGE_KEYS_S3 && e.status == Some(400) => {
                    self.page_keys.store(PAGE_KEYS_S3, Relaxed);
                    continue;
                }
                Err(e) => return Err(e.error),
            };
            observer.event(Event::Advanced {
                phase: Phase::Listing,
                files: page.objects.len() as u64,
                bytes: 0,
            });
            out.extend(page.objects);
            subs.extend(page.prefixes);
            let Some(token) = page.next else { break };
            if first_only {
                return Ok((subs, false));
            }
            from = From::Token(token);
        }
        Ok((subs, true))
    }

    /// One page of a listing of `prefix`, in key order, from `from`.
    pub(super) async fn page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        from: &From,
        max_keys: i32,
    ) -> Result<Page, PageError> {
        let (start_after, token) = match from {
            From::Start => (None, None),
            From::After(key) => (Some(key.clone()), None),
            From::Token(token) => (None, Some(token.clone())),
        };
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .max_keys(max_keys)
            .set_start_after(start_after)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| PageError {
                status: status(&e),
                error: self.error(
                    "ListObjectsV2",
                    "list",
                    &format!("s3://{}/{prefix}", self.bucket),
                    e,
                ),
            })?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|obj| {
                let key = obj.key()?;
                let listed = RemoteObject {
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    etag: obj
                        .e_tag()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_string(),
                    modified_ms: obj
                        .last_modified()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0),
                };
                Some((key.to_string(), listed))
            })
            .collect();
        Ok(Page {
            objects,
            prefixes: page
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string))
                .collect(),
            next: page
                .next_continuation_token()
                .filter(|_| page.is_truncated() == Some(true))
                .map(str::to_string),
        })
    }
}

/// Where a listing page starts.
pub(super) enum From {
    Start,
    /// After this key (which need not exist).
    After(String),
    /// Where the previous page of the same listing ended.
    Token(String),
}

/// One page of a listing: its objects in key order, its common prefixes,
/// and the token of the next page when there is one.
pub(super) struct Page {
    pub objects: Vec<(String, RemoteObject)>,
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

/// A listing page refused: the error, and the HTTP status when S3 answered
/// (400: perhaps only the page size; 403: no `s3:ListBucket`).
pub(super) struct PageError {
    pub status: Option<u16>,
    pub error: anyhow::Error,
}

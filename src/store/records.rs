//! Release records in S3, outside the public prefix: the complete list of
//! releases, from which Redis can be rebuilt.

use crate::contract::{id_of_record_key, record_key, records_prefix};
use crate::error::Failure;
use crate::events::Quiet;
use crate::release::ReleaseRecord;

use super::s3::S3Store;

/// Read a release's full record (with its file list); None if there is none.
pub async fn read(
    store: &S3Store,
    meta_prefix: &str,
    id: &str,
) -> anyhow::Result<Option<ReleaseRecord>> {
    let key = record_key(meta_prefix, id);
    match store.get_bytes(&key).await? {
        None => Ok(None),
        Some(bytes) => {
            let record: ReleaseRecord = serde_json::from_slice(&bytes).map_err(|e| {
                Failure::verification(format!(
                    "release record s3://{}/{key} is not valid JSON ({e})",
                    store.bucket()
                ))
            })?;
            // Input like any other: the record at a release's key is that release's.
            if record.id != id {
                return Err(Failure::verification(format!(
                    "release record s3://{}/{key} says it is release {:?}, not {id}; \
                     someone wrote it by hand or with another tool: delete it and deploy the build again",
                    store.bucket(),
                    record.id
                )));
            }
            Ok(Some(record))
        }
    }
}

/// Ids of the records whose id starts with `id_prefix`, sorted.
pub async fn ids(
    store: &S3Store,
    meta_prefix: &str,
    id_prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let listing = store
        .list(&records_prefix(meta_prefix, id_prefix), &Quiet)
        .await?;
    let mut ids: Vec<String> = listing
        .keys()
        .filter_map(|k| id_of_record_key(k).map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// The newest `n` release records (by when S3 stored them), with their file
/// lists, for the content index. Best effort: a record that cannot be read
/// (or a listing that fails) only means more HEAD requests, so it is left
/// out rather than failing the deploy.
pub async fn newest(store: &S3Store, meta_prefix: &str, n: usize) -> Vec<ReleaseRecord> {
    let Ok(listing) = store.list(&records_prefix(meta_prefix, ""), &Quiet).await else {
        return Vec::new();
    };
    let mut keys: Vec<(&str, i64)> = listing
        .iter()
        .filter(|(k, _)| id_of_record_key(k).is_some())
        .map(|(k, o)| (k.as_str(), o.modified_ms))
        .collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let reads = keys
        .iter()
        .take(n)
        .filter_map(|(k, _)| id_of_record_key(k))
        .map(|id| read(store, meta_prefix, id));
    futures::future::join_all(reads)
        .await
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .collect()
}

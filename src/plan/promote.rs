//! Promote's plan, pure: the release record as the other environment keeps
//! it, the server-side copies its storage lacks, and its switch: the
//! copies and the record first, then [`super::switch`]'s steps.

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::Config;
use crate::contract::{mutable_key, record_key};
use crate::error::Failure;
use crate::release::{now, PromotedFrom, ReleaseFile, ReleaseRecord};
use crate::render::{count, some};
use crate::state::Found;

use super::switch::{switch, SwitchFacts, SwitchOptions, SwitchPlan};
use super::{ObjectCopy, Step};

/// The target stores files where the release's are (the bucket and prefix
/// its record names, behind the same endpoint): the objects are there.
pub fn same_storage(record: &ReleaseRecord, from: &Config, to: &Config) -> bool {
    to.bucket.as_deref() == Some(record.bucket.as_str())
        && to.prefix == record.prefix
        && from.s3_endpoint == to.s3_endpoint
}

/// The base URL of the files of a release stored under `prefix` and
/// served from `cdn_url` (`Config::public_url("")` for those settings).
fn public_base(cdn_url: &str, prefix: &str) -> String {
    format!(
        "{cdn_url}/{}",
        crate::contract::url_path(&crate::contract::object_key(prefix, ""))
    )
}

/// The record as the target keeps it: the same id and files, the target's
/// storage and CDN, the live manifest pointing at the target's CDN, and
/// where it came from. Refused (exit 2) when the build's public path ties
/// it to the source's CDN.
pub fn for_target(
    record: &ReleaseRecord,
    from: &Config,
    to: &Config,
    from_env: &str,
) -> anyhow::Result<ReleaseRecord> {
    // The manifest points where the release was recorded for, whatever the
    // source's settings say now.
    let (src_base, dst_base) = (
        public_base(&record.cdn_url, &record.prefix),
        to.public_url("")?,
    );
    if src_base != dst_base {
        match &record.public_path {
            None => {
                return Err(Failure::input(format!(
                    "release {} was recorded by a cutover that did not keep the build's public path, so it cannot be \
                     served from another CDN safely ({dst_base} instead of {src_base}); deploy the build to this environment",
                    record.id
                )))
            }
            Some(p) if !p.serves_from(&dst_base) => {
                let shown = match p {
                    crate::build::manifest::PublicPath::Page(p)
                    | crate::build::manifest::PublicPath::Asset(p) => p.as_str(),
                    crate::build::manifest::PublicPath::Unknown => "",
                };
                return Err(Failure::input(format!(
                    "release {} was built to be served from {shown:?} (its public path, baked into its files), \
                     but the target serves it from {dst_base}; build with a relative (auto) public path to promote \
                     between CDNs, or deploy a build made for the target",
                    record.id
                )));
            }
            Some(_) => {}
        }
    }
    let mut manifest = record.manifest.clone();
    crate::build::manifest::rewrite_strings(&mut manifest, None, &mut |s, _| {
        s.strip_prefix(&src_base)
            .map(|rest| format!("{dst_base}{rest}"))
    });
    if let Some(foreign) = foreign_url(&manifest, &dst_base) {
        return Err(Failure::input(format!(
            "promoting release {} would make {} serve {foreign}, which is not under its cdn_url and prefix              ({dst_base}); nothing was promoted. Check cdn_url and prefix of both environments, or deploy the build there",
            record.id,
            to.environment.as_deref().unwrap_or("the target")
        )));
    }
    let signature = promoted_signature(record, &manifest, to, from_env, &dst_base)?;
    Ok(ReleaseRecord {
        signature,
        app: to.app()?.to_string(),
        bucket: to.bucket()?.to_string(),
        prefix: to.prefix.clone(),
        cdn_url: to.cdn_url()?.to_string(),
        manifest,
        promoted_from: Some(PromotedFrom {
            environment: from_env.to_string(),
            bucket: from.bucket()?.to_string(),
            prefix: from.prefix.clone(),
            cdn_url: from.cdn_url()?.to_string(),
            at: now().0,
            by: to.deployed_by.clone(),
        }),
        ..record.clone()
    })
}

/// The promoted release's signature. The same manifest keeps the source's
/// signature; an unsigned one is signed by the target's `signing_key` if
/// there is one. A manifest whose URLs were rewritten needs a new signature:
/// by the target's key, and without one a signed release is refused (exit
/// 2) rather than made live unsigned. `require_signature` refuses any
/// unsigned outcome (exit 2).
fn promoted_signature(
    record: &ReleaseRecord,
    manifest: &serde_json::Value,
    to: &Config,
    from_env: &str,
    dst_base: &str,
) -> anyhow::Result<Option<String>> {
    let changed = *manifest != record.manifest;
    let signature = match (&to.signing_key, &record.signature) {
        (Some(key), old) if changed || old.is_none() => Some(
            key.sign(
                &record.id,
                crate::contract::manifest_text(manifest).as_bytes(),
            )
            .to_json(),
        ),
        (None, Some(_)) if changed => {
            return Err(Failure::input(format!(
                "release {} is signed, and promoting it from {from_env} rewrites its manifest's URLs to {dst_base}, \
                 which needs a new signature: configure signing_key for the target (CUTOVER_SIGNING_KEY, \
                 --signing-key or signing_key in its [environments] section); nothing was promoted",
                record.id
            )))
        }
        (_, old) => old.clone(),
    };
    if signature.is_none() && to.require_signature {
        return Err(Failure::input(format!(
            "release {} is unsigned and the target sets require_signature: configure signing_key \
             (CUTOVER_SIGNING_KEY, --signing-key or signing_key in cutover.toml) to sign it; nothing was promoted",
            record.id
        )));
    }
    Ok(signature)
}

/// The first absolute URL in `manifest` that is not under `base`.
fn foreign_url(manifest: &serde_json::Value, base: &str) -> Option<String> {
    match manifest {
        serde_json::Value::String(s) => {
            let absolute = s.contains("://") || s.starts_with("//");
            (absolute && !s.starts_with(base)).then(|| s.clone())
        }
        serde_json::Value::Array(items) => items.iter().find_map(|i| foreign_url(i, base)),
        serde_json::Value::Object(map) => map.values().find_map(|i| foreign_url(i, base)),
        _ => None,
    }
}

/// Server-side copies of the objects the target's storage lacks (`found`:
/// what the target holds at each object of the promoted release; mutable
/// files at their content-addressed copies, which activation restores).
/// Other bytes at a key the release needs are a conflict (exit 3), as for
/// a deploy; other bytes at a content-addressed copy are corruption (4).
pub fn copies(
    found: &[(String, &ReleaseFile, Found)],
    record: &ReleaseRecord,
    from: &Config,
    to: &Config,
) -> anyhow::Result<Vec<ObjectCopy>> {
    let (src_meta, bucket) = (from.meta_prefix()?, to.bucket()?);
    let mut copies = Vec::new();
    let mut conflicts = Vec::new();
    for (key, file, state) in found {
        match state {
            Found::Intact => {}
            Found::Missing => copies.push(copy_of(file, key.clone(), record, &src_meta, from)?),
            Found::Other(_) if file.mutable => {
                return Err(Failure::verification(format!(
                    "{key} in s3://{bucket} holds other bytes than its name says (sha256 {}); delete it, then promote again",
                    file.sha256
                )))
            }
            Found::Other(_) => conflicts.push(key.clone()),
        }
    }
    if !conflicts.is_empty() {
        return Err(Failure::refused(format!(
            "{} in s3://{bucket} would be overwritten with other bytes: {}; nothing was promoted",
            count(conflicts.len(), "object"),
            some(&conflicts, 10)
        )));
    }
    if !copies.is_empty() && from.s3_endpoint != to.s3_endpoint {
        return Err(Failure::input(format!(
            "s3://{bucket} lacks {} of release {}, and a server-side copy cannot reach s3://{} from there: \
             the two environments use different S3 endpoints ({} and {}); nothing was promoted. \
             Deploy the build to the target environment instead",
            count(copies.len(), "object"),
            record.id,
            record.bucket,
            from.s3_endpoint.as_deref().unwrap_or("AWS"),
            to.s3_endpoint.as_deref().unwrap_or("AWS"),
        )));
    }
    Ok(copies)
}

/// What promote writes in the target: `copies` (see [`copies`]), the
/// record where the target keeps records elsewhere, then the switch, which
/// finds every object of the release in place once the copies are made.
pub fn promote(
    copies: Vec<ObjectCopy>,
    record_at: Option<String>,
    facts: &SwitchFacts,
    opts: &SwitchOptions,
) -> anyhow::Result<SwitchPlan> {
    let copied: HashSet<&str> = copies.iter().map(|c| c.to.as_str()).collect();
    let objects: Vec<(String, &ReleaseFile, Found)> = facts
        .objects
        .iter()
        .map(|(key, f, found)| {
            let found = if copied.contains(key.as_str()) {
                Found::Intact
            } else {
                found.clone()
            };
            (key.clone(), *f, found)
        })
        .collect();
    let mut plan = switch(
        &SwitchFacts {
            objects: &objects,
            ..*facts
        },
        opts,
    )?;
    if plan.already_live {
        return Ok(plan);
    }
    let mut steps = Vec::new();
    if !copies.is_empty() {
        steps.push(Step::Copy(copies));
    }
    if let Some(key) = record_at {
        steps.push(Step::PutRecord {
            key,
            record: Arc::new(facts.record.clone()),
            signs: false,
        });
    }
    steps.append(&mut plan.steps);
    plan.steps = steps;
    Ok(plan)
}

/// Where the target keeps the promoted record, when not where the source
/// keeps it (another bucket or records prefix): the record is written there.
pub fn record_key_in_target(
    from: &Config,
    to: &Config,
    id: &str,
) -> anyhow::Result<Option<String>> {
    let (src_meta, dst_meta) = (from.meta_prefix()?, to.meta_prefix()?);
    Ok((from.bucket()? != to.bucket()? || src_meta != dst_meta).then(|| record_key(&dst_meta, id)))
}

/// The copy that puts `file` at `key` in the target, from the source.
fn copy_of(
    file: &ReleaseFile,
    key: String,
    record: &ReleaseRecord,
    src_meta: &str,
    from: &Config,
) -> anyhow::Result<ObjectCopy> {
    let headers = file.headers.clone().ok_or_else(|| {
        Failure::input(format!(
            "release {} was recorded without the headers of its files, so they cannot be copied faithfully; \
             deploy the build to this environment",
            record.id
        ))
    })?;
    let source = if file.mutable {
        mutable_key(src_meta, &file.sha256)
    } else {
        crate::contract::object_key(&record.prefix, &file.path)
    };
    Ok(ObjectCopy {
        from_bucket: Some(from.bucket()?.to_string()),
        from: source,
        to: key,
        headers,
        sha256: file.sha256.clone(),
        if_match: None,
    })
}

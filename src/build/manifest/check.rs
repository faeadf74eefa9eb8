//! What the adapters share while they walk a manifest: an asset path
//! resolved to a build file and checked (inside the build, not a manifest,
//! its integrity matching its bytes).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::super::{Build, BuildFile};

/// What the adapters share while they walk a manifest: resolving asset
/// paths to build files, checking them, and collecting what was found.
pub(crate) struct Check<'a> {
    pub(super) build: &'a Build,
    pub(super) manifest_path: &'a str,
    pub(super) manifest_files: &'a BTreeSet<String>,
    pub(super) public_url: &'a dyn Fn(&str) -> String,
    pub(super) problems: Vec<String>,
    pub(super) referenced: Vec<String>,
    /// Public paths in front of the asset paths, by how often.
    pub(super) public_paths: BTreeMap<String, usize>,
    /// Files the format names by content.
    pub(super) fingerprinted: BTreeSet<String>,
}

impl Check<'_> {
    pub(crate) fn problem(&mut self, msg: String) {
        self.problems.push(msg);
    }

    /// The build file an asset path names, checked: inside the build, not a
    /// manifest, its integrity (if given) matching its bytes.
    pub(crate) fn file(&mut self, value: &str, integrity: Option<&str>) -> Option<&BuildFile> {
        let (file, public_path) = match resolve(self.build, value) {
            Ok(r) => r,
            Err(msg) => {
                self.problems.push(msg);
                return None;
            }
        };
        if self.manifest_files.contains(&file) {
            let which =
                if file.trim_end_matches(".gz").trim_end_matches(".br") == self.manifest_path {
                    "the manifest itself"
                } else {
                    "a manifest file"
                };
            self.problems.push(format!(
                "an entry names {which} ({value:?}), which is published through Redis and never uploaded; remove that entry"
            ));
            return None;
        }
        let f = self.build.get(&file).expect("resolved files exist");
        if let Some(sri) = integrity {
            if integrity_matches(self.build, f, sri) == Some(false) {
                let ours = crate::build::digest::sri_digest(
                    &self.build.root.join(&f.path),
                    crate::build::digest::SriAlg::Sha384,
                )
                .unwrap_or_default();
                self.problems.push(format!(
                    "integrity of {file} does not match its bytes (manifest says {sri}, file is sha384-{ours}): the build is inconsistent"
                ));
            }
        }
        *self.public_paths.entry(public_path).or_default() += 1;
        self.referenced.push(file);
        Some(f)
    }

    /// An asset path: checked (see [`Check::file`]) and made a CDN URL.
    pub(crate) fn url(&mut self, value: &str, integrity: Option<&str>) -> Option<String> {
        let path = self.file(value, integrity)?.path.clone();
        Some((self.public_url)(&path))
    }

    /// The format's build tool named this file by its content.
    pub(crate) fn fingerprinted(&mut self, path: &str) {
        if let Ok((file, _)) = resolve(self.build, path) {
            self.fingerprinted.insert(file);
        }
    }
}

/// Does an SRI string (`sha384-BASE64 [sha512-...]`) match a file's bytes?
/// SHA-256 comes from the scan; SHA-384 and SHA-512 are computed here, for
/// the files a manifest gives an `integrity` only. None when it names no
/// SHA-2 algorithm.
fn integrity_matches(build: &Build, file: &BuildFile, sri: &str) -> Option<bool> {
    crate::build::digest::matches_sri(&build.root.join(&file.path), &file.digests.sha256, sri)
}

/// Replace every string in `v` that is not an `integrity` by what `f`
/// returns; `f` gets the sibling integrity of a `src`, if any.
pub(crate) fn rewrite_strings(
    v: &mut Value,
    integrity: Option<&str>,
    f: &mut dyn FnMut(&str, Option<&str>) -> Option<String>,
) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s, integrity) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_strings(i, None, f)),
        Value::Object(map) => {
            let sri = map
                .get("integrity")
                .and_then(Value::as_str)
                .map(str::to_string);
            for (k, child) in map.iter_mut() {
                if k == "integrity" {
                    continue;
                }
                let sibling = if k == "src" { sri.as_deref() } else { None };
                rewrite_strings(child, sibling, f);
            }
        }
        _ => {}
    }
}

/// Find the build file a manifest value names: the longest `/`-suffix of the
/// value (without query or fragment) that is a file of the build.
/// Returns (file path, public path before it).
///
/// The value is tried as written (a file may have `#` or `?` in its name),
/// then without a query or fragment, each also percent-decoded.
pub(crate) fn resolve(build: &Build, value: &str) -> Result<(String, String), String> {
    if climbs_out(value) {
        return Err(format!(
            "asset path {value:?} contains `..`; every asset must be inside the build directory"
        ));
    }
    resolve_in(value, &|p| build.get(p).is_some()).ok_or_else(|| {
        match resolve_in(value, &|p| build.is_excluded(p)) {
            Some((file, _)) => format!(
                "it names {value:?}, but exclude ({}) leaves {file} out; exclude that entry too, or stop excluding the file",
                build.exclude.globs.join(" ")
            ),
            None => format!("it names {value:?}, which is not a file in the build"),
        }
    })
}

/// [`resolve`] against any set of files; `None` when none is named.
fn resolve_in(value: &str, exists: &dyn Fn(&str) -> bool) -> Option<(String, String)> {
    for candidate in candidates(value).iter().map(String::as_str) {
        let mut start = 0;
        loop {
            let rest = &candidate[start..];
            if !rest.is_empty() && exists(rest) {
                return Some((rest.to_string(), candidate[..start].to_string()));
            }
            match rest.find('/') {
                Some(i) => start += i + 1,
                None => break,
            }
        }
    }
    None
}

/// A value as written, decoded, and without query or fragment.
fn candidates(value: &str) -> [String; 4] {
    let clean = value.split(['?', '#']).next().unwrap_or(value);
    [
        value.to_string(),
        percent_decode(value),
        clean.to_string(),
        percent_decode(clean),
    ]
}

fn climbs_out(value: &str) -> bool {
    candidates(value)
        .iter()
        .any(|c| c.split('/').any(|seg| seg == ".."))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

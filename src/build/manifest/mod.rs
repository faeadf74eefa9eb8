//! The build's manifest: find it, read it in its format, check it against
//! the build, and produce the live manifest (the same shape, every asset
//! path an absolute CDN URL). One adapter per format:
//!
//! | format | file | adapter |
//! |---|---|---|
//! | Shakapacker (webpack-assets-manifest) | `manifest.json` | [`shakapacker`] |
//! | webpack-manifest-plugin | `manifest.json` | [`webpack`] |
//! | Vite (vite_ruby) | `.vite/manifest.json` (+ `manifest-assets.json`) | [`vite`] |
//! | Propshaft | `.manifest.json` | [`propshaft`] |
//! | Sprockets | `.sprockets-manifest-<hex>.json` | [`sprockets`] |
//!
//! Each adapter says which fields are asset paths (and which are metadata,
//! such as Vite's `imports`, which name manifest keys), checks integrity
//! where the format records it, rewrites paths to CDN URLs, and lists the
//! logical entries `diff` compares. docs/how-it-works.md, "Inputs", is the contract.
//!
//! What the adapters share while checking asset paths is in `check.rs`; the
//! entries of a live manifest and the diff of two are in `diff.rs`.

mod check;
mod diff;
mod json;
pub mod propshaft;
mod scan;
pub mod shakapacker;
pub mod sprockets;
pub mod vite;
pub mod webpack;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::Build;
use crate::error::Failure;
pub(crate) use check::{resolve, rewrite_strings, Check};
pub use diff::{diff, entries, Change, Entry, ManifestDiff};

/// A manifest format (`manifest_format`; `auto` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Shakapacker / webpack-assets-manifest: `{"src": ..., "integrity": ...}` plus `entrypoints`.
    Shakapacker,
    /// webpack-manifest-plugin: `"name": "/packs/path"`.
    Webpack,
    /// Vite's `.vite/manifest.json`: `{"file", "css", "assets", "imports", ...}` per chunk.
    Vite,
    /// Propshaft's `.manifest.json`: `{"digested_path", "integrity"}` per logical path.
    Propshaft,
    /// Sprockets' `.sprockets-manifest-<hex>.json`: `files` and `assets`.
    Sprockets,
}

/// The names `manifest_format` takes, `auto` first.
pub const FORMAT_NAMES: &str = "auto, shakapacker, webpack, vite, propshaft, sprockets";

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Shakapacker,
        Format::Webpack,
        Format::Vite,
        Format::Propshaft,
        Format::Sprockets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Shakapacker => "shakapacker",
            Format::Webpack => "webpack",
            Format::Vite => "vite",
            Format::Propshaft => "propshaft",
            Format::Sprockets => "sprockets",
        }
    }

    /// `auto` is `Ok(None)`.
    pub fn parse(v: &str) -> Result<Option<Format>, String> {
        if v.eq_ignore_ascii_case("auto") {
            return Ok(None);
        }
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(v))
            .map(Some)
            .ok_or_else(|| format!("one of {FORMAT_NAMES}"))
    }

    /// What users call it, in messages.
    pub fn label(self) -> &'static str {
        match self {
            Format::Shakapacker => "Shakapacker (webpack-assets-manifest)",
            Format::Webpack => "webpack-manifest-plugin",
            Format::Vite => "Vite",
            Format::Propshaft => "Propshaft",
            Format::Sprockets => "Sprockets",
        }
    }

    /// How to make a good manifest again, for error messages.
    fn rebuild(self) -> &'static str {
        match self {
            Format::Shakapacker | Format::Webpack => "rebuild it with webpack",
            Format::Vite => "rebuild it with vite build",
            Format::Propshaft | Format::Sprockets => "rebuild it with bin/rails assets:precompile",
        }
    }

    /// The manifest's path inside the build when none is configured.
    fn default_path(self, build: &Build) -> Option<String> {
        match self {
            Format::Shakapacker | Format::Webpack => Some("manifest.json".into()),
            Format::Vite => Some(vite::MANIFEST.into()),
            Format::Propshaft => Some(propshaft::MANIFEST.into()),
            Format::Sprockets => sprockets::manifests(build, "").into_iter().next(),
        }
    }

    /// Does a parsed manifest have this format's shape?
    fn shape(self, raw: &Value, path: &str) -> bool {
        match self {
            Format::Shakapacker => shakapacker::shape(raw),
            Format::Webpack => webpack::shape(raw),
            Format::Vite => vite::shape(raw),
            Format::Propshaft => propshaft::shape(raw, path),
            Format::Sprockets => sprockets::shape(raw),
        }
    }

    /// The format of a parsed manifest, from its shape (and, for shapes
    /// several formats share, its file name). Most specific first.
    pub fn detect(raw: &Value, path: &str) -> Option<Format> {
        [
            Format::Sprockets,
            Format::Vite,
            Format::Propshaft,
            Format::Shakapacker,
            Format::Webpack,
        ]
        .into_iter()
        .find(|f| f.shape(raw, path))
    }
}

/// Where the build's own files say they are served from, as far as a
/// format records it (kept in the release record: promoting a release to
/// another CDN depends on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "path", rename_all = "lowercase")]
pub enum PublicPath {
    /// Relative, or not recorded: nothing to check.
    Unknown,
    /// Used by code running in the page (webpack's `publicPath`, Vite's
    /// `base`): resolved against the page, so it must be `CDN_URL/PREFIX/`.
    Page(String),
    /// Used only inside the files (stylesheets' `url()`, source maps),
    /// resolved against the file's own URL: a path must be the path of
    /// `CDN_URL/PREFIX/`, a URL the whole of it.
    Asset(String),
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub format: Format,
    /// `manifest_format = auto` chose the format (and the path, unless given).
    pub detected: bool,
    /// The manifest file's path inside the build.
    pub path: String,
    /// Every manifest file of the format in the build (with `.gz`/`.br`
    /// copies): published through Redis, never uploaded.
    pub excluded: BTreeSet<String>,
    /// Every build file the manifest names.
    pub referenced: Vec<String>,
    /// Files the format's build tool named by their content (beyond what
    /// the file name shows), with their `.map`, `.gz` and `.br` companions.
    pub fingerprinted: BTreeSet<String>,
    /// Where the build was made to be served from.
    pub public_path: PublicPath,
    /// What the user should know about the manifest (e.g. a stale second one).
    pub warnings: Vec<String>,
    /// The live manifest: same shape, every asset path an absolute CDN URL.
    pub live: Value,
}

impl Manifest {
    /// Was this file named by its content, by its name or by the format?
    pub fn is_fingerprinted(&self, path: &str) -> bool {
        super::headers::is_fingerprinted(path) || self.fingerprinted.contains(path)
    }

    /// A warning when the build's public path is not where its files will
    /// be served from (`expected` is `CDN_URL/PREFIX/`).
    pub fn public_path_warning(&self, expected: &str, cdn_url: &str) -> Option<String> {
        if self.public_path.serves_from(expected) {
            return None;
        }
        match (&self.public_path, self.format) {
            (PublicPath::Unknown, _) => None,
            (PublicPath::Page(p), Format::Vite) => Some(format!(
                "the build's base is {p:?} but its files will be served from {expected}: preloads, lazy-loaded chunks \
                 and CSS url()s would load from the wrong place; build with Vite's base = {expected} \
                 (vite_ruby: VITE_RUBY_ASSET_HOST={cdn_url} and publicOutputDir = the prefix)"
            )),
            (PublicPath::Page(p), _) => Some(format!(
                "the build's public path is {p:?} but its files will be served from {expected}: lazy-loaded chunks would \
                 load from the wrong host; build with the CDN as webpack's publicPath (Shakapacker: SHAKAPACKER_ASSET_HOST={cdn_url})"
            )),
            (PublicPath::Asset(p), _) => {
                Some(format!(
                        "the build's stylesheets and source maps name its files under {p:?} but they will be served from \
                         {expected}: their url()s would not resolve; serve the build there (prefix = {:?} with the CDN \
                         at its root) or change config.assets.prefix and precompile again",
                        p.trim_matches('/')
                ))
            }
        }
    }
}

impl PublicPath {
    /// Do the build's files find each other when served from `expected`
    /// (`CDN_URL/PREFIX/`)? Relative (or unrecorded) paths always do.
    pub fn serves_from(&self, expected: &str) -> bool {
        match self {
            PublicPath::Unknown => true,
            PublicPath::Page(p) => p == expected,
            PublicPath::Asset(p) if p.starts_with('/') && !p.starts_with("//") => {
                url::Url::parse(expected).is_ok_and(|u| u.path() == p)
            }
            PublicPath::Asset(p) => p == expected,
        }
    }
}

/// Which manifest to read: a path (else found by format) and a format (else auto).
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    pub path: Option<&'a str>,
    pub format: Option<Format>,
}

/// Find, read and check the manifest of a scanned build. `public_url` maps
/// a path inside the build to its CDN URL.
pub fn find(
    build: &Build,
    wanted: Wanted,
    public_url: &dyn Fn(&str) -> String,
) -> anyhow::Result<Manifest> {
    let path = match (wanted.path, wanted.format) {
        (Some(p), _) => p.to_string(),
        (None, Some(f)) => f.default_path(build).ok_or_else(|| {
            Failure::input(format!(
                "no {} manifest in {} (looked for {}); precompile the assets into it, or pass --manifest with its path inside the build",
                f.label(),
                build.root.display(),
                sprockets::PATTERN
            ))
        })?,
        (None, None) => auto_path(build)?,
    };
    let mut m = read(build, &path, wanted.format, public_url)?;
    m.detected = wanted.format.is_none();
    Ok(m)
}

/// Read and check the manifest at `path` inside the build, detecting its
/// format from its shape and name.
pub fn load(
    build: &Build,
    manifest_path: &str,
    public_url: &dyn Fn(&str) -> String,
) -> anyhow::Result<Manifest> {
    find(
        build,
        Wanted {
            path: Some(manifest_path),
            format: None,
        },
        public_url,
    )
}

/// The one manifest a build has, by the names the formats use.
fn auto_path(build: &Build) -> anyhow::Result<String> {
    let mut found: Vec<String> = ["manifest.json", vite::MANIFEST, propshaft::MANIFEST]
        .into_iter()
        .filter(|p| build.get(p).is_some() || build.is_excluded(p))
        .map(str::to_string)
        .collect();
    // Sprockets picks the first one by name when there are several.
    found.extend(sprockets::manifests(build, "").into_iter().take(1));
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::input(format!(
            "no manifest.json in {}, nor another format's manifest ({} for Vite, {} for Propshaft, {} for Sprockets); \
             build the front end into it, or pass --manifest with the manifest's path inside the build",
            build.root.display(),
            vite::MANIFEST,
            propshaft::MANIFEST,
            sprockets::PATTERN
        ))),
        several => Err(Failure::input(format!(
            "{} holds manifests of several builds ({}); deploy the directory of one build, or pass --manifest \
             (or --manifest-format) to choose",
            build.root.display(),
            several.join(", ")
        ))),
    }
}

fn read_json(build: &Build, path: &str) -> anyhow::Result<Value> {
    if build.is_excluded(path) {
        return Err(Failure::input(format!(
            "exclude ({}) matches the manifest {path}; the manifest is never uploaded anyway, remove the glob that matches it",
            build.exclude.globs.join(" ")
        )));
    }
    let full = build.root.join(path);
    let text = match std::fs::read(&full) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::input(format!(
                "no {path} in {}; let the build write one, or pass --manifest with its path inside the build",
                build.root.display()
            )))
        }
        Err(e) => {
            return Err(Failure::input(format!(
                "cannot read manifest {}: {e}",
                full.display()
            )))
        }
    };
    // A byte-order mark is not JSON, but editors write one; it means nothing.
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
    json::strict_json(text).map_err(|e| {
        Failure::input(format!(
            "manifest {} is not valid JSON ({e}); rebuild it",
            full.display()
        ))
    })
}

fn read(
    build: &Build,
    path: &str,
    format: Option<Format>,
    public_url: &dyn Fn(&str) -> String,
) -> anyhow::Result<Manifest> {
    let raw = read_json(build, path)?;
    let format = match format {
        Some(f) => f,
        None => Format::detect(&raw, path).ok_or_else(|| {
            Failure::input(format!(
                "manifest {path}: expected a JSON object of entries in one of the formats {}; rebuild it",
                &FORMAT_NAMES["auto, ".len()..]
            ))
        })?,
    };
    let raw = if format == Format::Vite {
        vite::with_companion(build, path, raw)?
    } else {
        raw
    };
    let mut m = parse(build, path, format, raw, public_url)?;
    if format == Format::Sprockets {
        m.warnings.extend(sprockets::several_warning(build, path));
    }
    Ok(m)
}

/// Check a parsed manifest of a given format against the build and
/// rewrite it (pure, but for reading text files to find the public path).
pub fn parse(
    build: &Build,
    path: &str,
    format: Format,
    raw: Value,
    public_url: &dyn Fn(&str) -> String,
) -> anyhow::Result<Manifest> {
    let bad = |what: String| {
        Failure::input(format!(
            "manifest {path} ({}): {what}; {}",
            format.label(),
            format.rebuild()
        ))
    };
    let Value::Object(top) = &raw else {
        return Err(bad("expected a JSON object of entries".into()));
    };
    if top.is_empty() {
        return Err(bad("it has no entries".into()));
    }
    if !format.shape(&raw, path) {
        return Err(bad(format!(
            "it is not in the {} format; set manifest_format to the build's (or auto)",
            format.label()
        )));
    }
    let mut raw = raw;
    drop_excluded_entries(format, &mut raw, &build.exclude);
    if raw.as_object().is_some_and(|o| o.is_empty()) {
        return Err(bad(format!(
            "exclude ({}) leaves out every entry",
            build.exclude.globs.join(" ")
        )));
    }
    let excluded = excluded(build, path, format);
    let mut check = Check {
        build,
        manifest_path: path,
        manifest_files: &excluded,
        public_url,
        problems: Vec::new(),
        referenced: Vec::new(),
        public_paths: BTreeMap::new(),
        fingerprinted: BTreeSet::new(),
    };
    let live = match format {
        Format::Shakapacker => shakapacker::rewrite(&mut check, raw),
        Format::Webpack => webpack::rewrite(&mut check, raw),
        Format::Vite => vite::rewrite(&mut check, raw),
        Format::Propshaft => propshaft::rewrite(&mut check, raw),
        Format::Sprockets => sprockets::rewrite(&mut check, raw),
    };
    if let Some(first) = check.problems.first() {
        let more = if check.problems.len() > 1 {
            format!(" (and {} more)", check.problems.len() - 1)
        } else {
            String::new()
        };
        return Err(bad(format!("{first}{more}")));
    }
    let Check {
        mut referenced,
        public_paths,
        fingerprinted,
        ..
    } = check;
    referenced.sort();
    referenced.dedup();
    let public_path = match format {
        Format::Shakapacker | Format::Webpack => most_common(public_paths)
            .filter(|p| !p.is_empty())
            .map(PublicPath::Page)
            .unwrap_or(PublicPath::Unknown),
        Format::Vite => vite::public_path(build, &live),
        Format::Propshaft | Format::Sprockets => scan::stylesheet_public_path(build, &referenced),
    };
    let fingerprinted = with_companions(build, &fingerprinted);
    Ok(Manifest {
        format,
        detected: false,
        path: path.to_string(),
        excluded,
        referenced,
        fingerprinted,
        public_path,
        warnings: Vec::new(),
        live,
    })
}

/// Remove the entries whose names `exclude` matches (or, for `x.gz` and
/// `x.br`, the name of the original `x`): the top-level keys
/// (but Shakapacker's `entrypoints`), and Sprockets' `assets` keys and
/// `files` by logical path.
fn drop_excluded_entries(format: Format, raw: &mut Value, exclude: &super::Exclude) {
    if exclude.is_empty() {
        return;
    }
    let Value::Object(top) = raw else { return };
    match format {
        Format::Sprockets => {
            if let Some(Value::Object(assets)) = top.get_mut("assets") {
                assets.retain(|name, _| !exclude.leaves_out(name));
            }
            if let Some(Value::Object(files)) = top.get_mut("files") {
                files.retain(|_, record| {
                    !record
                        .get("logical_path")
                        .and_then(Value::as_str)
                        .is_some_and(|name| exclude.leaves_out(name))
                });
            }
        }
        Format::Shakapacker => {
            top.retain(|name, _| name == "entrypoints" || !exclude.leaves_out(name))
        }
        Format::Webpack | Format::Vite | Format::Propshaft => {
            top.retain(|name, _| !exclude.leaves_out(name))
        }
    }
}

/// The manifest files of a format in the build, with their compressed copies.
fn excluded(build: &Build, path: &str, format: Format) -> BTreeSet<String> {
    let dir = match path.rsplit_once('/') {
        Some((d, _)) => format!("{d}/"),
        None => String::new(),
    };
    let mut names: Vec<String> = vec![path.to_string()];
    match format {
        Format::Vite => names.extend(vite::COMPANIONS.iter().map(|n| format!("{dir}{n}"))),
        Format::Sprockets => names.extend(sprockets::manifests(build, &dir)),
        _ => {}
    }
    names
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}.gz"), format!("{n}.br")])
        .collect()
}

/// A fingerprinted file's source map and precompressed copies are too.
fn with_companions(build: &Build, names: &BTreeSet<String>) -> BTreeSet<String> {
    build
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| {
            let mut base = *p;
            loop {
                if names.contains(base) {
                    return true;
                }
                match [".gz", ".br", ".map"]
                    .iter()
                    .find_map(|s| base.strip_suffix(s))
                {
                    Some(b) => base = b,
                    None => return false,
                }
            }
        })
        .map(str::to_string)
        .collect()
}

fn most_common(counts: BTreeMap<String, usize>) -> Option<String> {
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(p, _)| p)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::events::Quiet;

    /// A scanned build of these files, in a temporary directory.
    pub fn build(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Build) {
        let dir = tempfile::tempdir().unwrap();
        for (p, b) in files {
            let full = dir.path().join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, b).unwrap();
        }
        let b = crate::build::scan::scan(dir.path(), &Default::default(), &Quiet).unwrap();
        (dir, b)
    }

    pub fn cdn(p: &str) -> String {
        format!("https://cdn.example.com/packs/{p}")
    }

    /// A committed fixture build, scanned.
    pub fn fixture(name: &str) -> Build {
        fixture_excluding(name, &[])
    }

    /// A committed fixture build, scanned with `exclude` globs.
    pub fn fixture_excluding(name: &str, globs: &[&str]) -> Build {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/builds")
            .join(name);
        let exclude = crate::build::Exclude::new(globs.iter().map(|g| g.to_string()).collect());
        crate::build::scan::scan(&dir, &exclude.unwrap(), &Quiet).unwrap()
    }

    /// `find` with auto everything, as a deploy without settings does.
    pub fn auto(b: &Build, url: &dyn Fn(&str) -> String) -> anyhow::Result<Manifest> {
        find(b, Wanted::default(), url)
    }
}

#[cfg(test)]
mod tests;

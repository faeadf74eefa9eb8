//! Where a build's own text files say its files are served from: the
//! prefixes in front of build files in stylesheets' `url()`s, and Vite's
//! preload helper. Reads only files the manifest names, and only the start
//! of so many of them, so that a big build costs little.

use std::collections::BTreeMap;

use super::{most_common, resolve, PublicPath};
use crate::build::Build;

/// Read at most this much of a file, and at most this many files.
const MAX_BYTES: u64 = 1024 * 1024;
pub(super) const MAX_FILES: usize = 50;

/// The start of a text file of the build.
pub(super) fn text(build: &Build, path: &str) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(build.root.join(path)).ok()?;
    let mut bytes = Vec::new();
    f.take(MAX_BYTES).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Registries of `url(...)` in a stylesheet, as written.
pub(super) fn css_urls(css: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = css;
    while let Some(i) = rest.find("url(") {
        rest = rest[i + 4..].trim_start();
        let (quote, body) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &rest[1..]),
            _ => (None, rest),
        };
        let end = match quote {
            Some(q) => body.find(q),
            None => body.find(')'),
        };
        let Some(end) = end else { break };
        out.push(body[..end].trim().to_string());
        rest = &body[end..];
    }
    out
}

/// The prefixes in front of build files in the `url()`s of these
/// stylesheets, by how often (relative references count as "").
pub(super) fn css_prefixes<'a>(
    build: &Build,
    stylesheets: impl Iterator<Item = &'a str>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for path in stylesheets.take(MAX_FILES) {
        let Some(css) = text(build, path) else {
            continue;
        };
        for url in css_urls(&css) {
            if url.is_empty() || url.starts_with("data:") || url.starts_with('#') {
                continue;
            }
            if let Ok((_, prefix)) = resolve(build, &url) {
                let prefix = if is_absolute(&prefix) {
                    prefix
                } else {
                    String::new()
                };
                *counts.entry(prefix).or_default() += 1;
            }
        }
    }
    counts
}

/// `/x/`, `//host/x/` or `https://host/x/`: not relative to the file.
pub(super) fn is_absolute(prefix: &str) -> bool {
    prefix.starts_with('/') || prefix.contains("://")
}

/// Propshaft and Sprockets: the prefix their stylesheets put in front of
/// the build's files (Propshaft: `/assets/`, `config.assets.prefix`).
pub(super) fn stylesheet_public_path(build: &Build, referenced: &[String]) -> PublicPath {
    let counts = css_prefixes(
        build,
        referenced
            .iter()
            .map(String::as_str)
            .filter(|p| p.ends_with(".css")),
    );
    match most_common(counts) {
        Some(p) if !p.is_empty() => PublicPath::Asset(p),
        _ => PublicPath::Unknown,
    }
}

/// The base Vite's preload helper puts in front of a chunk's dependencies:
/// `const scriptRel = "modulepreload"; const assetsURL = function(dep) {
/// return "BASE" + dep }` (minified or not). A relative base uses
/// `new URL(dep, importerUrl)` instead: None.
pub(super) fn vite_preload_base(js: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = js[from..].find("modulepreload") {
        let at = from + i;
        from = at + 1;
        let window = &js[at..js.len().min(at + 400)];
        let Some(r) = window.find("return") else {
            continue;
        };
        let after = window[r + "return".len()..].trim_start();
        let Some(q @ ('"' | '\'' | '`')) = after.chars().next() else {
            continue;
        };
        let body = &after[1..];
        let Some(end) = body.find(q) else { continue };
        if body[end + 1..].trim_start().starts_with('+') {
            return Some(body[..end].to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_urls_quoted_unquoted_and_spaced() {
        let css = r#"a{background:url(/assets/a.png)} b{src:url( "x y.woff2" ) format("woff2")} c{x:url('q.svg#i')}"#;
        assert_eq!(css_urls(css), ["/assets/a.png", "x y.woff2", "q.svg#i"]);
        assert!(css_urls("url(").is_empty());
    }

    #[test]
    fn vite_preload_helper_minified_and_not() {
        let min = r#"const E="modulepreload",y=function(s){return"https://cdn.example.com/vite/"+s},u={};"#;
        assert_eq!(
            vite_preload_base(min).as_deref(),
            Some("https://cdn.example.com/vite/")
        );
        let plain =
            "const scriptRel = 'modulepreload';const assetsURL = function(dep) { return \"/vite/\"+dep };";
        assert_eq!(vite_preload_base(plain).as_deref(), Some("/vite/"));
        let relative = "const scriptRel = 'modulepreload';const assetsURL = function(dep, importerUrl) { return new URL(dep, importerUrl).href };";
        assert_eq!(vite_preload_base(relative), None);
    }
}

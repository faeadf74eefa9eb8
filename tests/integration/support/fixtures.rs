//! Fixture builds: the committed webpack builds, and generated ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};

use super::{repo_root, Ctx};

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/builds").join(name)
}

/// Copy a fixture build into the test's work dir (so tests can change it).
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A generated webpack-like build in `dir`: `count` small chunks with
/// content-hashed names under `js/`, and a flat manifest naming a few of them.
/// Returns every uploadable file: path inside the build -> bytes.
pub fn generate_build(dir: &Path, count: usize) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(dir.join("js")).unwrap();
    let mut files = BTreeMap::new();
    let mut manifest = serde_json::Map::new();
    for i in 0..count {
        // Salt until the 20-hex hash has a digit and a letter, so every name
        // counts as fingerprinted.
        let (name, body) = (0u32..)
            .map(|salt| {
                let body = format!(
                    "/* chunk {i} ({salt}) */\n(self.webpackChunk=self.webpackChunk||[]).push([[{i}],{{{i}:e=>{{e.exports={:?}}}}}]);\n",
                    "abcdefgh".repeat(1 + i % 23)
                );
                let hash = hex::encode(Sha256::digest(body.as_bytes()))[..20].to_string();
                (format!("js/chunk-{hash}.js"), body)
            })
            .find(|(name, _)| {
                let hash = &name["js/chunk-".len()..name.len() - ".js".len()];
                hash.bytes().any(|b| b.is_ascii_digit())
                    && hash.bytes().any(|b| b.is_ascii_alphabetic())
            })
            .unwrap();
        std::fs::write(dir.join(&name), &body).unwrap();
        if i < 5 {
            manifest.insert(format!("chunk-{i}.js"), format!("/packs/{name}").into());
        }
        files.insert(name, body.into_bytes());
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    files
}

/// The S3 key of a build file.
pub fn key_of(path: &str) -> String {
    format!("packs/{path}")
}

/// Read every object of the build back from S3 (bypassing any proxy) and
/// check the public prefix holds exactly the build: bytes and `sha256` metadata.
pub async fn assert_s3_holds_exactly(ctx: &Ctx, files: &BTreeMap<String, Vec<u8>>) {
    let listed: BTreeSet<String> = ctx
        .objects()
        .await
        .into_keys()
        .filter(|k| k.starts_with("packs/"))
        .collect();
    let expected: BTreeSet<String> = files.keys().map(|p| key_of(p)).collect();
    let missing: Vec<&String> = expected.difference(&listed).take(10).collect();
    let extra: Vec<&String> = listed.difference(&expected).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "S3 does not hold exactly the build: missing {missing:?}, extra {extra:?}"
    );
    let s3 = ctx.s3().await;
    let s3 = &s3;
    let problems: Vec<String> = stream::iter(files)
        .map(|(path, bytes)| async move {
            let key = key_of(path);
            let got = s3
                .get_object()
                .bucket(&ctx.bucket)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("cannot read {key}: {e:?}"));
            let sha = got
                .metadata()
                .and_then(|m| m.get("sha256"))
                .cloned()
                .unwrap_or_default();
            let body = got.body.collect().await.unwrap().into_bytes();
            let want = hex::encode(Sha256::digest(bytes));
            if body.as_ref() != bytes.as_slice() {
                Some(format!(
                    "{key}: {} bytes in S3, {} in the build",
                    body.len(),
                    bytes.len()
                ))
            } else if sha != want {
                Some(format!("{key}: sha256 metadata {sha:?}, expected {want}"))
            } else {
                None
            }
        })
        .buffer_unordered(8)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    assert!(
        problems.is_empty(),
        "{} objects differ from the build: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

/// A two-file build with a Shakapacker-style manifest; the script's name
/// carries a hash of its content, as webpack's do.
pub fn tiny_build(dir: &Path, js: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let root = dir.join("tiny");
    std::fs::create_dir_all(root.join("js")).unwrap();
    std::fs::create_dir_all(root.join("css")).unwrap();
    let hash = &hex::encode(Sha256::digest(js.as_bytes()))[..20];
    let script = format!("js/app-{hash}.js");
    std::fs::write(root.join(&script), js).unwrap();
    std::fs::write(root.join("css/app-9d8c7b6a5f4e3d2c1b0a.css"), "a{}").unwrap();
    let cdn = "https://cdn.example.com/packs";
    let manifest = serde_json::json!({
        "application.js": {"src": format!("{cdn}/{script}")},
        "application.css": {"src": format!("{cdn}/css/app-9d8c7b6a5f4e3d2c1b0a.css")},
        "entrypoints": {"application": {"assets": {
            "js": [format!("{cdn}/{script}")],
            "css": [format!("{cdn}/css/app-9d8c7b6a5f4e3d2c1b0a.css")]}}}
    });
    std::fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();
    root
}

/// Every file of a directory, by path inside it.
pub fn files_of(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

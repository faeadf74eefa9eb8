//! Scanning a build: walk the directory once, hash every file in one
//! streaming read (SHA-256, SHA-384, and MD5 for matching S3 ETags), spread
//! over all cores.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256, Sha384};

use crate::error::Failure;
use crate::events::{Event, Observer, Phase};

/// Content encodings of precompressed copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gzip,
    Br,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: [u8; 32],
    pub sha384: [u8; 48],
    /// MD5 of the whole file: the ETag S3 gives a single-part upload.
    pub md5: [u8; 16],
    /// The ETag S3 gives our multipart upload of this file (`md5-of-md5s-N`).
    pub multipart_etag: Option<String>,
}

impl Digests {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
    /// Base64 SHA-256, as S3's `x-amz-checksum-sha256` wants it.
    pub fn sha256_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sha256)
    }
    /// Subresource Integrity value.
    pub fn sri(&self) -> String {
        format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(self.sha384)
        )
    }
    /// The ETag S3 reports when we uploaded this file, without quotes.
    pub fn expected_etag(&self) -> String {
        self.multipart_etag
            .clone()
            .unwrap_or_else(|| hex::encode(self.md5))
    }
}

#[derive(Debug, Clone)]
pub struct BuildFile {
    /// Path inside the build, `/`-separated, valid UTF-8.
    pub path: String,
    pub size: u64,
    pub digests: Digests,
    /// For `x.js.gz`: the original `x.js` (when it is in the build) and the encoding.
    pub precompressed: Option<(String, Encoding)>,
}

#[derive(Debug, Clone)]
pub struct Build {
    pub root: PathBuf,
    /// Sorted by path.
    pub files: Vec<BuildFile>,
}

impl Build {
    pub fn get(&self, path: &str) -> Option<&BuildFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Part size we use for a multipart upload of `size` bytes: the threshold,
/// grown so that no upload needs more than 10,000 parts.
pub fn part_size(size: u64, threshold: u64) -> u64 {
    let min = threshold.max(5 * 1024 * 1024);
    min.max(size.div_ceil(10_000))
}

/// Scan and hash a build directory.
pub fn scan(
    root: &Path,
    multipart_threshold: u64,
    observer: &dyn Observer,
) -> anyhow::Result<Build> {
    let paths = walk(root)?;
    let total: u64 = paths.iter().map(|(_, _, size)| size).sum();
    observer.event(Event::Started {
        phase: Phase::Hashing,
        files: paths.len() as u64,
        bytes: total,
    });

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<anyhow::Result<BuildFile>>>> =
        Mutex::new(std::iter::repeat_with(|| None).take(paths.len()).collect());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(paths.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((rel, abs, _)) = paths.get(i) else {
                        break;
                    };
                    let result =
                        hash_file(abs, multipart_threshold, &mut buf).map(|(size, digests)| {
                            BuildFile {
                                path: rel.clone(),
                                size,
                                digests,
                                precompressed: None,
                            }
                        });
                    if let Ok(f) = &result {
                        observer.event(Event::Advanced {
                            phase: Phase::Hashing,
                            files: 1,
                            bytes: f.size,
                        });
                    }
                    results.lock().unwrap()[i] = Some(result);
                }
            });
        }
    });
    let mut files = Vec::with_capacity(paths.len());
    for r in results.into_inner().unwrap() {
        files.push(r.expect("every file was hashed")?);
    }
    observer.event(Event::Finished {
        phase: Phase::Hashing,
    });

    // Pair precompressed copies with their originals.
    let names: std::collections::HashSet<String> = files.iter().map(|f| f.path.clone()).collect();
    for f in &mut files {
        for (ext, enc) in [(".gz", Encoding::Gzip), (".br", Encoding::Br)] {
            if let Some(orig) = f.path.strip_suffix(ext) {
                if names.contains(orig) {
                    f.precompressed = Some((orig.to_string(), enc));
                }
            }
        }
    }
    Ok(Build {
        root: root.to_path_buf(),
        files,
    })
}

/// Walk the build: (relative path, absolute path, size), sorted by relative path.
fn walk(root: &Path) -> anyhow::Result<Vec<(String, PathBuf, u64)>> {
    let meta = std::fs::metadata(root).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::input(format!(
                "build directory {} does not exist; run webpack first or pass the directory it writes to",
                root.display()
            ))
        } else {
            Failure::input(format!("cannot read build directory {}: {e}", root.display()))
        }
    })?;
    if !meta.is_dir() {
        return Err(Failure::input(format!(
            "{} is not a directory; pass the webpack output directory (e.g. public/packs)",
            root.display()
        )));
    }
    let canonical_root = root.canonicalize().map_err(|e| {
        Failure::input(format!(
            "cannot resolve build directory {}: {e}",
            root.display()
        ))
    })?;
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(true) {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if e.loop_ancestor().is_some() {
                Failure::input(format!(
                    "symlink loop at {path}; remove the link from the build"
                ))
            } else {
                Failure::input(format!(
                    "cannot read {path} in the build: {e}; fix its permissions or remove it"
                ))
            }
        })?;
        if entry.path_is_symlink() {
            let target = entry.path().canonicalize().map_err(|e| {
                Failure::input(format!(
                    "broken symlink {} in the build: {e}; remove it or point it at a file inside the build",
                    entry.path().display()
                ))
            })?;
            if !target.starts_with(&canonical_root) {
                return Err(Failure::input(format!(
                    "symlink {} points outside the build directory (to {}); copy the file into the build instead",
                    entry.path().display(),
                    target.display()
                )));
            }
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir stays under root");
        let mut parts = Vec::new();
        for c in rel.components() {
            let s = c.as_os_str().to_str().ok_or_else(|| {
                Failure::input(format!(
                    "file name {} is not valid UTF-8; S3 keys must be UTF-8, rename the file",
                    rel.display()
                ))
            })?;
            parts.push(s.to_string());
        }
        let size = entry
            .metadata()
            .map_err(|e| Failure::input(format!("cannot read {}: {e}", entry.path().display())))?
            .len();
        out.push((parts.join("/"), entry.path().to_path_buf(), size));
    }
    if out.is_empty() {
        return Err(Failure::input(format!(
            "build directory {} has no files; run webpack before deploying",
            root.display()
        )));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn stat_key(m: &std::fs::Metadata) -> (u64, Option<std::time::SystemTime>) {
    (m.len(), m.modified().ok())
}

/// Hash one file in a single streaming read; detect a file that changes while read.
pub fn hash_file(
    path: &Path,
    multipart_threshold: u64,
    buf: &mut [u8],
) -> anyhow::Result<(u64, Digests)> {
    let unreadable = |e: std::io::Error| {
        Failure::input(format!(
            "cannot read {}: {e}; fix its permissions or remove it from the build",
            path.display()
        ))
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let before = stat_key(&file.metadata().map_err(unreadable)?);
    let expected = before.0;
    let part = (expected >= multipart_threshold).then(|| part_size(expected, multipart_threshold));

    let mut sha256 = Sha256::new();
    let mut sha384 = Sha384::new();
    let mut md5 = Md5::new();
    let mut part_md5 = Md5::new();
    let mut part_left = part.unwrap_or(u64::MAX);
    let mut part_digests: Vec<u8> = Vec::new();
    let mut parts = 0u64;
    let mut size = 0u64;
    loop {
        let n = file.read(buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        sha256.update(chunk);
        sha384.update(chunk);
        md5.update(chunk);
        size += n as u64;
        if let Some(part) = part {
            while !chunk.is_empty() {
                let take = (part_left as usize).min(chunk.len());
                part_md5.update(&chunk[..take]);
                chunk = &chunk[take..];
                part_left -= take as u64;
                if part_left == 0 {
                    part_digests.extend_from_slice(&part_md5.finalize_reset());
                    parts += 1;
                    part_left = part;
                }
            }
        }
    }
    let after = std::fs::metadata(path)
        .map(|m| stat_key(&m))
        .map_err(unreadable)?;
    if size != expected || after != before {
        return Err(Failure::input(format!(
            "{} changed while it was being read; wait for the build to finish, then deploy again",
            path.display()
        )));
    }
    let multipart_etag = part.map(|p| {
        if part_left != p {
            part_digests.extend_from_slice(&part_md5.finalize());
            parts += 1;
        }
        format!("{}-{parts}", hex::encode(Md5::digest(&part_digests)))
    });
    Ok((
        size,
        Digests {
            sha256: sha256.finalize().into(),
            sha384: sha384.finalize().into(),
            md5: md5.finalize().into(),
            multipart_etag,
        },
    ))
}

/// Parse an SRI string (`sha384-BASE64 [sha512-...]`) and check it against the digests.
/// Returns None when it names no algorithm we compute (nothing to check).
pub fn sri_matches(sri: &str, digests: &Digests) -> Option<bool> {
    let mut checked = None;
    for token in sri.split_whitespace() {
        let token = token.split('?').next().unwrap_or(token);
        let (alg, value) = match token.split_once('-') {
            Some(x) => x,
            None => continue,
        };
        let ours = match alg {
            "sha384" => base64::engine::general_purpose::STANDARD.encode(digests.sha384),
            "sha256" => base64::engine::general_purpose::STANDARD.encode(digests.sha256),
            _ => continue,
        };
        if ours == value {
            return Some(true);
        }
        checked = Some(false);
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Quiet;

    fn write(dir: &Path, rel: &str, bytes: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    #[test]
    fn known_digests() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.txt", b"abc");
        let (size, d) = hash_file(&dir.path().join("a.txt"), u64::MAX, &mut [0u8; 2]).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            d.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            d.sri(),
            "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn"
        );
        assert_eq!(hex::encode(d.md5), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.expected_etag(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(sri_matches(&d.sri(), &d), Some(true));
        assert_eq!(sri_matches("sha384-AAAA", &d), Some(false));
        assert_eq!(sri_matches("sha512-AAAA", &d), None);
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        let dir = tempfile::tempdir().unwrap();
        let mib = 1024 * 1024;
        let data: Vec<u8> = (0..(11 * mib)).map(|i| (i % 251) as u8).collect();
        write(dir.path(), "big.bin", &data);
        let (_, d) = hash_file(
            &dir.path().join("big.bin"),
            5 * mib as u64,
            &mut vec![0u8; 300_000],
        )
        .unwrap();
        let parts: Vec<u8> = data
            .chunks(5 * mib)
            .flat_map(|c| Md5::digest(c).to_vec())
            .collect();
        assert_eq!(
            d.multipart_etag.unwrap(),
            format!("{}-3", hex::encode(Md5::digest(&parts)))
        );
    }

    #[test]
    fn scan_is_sorted_utf8_and_pairs_compressed_copies() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "js/z app-0123abcd.js", b"z");
        write(dir.path(), "js/z app-0123abcd.js.gz", b"gz");
        write(dir.path(), "js/z app-0123abcd.js.br", b"br");
        write(dir.path(), "css/ünï-1.css", b"c");
        write(dir.path(), "lonely.gz", b"x");
        let b = scan(dir.path(), u64::MAX, &Quiet).unwrap();
        let paths: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "css/ünï-1.css",
                "js/z app-0123abcd.js",
                "js/z app-0123abcd.js.br",
                "js/z app-0123abcd.js.gz",
                "lonely.gz"
            ]
        );
        assert_eq!(
            b.get("js/z app-0123abcd.js.br").unwrap().precompressed,
            Some(("js/z app-0123abcd.js".into(), Encoding::Br))
        );
        assert_eq!(b.get("lonely.gz").unwrap().precompressed, None);
        assert_eq!(b.total_bytes(), 7);
    }

    #[test]
    fn bytes_that_differ_from_the_size_at_open_are_an_error() {
        // A FIFO reports size 0 when opened, then delivers bytes: exactly what
        // a file being rewritten while it is read looks like.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("app-0a1b2c3d4e.js");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, b"console.log(1)").unwrap())
        };
        let err = hash_file(&fifo, u64::MAX, &mut [0u8; 4]).unwrap_err();
        writer.join().unwrap();
        assert!(
            err.to_string().contains("changed while it was being read"),
            "{err}"
        );
        assert_eq!(crate::error::exit_code(&err), 2);
    }

    #[test]
    fn scan_rejects_escaping_symlink_and_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", b"s");
        write(dir.path(), "a.js", b"a");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak.js"))
            .unwrap();
        let err = scan(dir.path(), u64::MAX, &Quiet).unwrap_err();
        assert!(
            err.to_string()
                .contains("points outside the build directory"),
            "{err}"
        );
        assert_eq!(crate::error::exit_code(&err), 2);

        let empty = tempfile::tempdir().unwrap();
        assert!(scan(empty.path(), u64::MAX, &Quiet)
            .unwrap_err()
            .to_string()
            .contains("has no files"));
        let inside = tempfile::tempdir().unwrap();
        write(inside.path(), "real.js", b"r");
        std::os::unix::fs::symlink(
            inside.path().join("real.js"),
            inside.path().join("alias.js"),
        )
        .unwrap();
        assert_eq!(
            scan(inside.path(), u64::MAX, &Quiet).unwrap().files.len(),
            2
        );
    }
}

//! Digests of one file. The scan computes only SHA-256 (identity and S3's
//! integrity check), for every file; MD5 (the ETag S3 gives our upload,
//! single-part or multipart) is computed afterwards only for the files whose
//! decision needs it ([`hash_md5`]), and SHA-384/512 only for the files a
//! manifest gives an SRI `integrity` ([`sri_digest`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::error::Failure;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: [u8; 32],
    /// What S3's ETag for our upload of these bytes is made of; None until
    /// computed ([`hash_md5`]), only for files whose decision needs it.
    pub md5: Option<Md5s>,
}

/// MD5s of one file, for matching the ETag S3 gives our upload of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Md5s {
    /// MD5 of the whole file: the ETag S3 gives a single-part upload.
    pub md5: [u8; 16],
    /// The ETag S3 gives our multipart upload of this file (`md5-of-md5s-N`).
    pub multipart_etag: Option<String>,
    /// S3's composite SHA-256 checksum of our multipart upload of this file
    /// (the SHA-256 of the parts' SHA-256s, hex, `-N`): what a HEAD of it
    /// shows instead of the SHA-256 of the bytes.
    pub composite_sha256: Option<String>,
}

impl Md5s {
    /// The ETag S3 reports when we uploaded this file, without quotes.
    pub fn expected_etag(&self) -> String {
        self.multipart_etag
            .clone()
            .unwrap_or_else(|| hex::encode(self.md5))
    }
}

impl Digests {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// SRI algorithms a manifest may name, other than SHA-256 (from the scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SriAlg {
    Sha384,
    Sha512,
}

/// The SRI digest (base64) of a file's bytes, read now; only files a
/// manifest gives an `integrity` are read for it.
pub fn sri_digest(path: &Path, alg: SriAlg) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut h384 = Sha384::new();
    let mut h512 = Sha512::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        match alg {
            SriAlg::Sha384 => h384.update(&buf[..n]),
            SriAlg::Sha512 => h512.update(&buf[..n]),
        }
    }
    Ok(match alg {
        SriAlg::Sha384 => B64.encode(h384.finalize()),
        SriAlg::Sha512 => B64.encode(h512.finalize()),
    })
}

/// Does an SRI string (`sha384-BASE64 [sha256-... sha512-...]`) match the
/// bytes of the file at `path`, whose SHA-256 is `sha256`? SHA-256 comes from
/// the scan; SHA-384 and SHA-512 are computed here, only when named. None
/// when it names no SHA-2 algorithm (nothing to check).
pub fn matches_sri(path: &Path, sha256: &[u8; 32], sri: &str) -> Option<bool> {
    let mut checked = None;
    for token in sri.split_whitespace() {
        let token = token.split('?').next().unwrap_or(token);
        let Some((alg, value)) = token.split_once('-') else {
            continue;
        };
        let ours = match alg {
            "sha256" => B64.encode(sha256),
            "sha384" => sri_digest(path, SriAlg::Sha384).unwrap_or_default(),
            "sha512" => sri_digest(path, SriAlg::Sha512).unwrap_or_default(),
            _ => continue,
        };
        if ours == value {
            return Some(true);
        }
        checked = Some(false);
    }
    checked
}

/// Part size for a multipart upload of `size` bytes: the threshold, grown so
/// that no upload needs more than 10,000 parts.
pub fn part_size(size: u64, threshold: u64) -> u64 {
    let min = threshold.max(5 * 1024 * 1024);
    min.max(size.div_ceil(10_000))
}

fn stat_key(m: &std::fs::Metadata) -> (u64, Option<std::time::SystemTime>) {
    (m.len(), m.modified().ok())
}

/// Hash one file (SHA-256) in a single streaming read; a file that changes
/// while it is read is an error.
pub fn hash_file(path: &Path, buf: &mut [u8]) -> anyhow::Result<(u64, Digests)> {
    let (size, sha256, _) = read_hashing(path, None, buf)?;
    Ok((size, Digests { sha256, md5: None }))
}

/// The MD5s of a file already scanned (`size` bytes with SHA-256 `sha256`),
/// in one more streaming read that hashes it again with SHA-256: bytes other
/// than the scanned ones (the file changed since) are an error, so the MD5 is
/// always of the scanned bytes.
pub fn hash_md5(
    path: &Path,
    size: u64,
    sha256: &[u8; 32],
    multipart_threshold: u64,
    buf: &mut [u8],
) -> anyhow::Result<Md5s> {
    let changed = |how: &str| {
        Failure::input(format!(
            "{} {how} after it was hashed; wait for the build to finish, then deploy again",
            path.display()
        ))
    };
    match std::fs::metadata(path) {
        Err(_) => return Err(changed("was deleted or changed")),
        Ok(m) if m.len() < size => return Err(changed("shrank")),
        Ok(m) if m.len() > size => return Err(changed("grew")),
        Ok(_) => {}
    }
    let (again_size, again, md5s) = read_hashing(path, Some(multipart_threshold), buf)?;
    if again_size != size || &again != sha256 {
        return Err(changed("changed"));
    }
    Ok(md5s.expect("asked for"))
}

/// One streaming read: SHA-256, and the MD5s when `md5_threshold` is given
/// (the multipart threshold).
fn read_hashing(
    path: &Path,
    md5_threshold: Option<u64>,
    buf: &mut [u8],
) -> anyhow::Result<(u64, [u8; 32], Option<Md5s>)> {
    let unreadable = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Failure::input(format!(
                "{} disappeared while the build was read; wait for the build to finish, then deploy again",
                path.display()
            ));
        }
        Failure::input(format!(
            "cannot read {}: {e}; fix its permissions or remove it from the build",
            path.display()
        ))
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let before = stat_key(&file.metadata().map_err(unreadable)?);
    let expected = before.0;
    let part = md5_threshold
        .filter(|t| expected >= *t)
        .map(|t| part_size(expected, t));

    let mut sha256 = Sha256::new();
    let mut md5 = md5_threshold.map(|_| Md5::new());
    let mut parts = PartMd5s::new(part);
    let mut size = 0u64;
    loop {
        let n = file.read(buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        sha256.update(chunk);
        if let Some(md5) = md5.as_mut() {
            md5.update(chunk);
            parts.update(chunk);
        }
        size += n as u64;
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
    let md5s = md5.map(|md5| {
        let (multipart_etag, composite_sha256) = parts.finish();
        Md5s {
            md5: md5.finalize().into(),
            multipart_etag,
            composite_sha256,
        }
    });
    Ok((size, sha256.finalize().into(), md5s))
}

/// The MD5 and SHA-256 of each part of a multipart upload, for its ETag
/// and S3's composite checksum.
struct PartMd5s {
    part: Option<u64>,
    left: u64,
    current: Md5,
    current_sha: Sha256,
    digests: Vec<u8>,
    shas: Vec<u8>,
    count: u64,
}

impl PartMd5s {
    fn new(part: Option<u64>) -> PartMd5s {
        PartMd5s {
            part,
            left: part.unwrap_or(u64::MAX),
            current: Md5::new(),
            current_sha: Sha256::new(),
            digests: Vec::new(),
            shas: Vec::new(),
            count: 0,
        }
    }

    fn update(&mut self, mut chunk: &[u8]) {
        let Some(part) = self.part else { return };
        while !chunk.is_empty() {
            let take = (self.left as usize).min(chunk.len());
            self.current.update(&chunk[..take]);
            self.current_sha.update(&chunk[..take]);
            chunk = &chunk[take..];
            self.left -= take as u64;
            if self.left == 0 {
                self.digests
                    .extend_from_slice(&self.current.finalize_reset());
                self.shas
                    .extend_from_slice(&self.current_sha.finalize_reset());
                self.count += 1;
                self.left = part;
            }
        }
    }

    /// The multipart ETag and composite SHA-256 (both `-N`); None unless
    /// the file goes in parts.
    fn finish(mut self) -> (Option<String>, Option<String>) {
        let Some(part) = self.part else {
            return (None, None);
        };
        if self.left != part {
            self.digests.extend_from_slice(&self.current.finalize());
            self.shas.extend_from_slice(&self.current_sha.finalize());
            self.count += 1;
        }
        let n = self.count;
        (
            Some(format!("{}-{n}", hex::encode(Md5::digest(&self.digests)))),
            Some(format!("{}-{n}", hex::encode(Sha256::digest(&self.shas)))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, b"abc").unwrap();
        let (size, d) = hash_file(&path, &mut [0u8; 2]).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            d.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // The scan computes SHA-256 only.
        assert_eq!(d.md5, None);
        let md5s = hash_md5(&path, 3, &d.sha256, u64::MAX, &mut [0u8; 2]).unwrap();
        assert_eq!(hex::encode(md5s.md5), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(md5s.expected_etag(), "900150983cd24fb0d6963f7d28e17f72");
        let sri384 = "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn";
        assert_eq!(
            format!("sha384-{}", sri_digest(&path, SriAlg::Sha384).unwrap()),
            sri384
        );
        assert_eq!(matches_sri(&path, &d.sha256, sri384), Some(true));
        assert_eq!(
            matches_sri(
                &path,
                &d.sha256,
                "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
            ),
            Some(true)
        );
        assert_eq!(matches_sri(&path, &d.sha256, "sha384-AAAA"), Some(false));
        assert_eq!(matches_sri(&path, &d.sha256, "sha512-AAAA"), Some(false));
        assert_eq!(matches_sri(&path, &d.sha256, "md5-AAAA"), None);
    }

    #[test]
    fn md5_of_bytes_other_than_the_scanned_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app-0a1b2c3d.js");
        std::fs::write(&path, b"one").unwrap();
        let (_, d) = hash_file(&path, &mut [0u8; 8]).unwrap();
        std::fs::write(&path, b"two").unwrap();
        let err = hash_md5(&path, 3, &d.sha256, u64::MAX, &mut [0u8; 8]).unwrap_err();
        assert!(
            err.to_string().contains("changed after it was hashed"),
            "{err}"
        );
        std::fs::write(&path, b"tw").unwrap();
        let err = hash_md5(&path, 3, &d.sha256, u64::MAX, &mut [0u8; 8]).unwrap_err();
        assert!(
            err.to_string().contains("shrank after it was hashed"),
            "{err}"
        );
        assert_eq!(crate::error::exit_code(&err), 2);
    }

    #[test]
    fn a_file_that_disappeared_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let err = hash_file(&dir.path().join("gone.js"), &mut [0u8; 4])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("disappeared while the build was read"),
            "{err}"
        );
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        let dir = tempfile::tempdir().unwrap();
        let mib = 1024 * 1024;
        let data: Vec<u8> = (0..(11 * mib)).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("big.bin"), &data).unwrap();
        let path = dir.path().join("big.bin");
        let (_, d) = hash_file(&path, &mut vec![0u8; 300_000]).unwrap();
        let md5s = hash_md5(
            &path,
            data.len() as u64,
            &d.sha256,
            5 * mib as u64,
            &mut vec![0u8; 300_000],
        )
        .unwrap();
        let parts: Vec<u8> = data
            .chunks(5 * mib)
            .flat_map(|c| Md5::digest(c).to_vec())
            .collect();
        assert_eq!(
            md5s.multipart_etag.unwrap(),
            format!("{}-3", hex::encode(Md5::digest(&parts)))
        );
        let shas: Vec<u8> = data
            .chunks(5 * mib)
            .flat_map(|c| Sha256::digest(c).to_vec())
            .collect();
        assert_eq!(
            md5s.composite_sha256.unwrap(),
            format!("{}-3", hex::encode(Sha256::digest(&shas)))
        );
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
        let err = hash_file(&fifo, &mut [0u8; 4]).unwrap_err();
        writer.join().unwrap();
        assert!(
            err.to_string().contains("changed while it was being read"),
            "{err}"
        );
        assert_eq!(crate::error::exit_code(&err), 2);
    }
}

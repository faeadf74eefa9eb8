//! Digests of one file, computed in a single streaming read: SHA-256
//! (identity and S3's integrity check), SHA-384 (SRI), and MD5 (to match the
//! ETag S3 gives our upload, single-part or multipart).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256, Sha384};

use crate::error::Failure;

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
    /// Subresource Integrity value.
    pub fn sri(&self) -> String {
        format!("sha384-{}", B64.encode(self.sha384))
    }
    /// The ETag S3 reports when we uploaded this file, without quotes.
    pub fn expected_etag(&self) -> String {
        self.multipart_etag
            .clone()
            .unwrap_or_else(|| hex::encode(self.md5))
    }
    /// Does an SRI string (`sha384-BASE64 [sha256-...]`) match these bytes?
    /// None when it names no algorithm we compute (nothing to check).
    pub fn matches_sri(&self, sri: &str) -> Option<bool> {
        let mut checked = None;
        for token in sri.split_whitespace() {
            let token = token.split('?').next().unwrap_or(token);
            let Some((alg, value)) = token.split_once('-') else {
                continue;
            };
            let ours = match alg {
                "sha384" => B64.encode(self.sha384),
                "sha256" => B64.encode(self.sha256),
                _ => continue,
            };
            if ours == value {
                return Some(true);
            }
            checked = Some(false);
        }
        checked
    }
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

/// Hash one file in a single streaming read; a file that changes while it
/// is read is an error.
pub fn hash_file(
    path: &Path,
    multipart_threshold: u64,
    buf: &mut [u8],
) -> anyhow::Result<(u64, Digests)> {
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
    let part = (expected >= multipart_threshold).then(|| part_size(expected, multipart_threshold));

    let mut sha256 = Sha256::new();
    let mut sha384 = Sha384::new();
    let mut md5 = Md5::new();
    let mut parts = PartMd5s::new(part);
    let mut size = 0u64;
    loop {
        let n = file.read(buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        sha256.update(chunk);
        sha384.update(chunk);
        md5.update(chunk);
        parts.update(chunk);
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
    Ok((
        size,
        Digests {
            sha256: sha256.finalize().into(),
            sha384: sha384.finalize().into(),
            md5: md5.finalize().into(),
            multipart_etag: parts.etag(),
        },
    ))
}

/// The MD5 of each part of a multipart upload, for its ETag.
struct PartMd5s {
    part: Option<u64>,
    left: u64,
    current: Md5,
    digests: Vec<u8>,
    count: u64,
}

impl PartMd5s {
    fn new(part: Option<u64>) -> PartMd5s {
        PartMd5s {
            part,
            left: part.unwrap_or(u64::MAX),
            current: Md5::new(),
            digests: Vec::new(),
            count: 0,
        }
    }

    fn update(&mut self, mut chunk: &[u8]) {
        let Some(part) = self.part else { return };
        while !chunk.is_empty() {
            let take = (self.left as usize).min(chunk.len());
            self.current.update(&chunk[..take]);
            chunk = &chunk[take..];
            self.left -= take as u64;
            if self.left == 0 {
                self.digests
                    .extend_from_slice(&self.current.finalize_reset());
                self.count += 1;
                self.left = part;
            }
        }
    }

    fn etag(mut self) -> Option<String> {
        let part = self.part?;
        if self.left != part {
            self.digests.extend_from_slice(&self.current.finalize());
            self.count += 1;
        }
        Some(format!(
            "{}-{}",
            hex::encode(Md5::digest(&self.digests)),
            self.count
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"abc").unwrap();
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
        assert_eq!(d.matches_sri(&d.sri()), Some(true));
        assert_eq!(d.matches_sri("sha384-AAAA"), Some(false));
        assert_eq!(d.matches_sri("sha512-AAAA"), None);
    }

    #[test]
    fn a_file_that_disappeared_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let err = hash_file(&dir.path().join("gone.js"), u64::MAX, &mut [0u8; 4])
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
}

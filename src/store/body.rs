//! Upload bodies read from disk that check, as they are sent, that the bytes
//! are the ones that were hashed. A file that changed, shrank, grew or
//! vanished after hashing makes the body fail before its last chunk goes
//! out, so the server never stores a complete object with other bytes, even
//! one that ignores `x-amz-checksum-sha256`.

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

/// Which bytes of which file, and the SHA-256 they must have.
#[derive(Debug, Clone)]
pub struct Expected {
    pub path: PathBuf,
    pub offset: u64,
    pub length: u64,
    pub sha256: [u8; 32],
    /// These bytes end the file: more bytes after them mean it grew.
    pub to_end: bool,
}

/// What went wrong with the local file, shared between the body (which
/// finds out) and the caller (which reports it). Retries of a request whose
/// file changed fail at once.
#[derive(Debug, Clone, Default)]
pub struct Watch(Arc<Mutex<Option<String>>>);

impl Watch {
    pub fn problem(&self) -> Option<String> {
        self.0.lock().unwrap().clone()
    }
    fn report(&self, problem: String) -> std::io::Error {
        self.0.lock().unwrap().get_or_insert(problem.clone());
        std::io::Error::other(problem)
    }
}

/// A retryable body for `expected`.
pub fn verified(expected: Expected, watch: Watch) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(Verified::open(expected.clone(), watch.clone()))
    }))
}

const CHUNK: usize = 256 * 1024;

struct Verified {
    expected: Expected,
    watch: Watch,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    /// Bytes still to read.
    left: u64,
    /// Read but not yet sent: the last chunk waits until the hash is checked.
    held: Option<Bytes>,
    buf: Vec<u8>,
    done: bool,
}

impl Verified {
    fn open(expected: Expected, watch: Watch) -> Verified {
        let file = if watch.problem().is_some() {
            None
        } else {
            match std::fs::File::open(&expected.path).and_then(|mut f| {
                f.seek(SeekFrom::Start(expected.offset))?;
                Ok(f)
            }) {
                Ok(f) => Some(tokio::fs::File::from_std(f)),
                Err(e) => {
                    let _ = watch.report(format!(
                        "{} cannot be read any more ({e}); it was deleted or changed after it was hashed",
                        expected.path.display()
                    ));
                    None
                }
            }
        };
        let buf_len = (expected.length as usize).clamp(1, CHUNK);
        Verified {
            left: expected.length,
            expected,
            watch,
            file,
            hasher: Sha256::new(),
            held: None,
            // No larger than a read can be (see `want` below): most files are small.
            buf: vec![0; buf_len],
            done: false,
        }
    }

    fn changed(&self, how: &str) -> std::io::Error {
        self.watch.report(format!(
            "{} {how} after it was hashed; wait for the build to finish, then deploy again",
            self.expected.path.display()
        ))
    }
}

impl Body for Verified {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.held.take().map(|b| Ok(Frame::data(b))));
            }
            let Some(file) = this.file.as_mut() else {
                let problem = this.watch.problem().unwrap_or_default();
                return Poll::Ready(Some(Err(std::io::Error::other(problem))));
            };
            if this.left == 0 && !this.expected.to_end {
                // A part in the middle of a file: what follows is the next part.
                let digest: [u8; 32] = std::mem::take(&mut this.hasher).finalize().into();
                if digest != this.expected.sha256 {
                    return Poll::Ready(Some(Err(this.changed("changed"))));
                }
                this.done = true;
                continue;
            }
            // At the end, read one more byte than expected, to see growth.
            let want = (this.left as usize).clamp(1, CHUNK);
            let mut read = ReadBuf::new(&mut this.buf[..want]);
            match Pin::new(file).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    let e = this.changed(&format!("could not be read ({e})"));
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Ok(())) => {}
            }
            let n = read.filled().len();
            if this.left == 0 {
                if n > 0 {
                    return Poll::Ready(Some(Err(this.changed("grew"))));
                }
                let digest: [u8; 32] = std::mem::take(&mut this.hasher).finalize().into();
                if digest != this.expected.sha256 {
                    return Poll::Ready(Some(Err(this.changed("changed"))));
                }
                this.done = true;
                continue;
            }
            if n == 0 {
                return Poll::Ready(Some(Err(this.changed("shrank"))));
            }
            this.left -= n as u64;
            this.hasher.update(&this.buf[..n]);
            let chunk = Bytes::copy_from_slice(&this.buf[..n]);
            if let Some(previous) = this.held.replace(chunk) {
                return Poll::Ready(Some(Ok(Frame::data(previous))));
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.expected.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn send(expected: Expected) -> (Result<Vec<u8>, String>, Option<String>) {
        let watch = Watch::default();
        let body = Verified::open(expected, watch.clone());
        let result = body
            .collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .map_err(|e| e.to_string());
        (result, watch.problem())
    }

    fn expected(path: PathBuf, bytes: &[u8]) -> Expected {
        Expected {
            path,
            offset: 0,
            length: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
            to_end: true,
        }
    }

    #[tokio::test]
    async fn sends_the_hashed_bytes_and_refuses_other_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.js");
        let data: Vec<u8> = (0..(CHUNK * 2 + 7)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (sent, problem) = send(expected(path.clone(), &data)).await;
        assert_eq!(sent.unwrap(), data);
        assert_eq!(problem, None);

        // Same size, other bytes.
        let mut other = data.clone();
        other[CHUNK + 3] ^= 1;
        std::fs::write(&path, &other).unwrap();
        let (sent, problem) = send(expected(path.clone(), &data)).await;
        assert!(sent.is_err());
        assert!(problem.unwrap().contains("changed after it was hashed"));

        // Shrank, grew, vanished.
        std::fs::write(&path, &data[..10]).unwrap();
        let (_, problem) = send(expected(path.clone(), &data)).await;
        assert!(problem.unwrap().contains("shrank"));
        std::fs::write(&path, [&data[..], b"x"].concat()).unwrap();
        let (_, problem) = send(expected(path.clone(), &data)).await;
        assert!(problem.unwrap().contains("grew"));
        std::fs::remove_file(&path).unwrap();
        let (_, problem) = send(expected(path.clone(), &data)).await;
        assert!(problem.unwrap().contains("deleted or changed"));
    }

    #[tokio::test]
    async fn the_last_chunk_is_held_until_the_hash_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.js");
        let data = vec![7u8; CHUNK + 1];
        std::fs::write(&path, [&data[..CHUNK], &[8u8][..]].concat()).unwrap();
        let watch = Watch::default();
        let mut body = Verified::open(expected(path, &data), watch);
        // The first chunk goes out; the second (last) is never sent.
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), CHUNK);
        assert!(body.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_part_is_checked_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let part = Expected {
            path,
            offset: 100,
            length: 50,
            sha256: Sha256::digest(&data[100..150]).into(),
            to_end: false,
        };
        let (sent, problem) = send(part).await;
        assert_eq!(sent.unwrap(), &data[100..150]);
        assert_eq!(problem, None);
    }
}

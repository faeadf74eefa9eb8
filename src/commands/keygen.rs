//! `cutover keygen`: a new Ed25519 key pair for signed releases
//! (docs/redis.md, "Signed releases"), written as PKCS#8 PEM files: the
//! private key (mode 0600, what `signing_key` names) and the public key
//! (what readers take as `verify_keys`). Never overwrites a file (exit 2);
//! prints the files and the key's fingerprint, never the private key.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Failure;
use crate::render::Render;
use crate::signing::SigningKey;

/// Where the files go without `--out`.
pub const DEFAULT_PREFIX: &str = "cutover-signing-key";

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub command: &'static str,
    /// The private key's file (PREFIX.pem): keep it secret.
    pub private_key: PathBuf,
    /// The public key's file (PREFIX.pub.pem): give it to the readers.
    pub public_key: PathBuf,
    /// The public key's fingerprint, as signatures name it.
    pub fingerprint: String,
}

/// The two files of `prefix`: (private, public).
pub fn paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    (with(".pem"), with(".pub.pem"))
}

pub fn run(prefix: Option<&Path>) -> anyhow::Result<Outcome> {
    let (private, public) = paths(prefix.unwrap_or(Path::new(DEFAULT_PREFIX)));
    for p in [&private, &public] {
        if p.symlink_metadata().is_ok() {
            return Err(Failure::input(format!(
                "{} exists; keygen never overwrites a key (a release signed by it could no longer be \
                 verified once its public key is gone). Choose another --out PREFIX, or move the file away",
                p.display()
            )));
        }
    }
    let key = SigningKey::generate().map_err(Failure::operation)?;
    write_new(&private, key.private_pem().as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, key.public_pem().as_bytes(), 0o644) {
        // Not half a pair: the private key alone is of no use to anyone.
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    Ok(Outcome {
        command: "keygen",
        private_key: private,
        public_key: public,
        fingerprint: key.fingerprint().to_string(),
    })
}

/// Create `path` (never replacing a file) with `mode`, holding `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::input(format!(
                "{} exists; keygen never overwrites a key",
                path.display()
            ))
        } else {
            Failure::operation(format!("cannot create {}: {e}", path.display()))
        }
    })?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| Failure::operation(format!("cannot write {}: {e}", path.display())))
}

impl Render for Outcome {
    fn text(&self) -> String {
        format!(
            "private key: {} (mode 0600; keep it secret: give it to CI as CUTOVER_SIGNING_KEY or signing_key)\n\
             public key:  {} (give it to the readers as verify_keys)\n\
             fingerprint: {}\n",
            self.private_key.display(),
            self.public_key.display(),
            self.fingerprint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_pair_that_signs_and_verifies_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        let out = run(Some(&prefix)).unwrap();
        let private = std::fs::read_to_string(&out.private_key).unwrap();
        let public = std::fs::read_to_string(&out.public_key).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out.private_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let key = SigningKey::from_pem(&private).unwrap();
        let verify = crate::signing::VerifyKey::from_pem(&public).unwrap();
        assert_eq!(verify.fingerprint, out.fingerprint);
        let sig = key.sign("r1", b"{}");
        assert_eq!(sig.verify("r1", b"{}", &[verify]).unwrap(), out.fingerprint);
        assert!(!out.text().contains("PRIVATE"));

        let again = run(Some(&prefix)).unwrap_err();
        assert_eq!(crate::error::exit_code(&again), 2);
        assert_eq!(std::fs::read_to_string(&out.private_key).unwrap(), private);
    }
}

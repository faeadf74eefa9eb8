//! Signed releases (docs/redis.md, "Signed releases"): an Ed25519
//! signature over a release id and the SHA-256 of the exact manifest bytes
//! the activation writes to Redis. The Ruby and Node readers verify exactly
//! this; tests/contract/signatures.json holds the shared vectors.
//!
//! The private key never leaves [`SigningKey`]: it has no `Display`, its
//! `Debug` shows the fingerprint only, and no error made here quotes it.

use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first line of every signed message: the contract's version.
const DOMAIN: &str = "cutover-release-v1";

/// A private key that signs releases.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    fingerprint: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.fingerprint)
    }
}

impl SigningKey {
    /// A key from its PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Literal
    /// `\n` sequences count as line breaks (CI secret stores often keep a
    /// PEM on one line). The error never quotes the text.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let text = pem.trim().replace("\\n", "\n");
        if !text.starts_with("-----BEGIN PRIVATE KEY-----") {
            return Err(
                "an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----), as `cutover keygen` writes"
                    .into(),
            );
        }
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&text).map_err(|_| {
            "an Ed25519 private key in PKCS#8 PEM, as `cutover keygen` writes (this PEM is not one)"
                .to_string()
        })?;
        Ok(SigningKey::from(key))
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SigningKey, String> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut *seed)
            .map_err(|e| format!("the operating system's random source failed ({e})"))?;
        Ok(SigningKey::from(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )))
    }

    /// The private key as PKCS#8 PEM; zeroed when dropped.
    pub fn private_pem(&self) -> Zeroizing<String> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 key encodes as PKCS#8")
    }

    /// The public key as SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`),
    /// what readers take as `verify_keys`.
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 key encodes as SPKI")
    }

    pub fn verify_key(&self) -> VerifyKey {
        VerifyKey::from(self.key.verifying_key())
    }

    /// The public key's fingerprint (see [`fingerprint`]).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Sign release `release` whose manifest, as written to Redis, is
    /// `manifest` (see [`crate::contract::manifest_text`]).
    pub fn sign(&self, release: &str, manifest: &[u8]) -> Signature {
        let manifest_sha256 = sha256_hex(manifest);
        let sig = self.key.sign(message(release, &manifest_sha256).as_bytes());
        Signature {
            v: 1,
            alg: "ed25519".into(),
            key: self.fingerprint.clone(),
            release: release.to_string(),
            manifest_sha256,
            sig: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        }
    }
}

impl From<ed25519_dalek::SigningKey> for SigningKey {
    fn from(key: ed25519_dalek::SigningKey) -> SigningKey {
        let fingerprint = fingerprint(&key.verifying_key());
        SigningKey { key, fingerprint }
    }
}

/// A public key that verifies signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyKey {
    key: ed25519_dalek::VerifyingKey,
    pub fingerprint: String,
}

impl VerifyKey {
    /// A key from its SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<VerifyKey, String> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map(VerifyKey::from)
            .map_err(|e| format!("an Ed25519 public key in SPKI PEM ({e})"))
    }
}

impl From<ed25519_dalek::VerifyingKey> for VerifyKey {
    fn from(key: ed25519_dalek::VerifyingKey) -> VerifyKey {
        VerifyKey {
            fingerprint: fingerprint(&key),
            key,
        }
    }
}

/// The fingerprint of a public key: the first 16 lowercase hex characters
/// of the SHA-256 of its DER SubjectPublicKeyInfo.
pub fn fingerprint(key: &ed25519_dalek::VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("an Ed25519 key encodes as SPKI");
    sha256_hex(der.as_bytes())[..16].to_string()
}

/// The exact bytes signed.
pub fn message(release: &str, manifest_sha256: &str) -> String {
    format!("{DOMAIN}\n{release}\n{manifest_sha256}\n")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The signature value: the `cutover:{APP}:signature` key and the record's
/// `signature` field hold it as compact JSON, fields in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub v: u32,
    pub alg: String,
    /// The fingerprint of the key that signed.
    pub key: String,
    pub release: String,
    pub manifest_sha256: String,
    /// Standard base64 of the 64-byte signature.
    pub sig: String,
}

impl Signature {
    /// The value as stored (compact JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("signatures serialize")
    }

    pub fn parse(text: &str) -> Result<Signature, String> {
        let s: Signature =
            serde_json::from_str(text).map_err(|e| format!("not a signature ({e})"))?;
        if s.v != 1 || s.alg != "ed25519" {
            return Err(format!(
                "version {} / algorithm {:?}, not 1 / \"ed25519\"",
                s.v, s.alg
            ));
        }
        Ok(s)
    }

    /// Does this signature fit release `release` with these manifest bytes?
    /// (Not whether a key made it: see [`Signature::verify`].)
    pub fn fits(&self, release: &str, manifest: &[u8]) -> Result<(), String> {
        self.fits_sha256(release, &sha256_hex(manifest))
    }

    /// [`Signature::fits`], given the SHA-256 (hex) of the manifest bytes.
    pub fn fits_sha256(&self, release: &str, manifest_sha256: &str) -> Result<(), String> {
        if self.release != release {
            return Err(format!("it signs release {}, not {release}", self.release));
        }
        if self.manifest_sha256 != manifest_sha256 {
            return Err(format!(
                "it signs a manifest with sha256 {}, the manifest has {manifest_sha256}",
                self.manifest_sha256
            ));
        }
        Ok(())
    }

    /// Verify as a reader does: it fits `release` and `manifest`, and one of
    /// `keys` (the one whose fingerprint it names, else any) verifies it.
    /// Returns the fingerprint of the key that did.
    pub fn verify(
        &self,
        release: &str,
        manifest: &[u8],
        keys: &[VerifyKey],
    ) -> Result<String, String> {
        self.verify_sha256(release, &sha256_hex(manifest), keys)
    }

    /// [`Signature::verify`], given the SHA-256 (hex) of the manifest bytes.
    pub fn verify_sha256(
        &self,
        release: &str,
        manifest_sha256: &str,
        keys: &[VerifyKey],
    ) -> Result<String, String> {
        self.fits_sha256(release, manifest_sha256)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.sig)
            .map_err(|_| "its sig is not base64".to_string())?;
        let sig = ed25519_dalek::Signature::from_slice(&bytes)
            .map_err(|_| "its sig is not 64 bytes".to_string())?;
        let msg = message(&self.release, &self.manifest_sha256);
        let named: Vec<&VerifyKey> = keys.iter().filter(|k| k.fingerprint == self.key).collect();
        let candidates = if named.is_empty() {
            keys.iter().collect()
        } else {
            named
        };
        candidates
            .into_iter()
            .find(|k| k.key.verify(msg.as_bytes(), &sig).is_ok())
            .map(|k| k.fingerprint.clone())
            .ok_or_else(|| format!("no known key verifies it (it names key {})", self.key))
    }
}

/// What the live release's signature says, as status, verify and doctor
/// report it (docs/output.md, "JSON").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureState {
    /// A signature is there.
    pub signed: bool,
    /// The fingerprint of the key it names.
    pub key: Option<String>,
    /// Checked with the configured signing key's public half: true/false;
    /// null when no key of that fingerprint is configured here.
    pub verified: Option<bool>,
    /// Why a reader with the right verify key would still reject it.
    pub problem: Option<String>,
}

impl SignatureState {
    /// The state of `signature` (the raw value, None: absent) for release
    /// `release` whose manifest bytes hash to `manifest_sha256` (None: no
    /// manifest), checked with `known` where its fingerprint matches.
    pub fn of(
        signature: Option<&str>,
        release: &str,
        manifest_sha256: Option<&str>,
        known: Option<&VerifyKey>,
    ) -> SignatureState {
        let Some(text) = signature else {
            return SignatureState {
                signed: false,
                key: None,
                verified: None,
                problem: None,
            };
        };
        let sig = match Signature::parse(text) {
            Ok(s) => s,
            Err(e) => {
                return SignatureState {
                    signed: true,
                    key: None,
                    verified: Some(false),
                    problem: Some(format!("the signature is unreadable: {e}")),
                }
            }
        };
        let fit = match manifest_sha256 {
            Some(m) => sig.fits_sha256(release, m).err(),
            None => Some("the live manifest is missing".into()),
        };
        let verified = match (known, manifest_sha256) {
            (Some(k), Some(m)) if k.fingerprint == sig.key => Some(
                sig.verify_sha256(release, m, std::slice::from_ref(k))
                    .is_ok(),
            ),
            _ => None,
        };
        let problem = fit
            .map(|f| format!("the signature does not fit: {f}"))
            .or((verified == Some(false))
                .then(|| "the signature does not verify with its key".into()));
        SignatureState {
            signed: true,
            key: Some(sig.key),
            verified,
            problem,
        }
    }

    /// One line: "signed by key K (verified)", "unsigned", ...
    pub fn describe(&self) -> String {
        if !self.signed {
            return "unsigned".into();
        }
        let by = self.key.as_deref().unwrap_or("an unknown key");
        match (&self.problem, self.verified) {
            (Some(p), _) => format!("signed by key {by}, but {p}"),
            (None, Some(true)) => format!("signed by key {by} (verified with signing_key)"),
            _ => format!("signed by key {by}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/contract/signatures.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn key(v: &Value, name: &str) -> SigningKey {
        SigningKey::from_pem(v["private_keys"][name].as_str().unwrap()).unwrap()
    }

    #[test]
    fn fingerprints_are_the_vectors() {
        let v = vectors();
        for (name, fp) in v["fingerprints"].as_object().unwrap() {
            assert_eq!(key(&v, name).fingerprint(), fp.as_str().unwrap(), "{name}");
        }
    }

    /// Each valid case: the key the signature names signs the same release
    /// and manifest bytes to exactly the vector's value (same fields, same
    /// order, same `sig`: Ed25519 is deterministic).
    #[test]
    fn signing_produces_the_vector_signatures() {
        let v = vectors();
        let by_fingerprint: Vec<(String, SigningKey)> = v["fingerprints"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, fp)| (fp.as_str().unwrap().to_string(), key(&v, name)))
            .collect();
        let mut checked = 0;
        for case in v["cases"].as_array().unwrap() {
            if !case["valid"].as_bool().unwrap() {
                continue;
            }
            let expected = case["signature"].as_str().unwrap();
            let named = Signature::parse(expected).unwrap().key;
            let signer = &by_fingerprint
                .iter()
                .find(|(fp, _)| *fp == named)
                .unwrap()
                .1;
            let made = signer.sign(
                case["current"].as_str().unwrap(),
                case["manifest"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(made.to_json(), expected, "{}", case["name"]);
            checked += 1;
        }
        assert!(checked >= 2, "the vectors have valid cases");
    }

    /// Every case verifies (or not) as the readers must decide it.
    #[test]
    fn verification_decides_every_vector_case() {
        let v = vectors();
        for case in v["cases"].as_array().unwrap() {
            let keys: Vec<VerifyKey> = case["verify_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| VerifyKey::from_pem(p.as_str().unwrap()).unwrap())
                .collect();
            let (current, manifest) = (
                case["current"].as_str().unwrap(),
                case["manifest"].as_str().unwrap().as_bytes(),
            );
            let valid = case["signature"].as_str().is_some_and(|s| {
                Signature::parse(s).is_ok_and(|sig| sig.verify(current, manifest, &keys).is_ok())
            });
            assert_eq!(valid, case["valid"].as_bool().unwrap(), "{}", case["name"]);
        }
    }

    #[test]
    fn keys_round_trip_through_pem_and_never_show_in_debug() {
        let k = SigningKey::generate().unwrap();
        let pem = k.private_pem().to_string();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(again.fingerprint(), k.fingerprint());
        assert_eq!(
            VerifyKey::from_pem(&k.public_pem()).unwrap().fingerprint,
            k.fingerprint()
        );
        // One line with literal \n, as CI secret stores keep it.
        let one_line = pem.trim_end().replace('\n', "\\n");
        assert_eq!(
            SigningKey::from_pem(&one_line).unwrap().fingerprint(),
            k.fingerprint()
        );
        let body: String = pem.lines().nth(1).unwrap().to_string();
        assert!(!format!("{k:?}").contains(&body));
        let bad = SigningKey::from_pem(&pem.replace(&body[5..20], "AAAAAAAAAAAAAAA"))
            .err()
            .unwrap_or_default();
        assert!(!bad.contains(&body[..10]), "{bad}");
    }

    #[test]
    fn state_of_a_live_signature() {
        let k = SigningKey::generate().unwrap();
        let sig = k.sign("r1", b"{}").to_json();
        let vk = k.verify_key();
        let ok = SignatureState::of(Some(&sig), "r1", Some(&sha256_hex(b"{}")), Some(&vk));
        assert_eq!(
            (ok.signed, ok.verified, ok.problem.clone()),
            (true, Some(true), None)
        );
        let unknown = SignatureState::of(Some(&sig), "r1", Some(&sha256_hex(b"{}")), None);
        assert_eq!(unknown.verified, None);
        assert!(unknown.problem.is_none());
        let other = SignatureState::of(Some(&sig), "r2", Some(&sha256_hex(b"{}")), Some(&vk));
        assert!(other.problem.unwrap().contains("not r2"));
        assert!(!SignatureState::of(None, "r1", Some(&sha256_hex(b"{}")), None).signed);
    }
}

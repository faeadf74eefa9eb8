// What a reader trusts, decided by the app's own configuration and never by
// Redis: the origins its asset URLs may name (`assetOrigins`) and the keys a
// release must be signed with (`verifyKeys`). Both checks run before a
// manifest becomes a Snapshot; a manifest that fails either is rejected whole.
// The signature contract is docs/redis.md, "Signed releases" (shared with the
// CLI and the Ruby reader; vectors in tests/contract/signatures.json).
import { createHash, createPublicKey, verify } from "node:crypto";

/**
 * The allowed origins, normalised (`https://cdn.example.com`). Throws a TypeError naming the
 * first entry that is not an http(s) origin.
 * @param {unknown} list
 * @returns {Set<string> | null} null: no allowlist configured
 */
export function parseOrigins(list) {
  if (list === undefined || list === null) return null;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError("cutover-reader: `assetOrigins` must be a non-empty array of origins (\"https://cdn.example.com\")");
  }
  const origins = new Set();
  for (const entry of list) {
    let u;
    try {
      u = new URL(String(entry));
    } catch {
      u = null;
    }
    const bare = u && (u.pathname === "/" || u.pathname === "") && !u.search && !u.hash && !u.username && !u.password;
    if (!u || !(u.protocol === "https:" || u.protocol === "http:") || !bare) {
      throw new TypeError(
        `cutover-reader: \`assetOrigins\` entry ${JSON.stringify(entry)} is not an origin: expected scheme://host[:port], e.g. "https://cdn.example.com"`,
      );
    }
    origins.add(u.origin);
  }
  return origins;
}

// Control characters (C0, DEL, C1), whitespace, quotes, backticks, angle brackets, backslashes.
const FORBIDDEN = /[\u0000-\u0020\u007f-\u009f\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"'`<>\\]/u;

/**
 * Why a URL is not allowed, or null when it is: `https://` (or `http://` when an allowed origin
 * has that scheme) on an allowed origin, without credentials, and without a character that could
 * leave an HTML attribute or a header.
 * @param {string} raw
 * @param {Set<string>} origins
 * @returns {string | null}
 */
export function urlProblem(raw, origins) {
  const shown = JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}...` : raw);
  const bad = FORBIDDEN.exec(raw);
  if (bad) return `asset URL ${shown} contains ${JSON.stringify(bad[0])}`;
  if (!/^https?:\/\//i.test(raw)) return `asset URL ${shown} is not an absolute http(s) URL`;
  let u;
  try {
    u = new URL(raw);
  } catch {
    return `asset URL ${shown} is not a URL`;
  }
  if (u.username || u.password) return `asset URL ${shown} carries credentials`;
  if (!origins.has(u.origin)) return `asset URL ${shown} is not on an allowed origin (${[...origins].join(", ")})`;
  return null;
}

/**
 * The first URL of the manifest that is not allowed, as a reason; null when all are.
 * @param {Iterable<unknown>} urls every URL the manifest's format can hand out
 * @param {Set<string>} origins
 */
export function originProblem(urls, origins) {
  for (const url of urls) {
    if (typeof url !== "string") continue; // never handed out
    const problem = urlProblem(url, origins);
    if (problem) return problem;
  }
  return null;
}

// --- signatures --------------------------------------------------------------

/** First 16 hex characters of the SHA-256 of the key's DER SubjectPublicKeyInfo. */
export function fingerprintOf(key) {
  return createHash("sha256").update(key.export({ type: "spki", format: "der" })).digest("hex").slice(0, 16);
}

/**
 * The configured public keys (PEM), parsed once. Throws a TypeError naming the bad entry.
 * @param {unknown} list
 * @returns {{key: import("node:crypto").KeyObject, fingerprint: string}[] | null} null: no verification
 */
export function parseVerifyKeys(list) {
  if (list === undefined || list === null) return null;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError("cutover-reader: `verifyKeys` must be a non-empty array of public keys (PEM)");
  }
  return list.map((pem, i) => {
    let key;
    try {
      key = createPublicKey(/** @type {any} */ (pem));
    } catch (err) {
      throw new TypeError(`cutover-reader: \`verifyKeys[${i}]\` is not a public key in PEM: ${err.message}`);
    }
    if (key.asymmetricKeyType !== "ed25519") {
      throw new TypeError(`cutover-reader: \`verifyKeys[${i}]\` is a ${key.asymmetricKeyType} key; cutover signs with Ed25519`);
    }
    return { key, fingerprint: fingerprintOf(key) };
  });
}

/** The bytes a release's signature covers. */
export function signedMessage(release, manifestSha256) {
  return Buffer.from(`cutover-release-v1\n${release}\n${manifestSha256}\n`, "utf8");
}

/**
 * Why the signature does not vouch for this release and these exact manifest bytes, or null when
 * a configured key verifies it.
 * @param {{current: string, manifest: Buffer, signature: Buffer | null, keys: {key: import("node:crypto").KeyObject, fingerprint: string}[]}} live
 * @returns {string | null}
 */
export function signatureProblem({ current, manifest, signature, keys }) {
  if (signature === null) return "unsigned: no signature, and verifyKeys is configured";
  let s;
  try {
    s = JSON.parse(signature.toString("utf8"));
  } catch {
    return "the signature is not JSON";
  }
  if (s === null || typeof s !== "object" || Array.isArray(s)) return "the signature is not a JSON object";
  if (s.v !== 1 || s.alg !== "ed25519") {
    return `the signature is of an unknown kind (v ${JSON.stringify(s.v)}, alg ${JSON.stringify(s.alg)}; expected v 1, ed25519)`;
  }
  if (s.release !== current) return `the signature is for release ${JSON.stringify(s.release)}, not ${current}`;
  const digest = createHash("sha256").update(manifest).digest("hex");
  if (s.manifest_sha256 !== digest) return "the signature is for other manifest bytes (SHA-256 differs)";
  if (typeof s.sig !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s.sig)) return "the signature's sig is not base64";
  const sig = Buffer.from(s.sig, "base64");
  if (sig.length !== 64) return "the signature's sig is not 64 bytes";
  const message = signedMessage(current, digest);
  // The key the signature names first, then any other (a fingerprint is a hint, not a proof).
  const ordered = [...keys.filter((k) => k.fingerprint === s.key), ...keys.filter((k) => k.fingerprint !== s.key)];
  for (const { key } of ordered) {
    if (verify(null, message, key, sig)) return null;
  }
  const named = keys.some((k) => k.fingerprint === s.key);
  return named
    ? `the signature does not verify with key ${s.key}`
    : `signed by key ${JSON.stringify(s.key)}, which is not in verifyKeys (${keys.map((k) => k.fingerprint).join(", ")})`;
}

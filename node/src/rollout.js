// Rollouts (docs/redis.md, "Rollouts and skew protection"): what
// `cutover:{APP}:canary` must hold for a reader to serve the canary, and which
// keys the canary gets. The hash is shared with the Ruby reader and the CLI
// (vectors in tests/contract/rollout.json), so one key gets one answer in
// every process.
import { createHash } from "node:crypto";

/**
 * The key's bucket under a rollout's salt: the first 4 bytes of SHA-256(salt + ":" + key), as a
 * big-endian unsigned integer, modulo 10000.
 * @param {string} salt
 * @param {string} key UTF-8
 * @returns {number} 0..9999
 */
export function bucket(salt, key) {
  return createHash("sha256").update(`${salt}:${key}`, "utf8").digest().readUInt32BE(0) % 10000;
}

/**
 * The buckets below this get the canary: round(percent * 100).
 * @param {number} percent
 */
export function thresholdOf(percent) {
  return Math.round(percent * 100);
}

/**
 * @typedef {{release: string, percent: number, salt: string, threshold: number}} CanaryRule
 */

/**
 * The rollout that `value` (the canary key's JSON) describes, or null when it must be ignored
 * (it names the live release). Throws an error with `reason` (and `release`, when it names one)
 * when it is not as the contract says.
 * @param {string} value
 * @param {string | null} current the live release id in Redis
 * @returns {CanaryRule | null}
 */
export function parseCanary(value, current) {
  let c;
  try {
    c = JSON.parse(value);
  } catch (err) {
    const reason = `the canary is not JSON (${err.message})`;
    throw Object.assign(new Error(reason), { reason, release: null });
  }
  const problem = (/** @type {string} */ reason) =>
    Object.assign(new Error(reason), { reason, release: typeof c?.release === "string" ? c.release : null });
  if (c === null || typeof c !== "object" || Array.isArray(c)) throw problem("the canary is not a JSON object");
  if (c.v !== 1) throw problem(`the canary is of an unknown version (v ${JSON.stringify(c.v)}; expected 1)`);
  if (typeof c.release !== "string" || c.release === "") throw problem("the canary names no release");
  if (typeof c.percent !== "number" || !(c.percent > 0 && c.percent < 100)) {
    throw problem(`the canary's percent ${JSON.stringify(c.percent)} is not a number between 0 and 100`);
  }
  if (typeof c.salt !== "string" || !/^[0-9a-f]{32}$/i.test(c.salt)) throw problem("the canary's salt is not 32 hex characters");
  if (c.release === current) return null;
  return Object.freeze({ release: c.release, percent: c.percent, salt: c.salt, threshold: thresholdOf(c.percent) });
}

/**
 * Does `key` get the canary of this rollout?
 * @param {CanaryRule} rule
 * @param {string} key not empty
 */
export function assigned(rule, key) {
  return bucket(rule.salt, key) < rule.threshold;
}

// Skew protection (docs/redis.md, "Rollouts and skew protection"): a request
// that names the release its page was rendered with gets that release while it
// is retired less than skewMaxAge ago. The reader answers the live release and
// the canary from memory; this finds the others: ZSCORE of `retired`, then the
// release's record, checked like any manifest. Loaded releases are kept (a
// few), and so are the ids that are not to be served (briefly), so ids made up
// by clients cost Redis one look per id per MISS_TTL; the age is checked again
// on every use.
import { within } from "./refresher.js";

/** What a release id looks like: 16 hex characters. Nothing else is looked up. */
export const RELEASE_ID = /^[0-9a-f]{16}$/;

const LOADED_MAX = 32; // retired releases kept in memory (each one manifest)
const MISSING_MAX = 10_000; // ids remembered as not to be served
const MISS_TTL = 30_000; // how long an id is not looked up again (ms)
const ERROR_TTL = 5_000; // ... after Redis did not answer
const RECHECK = 30_000; // how often a loaded release's retirement is read again (ms)

/**
 * @typedef {import("./snapshot.js").Snapshot} Snapshot
 * @typedef {{snapshot: Snapshot, retiredAt: number, checked: number}} Loaded
 * @typedef {{debug(m: string): void, warn(m: string): void}} Log
 */

export class Skew {
  #source;
  #maxAge;
  #timeout;
  #log;
  /** @type {Map<string, Loaded>} least recently used first */
  #loaded = new Map();
  /** @type {Map<string, number>} id -> not looked up again before (ms) */
  #missing = new Map();
  /** @type {Map<string, Promise<Snapshot | null>>} one look at a time per id */
  #pending = new Map();
  /** @type {Set<string>} refused ids already logged */
  #logged = new Set();

  /**
   * @param {{source: import("./source.js").Source, maxAge: number, timeout: number, log: Log}} o
   *   maxAge in ms (0: only the live release and the canary); timeout per command, ms
   */
  constructor({ source, maxAge, timeout, log }) {
    this.#source = source;
    this.#maxAge = maxAge;
    this.#timeout = timeout;
    this.#log = log;
  }

  /**
   * Release `id` if it was retired less than maxAge ago and its record passes the checks; null
   * otherwise, and when Redis does not answer. Never rejects.
   * @param {string} id
   * @returns {Promise<Snapshot | null>}
   */
  async find(id) {
    if (this.#maxAge <= 0 || !RELEASE_ID.test(id)) return null;
    const now = Date.now();
    const until = this.#missing.get(id);
    if (until !== undefined) {
      if (until > now) return null;
      this.#missing.delete(id);
    }
    const hit = this.#loaded.get(id);
    if (hit && now - hit.checked < RECHECK) {
      this.#loaded.delete(id); // most recently used last
      this.#loaded.set(id, hit);
      return this.#young(hit.retiredAt) ? hit.snapshot : null;
    }
    let pending = this.#pending.get(id);
    if (!pending) {
      pending = this.#load(id, hit).finally(() => this.#pending.delete(id));
      this.#pending.set(id, pending);
    }
    return pending;
  }

  /**
   * The reader stopped serving these (a switch, a rollout's end): look them up again when named,
   * even if they were named before this process served them.
   * @param {(string | null | undefined)[]} ids
   */
  forget(ids) {
    for (const id of ids) if (id) this.#missing.delete(id);
  }

  /** @param {number} retiredAt ms */
  #young(retiredAt) {
    return Date.now() - retiredAt < this.#maxAge;
  }

  /**
   * @param {string} id
   * @param {Loaded | undefined} hit loaded before, to check again
   * @returns {Promise<Snapshot | null>}
   */
  async #load(id, hit) {
    try {
      const retiredAt = await within(this.#source.retiredAt(id), this.#timeout);
      if (retiredAt === null || !this.#young(retiredAt)) return this.#miss(id, MISS_TTL);
      /** @type {Snapshot | null} */
      const snapshot = hit ? hit.snapshot : await within(this.#source.retired(id), this.#timeout);
      if (snapshot === null) return this.#miss(id, MISS_TTL);
      this.#loaded.delete(id);
      this.#loaded.set(id, { snapshot, retiredAt, checked: Date.now() });
      if (this.#loaded.size > LOADED_MAX) this.#loaded.delete(/** @type {string} */ (this.#loaded.keys().next().value));
      return this.#young(retiredAt) ? snapshot : null;
    } catch (err) {
      if (err?.reason) {
        if (!this.#logged.has(id)) {
          if (this.#logged.size >= MISSING_MAX) this.#logged.clear();
          this.#logged.add(id);
          this.#log.warn(`not serving retired release ${id} to requests that name it: ${err.reason}`);
        }
        return this.#miss(id, MISS_TTL);
      }
      this.#log.debug(`cannot look up retired release ${id} (${err?.message ?? err}); its requests get their assignment`);
      return this.#miss(id, ERROR_TTL);
    }
  }

  /**
   * @param {string} id
   * @param {number} ttl ms
   * @returns {null}
   */
  #miss(id, ttl) {
    this.#loaded.delete(id);
    if (this.#missing.size >= MISSING_MAX) this.#missing.delete(/** @type {string} */ (this.#missing.keys().next().value));
    this.#missing.set(id, Date.now() + ttl);
    return null;
  }
}

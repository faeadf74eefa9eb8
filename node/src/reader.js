// The reader: the public API (lookup, lookupOrThrow, entrypoint, releaseId,
// snapshot, releaseSnapshot, requestSnapshot, canary, on("switch"), close)
// over what it serves: the live release and the canary, swapped together.
// Where releases come from is ./source.js (Redis); how it stays on the live
// ones is ./refresher.js (pub/sub, poll, reconnect), which also has ./fleet.js
// report what this process serves; a Snapshot (./snapshot.js) is one release's
// manifest, immutable, swapped whole on a switch. Which key gets the canary is
// ./rollout.js; retired releases for skew protection, ./skew.js; the request
// helper, ./request.js.
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { UnavailableError } from "./errors.js";
import { Fleet } from "./fleet.js";
import { makeLogger } from "./log.js";
import { Refresher, within } from "./refresher.js";
import { requestSnapshot } from "./request.js";
import { assigned } from "./rollout.js";
import { Skew } from "./skew.js";
import { Snapshot } from "./snapshot.js";
import { Source, keysOf } from "./source.js";
import { parseOrigins, parseVerifyKeys } from "./trust.js";
import { isSentinelUrl, maskUrl, parseSentinelUrl, secretOf } from "./url.js";

/**
 * @typedef {import("../index.js").ReaderOptions} ReaderOptions
 * @typedef {import("../index.js").SwitchEvent} SwitchEvent
 * @typedef {import("../index.js").SwitchSource} SwitchSource
 * @typedef {import("../index.js").RejectedEvent} RejectedEvent
 * @typedef {import("../index.js").CanaryEvent} CanaryEvent
 * @typedef {import("../index.js").SnapshotOptions} SnapshotOptions
 * @typedef {import("./refresher.js").State} State
 */

/** @satisfies {Partial<ReaderOptions>} (each default is of a declared option, with its declared type) */
const DEFAULTS = { pollInterval: 1000, connectTimeout: 2000, commandTimeout: 1000, reportInterval: 5000, skewMaxAge: 86400 };

/** @param {ReaderOptions} options */
export function createReader(options) {
  return Reader.create(options);
}

class Reader extends EventEmitter {
  #app;
  #keys;
  #url;
  #secret;
  #log;
  /** @type {typeof DEFAULTS & ReaderOptions & {url: string, cluster: boolean, sentinel: boolean}} */
  #options;
  /** @type {import("./source.js").Trust} */
  #trust;
  /** @type {Snapshot | undefined} */
  #fallback;
  /** @type {Source | undefined} */
  #source;
  /** @type {Refresher | undefined} */
  #refresher;
  /** @type {Skew | undefined} */
  #skew;
  /** @type {State} */
  #state;
  #closed = false;

  /** @param {ReaderOptions} options */
  constructor(options = /** @type {ReaderOptions} */ ({})) {
    super();
    const { app, url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379", rootNodes } = options;
    if (typeof app !== "string" || app === "") throw new TypeError("cutover-reader: `app` is required");
    const sentinel = isSentinelUrl(url) && !rootNodes?.length;
    if (sentinel) {
      parseSentinelUrl(url); // throws a TypeError saying what is expected
      if (options.cluster) throw new TypeError("cutover-reader: `cluster` and a redis+sentinel:// URL exclude each other");
    }
    for (const u of sentinel ? [] : (rootNodes ?? [url])) {
      let protocol;
      try {
        protocol = new URL(u).protocol;
      } catch {
        throw new TypeError(`cutover-reader: invalid Redis URL ${maskUrl(u)}`);
      }
      if (protocol !== "redis:" && protocol !== "rediss:") {
        throw new TypeError(`cutover-reader: invalid Redis URL ${maskUrl(u)}: expected redis://, rediss:// or redis+sentinel://`);
      }
    }
    const o = { ...DEFAULTS, ...options, url, cluster: false, sentinel };
    for (const k of /** @type {const} */ (["pollInterval", "connectTimeout", "commandTimeout"])) {
      if (!(Number.isFinite(o[k]) && o[k] > 0)) throw new TypeError(`cutover-reader: \`${k}\` must be a positive number of ms`);
    }
    if (!(Number.isFinite(o.reportInterval) && o.reportInterval >= 0)) {
      throw new TypeError("cutover-reader: `reportInterval` must be a positive number of ms, or 0 for no reports");
    }
    if (!(Number.isFinite(o.skewMaxAge) && o.skewMaxAge >= 0)) {
      throw new TypeError("cutover-reader: `skewMaxAge` must be a number of seconds (0: no retired releases)");
    }
    o.cluster = Boolean(options.cluster || rootNodes?.length);
    this.#options = o;
    this.#app = app;
    this.#keys = keysOf(app);
    this.#url = maskUrl(rootNodes?.[0] ?? url);
    this.#secret = secretOf(rootNodes?.[0] ?? url);
    this.#log = makeLogger(options.logger, `cutover-reader[${app}]:`, (text) => this.#scrub(text));
    this.#trust = { origins: parseOrigins(options.assetOrigins), keys: parseVerifyKeys(options.verifyKeys) };
    this.#fallback = options.fallbackManifest === undefined ? undefined : this.#loadFallback(options.fallbackManifest);
  }

  /** The live release id this process serves; null while it serves the fallback manifest. */
  get releaseId() {
    return this.#state.live.releaseId;
  }

  /** The canary this process serves to its share of the keys, or null: `{release, percent}`. */
  get canary() {
    const c = this.#state.canary;
    return c ? { release: c.release, percent: c.percent } : null;
  }

  /** @param {string} name */
  lookup(name) {
    return this.#state.live.lookup(name);
  }

  /** @param {string} name */
  lookupOrThrow(name) {
    return this.#state.live.lookupOrThrow(name);
  }

  /** @param {string} name */
  entrypoint(name) {
    return this.#state.live.entrypoint(name);
  }

  /**
   * A release, frozen: one render answers from one release even if a switch lands meanwhile.
   * The live release; with `key`, the canary when the key is assigned to it.
   * @param {SnapshotOptions} [options]
   * @returns {Snapshot}
   */
  snapshot(options) {
    const { live, canary } = this.#state;
    const key = options?.key;
    if (key === undefined || key === null) return live;
    if (typeof key !== "string" && typeof key !== "number") {
      throw new TypeError("cutover-reader: snapshot({key}): `key` must be a string or a number");
    }
    const k = String(key);
    return canary && k !== "" && assigned(canary, k) ? canary.snapshot : live;
  }

  /**
   * Release `id` if this process may serve it to a request that names it (skew protection): the
   * live release, the canary, or a release retired less than skewMaxAge ago whose record passes
   * the checks; null otherwise (and when Redis does not answer).
   * @param {string} id
   * @returns {Promise<Snapshot | null>}
   */
  async releaseSnapshot(id) {
    if (typeof id !== "string" || id === "") return null;
    const { live, canary } = this.#state;
    if (id === live.releaseId) return live;
    if (canary && id === canary.release) return canary.snapshot;
    if (this.#closed) return null;
    return /** @type {Skew} */ (this.#skew).find(id);
  }

  /**
   * The snapshot a request renders with (a release it names, else its assignment), after saying
   * so on `res`: the X-Cutover-Release header and the cutover_release cookie (and cutover_key).
   * @param {import("node:http").IncomingMessage} req
   * @param {import("node:http").ServerResponse | null | undefined} res
   * @param {SnapshotOptions} [options] `key`: the app's (a user id); default the cutover_key cookie
   * @returns {Promise<Snapshot>}
   */
  requestSnapshot(req, res, options) {
    return requestSnapshot(this, req, res, options);
  }

  /** Stop the poll and close both connections; afterwards nothing keeps the process alive. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#refresher?.stop();
    await this.#source?.close();
  }

  /** @param {ReaderOptions} options */
  static async create(options) {
    const reader = new Reader(options);
    await reader.#start();
    return reader;
  }

  async #start() {
    const o = this.#options;
    if (!this.#trust.origins) {
      this.#log.warn(
        "no assetOrigins configured: any URL written to Redis will be served, so anyone who can write " +
          `${this.#keys.manifest} can put their script on your pages; pass assetOrigins: ["https://your.cdn.example"]`,
      );
    }
    const source = new Source(this.#app, o, this.#trust);
    this.#source = source;
    this.#skew = new Skew({ source, maxAge: o.skewMaxAge * 1000, timeout: o.commandTimeout, log: this.#log });
    const scrub = (/** @type {string} */ text) => this.#scrub(text);
    const fleet =
      o.reportInterval > 0
        ? new Fleet({ source, interval: o.reportInterval, commandTimeout: o.commandTimeout, log: this.#log, url: this.#url, scrub })
        : null;
    const refresher = new Refresher({
      source,
      options: o,
      log: this.#log,
      url: this.#url,
      scrub,
      serving: () => this.#state,
      install: (next, via) => this.#install(next, via),
      reject: (event) => this.#announce("rejected", event),
      fleet,
    });
    this.#refresher = refresher;

    /** @type {{release: string, reason: string} | null} */
    let refused = null;
    try {
      const read = await within(refresher.connect().then(() => source.readAll()), o.connectTimeout);
      if (read.liveError) throw read.liveError;
      this.#state = Object.freeze({ live: /** @type {Snapshot} */ (read.live), canary: read.canary });
      refused = refresher.startedWith(read);
      // A canary refused at start: said once the caller holds the reader (as below).
      if (refused) {
        const event = { ...refused, canary: /** @type {const} */ (true) };
        setImmediate(() => this.#closed || this.#announce("rejected", event));
      }
    } catch (err) {
      // After a timeout, the connection error says more than "no answer".
      const cause = err.timeout && refresher.startError ? refresher.startError : err;
      if (this.#fallback === undefined) {
        await this.close();
        throw this.#unavailable(cause, o.connectTimeout);
      }
      this.#state = Object.freeze({ live: this.#fallback, canary: null });
      refresher.startedWithout(cause);
      this.#log.warn(
        `no live release from ${this.#keys.manifest} at ${this.#url} (${this.#scrub(cause.message)}); ` +
          `serving the fallback manifest until there is one`,
      );
      // Refused at start: said once the caller holds the reader (a listener added right after
      // `await createReader(...)` hears it).
      if (cause.release) {
        const event = { release: cause.release, reason: cause.reason ?? cause.message };
        refused = { ...event };
        setImmediate(() => this.#closed || this.#announce("rejected", event));
      }
    }
    const { live, canary } = this.#state;
    fleet?.begin(live.releaseId, refused, canary?.release ?? null);
    refresher.start();
  }

  /**
   * Serve another live release or canary (or both), and say so.
   * @param {State} next
   * @param {SwitchSource} source
   */
  #install(next, source) {
    const before = this.#state;
    this.#state = Object.freeze({ ...next });
    this.#skew?.forget([before.live.releaseId, before.canary?.release]);
    if (next.live !== before.live) {
      const previous = before.live.releaseId;
      this.#log.info(`serving release ${next.live.releaseId} (was ${previous ?? "the fallback manifest"}; via ${source})`);
      this.#announce("switch", { release: /** @type {string} */ (next.live.releaseId), previous, source });
    }
    if (next.canary !== before.canary) {
      const { canary } = next;
      const previous = before.canary?.release ?? null;
      this.#log.info(
        canary
          ? `serving canary ${canary.release} to ${canary.percent}% (was ${previous ?? "none"}; via ${source})`
          : `no canary any more (was ${previous}; via ${source})`,
      );
      this.#announce("canary", { release: canary?.release ?? null, percent: canary?.percent ?? null, previous, source });
    }
  }

  /**
   * Call the listeners; one that throws is logged, never propagated.
   * @param {"switch" | "rejected" | "canary"} name
   * @param {SwitchEvent | RejectedEvent | CanaryEvent} event
   */
  #announce(name, event) {
    for (const listener of this.rawListeners(name)) {
      try {
        listener.call(this, event);
      } catch (err) {
        this.#log.error(`a "${name}" listener threw: ${err?.stack ?? err}`);
      }
    }
  }

  // --- helpers ----------------------------------------------------------------

  /** @param {unknown} text */
  #scrub(text) {
    return this.#secret ? String(text).split(this.#secret).join("***") : String(text);
  }

  /**
   * @param {any} cause
   * @param {number} ms
   */
  #unavailable(cause, ms) {
    const key = this.#keys.manifest;
    // Redis answered (nothing live, or a release refused): no "gave up".
    const why = cause?.empty || cause?.release ? cause.message : `${this.#scrub(cause?.message ?? cause)} (gave up after ${ms} ms)`;
    return new UnavailableError(
      `cutover-reader: cannot read ${key} from ${this.#url}: ${why}; ` +
        `check that Redis is reachable at that URL, or pass fallbackManifest`,
      { key, url: this.#url, cause },
    );
  }

  /** @param {string | Record<string, unknown>} value */
  #loadFallback(value) {
    /** @type {any} */
    let manifest = value;
    if (typeof value === "string") {
      try {
        manifest = JSON.parse(readFileSync(value, "utf8"));
      } catch (err) {
        throw new TypeError(`cutover-reader: cannot read fallbackManifest ${value}: ${err.message}`);
      }
    } else {
      manifest = structuredClone(value);
    }
    try {
      return new Snapshot(this.#app, null, manifest, this.#trust.origins);
    } catch (err) {
      throw new TypeError(`cutover-reader: fallbackManifest: ${err.message}`);
    }
  }
}

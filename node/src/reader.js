// The reader: the public API (lookup, lookupOrThrow, entrypoint, releaseId,
// snapshot, on("switch"), close) over the Snapshot it serves. Where releases
// come from is ./source.js (Redis); how it stays on the live one is
// ./refresher.js (pub/sub, poll, reconnect), which also has ./fleet.js report
// what this process serves; a Snapshot (./snapshot.js) is one release's
// manifest, immutable, swapped whole on a switch.
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { UnavailableError } from "./errors.js";
import { Fleet } from "./fleet.js";
import { makeLogger } from "./log.js";
import { Refresher, within } from "./refresher.js";
import { Snapshot } from "./snapshot.js";
import { Source, keysOf } from "./source.js";
import { parseOrigins, parseVerifyKeys } from "./trust.js";
import { isSentinelUrl, maskUrl, parseSentinelUrl, secretOf } from "./url.js";

/**
 * @typedef {import("../index.js").ReaderOptions} ReaderOptions
 * @typedef {import("../index.js").SwitchEvent} SwitchEvent
 * @typedef {import("../index.js").SwitchSource} SwitchSource
 * @typedef {import("../index.js").RejectedEvent} RejectedEvent
 */

/** @satisfies {Partial<ReaderOptions>} (each default is of a declared option, with its declared type) */
const DEFAULTS = { pollInterval: 1000, connectTimeout: 2000, commandTimeout: 1000, reportInterval: 5000 };

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
  /** @type {Snapshot} */
  #snapshot;
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

  /** The release id this process serves; null while it serves the fallback manifest. */
  get releaseId() {
    return this.#snapshot.releaseId;
  }

  /** @param {string} name */
  lookup(name) {
    return this.#snapshot.lookup(name);
  }

  /** @param {string} name */
  lookupOrThrow(name) {
    return this.#snapshot.lookupOrThrow(name);
  }

  /** @param {string} name */
  entrypoint(name) {
    return this.#snapshot.entrypoint(name);
  }

  /** The serving release, frozen: one render answers from one release even if a switch lands meanwhile. */
  snapshot() {
    return this.#snapshot;
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
      serving: () => this.#snapshot,
      install: (next, via) => this.#install(next, via),
      reject: (event) => this.#announce("rejected", event),
      fleet,
    });
    this.#refresher = refresher;

    let snapshot;
    /** @type {{release: string, reason: string} | null} */
    let refused = null;
    try {
      snapshot = await within(refresher.connect().then(() => source.readLive()), o.connectTimeout);
    } catch (err) {
      // After a timeout, the connection error says more than "no answer".
      const cause = err.timeout && refresher.startError ? refresher.startError : err;
      if (this.#fallback === undefined) {
        await this.close();
        throw this.#unavailable(cause, o.connectTimeout);
      }
      snapshot = this.#fallback;
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
    this.#snapshot = snapshot;
    fleet?.begin(snapshot.releaseId, refused);
    refresher.start();
  }

  /**
   * Serve another release, and say so.
   * @param {Snapshot} next
   * @param {SwitchSource} source
   */
  #install(next, source) {
    const previous = this.#snapshot.releaseId;
    this.#snapshot = next;
    this.#log.info(`serving release ${next.releaseId} (was ${previous ?? "the fallback manifest"}; via ${source})`);
    this.#announce("switch", { release: /** @type {string} */ (next.releaseId), previous, source });
  }

  /**
   * Call the listeners; one that throws is logged, never propagated.
   * @param {"switch" | "rejected"} name
   * @param {SwitchEvent | RejectedEvent} event
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

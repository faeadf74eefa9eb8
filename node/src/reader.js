// The reader: the live release of one app, held in memory and refreshed from
// Redis by pub/sub, a poll of `current`, and a full re-read after a reconnect.
// The keys and JSON it reads are the "Redis contract" in docs/redis.md.
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { openConnections } from "./connection.js";
import { UnavailableError } from "./errors.js";
import { Release } from "./release.js";
import { maskUrl, secretOf } from "./url.js";

const DEFAULTS = { pollInterval: 1000, connectTimeout: 2000, commandTimeout: 1000 };

export function createReader(options) {
  return Reader.create(options);
}

class Reader extends EventEmitter {
  #app;
  #keys;
  #url;
  #secret;
  #log;
  #options;
  #fallback;
  #conn;
  #timer = null;
  /** @type {Release} */
  #release;
  #started = false;
  #closed = false;
  #startError = null;
  // One read at a time, in order; a request during a read runs once after it.
  #busy = null;
  #again = null;
  #checking = false;
  // After a failed command the next check reads current and manifest together.
  #needsFullRead = false;
  #trouble = false;
  #emptyLogged = false;
  #rejected = null;
  #subscribedOnce = false;
  #subscribeRefused = false;

  constructor(options = {}) {
    super();
    const { app, url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379", rootNodes } = options;
    if (typeof app !== "string" || app === "") throw new TypeError("cutover-reader: `app` is required");
    for (const u of rootNodes ?? [url]) {
      let protocol;
      try {
        protocol = new URL(u).protocol;
      } catch {
        throw new TypeError(`cutover-reader: invalid Redis URL ${maskUrl(u)}`);
      }
      if (protocol !== "redis:" && protocol !== "rediss:") {
        throw new TypeError(`cutover-reader: invalid Redis URL ${maskUrl(u)}: expected redis:// or rediss://`);
      }
    }
    const o = { ...DEFAULTS, ...options, url };
    for (const k of ["pollInterval", "connectTimeout", "commandTimeout"]) {
      if (!(Number.isFinite(o[k]) && o[k] > 0)) throw new TypeError(`cutover-reader: \`${k}\` must be a positive number of ms`);
    }
    o.cluster = Boolean(options.cluster || rootNodes?.length);
    this.#options = o;
    this.#app = app;
    const prefix = `cutover:{${app}}:`;
    this.#keys = { current: `${prefix}current`, manifest: `${prefix}manifest`, events: `${prefix}events` };
    this.#url = maskUrl(rootNodes?.[0] ?? url);
    this.#secret = secretOf(rootNodes?.[0] ?? url);
    this.#log = makeLogger(options.logger, `cutover-reader[${app}]:`, (text) => this.#scrub(text));
    this.#fallback = options.fallbackManifest === undefined ? undefined : this.#loadFallback(options.fallbackManifest);
  }

  /** The release id this process serves; null while it serves the fallback manifest. */
  get releaseId() {
    return this.#release.releaseId;
  }

  lookup(name) {
    return this.#release.lookup(name);
  }

  lookupOrThrow(name) {
    return this.#release.lookupOrThrow(name);
  }

  entrypoint(name) {
    return this.#release.entrypoint(name);
  }

  /** The serving release, frozen: one render answers from one release even if a switch lands meanwhile. */
  snapshot() {
    return this.#release;
  }

  /** Stop the poll and close both connections; afterwards nothing keeps the process alive. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    const clients = new Set([this.#conn?.commands, this.#conn?.subscriber].filter(Boolean));
    await Promise.all(
      [...clients].map(async (client) => {
        try {
          await client.destroy();
        } catch {
          // already closed
        }
      }),
    );
  }

  static async create(options) {
    const reader = new Reader(options);
    await reader.#start();
    return reader;
  }

  async #start() {
    const o = this.#options;
    const conn = openConnections(o);
    this.#conn = conn;
    // node-redis emits "error" on every failed (re)connect; an "error" without a
    // listener would crash the process.
    for (const client of new Set([conn.commands, conn.subscriber])) {
      const label = conn.cluster ? "cluster" : client === conn.commands ? "connection" : "subscriber connection";
      client.on("error", (err) => this.#lost(err, label));
    }
    if (conn.cluster) conn.commands.on("node-error", (err) => this.#lost(err, "cluster node"));

    let release;
    try {
      const ready = conn.cluster ? this.#connectCluster() : this.#connectSingle();
      release = await within(ready.then(() => this.#readLive()), o.connectTimeout);
    } catch (err) {
      // After a timeout, the connection error says more than "no answer".
      const cause = err.timeout && this.#startError ? this.#startError : err;
      if (this.#fallback === undefined) {
        await this.close();
        throw this.#unavailable(cause, o.connectTimeout);
      }
      release = this.#fallback;
      if (cause.empty) this.#emptyLogged = true;
      else if (cause.release) this.#rejected = cause.release;
      else {
        this.#trouble = true;
        this.#needsFullRead = true;
      }
      this.#log.warn(
        `no live release from ${this.#keys.manifest} at ${this.#url} (${this.#scrub(cause.message)}); ` +
          `serving the fallback manifest until there is one`,
      );
    }
    this.#release = release;
    this.#started = true;
    this.#timer = setInterval(() => this.#tick(), o.pollInterval);
    this.#timer.unref();
  }

  // --- connecting -----------------------------------------------------------

  #connectSingle() {
    const { commands, subscriber } = this.#conn;
    const subscribed = new Promise((resolve, reject) => {
      subscriber.on("ready", () => {
        if (this.#subscribedOnce) {
          // Reconnected: node-redis has re-subscribed already. Read what pub/sub may have missed.
          if (this.#started) this.#refresh("reconnect");
          return;
        }
        this.#subscribedOnce = true;
        subscriber.subscribe(this.#keys.events, () => this.#refresh("pubsub")).then(
          () => {
            resolve();
            if (this.#started) this.#refresh("reconnect");
          },
          (err) => {
            reject(err);
            this.#cannotSubscribe(err);
          },
        );
      });
    });
    subscribed.catch(() => {});
    commands.on("ready", () => {
      if (this.#started) this.#refresh("reconnect");
    });
    const connected = commands.connect();
    subscriber.connect().catch((err) => this.#lost(err, "subscriber connection"));
    return Promise.all([connected, subscribed]);
  }

  async #connectCluster() {
    const cluster = this.#conn.commands;
    if (!cluster.isOpen) await cluster.connect();
    if (!this.#subscribedOnce) {
      try {
        await cluster.subscribe(this.#keys.events, () => this.#refresh("pubsub"));
        this.#subscribedOnce = true;
      } catch (err) {
        this.#cannotSubscribe(err);
        throw err;
      }
    }
  }

  #cannotSubscribe(err) {
    // Before the start it is part of the start's error; after, said once (a cluster retries every poll).
    if (!this.#started || this.#subscribeRefused) return;
    this.#subscribeRefused = true;
    this.#log.error(
      `cannot SUBSCRIBE ${this.#keys.events} at ${this.#url} (${this.#scrub(err.message)}); ` +
        `activations reach this process through the poll only`,
    );
  }

  // --- reading --------------------------------------------------------------

  /** The live release as one consistent pair (MGET current manifest). */
  async #readLive() {
    const [id, json] = await this.#conn.commands.mGet([this.#keys.current, this.#keys.manifest]);
    if (id === null || json === null) {
      const err = new Error(`${this.#keys.current} is empty: no release is live (run \`cutover deploy\`)`);
      err.empty = true;
      throw err;
    }
    try {
      return new Release(this.#app, id, JSON.parse(json));
    } catch (err) {
      err.message = `the manifest of release ${id} cannot be read: ${err.message}`;
      err.release = id;
      throw err;
    }
  }

  /** Read the live pair and switch to it if it is another release. Never throws. */
  #refresh(source) {
    if (this.#closed) return Promise.resolve();
    if (this.#busy) {
      this.#again ??= source;
      return this.#busy;
    }
    this.#busy = (async () => {
      for (let next = source; next && !this.#closed; next = this.#again) {
        this.#again = null;
        await this.#switchToLive(next);
      }
      this.#busy = null;
    })();
    return this.#busy;
  }

  async #switchToLive(source) {
    let next;
    try {
      next = await this.#readLive();
    } catch (err) {
      if (err.empty) {
        this.#answered();
        if (!this.#emptyLogged) this.#log.warn(`${err.message}; keeping ${this.#describe()}`);
        this.#emptyLogged = true;
      } else if (err.release) {
        this.#answered();
        if (this.#rejected !== err.release) this.#log.error(`${err.message}; keeping ${this.#describe()}`);
        this.#rejected = err.release;
      } else {
        this.#needsFullRead = true;
        this.#lost(err, "read");
      }
      return;
    }
    this.#answered();
    this.#emptyLogged = false;
    this.#rejected = null;
    if (this.#closed || next.releaseId === this.#release.releaseId) return;
    const previous = this.#release.releaseId;
    this.#release = next;
    this.#log.info(`serving release ${next.releaseId} (was ${previous ?? "the fallback manifest"}; via ${source})`);
    this.#announce({ release: next.releaseId, previous, source });
  }

  /** Every pollInterval: GET current; only when it changed, read the pair. */
  async #tick() {
    if (this.#closed || this.#checking || this.#busy) return;
    this.#checking = true;
    try {
      if (this.#conn.cluster && (!this.#conn.commands.isOpen || !this.#subscribedOnce)) {
        await within(this.#connectCluster(), this.#options.connectTimeout);
      }
      const id = await this.#conn.commands.get(this.#keys.current);
      this.#log.debug(`poll: ${this.#keys.current} = ${id}`);
      this.#answered();
      if (this.#needsFullRead) {
        // The first answer after a failure: read the pair again, whatever current says.
        this.#needsFullRead = false;
        await this.#refresh("reconnect");
      } else if (id !== null && id !== this.#release.releaseId && id !== this.#rejected) {
        await this.#refresh("poll");
      }
    } catch (err) {
      this.#needsFullRead = true;
      this.#lost(err, "poll");
    } finally {
      this.#checking = false;
    }
  }

  #announce(event) {
    for (const listener of this.rawListeners("switch")) {
      try {
        listener.call(this, event);
      } catch (err) {
        this.#log.error(`a "switch" listener threw: ${err?.stack ?? err}`);
      }
    }
  }

  // --- outages: logged once, the recovery once ------------------------------

  #lost(err, where) {
    if (this.#closed) return;
    const text = this.#scrub(err?.message ?? String(err));
    if (!this.#started) {
      this.#startError ??= err;
      return;
    }
    if (this.#trouble) {
      this.#log.debug(`Redis still unavailable (${where}: ${text})`);
      return;
    }
    this.#trouble = true;
    this.#log.warn(`lost Redis at ${this.#url} (${where}: ${text}); serving ${this.#describe()} from memory until it is back`);
  }

  #answered() {
    if (!this.#trouble) return;
    const { cluster, commands, subscriber } = this.#conn;
    if (!cluster && !(commands.isReady && subscriber.isReady)) return;
    this.#trouble = false;
    this.#log.info(`Redis at ${this.#url} answers again; serving ${this.#describe()}`);
  }

  // --- helpers ----------------------------------------------------------------

  #describe() {
    const id = this.#release?.releaseId;
    return id === null || id === undefined ? "the fallback manifest" : `release ${id}`;
  }

  #scrub(text) {
    return this.#secret ? String(text).split(this.#secret).join("***") : String(text);
  }

  #unavailable(cause, ms) {
    const key = this.#keys.manifest;
    const why = cause?.empty ? cause.message : `${this.#scrub(cause?.message ?? cause)} (gave up after ${ms} ms)`;
    return new UnavailableError(
      `cutover-reader: cannot read ${key} from ${this.#url}: ${why}; ` +
        `check that Redis is reachable at that URL, or pass fallbackManifest`,
      { key, url: this.#url, cause },
    );
  }

  #loadFallback(value) {
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
      return new Release(this.#app, null, manifest);
    } catch (err) {
      throw new TypeError(`cutover-reader: fallbackManifest: ${err.message}`);
    }
  }
}

function within(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { timeout: true })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const noop = () => {};

function makeLogger(logger, prefix, scrub) {
  if (logger === false || logger === null) return { debug: noop, info: noop, warn: noop, error: noop };
  const base = logger ?? { debug: noop, info: console.info, warn: console.warn, error: console.error };
  const level = (name) => (message) => {
    const fn = base[name];
    if (typeof fn !== "function") return;
    try {
      fn.call(base, `${prefix} ${scrub(message)}`);
    } catch {
      // a logger that throws must not break the reader
    }
  };
  return { debug: level("debug"), info: level("info"), warn: level("warn"), error: level("error") };
}

// The background half of a reader: keeps it on the live release and the
// canary through pub/sub (a message on the events channel), a poll of
// `current` and `canary` every pollInterval, and a full re-read after every
// reconnect. Reads run one at a time, in order;
// an outage is logged once and its end once. It also has the process report
// what it serves (./fleet.js): once it serves, on every switch or refusal, and
// every reportInterval. A step that must run before a process serves (a
// re-read right after a fork, say) belongs to `start`.
import { Source } from "./source.js";

/**
 * @typedef {import("../index.js").SwitchSource} SwitchSource
 * @typedef {import("./source.js").Canary} Canary
 * @typedef {import("./source.js").Read} Read
 * @typedef {{live: import("./snapshot.js").Snapshot, canary: Canary | null}} State what a reader
 *   serves: the live release and the canary, swapped together
 * @typedef {{release: string, reason: string, canary?: true}} Refusal
 * @typedef {{debug(m: string): void, info(m: string): void, warn(m: string): void, error(m: string): void}} Log
 * @typedef {object} RefresherOptions
 * @property {Source} source
 * @property {{pollInterval: number, connectTimeout: number}} options
 * @property {Log} log
 * @property {string} url the Redis URL, masked, for messages
 * @property {(text: string) => string} scrub removes the Redis secret from a message
 * @property {() => State} serving what the reader serves now
 * @property {(next: State, source: SwitchSource) => void} install serve another live release or
 *   canary (or both)
 * @property {(event: Refusal) => void} reject a live release or a canary was refused (called
 *   once per distinct release in a row, as it is logged)
 * @property {import("./fleet.js").Fleet | null} fleet where this process reports what it
 *   serves; null when reportInterval is 0
 */

export class Refresher {
  #source;
  #options;
  #log;
  #url;
  #scrub;
  #serving;
  #install;
  #reject;
  #fleet;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #heartbeat;
  #started = false;
  #closed = false;
  /** @type {unknown} */
  #startError = null;
  // One read at a time, in order; a request during a read runs once after it.
  /** @type {Promise<void> | null} */
  #busy = null;
  /** @type {SwitchSource | null} */
  #again = null;
  #checking = false;
  // After a failed command the next check reads current and manifest together.
  #needsFullRead = false;
  #trouble = false;
  #emptyLogged = false;
  /** @type {string | null} */
  #rejected = null;
  /** @type {string | null | undefined} the canary key as last read (undefined: never read) */
  #canaryValue = undefined;
  /** @type {string | null} the canary refused last (its release, or its value when it names none) */
  #canaryRejected = null;
  #subscribedOnce = false;
  #subscribeRefused = false;

  /** @param {RefresherOptions} o */
  constructor({ source, options, log, url, scrub, serving, install, reject, fleet }) {
    this.#source = source;
    this.#options = options;
    this.#log = log;
    this.#url = url;
    this.#scrub = scrub;
    this.#serving = serving;
    this.#install = install;
    this.#reject = reject;
    this.#fleet = fleet;
    // node-redis emits "error" on every failed (re)connect; an "error" without a
    // listener would crash the process.
    const { cluster, shared, commands, subscriber } = source;
    for (const client of new Set([commands, subscriber])) {
      const label = cluster ? "cluster" : shared ? "sentinel" : client === commands ? "connection" : "subscriber connection";
      client.on("error", (err) => this.#lost(err, label));
    }
    if (cluster) commands.on("node-error", (err) => this.#lost(err, "cluster node"));
  }

  /** The first connection error, kept while starting: it says more than a timeout. */
  get startError() {
    return this.#startError;
  }

  /** Connect and subscribe (resolves once subscribed). */
  connect() {
    return this.#source.shared ? this.#connectShared() : this.#connectSingle();
  }

  /**
   * The reader started on its fallback manifest because of `cause` (the error of its first
   * read): remember what to log and what to re-read.
   * @param {any} cause
   */
  startedWithout(cause) {
    if (cause.empty) this.#emptyLogged = true;
    else if (cause.release) this.#rejected = cause.release;
    else {
      this.#trouble = true;
      this.#needsFullRead = true;
    }
  }

  /**
   * The reader starts on what its first read gave: remember the canary key it saw, and say once
   * if the canary was refused. Returns the refusal to announce (once the caller holds the reader).
   * @param {Read} read
   * @returns {Refusal | null}
   */
  startedWith(read) {
    this.#canaryValue = read.canaryValue;
    return read.canaryError ? this.#refuseCanary(read.canaryError, false) : null;
  }

  /** The reader serves from now on: reconnects re-read, the poll starts, and the reports. */
  start() {
    this.#started = true;
    this.#timer = setInterval(() => this.#tick(), this.#options.pollInterval);
    this.#timer.unref();
    const fleet = this.#fleet;
    if (fleet) {
      fleet.report();
      this.#heartbeat = setInterval(() => fleet.report(), fleet.interval);
      this.#heartbeat.unref();
    }
  }

  /** Stop the poll and the reports; nothing is read, written or logged afterwards. */
  stop() {
    this.#closed = true;
    clearInterval(this.#timer);
    clearInterval(this.#heartbeat);
    this.#fleet?.stop();
  }

  // --- connecting -----------------------------------------------------------

  /** @returns {Promise<unknown>} */
  #connectSingle() {
    const { commands, subscriber, keys } = this.#source;
    /** @type {Promise<void>} */
    const subscribed = new Promise((resolve, reject) => {
      subscriber.on("ready", () => {
        if (this.#subscribedOnce) {
          // Reconnected: node-redis has re-subscribed already. Read what pub/sub may have missed.
          if (this.#started) this.#refresh("reconnect");
          return;
        }
        this.#subscribedOnce = true;
        subscriber.subscribe(keys.events, () => this.#started && this.#refresh("pubsub")).then(
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

  /** A cluster or sentinel client: one client, which keeps its own pub/sub connection. */
  async #connectShared() {
    const client = this.#source.commands;
    if (!client.isOpen) await client.connect();
    if (!this.#subscribedOnce) {
      try {
        await client.subscribe(this.#source.keys.events, () => this.#started && this.#refresh("pubsub"));
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
      `cannot SUBSCRIBE ${this.#source.keys.events} at ${this.#url} (${this.#scrub(err.message)}); ` +
        `activations reach this process through the poll only`,
    );
  }

  // --- reading --------------------------------------------------------------

  /**
   * Read the live release and the canary, and serve them if they changed. Never throws.
   * @param {SwitchSource} source
   * @returns {Promise<void>}
   */
  #refresh(source) {
    if (this.#closed) return Promise.resolve();
    if (this.#busy) {
      this.#again ??= source;
      return this.#busy;
    }
    this.#busy = (async () => {
      try {
        for (let next = /** @type {SwitchSource | null} */ (source); next && !this.#closed; next = this.#again) {
          this.#again = null;
          await this.#reread(next);
        }
      } catch (err) {
        this.#needsFullRead = true;
        this.#lost(err, "read");
      } finally {
        // Whatever happened, the next read may run: a read that threw must
        // not leave every later poll waiting on it.
        this.#again = null;
        this.#busy = null;
      }
    })();
    return this.#busy;
  }

  /** @param {SwitchSource} source */
  async #reread(source) {
    /** @type {Read} */
    let read;
    try {
      read = await this.#source.readAll();
    } catch (err) {
      this.#needsFullRead = true;
      this.#lost(err, "read");
      return;
    }
    this.#answered();
    const serving = this.#serving();
    let live = serving.live;
    // What the fleet hears of this read, in one report.
    /** @type {Parameters<import("./fleet.js").Fleet["changed"]>[0]} */
    const change = {};
    const err = read.liveError;
    if (err?.empty) {
      if (!this.#emptyLogged) this.#log.warn(`${err.message}; keeping ${this.#describe()}`);
      this.#emptyLogged = true;
    } else if (err) {
      if (this.#rejected !== err.release) {
        this.#rejected = err.release;
        this.#log.error(`${err.message}; keeping ${this.#describe()}`);
        const refusal = { release: err.release, reason: err.reason ?? err.message };
        change.refused = refusal;
        this.#reject(refusal);
      }
    } else if (read.live) {
      this.#emptyLogged = false;
      this.#rejected = null;
      if (read.live.releaseId !== live.releaseId) live = read.live;
    }
    this.#canaryValue = read.canaryValue;
    const canaryRefused = read.canaryError && this.#refuseCanary(read.canaryError, true);
    if (canaryRefused) change.refused ??= canaryRefused;
    const canary = this.#canaryOf(read, serving.canary);
    if (this.#closed) return;
    if (live !== serving.live || canary !== serving.canary) this.#install({ live, canary }, source);
    if (live !== serving.live) Object.assign(change, { release: /** @type {string} */ (live.releaseId), via: source });
    if (canary?.release !== serving.canary?.release) change.canary = canary?.release ?? null;
    if (Object.keys(change).length) this.#fleet?.changed(change);
  }

  /**
   * The canary to serve after `read`: the one served, when the read gave the same rollout.
   * @param {Read} read
   * @param {Canary | null} serving
   * @returns {Canary | null}
   */
  #canaryOf(read, serving) {
    if (read.canaryError) return null;
    const next = read.canary;
    if (next || read.canaryValue === null) this.#canaryRejected = null;
    else this.#log.debug(`${this.#source.keys.canary} names the live release ${read.current}: ignored`);
    const same = next && serving && next.release === serving.release && next.threshold === serving.threshold && next.salt === serving.salt;
    return same ? serving : next;
  }

  /**
   * A canary refused: nobody gets it. Said once per release in a row (logged, and emitted with
   * `canary: true`; only logged when it names no release). Returns the refusal to report, the
   * first time.
   * @param {{release: string | null, reason: string}} refusal
   * @param {boolean} announce emit it now (not at start: the reader does, once it is returned)
   * @returns {Refusal | null}
   */
  #refuseCanary({ release, reason }, announce) {
    const mark = release ?? `value ${this.#canaryValue}`;
    if (this.#canaryRejected === mark) return null;
    this.#canaryRejected = mark;
    this.#log.error(
      `canary ${release === null ? `in ${this.#source.keys.canary}` : `release ${release}`} rejected: ${reason}; nobody gets it, ` +
        `every request gets ${this.#describe()}`,
    );
    if (release === null) return null;
    const refusal = { release, reason };
    if (announce) this.#reject({ ...refusal, canary: true });
    return refusal;
  }

  /** Every pollInterval: MGET current canary; only when either changed, read all six keys. */
  async #tick() {
    if (this.#closed || this.#checking || this.#busy) return;
    this.#checking = true;
    try {
      if (this.#source.shared && (!this.#source.commands.isOpen || !this.#subscribedOnce)) {
        await within(this.#connectShared(), this.#options.connectTimeout);
      }
      const { current: id, canary } = await this.#source.poll();
      this.#log.debug(`poll: ${this.#source.keys.current} = ${id}, canary ${canary === null ? "none" : canary}`);
      this.#answered();
      if (this.#needsFullRead) {
        // The first answer after a failure: read everything again, whatever current says.
        this.#needsFullRead = false;
        await this.#refresh("reconnect");
      } else if ((id !== null && id !== this.#serving().live.releaseId && id !== this.#rejected) || canary !== this.#canaryValue) {
        await this.#refresh("poll");
      }
    } catch (err) {
      this.#needsFullRead = true;
      this.#lost(err, "poll");
    } finally {
      this.#checking = false;
    }
  }

  // --- outages: logged once, the recovery once ------------------------------

  /**
   * @param {any} err
   * @param {string} where
   */
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
    if (!this.#source.ready) return;
    this.#trouble = false;
    this.#log.info(`Redis at ${this.#url} answers again; serving ${this.#describe()}`);
  }

  #describe() {
    const id = this.#serving()?.live.releaseId;
    return id === null || id === undefined ? "the fallback manifest" : `release ${id}`;
  }
}

/**
 * The promise, or a rejection with `timeout` after ms.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @returns {Promise<T>}
 */
export function within(promise, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { timeout: true })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

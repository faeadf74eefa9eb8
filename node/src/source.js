// Where a reader's releases come from: one app's keys in one Redis (or Redis
// Cluster, or the master behind Sentinel), through the connections of
// ./connection.js. Every command the reader sends is here: MGET of the live
// release (current, manifest, signature), GET of `current`, SUBSCRIBE to the
// events channel, and the report of what this process serves (ZADD, SET,
// ZREMRANGEBYSCORE on the fleet keys). The keys and JSON are the "Redis
// contract" in docs/redis.md.
import { ClientOfflineError, RESP_TYPES } from "redis";
import { openConnections } from "./connection.js";
import { Snapshot } from "./snapshot.js";
import { signatureProblem } from "./trust.js";

/**
 * @typedef {{current: string, manifest: string, signature: string, events: string, fleet: string}} Keys
 * @typedef {{url: string, cluster: boolean, sentinel?: boolean, sentinelPassword?: string, rootNodes?: string[], connectTimeout: number, commandTimeout: number}} SourceOptions
 * @typedef {{origins: Set<string> | null, keys: {key: import("node:crypto").KeyObject, fingerprint: string}[] | null}} Trust
 */

/** The keys of one app: `cutover:{APP}:*`, all in the slot of `{APP}`. */
export function keysOf(app) {
  const prefix = `cutover:{${app}}:`;
  return {
    current: `${prefix}current`,
    manifest: `${prefix}manifest`,
    signature: `${prefix}signature`,
    events: `${prefix}events`,
    fleet: `${prefix}fleet`,
  };
}

/** How long a process's report lasts, and how old a member of the fleet may get: 10 minutes, in ms. */
const FLEET_TTL = 600_000;

// Replies as bytes: a signature covers the manifest's exact bytes, so they are hashed unparsed.
const AS_BYTES = { [RESP_TYPES.BLOB_STRING]: Buffer };

export class Source {
  #app;
  #trust;
  /** @type {Keys} */
  keys;
  /** @type {{cluster: boolean, sentinel: boolean, commands: any, subscriber: any}} */
  #conn;

  /**
   * Makes the clients; nothing connects until the refresher says so.
   * @param {string} app
   * @param {SourceOptions} options
   * @param {Trust} [trust] what a manifest must pass to be served
   */
  constructor(app, options, trust = { origins: null, keys: null }) {
    this.#app = app;
    this.#trust = trust;
    this.keys = keysOf(app);
    this.#conn = openConnections(options);
  }

  /** A Redis Cluster client. */
  get cluster() {
    return this.#conn.cluster;
  }

  /**
   * One client that finds its own nodes and keeps its own pub/sub connection (a cluster or
   * sentinel client), rather than a command client and a subscriber client.
   */
  get shared() {
    return this.#conn.cluster || this.#conn.sentinel;
  }

  get commands() {
    return this.#conn.commands;
  }

  get subscriber() {
    return this.#conn.subscriber;
  }

  /** Can both connections take a command now? (Always true for a shared client: it routes per node.) */
  get ready() {
    const { commands, subscriber } = this.#conn;
    return this.shared || (commands.isReady && subscriber.isReady);
  }

  /**
   * The live release, read in one MGET of current, manifest and signature: activation writes
   * all three in one script, so they always belong together. Throws an error with `empty` when
   * no release is live; with `release` (its id) and `reason` when the live manifest cannot be
   * read or is rejected (a URL off the allowed origins, a signature no configured key
   * verifies); and Redis's own error when Redis does not answer.
   * @returns {Promise<Snapshot>}
   */
  async readLive() {
    const { current, manifest, signature } = this.keys;
    /** @type {(Buffer | null)[]} */
    const [idBytes, bytes, sigBytes] = await this.#conn.commands.withTypeMapping(AS_BYTES).mGet([current, manifest, signature]);
    if (idBytes === null || bytes === null) {
      const err = new Error(`${current} is empty: no release is live (run \`cutover deploy\`)`);
      throw Object.assign(err, { empty: true });
    }
    const id = idBytes.toString("utf8");
    const rejected = (/** @type {string} */ reason) =>
      Object.assign(new Error(`release ${id} rejected: ${reason}`), { release: id, reason });
    const { keys, origins } = this.#trust;
    if (keys) {
      const reason = signatureProblem({ current: id, manifest: bytes, signature: sigBytes, keys });
      if (reason) throw rejected(reason);
    }
    let parsed;
    try {
      parsed = JSON.parse(bytes.toString("utf8"));
    } catch (err) {
      throw rejected(`the manifest is not JSON (${err.message})`);
    }
    try {
      return new Snapshot(this.#app, id, parsed, origins);
    } catch (err) {
      throw rejected(err.reason ?? `the manifest cannot be read: ${err.message}`);
    }
  }

  /** GET current: the live release id, or null. */
  async current() {
    return this.#conn.commands.get(this.keys.current);
  }

  /**
   * Report this process (docs/redis.md, "The fleet"): in one pipelined round trip (no MULTI),
   * `ZADD fleet AT ID`, `SET fleet:ID REPORT PX 600000`, and `ZREMRANGEBYSCORE fleet -inf
   * (AT-600000` to drop the processes not heard from in 10 minutes. All three keys are in the
   * slot of `{APP}`, so a cluster sends them to one node. Rejects with Redis's error (NOPERM for
   * a read-only user) or at once while the connection is down; it is not bounded here.
   * @param {string} id `HOST:PID`
   * @param {string} report compact JSON
   * @param {number} at the report's time, ms since the epoch
   */
  async report(id, report, at) {
    const { commands } = this.#conn;
    // A pipeline skips node-redis' offline check: without this it would wait for the reconnect.
    if (!this.shared && !commands.isReady) throw new ClientOfflineError();
    const { fleet } = this.keys;
    await commands
      .multi()
      .zAdd(fleet, { score: at, value: id })
      .set(`${fleet}:${id}`, report, { PX: FLEET_TTL })
      .zRemRangeByScore(fleet, "-inf", `(${at - FLEET_TTL}`)
      .execAsPipeline();
  }

  /** Close both connections; afterwards nothing keeps the process alive. */
  async close() {
    const clients = new Set([this.#conn.commands, this.#conn.subscriber].filter(Boolean));
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
}

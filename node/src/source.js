// Where a reader's releases come from: one app's keys in one Redis (or Redis
// Cluster, or the master behind Sentinel), through the connections of
// ./connection.js. Every command the reader sends is here: MGET of the live
// release and the canary (current, manifest, signature, canary,
// canary_manifest, canary_signature), MGET of `current` and `canary` (the
// poll), SUBSCRIBE to the events channel, ZSCORE of `retired` and GET of a
// release record (skew protection), and the report of what this process
// serves (ZADD, SET, ZREMRANGEBYSCORE on the fleet keys). The keys and JSON are
// the "Redis contract" in docs/redis.md.
import { ClientOfflineError, RESP_TYPES } from "redis";
import { openConnections } from "./connection.js";
import { memberText } from "./record.js";
import { parseCanary } from "./rollout.js";
import { Snapshot } from "./snapshot.js";
import { signatureProblem } from "./trust.js";

/**
 * @typedef {{current: string, manifest: string, signature: string, canary: string, canaryManifest: string,
 *   canarySignature: string, retired: string, release: string, events: string, fleet: string}} Keys
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
    canary: `${prefix}canary`,
    canaryManifest: `${prefix}canary_manifest`,
    canarySignature: `${prefix}canary_signature`,
    retired: `${prefix}retired`,
    /** the prefix of the release records: `release:ID` */
    release: `${prefix}release:`,
    events: `${prefix}events`,
    fleet: `${prefix}fleet`,
  };
}

/**
 * What one read of the six keys gave. `live`, or `liveError` (with `empty` when no release is
 * live, with `release` and `reason` when the live release is refused). `canary` with its rule
 * when one is served; `canaryError` ({release, reason}; release null when the canary names
 * none) when the canary is refused; both null when there is none, or it names the live release.
 * `canaryValue` is the canary key as read, which the poll compares.
 * @typedef {{current: string | null, live: Snapshot | null, liveError: any, canary: Canary | null,
 *   canaryError: {release: string | null, reason: string} | null, canaryValue: string | null}} Read
 * @typedef {{snapshot: Snapshot} & import("./rollout.js").CanaryRule} Canary
 */

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
   * The live release and the canary, read in one MGET of current, manifest, signature, canary,
   * canary_manifest and canary_signature: cutover writes each set in one script, so they always
   * belong together. Rejects only with Redis's own error when Redis does not answer.
   * @returns {Promise<Read>}
   */
  async readAll() {
    const k = this.keys;
    /** @type {(Buffer | null)[]} */
    const [idBytes, bytes, sigBytes, canaryBytes, canaryManifest, canarySig] = await this.#conn.commands
      .withTypeMapping(AS_BYTES)
      .mGet([k.current, k.manifest, k.signature, k.canary, k.canaryManifest, k.canarySignature]);
    const current = idBytes === null ? null : idBytes.toString("utf8");
    /** @type {Read} */
    const read = { current, live: null, liveError: null, canary: null, canaryError: null, canaryValue: null };
    if (current === null || bytes === null) {
      const err = new Error(`${k.current} is empty: no release is live (run \`cutover deploy\`)`);
      read.liveError = Object.assign(err, { empty: true });
    } else {
      try {
        read.live = this.#checked(current, bytes, sigBytes, "live");
      } catch (err) {
        read.liveError = Object.assign(new Error(`release ${current} rejected: ${err.reason}`), { release: current, reason: err.reason });
      }
    }
    if (canaryBytes !== null) {
      read.canaryValue = canaryBytes.toString("utf8");
      /** @type {import("./rollout.js").CanaryRule | null} */
      let rule = null;
      try {
        rule = parseCanary(read.canaryValue, current);
        if (rule) {
          if (canaryManifest === null) throw Object.assign(new Error(), { reason: `${k.canaryManifest} is empty` });
          read.canary = Object.freeze({ ...rule, snapshot: this.#checked(rule.release, canaryManifest, canarySig, "canary") });
        }
      } catch (err) {
        read.canaryError = { release: rule?.release ?? err.release ?? null, reason: err.reason };
      }
    }
    return read;
  }

  /**
   * A release's manifest bytes checked as any served manifest must be (docs/redis.md): signed
   * (with verifyKeys) by a signature of this release and these bytes, JSON of a known format, every
   * URL on the allowed origins. Throws an error with `reason`.
   * @param {string} id
   * @param {Buffer} bytes
   * @param {Buffer | null} sigBytes
   * @param {import("../index.js").SnapshotRole} role
   */
  #checked(id, bytes, sigBytes, role) {
    const refused = (/** @type {string} */ reason) => Object.assign(new Error(reason), { reason });
    const { keys, origins } = this.#trust;
    if (keys) {
      const reason = signatureProblem({ current: id, manifest: bytes, signature: sigBytes, keys });
      if (reason) throw refused(reason);
    }
    let parsed;
    try {
      parsed = JSON.parse(bytes.toString("utf8"));
    } catch (err) {
      throw refused(`the manifest is not JSON (${err.message})`);
    }
    try {
      return new Snapshot(this.#app, id, parsed, origins, role);
    } catch (err) {
      throw refused(err.reason ?? `the manifest cannot be read: ${err.message}`);
    }
  }

  /** The poll: MGET current canary, as strings (null when absent). */
  async poll() {
    /** @type {(string | null)[]} */
    const [current, canary] = await this.#conn.commands.mGet([this.keys.current, this.keys.canary]);
    return { current, canary };
  }

  /**
   * When release `id` was retired (ms since the epoch; ZSCORE retired ID), or null.
   * @param {string} id
   */
  async retiredAt(id) {
    const score = await this.#conn.commands.zScore(this.keys.retired, id);
    return score === null ? null : Number(score);
  }

  /**
   * Release `id` from its record (GET release:ID), checked like any manifest, its signature the
   * record's own; null when there is no record. Throws an error with `reason` when it is refused.
   * @param {string} id
   * @returns {Promise<Snapshot | null>}
   */
  async retired(id) {
    /** @type {string | null} */
    const text = await this.#conn.commands.get(`${this.keys.release}${id}`);
    if (text === null) return null;
    const refused = (/** @type {string} */ reason) => Object.assign(new Error(reason), { reason });
    let record;
    try {
      record = JSON.parse(text);
    } catch (err) {
      throw refused(`its record is not JSON (${err.message})`);
    }
    if (record === null || typeof record !== "object" || record.id !== id) throw refused("its record is not the release's");
    const manifest = typeof record.manifest === "object" && record.manifest !== null ? memberText(text, "manifest") : undefined;
    if (manifest === undefined) throw refused("its record has no manifest");
    const signature = typeof record.signature === "string" ? Buffer.from(record.signature, "utf8") : null;
    return this.#checked(id, Buffer.from(manifest, "utf8"), signature, "retired");
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

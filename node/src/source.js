// Where a reader's releases come from: one app's keys in one Redis (or Redis
// Cluster), through the two connections of ./connection.js. Every command the
// reader sends is here: MGET of the live pair, GET of `current`, SUBSCRIBE to
// the events channel. The keys and JSON are the "Redis contract" in docs/redis.md.
import { openConnections } from "./connection.js";
import { Snapshot } from "./snapshot.js";

/**
 * @typedef {{current: string, manifest: string, events: string}} Keys
 * @typedef {{url: string, cluster: boolean, rootNodes?: string[], connectTimeout: number, commandTimeout: number}} SourceOptions
 */

/** The keys of one app: `cutover:{APP}:*`, all in the slot of `{APP}`. */
export function keysOf(app) {
  const prefix = `cutover:{${app}}:`;
  return { current: `${prefix}current`, manifest: `${prefix}manifest`, events: `${prefix}events` };
}

export class Source {
  #app;
  /** @type {Keys} */
  keys;
  /** @type {{cluster: boolean, commands: any, subscriber: any}} */
  #conn;

  /**
   * Makes the clients; nothing connects until the refresher says so.
   * @param {string} app
   * @param {SourceOptions} options
   */
  constructor(app, options) {
    this.#app = app;
    this.keys = keysOf(app);
    this.#conn = openConnections(options);
  }

  /** One cluster client, or a command client and a subscriber client. */
  get cluster() {
    return this.#conn.cluster;
  }

  get commands() {
    return this.#conn.commands;
  }

  get subscriber() {
    return this.#conn.subscriber;
  }

  /** Can both connections take a command now? (Always true for a cluster: it routes per node.) */
  get ready() {
    const { cluster, commands, subscriber } = this.#conn;
    return cluster || (commands.isReady && subscriber.isReady);
  }

  /**
   * The live release as one consistent pair (MGET current manifest): activation writes both in
   * one script, so the pair always matches. Throws an error with `empty` when no release is
   * live, with `release` (its id) when the live manifest cannot be read, and Redis's own error
   * when Redis does not answer.
   * @returns {Promise<Snapshot>}
   */
  async readLive() {
    const [id, json] = await this.#conn.commands.mGet([this.keys.current, this.keys.manifest]);
    if (id === null || json === null) {
      const err = new Error(`${this.keys.current} is empty: no release is live (run \`cutover deploy\`)`);
      throw Object.assign(err, { empty: true });
    }
    try {
      return new Snapshot(this.#app, id, JSON.parse(json));
    } catch (err) {
      err.message = `the manifest of release ${id} cannot be read: ${err.message}`;
      err.release = id;
      throw err;
    }
  }

  /** GET current: the live release id, or null. */
  async current() {
    return this.#conn.commands.get(this.keys.current);
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

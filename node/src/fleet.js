// What this process serves, reported to Redis so `cutover status` can tell
// whether the fleet switched (docs/redis.md, "The fleet: what each process
// serves"). The refresher asks for a report after the first read, after every
// switch or refusal, and every heartbeat; a report is one pipelined round trip
// (./source.js), sent one at a time, never awaited by anything that serves.
// A report that cannot be written is logged once, and its return once.
import { readFileSync } from "node:fs";
import os from "node:os";
import { ErrorReply } from "redis";
import { within } from "./refresher.js";

/** `reader` in a report: this package and its version. */
const READER = `node/${JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version}`;

/**
 * @typedef {import("../index.js").SwitchSource} SwitchSource
 * @typedef {"start" | "pubsub" | "poll" | "fallback"} ReportSource how a process got its release
 * @typedef {{release: string, reason: string}} Refusal
 * @typedef {{debug(m: string): void, info(m: string): void, warn(m: string): void, error(m: string): void}} Log
 * @typedef {object} FleetOptions
 * @property {import("./source.js").Source} source
 * @property {number} interval ms between heartbeats (reportInterval)
 * @property {number} commandTimeout the longest a report may take, in ms
 * @property {Log} log
 * @property {string} url the Redis URL, masked, for messages
 * @property {(text: string) => string} scrub removes the Redis secret from a message
 */

export class Fleet {
  #source;
  #interval;
  #timeout;
  #log;
  #url;
  #scrub;
  #host = os.hostname();
  #pid = process.pid;
  #started = Math.round(performance.timeOrigin);
  /** @type {string | null} */
  #release = null;
  #since = 0;
  /** @type {ReportSource} */
  #via = "start";
  /** @type {string | null} */
  #canary = null;
  /** @type {Refusal | null} */
  #refused = null;
  // One report at a time, in order; asked for during one, the next goes right after it.
  #sending = false;
  #again = false;
  #failing = false;
  #stopped = false;

  /** @param {FleetOptions} o */
  constructor({ source, interval, commandTimeout, log, url, scrub }) {
    this.#source = source;
    this.#interval = interval;
    this.#timeout = commandTimeout;
    this.#log = log;
    this.#url = url;
    this.#scrub = scrub;
  }

  /** The member of `cutover:{APP}:fleet` this process reports as: `HOST:PID`. */
  get id() {
    return `${this.#host}:${this.#pid}`;
  }

  /** ms between heartbeats. */
  get interval() {
    return this.#interval;
  }

  /**
   * What the first read gave: a release (source `start`), or the fallback manifest (`fallback`;
   * with the release refused at start, if one was), and the canary served, if any.
   * @param {string | null} release
   * @param {Refusal | null} [refused]
   * @param {string | null} [canary]
   */
  begin(release, refused = null, canary = null) {
    this.#release = release;
    this.#since = Date.now();
    this.#via = release === null ? "fallback" : "start";
    this.#canary = canary;
    if (refused) this.#refused = refused;
  }

  /**
   * What one read changed, reported once: another live release (`release`, found through `via`),
   * another canary (`canary`: its id, or null for none), a release or canary refused (`refused`).
   * A re-read after a reconnect counts as the poll: it was not an event that brought the release.
   * @param {{release?: string, via?: SwitchSource, canary?: string | null, refused?: Refusal}} change
   */
  changed({ release, via, canary, refused }) {
    if (release !== undefined) {
      this.#release = release;
      this.#since = Date.now();
      this.#via = via === "pubsub" ? "pubsub" : "poll";
    }
    if (canary !== undefined) this.#canary = canary;
    if (refused) this.#refused = { release: refused.release, reason: refused.reason };
    this.report();
  }

  /** Send a report now, or right after the one under way. Never throws; nothing waits on it. */
  report() {
    if (this.#stopped) return;
    if (this.#sending) {
      this.#again = true;
      return;
    }
    this.#sending = true;
    void (async () => {
      try {
        do {
          this.#again = false;
          await this.#send();
        } while (this.#again && !this.#stopped);
      } catch {
        // #send handles its own errors; nothing of a report may reach the app
      } finally {
        this.#sending = false;
      }
    })();
  }

  /** No more reports, nor log lines about them. */
  stop() {
    this.#stopped = true;
  }

  /** The report's JSON, in the contract's field order (`canary` after `source`; `refused` only when there is one). */
  #json(at) {
    return JSON.stringify({
      v: 1,
      id: this.id,
      host: this.#host,
      pid: this.#pid,
      kind: "node",
      reader: READER,
      release: this.#release,
      since: this.#since,
      source: this.#via,
      canary: this.#canary,
      ...(this.#refused ? { refused: this.#refused } : {}),
      heartbeat: this.#interval / 1000,
      at,
      started: this.#started,
    });
  }

  async #send() {
    const at = Date.now();
    const sent = this.#source.report(this.id, this.#json(at), at);
    try {
      await within(sent, this.#timeout);
    } catch (err) {
      this.#failed(err);
      // Past the timeout the commands may still be queued (a Sentinel client waits for its
      // master): the next report waits for them, so reports never pile up during an outage.
      await sent.catch(() => {});
      return;
    }
    if (this.#failing && !this.#stopped) {
      this.#failing = false;
      this.#log.info(`reports to ${this.#source.keys.fleet} again`);
    }
  }

  /** A report failed: said once (warn), then only at debug until one goes through. */
  #failed(err) {
    if (this.#stopped) return;
    const fleet = this.#source.keys.fleet;
    const text = this.#scrub(err?.message ?? String(err));
    if (this.#failing) {
      this.#log.debug(`report to ${fleet} failed again (${text})`);
      return;
    }
    this.#failing = true;
    // Redis refused the writes (NOPERM: a user from before the fleet), or did not answer.
    const fix =
      err instanceof ErrorReply
        ? `grant the reader the fleet writes of the README's ACL line (~${fleet}* +zadd +zremrangebyscore +set), ` +
          "or pass reportInterval: 0"
        : `reports are tried again every ${this.#interval / 1000} s (reportInterval: 0 turns them off)`;
    this.#log.warn(
      `cannot report to ${fleet} at ${this.#url} (${text}); this process serves as before, ` +
        `but \`cutover status\` does not count it: ${fix}`,
    );
  }
}

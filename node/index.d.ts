// Types of cutover-reader (hand-written; the package is plain JavaScript).
import type { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";

/** One script or stylesheet of an entrypoint. `integrity` is null when the manifest has none. */
export interface Tag {
  src: string;
  integrity: string | null;
}

/**
 * What an entrypoint needs, in order. For Vite: `js` is the entry chunk, `preload` its static
 * imports (for `<link rel="modulepreload">`), `css` its CSS and theirs; `preload` is empty for the
 * other formats.
 */
export interface Entrypoint {
  js: Tag[];
  css: Tag[];
  preload: Tag[];
}

/** How a reader learned of a new release. */
export type SwitchSource = "pubsub" | "poll" | "reconnect";

export interface SwitchEvent {
  /** The release now served. */
  release: string;
  /** The release served before; null if that was the fallback manifest. */
  previous: string | null;
  source: SwitchSource;
}

/**
 * A live release the reader refused to serve (it keeps the release it served), or a canary it
 * refused (nobody gets it): a URL off `assetOrigins`, a signature no key of `verifyKeys`
 * verifies, or a manifest it cannot read. Emitted once per refused release in a row.
 */
export interface RejectedEvent {
  /** The refused release's id (`cutover:{APP}:current`, or the canary's). */
  release: string;
  /** Why, for people: the first URL that is not allowed, or what is wrong with the signature. */
  reason: string;
  /** Present (true) when the refused release is a canary. */
  canary?: true;
}

/** The canary this process serves changed: started, raised, replaced, or ended (`release` null). */
export interface CanaryEvent {
  /** The canary now served; null when there is none. */
  release: string | null;
  /** Its percent; null when there is none. */
  percent: number | null;
  /** The canary served before; null if there was none. */
  previous: string | null;
  source: SwitchSource;
}

/** The canary a reader serves to its share of the keys. */
export interface Canary {
  release: string;
  /** 0 < percent < 100; a key gets the canary when its bucket is below round(percent * 100). */
  percent: number;
}

/** Which release a snapshot is for a request: the key that picks the canary or the live release. */
export interface SnapshotOptions {
  /** A stable key (a user id): the same key gets the same release in every process. */
  key?: string | number | null;
}

/** What a snapshot was when the reader handed it out. */
export type SnapshotRole = "live" | "canary" | "retired" | "fallback";

/** Anything with these methods (console, pino, winston, ...); missing methods are skipped. */
export interface Logger {
  debug?(message: string): void;
  info?(message: string): void;
  warn?(message: string): void;
  error?(message: string): void;
}

export interface ReaderOptions {
  /** The cutover app name (`CUTOVER_APP`); the keys are `cutover:{APP}:*`. */
  app: string;
  /**
   * `redis://`, `rediss://` (TLS) or `redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/db]`
   * URL. Default: `REDIS_URL`, else `redis://127.0.0.1:6379`.
   */
  url?: string;
  /** The Sentinels' own password, when they require one (the URL's credentials are the master's). */
  sentinelPassword?: string;
  /** Check `cutover:{APP}:current` this often, in ms. Default 1000. */
  pollInterval?: number;
  /**
   * Report what this process serves to `cutover:{APP}:fleet` this often (and on every switch or
   * refusal), in ms, for `cutover status`. Default 5000; 0: no reports.
   */
  reportInterval?: number;
  /** Used when Redis cannot give a live release at start: a path to a JSON file, or the parsed manifest. */
  fallbackManifest?: string | Record<string, unknown>;
  /** Default: console (debug off). `false` or `null`: silent. */
  logger?: Logger | false | null;
  /** Per connection attempt, and the longest `createReader` waits for Redis, in ms. Default 2000. */
  connectTimeout?: number;
  /** Per command, in ms. Default 1000. */
  commandTimeout?: number;
  /** Connect to a Redis Cluster through `url`. */
  cluster?: boolean;
  /** Redis Cluster seed nodes (URLs); implies `cluster: true`. */
  rootNodes?: string[];
  /**
   * The only origins asset URLs may name (`"https://cdn.example.com"`; an `http://` origin
   * allows `http://` on it). A manifest with any other URL is rejected whole. Default: none
   * (any URL is served; warned about at start).
   */
  assetOrigins?: string[];
  /**
   * Ed25519 public keys (PEM, as `cutover keygen` writes them): serve only a release signed by
   * one of them. Several keys for a rotation. Default: none (signatures are ignored).
   */
  verifyKeys?: string[];
  /**
   * Skew protection: a request naming a release retired less than this many seconds ago gets
   * it. Default 86400 (24 hours); 0: only the live release and the canary.
   */
  skewMaxAge?: number;
}

/** One release's manifest, frozen. `reader.snapshot()` returns one. */
export interface Snapshot {
  /** The release id; null for the fallback manifest. */
  readonly releaseId: string | null;
  /** "live", "canary" (a key assigned to the rollout), "retired" (skew protection) or "fallback". */
  readonly role: SnapshotRole;
  /** The live manifest as published (every asset path an absolute CDN URL), deeply frozen. */
  readonly manifest: Readonly<Record<string, unknown>>;
  /** "shakapacker", "webpack", "vite", "propshaft" or "sprockets". */
  readonly format: string;
  /** The CDN URL of a manifest entry (`"application.js"`), or undefined. */
  lookup(name: string): string | undefined;
  /** Like lookup; throws MissingEntryError naming the entry and the release. */
  lookupOrThrow(name: string): string;
  /** The entrypoint's tags; throws MissingEntryError if the release has no such entrypoint. */
  entrypoint(name: string): Entrypoint;
  /** `<meta name="cutover-release" content="ID">`, escaped; "" for the fallback manifest. */
  metaTag(): string;
}

export interface Reader extends EventEmitter {
  /** The live release this process serves; null while it serves the fallback manifest. */
  readonly releaseId: string | null;
  /** The canary this process serves, or null. */
  readonly canary: Canary | null;
  /** The live release's entry. */
  lookup(name: string): string | undefined;
  lookupOrThrow(name: string): string;
  entrypoint(name: string): Entrypoint;
  /** The live release, frozen (with `key`: the canary when the key is assigned to it): use one per render. */
  snapshot(options?: SnapshotOptions): Snapshot;
  /**
   * Release `id` when it is live, the canary, or retired less than `skewMaxAge` ago with a
   * record that passes the checks; null otherwise, and when Redis does not answer.
   */
  releaseSnapshot(id: string): Promise<Snapshot | null>;
  /**
   * The release a request renders with: the one it names (X-Cutover-Release; the cutover_release
   * cookie on a non-navigation request) if `releaseSnapshot` gives it, else its assignment by
   * `key` or the cutover_key cookie (set on `res` when missing). Sets X-Cutover-Release and the
   * cutover_release cookie on `res`.
   */
  requestSnapshot(req: IncomingMessage, res: ServerResponse | null | undefined, options?: SnapshotOptions): Promise<Snapshot>;
  on(event: "switch", listener: (event: SwitchEvent) => void): this;
  once(event: "switch", listener: (event: SwitchEvent) => void): this;
  off(event: "switch", listener: (event: SwitchEvent) => void): this;
  on(event: "rejected", listener: (event: RejectedEvent) => void): this;
  once(event: "rejected", listener: (event: RejectedEvent) => void): this;
  off(event: "rejected", listener: (event: RejectedEvent) => void): this;
  on(event: "canary", listener: (event: CanaryEvent) => void): this;
  once(event: "canary", listener: (event: CanaryEvent) => void): this;
  off(event: "canary", listener: (event: CanaryEvent) => void): this;
  /** Stops the poll and closes both Redis connections. */
  close(): Promise<void>;
}

/** Reads the live release once (or takes the fallback), subscribes, and starts the poll. */
export function createReader(options: ReaderOptions): Promise<Reader>;

/**
 * A key's bucket under a rollout's salt (docs/redis.md, "Rollouts"): the first 4 bytes of
 * SHA-256(salt + ":" + key) as a big-endian unsigned integer, modulo 10000. The key gets the
 * canary when its bucket is below round(percent * 100).
 */
export function bucket(salt: string, key: string): number;

/** Thrown by `lookupOrThrow` and `entrypoint`; the reader constructs it. */
export class MissingEntryError extends Error {
  constructor(entry: string, release: string | null, app: string, kind?: "entry" | "entrypoint");
  readonly name: "MissingEntryError";
  readonly entry: string;
  readonly release: string | null;
  readonly app: string;
}

/** Thrown by `createReader`; the reader constructs it. */
export class UnavailableError extends Error {
  constructor(message: string, details: { key: string; url: string; cause?: unknown });
  readonly name: "UnavailableError";
  /** The key that could not be read, e.g. `cutover:{shop}:manifest`. */
  readonly key: string;
  /** The Redis URL with its password masked. */
  readonly url: string;
}

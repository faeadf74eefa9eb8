// An immutable view of one release's manifest: the format read once, the
// manifest deeply frozen, answers computed from it.
import { MissingEntryError } from "./errors.js";
import { formatOf } from "./formats/index.js";
import { originProblem } from "./trust.js";

function deepFreeze(value) {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

const escape = (/** @type {string} */ s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * One release's manifest, frozen: what `reader.snapshot()` returns. A reader
 * swaps whole Snapshot objects, so a snapshot never changes under a render.
 * A check of the manifest's contents (which asset origins it may name) belongs
 * in the constructor: a Snapshot that exists has passed it.
 */
export class Snapshot {
  /** @type {import("./formats/common.js").Format} */
  #format;
  /** @type {string} */
  #app;

  /**
   * @param {string} app
   * @param {string|null} releaseId null for the fallback manifest
   * @param {any} manifest parsed live manifest (taken over and frozen)
   * @param {Set<string> | null} [origins] the allowed asset origins (null: any); a manifest
   *   naming a URL off them throws an error with `reason`
   * @param {import("../index.js").SnapshotRole} [role] what the reader had it as when it was
   *   made: the live release, the canary, or a retired release (skew protection)
   */
  constructor(app, releaseId, manifest, origins = null, role = releaseId === null ? "fallback" : "live") {
    this.#format = formatOf(manifest);
    if (origins) {
      const reason = originProblem(this.#format.urls(manifest), origins);
      if (reason) throw Object.assign(new Error(reason), { reason });
    }
    this.#app = app;
    /** @readonly */
    this.releaseId = releaseId;
    /** @readonly */
    this.role = role;
    /** @readonly @type {Readonly<Record<string, unknown>>} */
    this.manifest = deepFreeze(manifest);
    Object.freeze(this);
  }

  /** Name of the manifest format: "shakapacker", "webpack", "vite", "propshaft" or "sprockets". */
  get format() {
    return this.#format.name;
  }

  /**
   * `<meta name="cutover-release" content="ID">`, escaped, for the page's head (skew protection:
   * the page says which release it was rendered with); "" for the fallback manifest.
   */
  metaTag() {
    return this.releaseId === null ? "" : `<meta name="cutover-release" content="${escape(this.releaseId)}">`;
  }

  /**
   * The CDN URL of a manifest entry, or undefined.
   * @param {string} name
   */
  lookup(name) {
    return this.#format.lookup(this.manifest, String(name));
  }

  /**
   * The CDN URL of a manifest entry; throws MissingEntryError naming the entry and release.
   * @param {string} name
   */
  lookupOrThrow(name) {
    const url = this.lookup(name);
    if (url === undefined) throw new MissingEntryError(String(name), this.releaseId, this.#app);
    return url;
  }

  /**
   * The tags an entrypoint needs, in order: `{js: [{src, integrity}], css: [...], preload: []}`.
   * Throws MissingEntryError when the release has no such entrypoint.
   * @param {string} name
   */
  entrypoint(name) {
    const ep = this.#format.entrypoint(this.manifest, String(name));
    if (!ep) throw new MissingEntryError(String(name), this.releaseId, this.#app, "entrypoint");
    return ep;
  }
}

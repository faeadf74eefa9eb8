import { MissingEntryError } from "./errors.js";
import { formatOf } from "./formats/index.js";

function deepFreeze(value) {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * One release's manifest, frozen: what `reader.snapshot()` returns. A reader
 * swaps whole Release objects, so a snapshot never changes under a render.
 */
export class Release {
  #format;
  #app;

  /**
   * @param {string} app
   * @param {string|null} releaseId null for the fallback manifest
   * @param {object} manifest parsed live manifest (taken over and frozen)
   */
  constructor(app, releaseId, manifest) {
    this.#format = formatOf(manifest);
    this.#app = app;
    this.releaseId = releaseId;
    this.manifest = deepFreeze(manifest);
    Object.freeze(this);
  }

  /** Name of the manifest format: "shakapacker", "webpack", "vite", "propshaft" or "sprockets". */
  get format() {
    return this.#format.name;
  }

  /** The CDN URL of a manifest entry, or undefined. */
  lookup(name) {
    return this.#format.lookup(this.manifest, String(name));
  }

  /** The CDN URL of a manifest entry; throws MissingEntryError naming the entry and release. */
  lookupOrThrow(name) {
    const url = this.lookup(name);
    if (url === undefined) throw new MissingEntryError(String(name), this.releaseId, this.#app);
    return url;
  }

  /**
   * The tags an entrypoint needs, in order: `{js: [{src, integrity}], css: [...], preload: []}`.
   * Throws MissingEntryError when the release has no such entrypoint.
   */
  entrypoint(name) {
    const ep = this.#format.entrypoint(this.manifest, String(name));
    if (!ep) throw new MissingEntryError(String(name), this.releaseId, this.#app, "entrypoint");
    return ep;
  }
}

// Helpers the format modules share. A format module is
//   { name, detect(manifest) -> boolean, lookup(manifest, name) -> string | undefined,
//     entrypoint(manifest, name) -> { js, css, preload } | undefined,
//     urls(manifest) -> every string lookup or entrypoint can hand out (as a URL) (checked
//     against the reader's assetOrigins before the manifest is served) }
// and is listed once in ./index.js.

/**
 * @typedef {import("../../index.js").Tag} Tag
 * @typedef {import("../../index.js").Entrypoint} Entrypoint
 * @typedef {Record<string, any>} Manifest a parsed live manifest (a JSON object)
 * @typedef {object} Format
 * @property {string} name
 * @property {(manifest: Manifest) => boolean} detect
 * @property {(manifest: Manifest, name: string) => string | undefined} lookup
 * @property {(manifest: Manifest, name: string) => Entrypoint | undefined} entrypoint
 * @property {(manifest: Manifest) => Iterable<unknown>} urls
 */

/**
 * @param {unknown} v
 * @returns {v is Record<string, any>}
 */
export const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** The manifest's own value for a name (never one inherited from Object.prototype). */
export const own = (manifest, name) => (Object.hasOwn(manifest, name) ? manifest[name] : undefined);

/**
 * `"url"` or `{src, integrity}` as a tag: `{src, integrity}` with integrity null when absent.
 * @returns {Tag | undefined}
 */
export function tag(entry) {
  if (typeof entry === "string") return { src: entry, integrity: null };
  if (isObject(entry) && typeof entry.src === "string") {
    return { src: entry.src, integrity: typeof entry.integrity === "string" ? entry.integrity : null };
  }
  return undefined;
}

/**
 * A manifest without entrypoint data: the entrypoint is its `NAME.js` and `NAME.css` entries
 * (webpack-manifest-plugin, or webpack-assets-manifest without `entrypoints: true`).
 *
 * @param {Manifest} manifest
 * @param {string} name
 * @returns {Entrypoint | undefined}
 */
export function entrypointFromEntries(manifest, name) {
  const js = tag(own(manifest, `${name}.js`));
  const css = tag(own(manifest, `${name}.css`));
  if (!js && !css) return undefined;
  return { js: js ? [js] : [], css: css ? [css] : [], preload: [] };
}

// Shakapacker / webpack-assets-manifest:
//   "application.js": {"src": URL, "integrity": "sha384-..."}   (or "application.js": URL)
//   "entrypoints": {"application": {"assets": {"js": [{src, integrity} | URL, ...], "css": [...]}}}
import { entrypointFromEntries, isObject, own, tag } from "./common.js";

/** @typedef {import("./common.js").Format} Format */

const isEntryObject = (v) => isObject(v) && typeof v.src === "string" && !("file" in v); // Vite entries have "file"

export default /** @satisfies {Format} */ ({
  name: "shakapacker",

  detect(manifest) {
    if (isObject(manifest.entrypoints)) return true;
    return Object.values(manifest).some(isEntryObject);
  },

  lookup(manifest, name) {
    if (name === "entrypoints") return undefined;
    return tag(own(manifest, name))?.src;
  },

  entrypoint(manifest, name) {
    const entrypoints = isObject(manifest.entrypoints) ? manifest.entrypoints : {};
    const entry = own(entrypoints, name);
    if (!isObject(entry)) return entrypointFromEntries(manifest, name);
    // webpack-assets-manifest nests chunks under "assets"; Webpacker 4/5 did not.
    const assets = isObject(entry.assets) ? entry.assets : entry;
    const list = (v) => (Array.isArray(v) ? v.map(tag).filter((t) => t !== undefined) : []);
    return { js: list(assets.js), css: list(assets.css), preload: [] };
  },

  *urls(manifest) {
    for (const [name, v] of Object.entries(manifest)) {
      const src = name === "entrypoints" ? undefined : tag(v)?.src;
      if (src !== undefined) yield src;
    }
    if (!isObject(manifest.entrypoints)) return;
    for (const entry of Object.values(manifest.entrypoints)) {
      if (!isObject(entry)) continue;
      const assets = isObject(entry.assets) ? entry.assets : entry;
      for (const kind of ["js", "css"]) {
        const list = Array.isArray(assets[kind]) ? assets[kind] : [];
        for (const t of list.map(tag)) if (t) yield t.src;
      }
    }
  },
});

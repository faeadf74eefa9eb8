// Vite's manifest (.vite/manifest.json, merged with vite-plugin-ruby's
// manifest-assets.json by cutover), one object per chunk or asset:
//   "entrypoints/application.js": {"file": URL, "isEntry": true, "imports": ["_shared-x.js"],
//                                  "dynamicImports": [...], "css": [URL, ...]}
// `imports` name other keys. entrypoint(name) follows vite_ruby 3.10's resolve_entries: js is the
// entry chunk's file, preload the files of its static imports (recursively, dependencies first,
// each once), css the entry's css then its imports' css (each once). No integrity. Names resolve
// as vite_ruby's do: the key as given, else "entrypoints/NAME" (".js" added without an extension).
import { isObject, own } from "./common.js";

/** @typedef {import("./common.js").Format} Format */

const ENTRYPOINTS_DIR = "entrypoints";
const EXTENSIONS = [".js", ".ts", ".jsx", ".tsx", ".mjs", ".mts", ".css"];

/** @returns {any} the chunk (a JSON object with a "file"), or undefined */
const chunk = (manifest, key) => {
  const v = own(manifest, key);
  return isObject(v) && typeof v.file === "string" ? v : undefined;
};

const hasExtension = (name) => /\.[^./]+$/.test(name);

/** The keys a name may mean, in order: as given, then under entrypoints/, each extension tried. */
function candidates(name, extensions) {
  const withExt = hasExtension(name) ? [name] : extensions.map((e) => `${name}${e}`);
  const nested = name.includes("/") ? [] : withExt.map((n) => `${ENTRYPOINTS_DIR}/${n}`);
  return [name, ...nested, ...withExt];
}

/** vite_ruby's import_chunks_for: each static import's own imports first, then it; every file once. */
function importChunks(manifest, entry, seen) {
  const chunks = [];
  for (const key of Array.isArray(entry.imports) ? entry.imports : []) {
    const c = chunk(manifest, key);
    if (!c || seen.has(c.file)) continue;
    seen.add(c.file);
    chunks.push(...importChunks(manifest, c, seen), c);
  }
  return chunks;
}

const tags = (urls) => [...new Set(urls)].map((src) => ({ src, integrity: null }));
const cssOf = (c) => (Array.isArray(c.css) ? c.css.filter((u) => typeof u === "string") : []);

export default /** @satisfies {Format} */ ({
  name: "vite",

  detect(manifest) {
    const values = Object.values(manifest);
    return values.length > 0 && values.every((v) => isObject(v) && typeof v.file === "string");
  },

  lookup(manifest, name) {
    const key = candidates(name, [""]).find((k) => chunk(manifest, k));
    return key === undefined ? undefined : chunk(manifest, key).file;
  },

  entrypoint(manifest, name) {
    const key = candidates(name, ["", ...EXTENSIONS]).find((k) => chunk(manifest, k));
    if (key === undefined) return undefined;
    const entry = chunk(manifest, key);
    const imports = importChunks(manifest, entry, new Set());
    const isCss = entry.file.endsWith(".css");
    return {
      js: isCss ? [] : tags([entry.file]),
      css: tags([...(isCss ? [entry.file] : []), ...[entry, ...imports].flatMap(cssOf)]),
      preload: tags(imports.map((c) => c.file)),
    };
  },

  *urls(manifest) {
    for (const c of Object.values(manifest)) {
      yield c.file;
      yield* cssOf(c);
    }
  },
});

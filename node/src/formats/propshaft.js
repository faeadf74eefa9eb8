// Propshaft's .manifest.json: "application.js": {"digested_path": URL, "integrity": "sha384-..." | null}.
// Propshaft has no entrypoints: entrypoint("application") is the application.js / application.css
// entries, as javascript_include_tag "application" reads them.
import { isObject, own } from "./common.js";

/** @typedef {import("./common.js").Format} Format */

const entry = (v) => isObject(v) && typeof v.digested_path === "string";

function tag(v) {
  if (typeof v === "string") return { src: v, integrity: null };
  if (entry(v)) return { src: v.digested_path, integrity: typeof v.integrity === "string" ? v.integrity : null };
  return undefined;
}

export default /** @satisfies {Format} */ ({
  name: "propshaft",

  detect(manifest) {
    const values = Object.values(manifest);
    return values.every((v) => entry(v) || typeof v === "string") && values.some(entry);
  },

  lookup(manifest, name) {
    return tag(own(manifest, name))?.src;
  },

  entrypoint(manifest, name) {
    const js = tag(own(manifest, `${name}.js`));
    const css = tag(own(manifest, `${name}.css`));
    if (!js && !css) return undefined;
    return { js: js ? [js] : [], css: css ? [css] : [], preload: [] };
  },

  urls(manifest) {
    return Object.values(manifest).flatMap((v) => tag(v)?.src ?? []);
  },
});

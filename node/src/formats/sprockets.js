// Sprockets' manifest: "assets": {"application.js": URL} and "files": {URL: {"logical_path",
// "integrity", ...}} (cutover makes both the assets' values and the files' keys CDN URLs, so they
// still join). entrypoint("application") is the application.js / application.css entries.
import { isObject, own } from "./common.js";

/** @typedef {import("./common.js").Format} Format */

function tag(manifest, name) {
  const src = own(manifest.assets, name);
  if (typeof src !== "string") return undefined;
  const record = own(manifest.files, src);
  return { src, integrity: isObject(record) && typeof record.integrity === "string" ? record.integrity : null };
}

export default /** @satisfies {Format} */ ({
  name: "sprockets",

  detect(manifest) {
    return isObject(manifest.files) && isObject(manifest.assets);
  },

  lookup(manifest, name) {
    return tag(manifest, name)?.src;
  },

  entrypoint(manifest, name) {
    const js = tag(manifest, `${name}.js`);
    const css = tag(manifest, `${name}.css`);
    if (!js && !css) return undefined;
    return { js: js ? [js] : [], css: css ? [css] : [], preload: [] };
  },

  urls(manifest) {
    return Object.values(manifest.assets).filter((v) => typeof v === "string");
  },
});

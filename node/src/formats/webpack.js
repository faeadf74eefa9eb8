// webpack-manifest-plugin: a flat map of name -> URL. No entrypoint data, so
// entrypoint("application") is the application.js / application.css entries.
import { entrypointFromEntries, own } from "./common.js";

/** @typedef {import("./common.js").Format} Format */

export default /** @satisfies {Format} */ ({
  name: "webpack",

  detect(manifest) {
    return Object.values(manifest).every((v) => typeof v === "string");
  },

  lookup(manifest, name) {
    const v = own(manifest, name);
    return typeof v === "string" ? v : undefined;
  },

  entrypoint(manifest, name) {
    return entrypointFromEntries(manifest, name);
  },

  urls(manifest) {
    return Object.values(manifest);
  },
});

// The manifest formats this reader understands, tried in order (most specific first: Vite's
// entries have a "src" too, and a Propshaft manifest of strings reads the same as a flat one).
// A new format is one new module here and one line in this list.
import { isObject } from "./common.js";
import propshaft from "./propshaft.js";
import shakapacker from "./shakapacker.js";
import sprockets from "./sprockets.js";
import vite from "./vite.js";
import webpack from "./webpack.js";

/** @type {import("./common.js").Format[]} */
export const formats = [sprockets, vite, propshaft, shakapacker, webpack];

/**
 * The format module for a parsed manifest.
 * @param {unknown} manifest
 * @returns {import("./common.js").Format}
 * @throws {TypeError} when no format recognises it
 */
export function formatOf(manifest) {
  if (!isObject(manifest)) throw new TypeError("the manifest is not a JSON object");
  const format = formats.find((f) => f.detect(manifest));
  if (!format) {
    throw new TypeError(
      `the manifest's format is none of ${formats.map((f) => f.name).join(", ")} (a newer cutover-reader may read it)`,
    );
  }
  return format;
}

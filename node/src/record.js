// A release record (`cutover:{APP}:release:ID`, JSON) read for skew
// protection: its manifest as the bytes its signature covers. The CLI signs the
// manifest serialized as compact JSON with its keys in the record's order
// (docs/redis.md). Re-serializing the parsed object with JSON.stringify would
// move integer-like keys ("10", "2") to the front, so the member's own text is
// taken from the record and only its whitespace is dropped.

const SPACE = new Set([" ", "\t", "\n", "\r"]);

/**
 * The end (exclusive) of the JSON value starting at `i` (after any whitespace), or -1.
 * @param {string} text
 * @param {number} i
 */
function valueEnd(text, i) {
  let depth = 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      if (i >= text.length) return -1;
      if (depth === 0) return i + 1;
    } else if (c === "{" || c === "[") {
      depth++;
    } else if (c === "}" || c === "]") {
      depth--;
      if (depth < 0) return -1;
      if (depth === 0) return i + 1;
    } else if (depth === 0 && !SPACE.has(c)) {
      // a number or a literal: up to the next delimiter
      let j = i;
      while (j < text.length && !SPACE.has(text[j]) && !",}]".includes(text[j])) j++;
      return j;
    }
  }
  return -1;
}

/** `text` without the whitespace outside strings. */
function compact(text) {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === "\\") i++;
      out += text.slice(start, i + 1);
    } else if (!SPACE.has(c)) {
      out += c;
    }
  }
  return out;
}

/**
 * The compact text of the top-level member `name` of the JSON object `text` (valid JSON), or
 * undefined when it has none. The last one counts when it is there twice, as for JSON.parse.
 * @param {string} text
 * @param {string} name
 */
export function memberText(text, name) {
  let i = text.indexOf("{");
  /** @type {string | undefined} */
  let found;
  while (i !== -1 && i < text.length) {
    // at "{" or ",": the next member's key
    const keyStart = text.indexOf('"', i);
    if (keyStart === -1) break;
    const keyEnd = valueEnd(text, keyStart);
    if (keyEnd === -1) break;
    const key = JSON.parse(text.slice(keyStart, keyEnd));
    const colon = text.indexOf(":", keyEnd);
    const end = valueEnd(text, colon + 1);
    if (colon === -1 || end === -1) break;
    if (key === name) found = compact(text.slice(colon + 1, end));
    i = text.indexOf(",", end);
  }
  return found;
}

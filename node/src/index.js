// cutover-reader: the live release of a cutover app, for server-side rendering.
// See README.md in this directory.
export { createReader } from "./reader.js";
export { MissingEntryError, UnavailableError } from "./errors.js";
export { bucket } from "./rollout.js";

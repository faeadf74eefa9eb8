// Compiled by `tsc` (tsconfig.json; part of npm test and scripts/test-node.sh), never run:
// index.d.ts must describe what src/ does. Each line fails to compile when the code's type and
// the declared one differ (exactly: `any` on either side does not pass).
import * as code from "../src/index.js";
import type * as declared from "cutover-reader";

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
/** Functions compare by parameters and result (a method and a function property are the same). */
type Same<X, Y> = [X, Y] extends [(...a: infer PX) => infer RX, (...a: infer PY) => infer RY]
  ? Equal<[PX, RX], [PY, RY]>
  : Equal<X, Y>;
/** Each named member of D, compared with the same member of C: `false` names a disagreement. */
type Members<C, D, K extends keyof D> = { [P in K]: P extends keyof C ? Same<C[P], D[P]> : false };

// The package exports exactly the names the declarations give, with their types.
export const exportNames: Equal<keyof typeof code, keyof typeof declared> = true;
export const createReader: typeof declared.createReader = code.createReader;
export const MissingEntryError: typeof declared.MissingEntryError = code.MissingEntryError;
export const UnavailableError: typeof declared.UnavailableError = code.UnavailableError;
export const bucket: typeof declared.bucket = code.bucket;
export const bucketExact: Equal<typeof code.bucket, typeof declared.bucket> = true;

// createReader's options are the declared ones (src/ reads them through that type, so an option
// the code reads but the declarations lack fails there).
export const options: Equal<Parameters<typeof code.createReader>[0], declared.ReaderOptions> = true;

// A reader and its snapshots answer with exactly the declared types.
type CodeReader = Awaited<ReturnType<typeof code.createReader>>;
export const reader: Members<CodeReader, declared.Reader, "releaseId" | "canary" | "lookup" | "lookupOrThrow" | "entrypoint" | "close"> = {
  releaseId: true,
  canary: true,
  lookup: true,
  lookupOrThrow: true,
  entrypoint: true,
  close: true,
};
type CodeSnapshot = ReturnType<CodeReader["snapshot"]>;
export const snapshot: Members<CodeSnapshot, declared.Snapshot, keyof declared.Snapshot> = {
  releaseId: true,
  role: true,
  metaTag: true,
  manifest: true,
  format: true,
  lookup: true,
  lookupOrThrow: true,
  entrypoint: true,
};

// The methods that hand out snapshots: the declared parameters, and the code's Snapshot (checked
// member by member above) where the declarations have theirs.
type Methods = "snapshot" | "releaseSnapshot" | "requestSnapshot";
export const snapshotParameters: { [M in Methods]: Equal<Parameters<CodeReader[M]>, Parameters<declared.Reader[M]>> } = {
  snapshot: true,
  releaseSnapshot: true,
  requestSnapshot: true,
};
export const snapshotResults: [
  Equal<ReturnType<CodeReader["snapshot"]>, CodeSnapshot>,
  Equal<ReturnType<declared.Reader["snapshot"]>, declared.Snapshot>,
  Equal<ReturnType<CodeReader["releaseSnapshot"]>, Promise<CodeSnapshot | null>>,
  Equal<ReturnType<declared.Reader["releaseSnapshot"]>, Promise<declared.Snapshot | null>>,
  Equal<ReturnType<CodeReader["requestSnapshot"]>, Promise<CodeSnapshot>>,
  Equal<ReturnType<declared.Reader["requestSnapshot"]>, Promise<declared.Snapshot>>,
] = [true, true, true, true, true, true];

// The errors' fields.
type CodeMissing = InstanceType<typeof code.MissingEntryError>;
export const missing: Members<CodeMissing, declared.MissingEntryError, keyof declared.MissingEntryError> = {
  name: true,
  message: true,
  stack: true,
  cause: true,
  entry: true,
  release: true,
  app: true,
};
type CodeUnavailable = InstanceType<typeof code.UnavailableError>;
export const unavailable: Members<CodeUnavailable, declared.UnavailableError, keyof declared.UnavailableError> = {
  name: true,
  message: true,
  stack: true,
  cause: true,
  key: true,
  url: true,
};

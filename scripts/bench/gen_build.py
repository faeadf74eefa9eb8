#!/usr/bin/env python3
"""Deterministic synthetic webpack build for scripts/bench.sh.

    gen_build.py OUT_BASE [--files 5000] [--total-mb 200] [--changed 50] [--seed 42]

Writes, replacing whatever was there:

  OUT_BASE/base/      the build: js/, css/, static/media/, static/fonts/ with
                      webpack-style fingerprinted names (<name>-<20 hex>.<ext>,
                      chunks as chunk-<20 hex>.js) and a flat
                      webpack-manifest-plugin manifest.json ("name": "/packs/path").
  OUT_BASE/changed/   a copy of base/ (same mtimes) where --changed files got new
                      content under new fingerprinted names (old names deleted),
                      as a webpack rebuild would do, and manifest.json updated.
  OUT_BASE/changed.touch  paths (relative to changed/) that the rebuild wrote:
                      bench.sh touches them right before each "changed" upload so
                      their mtimes are newer than the objects already in S3, as
                      after a real rebuild.
  OUT_BASE/stats.json file count, byte total, size percentiles.

Sizes run from 200 B to 2 MB, log-normal (sigma 2: most files a few KB, a
few large), with the median chosen so the total is about --total-mb MB.
Contents are seeded random bytes (incompressible); every unchanged file gets
a fixed mtime (2024-01-01) so re-runs are byte- and mtime-identical.
"""

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys

MIN_SIZE = 200
MAX_SIZE = 2_000_000
FIXED_MTIME = 1704067200  # 2024-01-01T00:00:00Z

# (directory, extension, share of files); chunks get the name "chunk".
KINDS = [
    ("js", "js", 0.55),
    ("js", "js.map", 0.10),
    ("css", "css", 0.10),
    ("static/media", "png", 0.12),
    ("static/media", "svg", 0.08),
    ("static/fonts", "woff2", 0.05),
]
WORDS = ["app", "admin", "report", "vendor", "icon", "logo", "hero", "inter", "roboto", "banner", "avatar", "spinner"]

# Entries named in manifest.json: (manifest name, index of the file).
ENTRIES = ["application.js", "runtime.js", "vendors.js", "admin.js", "application.css", "admin.css", "logo.svg"]


def sizes_for(n, total, rng):
    """n log-normal sizes (sigma 2) clamped to [MIN_SIZE, MAX_SIZE]; the median is bisected to hit total."""
    zs = [rng.gauss(0.0, 1.0) for _ in range(n)]

    def make(mu):
        return [min(MAX_SIZE, max(MIN_SIZE, int(math.exp(mu + 2.0 * z)))) for z in zs]

    lo, hi = math.log(MIN_SIZE), math.log(MAX_SIZE)
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(make(mid)) > total:
            hi = mid
        else:
            lo = mid
    out = make((lo + hi) / 2)
    if n >= 1000:  # one file at each extreme so the whole range is covered
        out[-1] = MAX_SIZE
        out[-2] = MIN_SIZE
    return out


def fingerprint(data):
    return hashlib.md5(data).hexdigest()[:20]


def content(rng, size):
    """Random bytes whose fingerprint has a letter in it: an all-digit hash
    (1 in ~12,000) does not look like a content hash to cutover's name check."""
    while True:
        data = rng.randbytes(size)
        if not fingerprint(data).isdigit():
            return data


def name_for(kind, stem, data):
    d, ext, _ = kind
    return f"{d}/{stem}-{fingerprint(data)}.{ext}"


def write(root, rel, data, mtime):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def write_manifest(root, entries, mtime):
    manifest = {name: f"/packs/{rel}" for name, rel in entries.items()}
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    write(root, "manifest.json", data, mtime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--total-mb", type=float, default=200)
    ap.add_argument("--changed", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    n = a.files
    if n < len(ENTRIES) + a.changed + 2:
        sys.exit("gen_build: too few files")

    rng = random.Random(a.seed)
    sizes = sizes_for(n, int(a.total_mb * 1_000_000), rng)
    rng.shuffle(sizes)

    # Assign kinds deterministically by share; the first entries get fixed kinds.
    kinds = []
    for k in KINDS:
        kinds += [k] * round(k[2] * n)
    kinds = (kinds + [KINDS[0]] * n)[:n]
    rng.shuffle(kinds)
    fixed = {
        0: (KINDS[0], "application"), 1: (KINDS[0], "runtime"), 2: (KINDS[0], "vendors"), 3: (KINDS[0], "admin"),
        4: (KINDS[2], "application"), 5: (KINDS[2], "admin"), 6: (KINDS[4], "logo"),
    }

    base = os.path.join(a.out, "base")
    changed = os.path.join(a.out, "changed")
    for d in (base, changed):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(base)

    files = []  # (kind, stem, rel)
    seen = set()
    for i in range(n):
        if i in fixed:
            kind, stem = fixed[i]
        else:
            kind = kinds[i]
            stem = "chunk" if kind[1] == "js" else rng.choice(WORDS)
        data = content(rng, sizes[i])
        rel = name_for(kind, stem, data)
        if rel in seen:
            sys.exit(f"gen_build: name collision {rel}")
        seen.add(rel)
        write(base, rel, data, FIXED_MTIME)
        files.append((kind, stem, rel))
    entries = {ENTRIES[i]: files[i][2] for i in range(len(ENTRIES))}
    write_manifest(base, entries, FIXED_MTIME)

    # The 1% rebuild: application.js plus (changed - 1) other files, new bytes, new names.
    shutil.copytree(base, changed, copy_function=shutil.copy2)
    crng = random.Random(a.seed + 1)
    picked = [0] + crng.sample(range(len(ENTRIES), n), a.changed - 1)
    touched = []
    for i in picked:
        kind, stem, old = files[i]
        data = content(crng, sizes[i])
        rel = name_for(kind, stem, data)
        os.remove(os.path.join(changed, old))
        write(changed, rel, data, FIXED_MTIME + 86400)
        files[i] = (kind, stem, rel)
        touched.append(rel)
    entries = {ENTRIES[i]: files[i][2] for i in range(len(ENTRIES))}
    write_manifest(changed, entries, FIXED_MTIME + 86400)
    touched.append("manifest.json")
    with open(os.path.join(a.out, "changed.touch"), "w") as f:
        f.write("\n".join(touched) + "\n")

    ss = sorted(sizes)
    stats = {
        "files": n,
        "bytes": sum(sizes),
        "changed_files": a.changed,
        "changed_bytes": sum(sizes[i] for i in picked),
        "min": ss[0],
        "p50": ss[n // 2],
        "p90": ss[int(n * 0.9)],
        "p99": ss[int(n * 0.99)],
        "max": ss[-1],
        "seed": a.seed,
    }
    with open(os.path.join(a.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=2)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()

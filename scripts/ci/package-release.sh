#!/usr/bin/env bash
# Package a release binary the way the orb's install command (and the GitHub
# Action) fetch it:
#   OUT_DIR/vVERSION/cutover-VERSION-x86_64-unknown-linux-gnu.tar.gz
#   OUT_DIR/vVERSION/SHA256SUMS
# VERSION is what the binary itself reports (`cutover --version`), so the
# name cannot disagree with the bytes. The project's CircleCI release job
# runs it on the `dist` profile's binary (Cargo.toml: stripped, no debug
# info); the test suite runs it to make what install.sh downloads.
# It refuses a binary that still carries debug info (an ELF with DWARF
# sections: the `release` profile's, ~200 MB) or that is over MAX_MIB: every
# CI job that installs cutover downloads it.
# Usage: scripts/ci/package-release.sh BINARY OUT_DIR
set -euo pipefail

# The stripped binary is ~27 MB; 60 MiB leaves room for growth (more
# dependencies, a newer toolchain) while catching the mistakes that matter:
# an unstripped or debug build is several times larger.
MAX_MIB=60

binary="${1:?usage: package-release.sh BINARY OUT_DIR}"
out_dir="${2:?usage: package-release.sh BINARY OUT_DIR}"
refuse() {
  echo "package-release.sh: refusing $binary: $*" >&2
  exit 1
}
[ -f "$binary" ] || refuse "no such file"
if [ "$(head -c 4 "$binary" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
  command -v readelf >/dev/null || refuse "readelf (binutils) is needed to check it for debug info"
  sections="$(readelf -S -W "$binary")" || refuse "readelf cannot read its sections"
  # DWARF: .debug_info, .debug_line (also compressed, .zdebug_*). Not
  # .debug_gdb_scripts, which rustc leaves in a stripped binary too.
  if grep -Eq '[[:space:]]\.z?debug_(info|line)[[:space:]]' <<<"$sections"; then
    refuse "it carries debug info (.debug_info, .debug_line sections): package the dist profile's binary (cargo build --profile dist; target/dist/cutover), or strip it"
  fi
fi
size="$(stat -c %s "$binary")"
[ "$size" -le $((MAX_MIB * 1024 * 1024)) ] ||
  refuse "it is $size bytes, over the $MAX_MIB MiB ceiling for a shipped binary"
reported="$("$binary" --version)"
version="${reported#cutover }"
[ "$version" != "$reported" ] || { echo "$binary --version says \"$reported\", not \"cutover VERSION\"" >&2; exit 1; }

name="cutover-${version}-x86_64-unknown-linux-gnu"
dest="$out_dir/v$version"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name" "$dest"
cp "$binary" "$stage/$name/cutover"
chmod 0755 "$stage/$name/cutover"
# Same bytes for the same binary: fixed order, owner and times.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$stage" -cf - "$name" | gzip -n -9 >"$dest/$name.tar.gz"
(cd "$dest" && sha256sum "$name.tar.gz" >SHA256SUMS)
echo "$dest/$name.tar.gz"
echo "$dest/SHA256SUMS"

#!/usr/bin/env bash
# Package a release binary the way the orb's install command (and the GitHub
# Action) fetch it:
#   OUT_DIR/vVERSION/cutover-VERSION-x86_64-unknown-linux-gnu.tar.gz
#   OUT_DIR/vVERSION/SHA256SUMS
# VERSION is what the binary itself reports (`cutover --version`), so the
# name cannot disagree with the bytes. The project's CircleCI release job
# runs it; the test suite runs it to make what install.sh downloads.
# Usage: scripts/ci/package-release.sh BINARY OUT_DIR
set -euo pipefail

binary="${1:?usage: package-release.sh BINARY OUT_DIR}"
out_dir="${2:?usage: package-release.sh BINARY OUT_DIR}"
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

#!/usr/bin/env bash
# cutover orb, command `install` (orb/src/commands/install.yml); the GitHub
# Action runs it too. Installs a pinned cutover release for Linux x86_64:
#   BASE_URL/vVERSION/cutover-VERSION-x86_64-unknown-linux-gnu.tar.gz
#   BASE_URL/vVERSION/SHA256SUMS
# (the layout scripts/ci/package-release.sh writes), checked against
# SHA256SUMS and, when PARAM_SHA256 is set, against that too. Parameters come
# as PARAM_* variables. The test suite runs this file as it is.
set -euo pipefail

fail() {
  echo "cutover install: $*" >&2
  exit 1
}

version="${PARAM_VERSION:-}"
base_url="${PARAM_BASE_URL:-${CUTOVER_INSTALL_BASE_URL:-}}"
install_dir="${PARAM_INSTALL_DIR:-}"
[ -n "$install_dir" ] || install_dir="$HOME/.local/bin"
[ -n "$version" ] || fail "no version given"
[ -n "$base_url" ] || fail "no base URL: set the base_url parameter or CUTOVER_INSTALL_BASE_URL (docs/ci.md: Getting the binary)"

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) fail "cutover releases are built for Linux x86_64, this is $(uname -s)/$(uname -m)" ;;
esac
for tool in curl sha256sum tar; do
  command -v "$tool" >/dev/null || fail "$tool is needed and not installed"
done

name="cutover-${version}-x86_64-unknown-linux-gnu"
url="${base_url%/}/v${version}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() {
  curl --fail --silent --show-error --location --retry 3 --connect-timeout 10 \
    --output "$tmp/$1" "$url/$1" || fail "could not download $url/$1"
}
fetch "$name.tar.gz"
fetch SHA256SUMS

# sha256sum lines: "<hex>  <name>" (or "<hex> *<name>" in binary mode).
expected="$(awk -v f="$name.tar.gz" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS")"
[ -n "$expected" ] || fail "SHA256SUMS at $url has no line for $name.tar.gz"
if [ -n "${PARAM_SHA256:-}" ] && [ "$expected" != "$PARAM_SHA256" ]; then
  fail "SHA256SUMS says $name.tar.gz is $expected, but the pinned sha256 is $PARAM_SHA256"
fi
actual="$(sha256sum "$tmp/$name.tar.gz" | cut -d' ' -f1)"
[ "$actual" = "$expected" ] || fail "checksum mismatch for $name.tar.gz: downloaded $actual, SHA256SUMS says $expected"

tar -xzf "$tmp/$name.tar.gz" -C "$tmp"
binary="$tmp/$name/cutover"
[ -f "$binary" ] || fail "$name.tar.gz has no $name/cutover"
chmod 0755 "$binary"
reported="$("$binary" --version 2>&1 || true)"
[ "$reported" = "cutover $version" ] || fail "the downloaded binary reports \"$reported\", not \"cutover $version\""

mkdir -p "$install_dir"
cp "$binary" "$install_dir/cutover.tmp.$$"
mv -f "$install_dir/cutover.tmp.$$" "$install_dir/cutover"

# Later steps find it: CircleCI sources $BASH_ENV before each step, GitHub
# Actions reads $GITHUB_PATH after this one.
case ":$PATH:" in
  *":$install_dir:"*) ;;
  *)
    if [ -n "${GITHUB_PATH:-}" ]; then echo "$install_dir" >>"$GITHUB_PATH"; fi
    if [ -n "${BASH_ENV:-}" ]; then echo "export PATH=\"$install_dir:\$PATH\"" >>"$BASH_ENV"; fi
    ;;
esac
echo "installed cutover $version in $install_dir (sha256 $actual)"

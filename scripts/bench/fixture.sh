# shellcheck shell=bash
# The builds the tools upload: a seeded webpack-like build of BENCH_FILES
# files and its 1% rebuild (gen_build.py, on BENCH_TMP), a tiny one for the
# prechecks, and the real fixture tests/fixtures/builds/shakapacker when it is
# there; with each build's file list in $WORK/*.list. Then what each workload
# uploads: prepare_workload. Sourced by run.sh.

# make_builds: sets BUILDS, BASE, CHANGED_DIR, TINY, REBUILT and FIXTURE_OK.
make_builds() {
  BUILDS=$(mktemp -d "$BENCH_TMP/bench-builds.XXXXXX")
  DATA_DIRS+=("$BUILDS")
  log "generating the build ($FILES files, ~${TOTAL_MB} MB, $CHANGED changed)"
  python3 "$ROOT/scripts/bench/gen_build.py" "$BUILDS" --files "$FILES" --total-mb "$TOTAL_MB" --changed "$CHANGED" \
    >"$WORK/build-stats.txt"
  python3 "$ROOT/scripts/bench/gen_build.py" "$BUILDS/tiny" --files 30 --total-mb 0.2 --changed 3 >/dev/null
  BASE="$BUILDS/base"; CHANGED_DIR="$BUILDS/changed"; TINY="$BUILDS/tiny/base"; REBUILT="$BUILDS/rebuilt"
  list_files "$BASE" >"$WORK/base.list"
  list_files "$CHANGED_DIR" >"$WORK/changed.list"
  FIXTURE_OK=""
  if [[ -f "$FIXTURE/manifest.json" ]]; then
    FIXTURE_OK=1
    list_files "$FIXTURE" >"$WORK/fixture.list"
    echo "present: $(wc -l <"$WORK/fixture.list") files, $(du -sk "$FIXTURE" | cut -f1) KiB" >"$WORK/fixture.txt"
  else
    log "NOTE: $FIXTURE is absent; skipping the fixture workload"
    echo "absent" >"$WORK/fixture.txt"
  fi
}

# prepare_workload WORKLOAD: sets WL_DIR to the directory the workload
# uploads and WL_LISTS to the file lists of what it leaves in the bucket.
#   cold, unchanged  the build itself;
#   rebuilt          a CI build of the same code: the same bytes in a fresh
#                    directory, every file with a new mtime;
#   changed          the 1% rebuild, whose new files (and manifest) a
#                    rebuild writes just before the deploy.
prepare_workload() {
  rm -rf "$REBUILT"
  WL_DIR="$BASE"
  WL_LISTS=("$WORK/base.list")
  case $1 in
    cold | unchanged) ;;
    rebuilt) cp -r "$BASE" "$REBUILT"; WL_DIR="$REBUILT" ;;
    changed)
      (cd "$CHANGED_DIR" && xargs touch <"$BUILDS/changed.touch")
      WL_DIR="$CHANGED_DIR"
      WL_LISTS+=("$WORK/changed.list")
      ;;
    *) die "unknown workload $1" ;;
  esac
}

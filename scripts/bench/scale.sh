# shellcheck shell=bash
# cutover's scale curve: time and peak memory against the build's size,
# cutover alone on s3s-fs, builds of BENCH_SCALE files at ~40 KB each (the
# 5,000-file build's mean), cold then unchanged. Sourced by run.sh.

scale_curve() {
  local files dir bucket run expect
  for files in $SCALE; do
    log "scale: $files files"
    dir="$BUILDS/scale"
    python3 "$ROOT/scripts/bench/gen_build.py" "$dir" --files "$files" --total-mb "$((files * 40 / 1000))" \
      --changed 10 --seed 7 >"$WORK/scale-$files.json"
    list_files "$dir/base" >"$WORK/scale.list"
    for run in $(seq "$RUNS"); do
      bucket="s-$files-r$run"
      make_bucket s3s "$bucket"
      expect=skip
      [[ $run -eq 1 ]] && expect=$(expected_count cutover "$WORK/scale.list")
      measure s3s "scale-$files-cold" cutover "$run" "$bucket" "$dir/base" "$expect"
      measure s3s "scale-$files-unchanged" cutover "$run" "$bucket" "$dir/base" skip
      drop_bucket s3s "$bucket"
    done
    rm -rf "$dir"
  done
}

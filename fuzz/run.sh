#!/usr/bin/env bash
# Runs fuzz targets one after another for a bounded time each (default 60 s;
# `fuzz/run.sh 600` for ten minutes; `fuzz/run.sh 600 request` for one target),
# seeded with the provider fixtures and the signed request seeds
# (fuzz/seeds/request/, generated from the fixtures by tests/it/fuzz_regressions.rs).
# Prints, per target, the corpus size (files, bytes) before and after and
# libFuzzer's final stats (runs, execs/s, coverage), and keeps the whole log in
# fuzz/artifacts/<target>.log. Any crash is copied into fuzz/regressions/<target>/,
# where tests/it/fuzz_regressions.rs replays it on every `cargo test`, and the
# script exits non-zero.
# Needs `cargo install cargo-fuzz`; RUSTC_BOOTSTRAP lets the stable toolchain
# accept the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parsers mime_words request)

# "<files> files, <bytes> bytes" of a corpus folder.
corpus_size() {
  local files bytes
  files=$(find "$1" -type f | wc -l)
  bytes=$(find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  echo "$files files, $bytes bytes"
}

status=0

for target in "${targets[@]}"; do
  corpus="corpus/$target"
  mkdir -p "$corpus" "artifacts/$target" "regressions/$target"
  # Seeds: the provider fixtures, and every input kept as a regression.
  case "$target" in
    # Every provider's fixtures: each input goes through every parser.
    parsers) for dir in ../tests/fixtures/*/; do cp "$dir"* "$corpus"/; done ;;
    mime_words) printf '%s' '=?UTF-8?B?5rWL6K+V6YKu5Lu2?= =?GB2312?B?suLK1A==?= =?ISO-8859-1?Q?Caf=E9?=' > "$corpus/seed" ;;
    request) cp seeds/request/* "$corpus"/ ;;
  esac
  cp regressions/"$target"/* "$corpus"/ 2>/dev/null || true
  # Built before the clock starts, so the time given is all fuzzing.
  cargo fuzz build "$target"
  log="artifacts/$target.log"
  echo "== fuzzing $target for ${seconds}s; corpus at start: $(corpus_size "$corpus")"
  started=$(date +%s)
  if ! cargo fuzz run "$target" "$corpus" -- \
      -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=262144 -timeout=5 \
      -print_final_stats=1 -artifact_prefix="artifacts/$target/" > "$log" 2>&1; then
    status=1
    tail -n 40 "$log"
  fi
  echo "== $target: $(( $(date +%s) - started ))s; corpus at end: $(corpus_size "$corpus")"
  # The last status line (coverage) and libFuzzer's final stats.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  grep -E '^stat::' "$log" || true
  for crash in artifacts/"$target"/*; do
    [ -e "$crash" ] || continue
    cp "$crash" "regressions/$target/"
    echo "kept $crash as regressions/$target/$(basename "$crash")"
  done
done
exit "$status"

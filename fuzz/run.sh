#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each; `fuzz/run.sh 300`
# for longer), seeded with the provider fixtures and the signed request seeds
# (fuzz/seeds/request/, generated from the fixtures by tests/fuzz_regressions.rs). Any crash is copied into
# fuzz/regressions/<target>/, where tests/fuzz_regressions.rs replays it on every
# `cargo test`, and the script exits non-zero.
# Needs `cargo install cargo-fuzz`; RUSTC_BOOTSTRAP lets the stable toolchain
# accept the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
export RUSTC_BOOTSTRAP=1

targets=(parsers mime_words request)
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
  echo "== fuzzing $target for ${seconds}s"
  if ! cargo fuzz run "$target" "$corpus" -- \
      -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=262144 -timeout=5 \
      -artifact_prefix="artifacts/$target/"; then
    status=1
  fi
  for crash in artifacts/"$target"/*; do
    [ -e "$crash" ] || continue
    cp "$crash" "regressions/$target/"
    echo "kept $crash as regressions/$target/$(basename "$crash")"
  done
done
exit "$status"

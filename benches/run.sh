#!/usr/bin/env bash
# Runs every benchmark and prints one table (measure | value | target):
#   CPU per event (benches/cpu.rs); write units per event (benches/items.rs); the Lambda binary under a runtime API stub —
#   cold start, warm invocations vs a bare PutItem, batch, peak RSS, the two write
#   paths (benches/lambda.rs); the overhead over the storage floor with the
#   handler's own SDK client (benches/floor.rs); the loopback load test
#   (benches/load.rs); and the release arm64 binary, stripped and zipped, when
#   cargo-lambda is installed (`pip install cargo-lambda`; ~5 min; skip with --no-size).
# Everything runs on 127.0.0.1 and stops by itself. Build output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

rows() { grep -E '^\| ' | grep -vE '^\| measure \||^\|---'; }

table=$(mktemp)
trap 'rm -f "$table"' EXIT
cargo bench -q --bench cpu 2>/dev/null | rows >>"$table"
cargo bench -q --bench items 2>/dev/null | rows >>"$table"
cargo bench -q --bench lambda 2>/dev/null | rows >>"$table"
cargo bench -q --features local --bench floor 2>/dev/null | rows >>"$table"
cargo bench -q --features local --bench load 2>/dev/null | rows >>"$table"

if [ "${1:-}" != "--no-size" ]; then
  if command -v cargo-lambda >/dev/null; then
    cargo lambda build --release --arm64 --bin bootstrap >&2
    binary=target/lambda/bootstrap/bootstrap
    zipped=$(python3 -c "import io,zipfile,sys; b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[1],'bootstrap'); z.close(); print(len(b.getvalue()))" "$binary")
    mb() { awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1e6 }'; }
    echo "| release binary, arm64, stripped | $(mb "$(stat -c %s "$binary")") | |" >>"$table"
    echo "| release binary, arm64, zipped | $(mb "$zipped") | < 6 MB |" >>"$table"
  else
    echo "| release binary, arm64 | skipped: pip install cargo-lambda | < 6 MB zipped |" >>"$table"
  fi
fi

echo "| measure | value | target |"
echo "|---|---|---|"
cat "$table"

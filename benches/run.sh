#!/usr/bin/env bash
# Runs every benchmark and prints one report:
#   CPU per event (benches/cpu.rs), the Lambda binary under a runtime API stub —
#   cold start, overhead over a bare PutItem, batch, peak RSS (benches/lambda.rs),
#   the loopback load test (benches/load.rs), and with --size the release arm64
#   binary, stripped and zipped (needs `pip install cargo-lambda`; ~5 min).
# Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "## CPU per event (auth + parse + item build)"
cargo bench -q --bench cpu 2>/dev/null | grep '^|'
echo
echo "## The Lambda binary (runtime API stub, embedded DynamoDB API)"
cargo bench -q --bench lambda 2>/dev/null | grep '^|'
echo
echo "## Load test"
cargo bench -q --features local --bench load 2>/dev/null | grep -E '^(\||load:)'

if [ "${1:-}" = "--size" ]; then
  echo
  echo "## Release binary (arm64, stripped)"
  cargo lambda build --release --arm64 --bin bootstrap >/dev/null 2>&1
  binary=target/lambda/bootstrap/bootstrap
  zipped=$(python3 -c "import io,zipfile,sys; b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[1],'bootstrap'); z.close(); print(len(b.getvalue()))" "$binary")
  echo "| binary | zipped |"
  echo "|---|---|"
  echo "| $(stat -c %s "$binary") B | $zipped B |"
fi

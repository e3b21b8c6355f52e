#!/usr/bin/env bash
# The peer comparison of issue 15: django-anymail's SendGrid tracking webhook
# beside our SendGrid provider, on the same 1- and 100-event bodies, in one run.
#   1. target/peer-venv: a throwaway venv with Django and django-anymail[sendgrid]
#      from PyPI (installed once; reused while it imports).
#   2. target/peer/sendgrid-{1,100}.json: built once from tests/fixtures/sendgrid
#      (the 100 events each carry their own sg_message_id).
#   3. anymail's SendGridTrackingWebhookView timed on both files, basic auth only
#      (its default) and with its optional ECDSA verification key set
#      (benches/peer_anymail.py: CPU µs per request, median).
#   4. ours on the same files: `PEER_BODIES=target/peer cargo bench --bench cpu -- peer:`,
#      normalize + items built, and with ECDSA verification in front.
#   5. one table: both sides, the ratios, the targets (≥ 40× single, ≥ 10× batched).
# `benches/peer.sh` from anywhere; build output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/peer-venv
out=target/peer
if ! "$venv/bin/python" -c 'import anymail, cryptography, django' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q django 'django-anymail[sendgrid]' >&2
fi

python3 benches/peer_anymail.py bodies tests/fixtures/sendgrid "$out"
"$venv/bin/python" benches/peer_anymail.py time "$out" >"$out/anymail.json"
PEER_BODIES="$PWD/$out" cargo bench -q --bench cpu -- peer: >"$out/ours.txt"
"$venv/bin/python" benches/peer_anymail.py table "$out/anymail.json" "$out/ours.txt"

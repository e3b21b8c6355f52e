#!/usr/bin/env bash
# Lints template.yaml with cfn-lint, installed once into a project-local venv.
set -euo pipefail

cd "$(dirname "$0")/.."

venv=.venv-ci
if [ ! -x "$venv/bin/cfn-lint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q cfn-lint
fi

"$venv/bin/cfn-lint" template.yaml

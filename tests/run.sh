#!/usr/bin/env bash
# Runs the whole suite with the project's venv. Services the tests need (ClickHouse server, Prometheus,
# Chromium) are started by the tests themselves, on their own ports and directories.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${VENV:-$PWD/.venv}/bin/python" -m pytest -q -p no:cacheprovider "$@"

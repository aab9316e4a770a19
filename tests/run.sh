#!/usr/bin/env bash
# Runs the whole suite with the project's venv. Services the tests need (ClickHouse server, Prometheus,
# Chromium) are started by the tests themselves, on their own ports and directories.
set -euo pipefail
cd "$(dirname "$0")/.."
# Compiled modules (and pytest's rewritten test modules) are cached, outside the tree, even where the
# environment turns bytecode off: each xdist worker and each `python -m flowscope` a test starts would
# otherwise compile everything again (collection 6.4 s instead of 2.7 s, per worker).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$PWD/var/pycache"
exec "${VENV:-$PWD/.venv}/bin/python" -m pytest -q -p no:cacheprovider "$@"

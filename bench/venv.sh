#!/usr/bin/env bash
# Create bench/.venv with the pinned peers of bench/requirements.txt, or
# update it when that file changed since the last install. cello itself is
# not installed there: run.py uses it from the repository (PYTHONPATH=python).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$BENCH_DIR/.venv"
REQUIREMENTS="$BENCH_DIR/requirements.txt"
STAMP="$VENV/.requirements-sha256"
PYTHON="${PYTHON:-python3}"

digest=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [[ -x $VENV/bin/python && -f $STAMP && $(<"$STAMP") == "$digest" ]]; then
    exit 0
fi
if [[ ! -x $VENV/bin/python ]]; then
    echo "bench: creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
echo "bench: installing the pinned packages of $REQUIREMENTS"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
printf '%s\n' "$digest" >"$STAMP"

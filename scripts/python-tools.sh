#!/usr/bin/env bash
# Makes sure the git-ignored virtualenv .venv holds the pinned Python tools of
# scripts/requirements-test.txt (moto, aws-sam-cli, cargo-lambda, ziglang, schemathesis). Quick
# when it does: pip runs only when the pins or the Python version changed. Prints the venv's path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/scripts/requirements-test.txt"
STAMP="$VENV/.requirements-test.sha256"
mkdir -p "$ROOT/.tmp"

setup_venv() {
    if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        echo "python-tools: creating $VENV" >&2
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    local want
    want="$( (cat "$REQUIREMENTS"; "$VENV/bin/python" -V) | sha256sum | cut -d' ' -f1)"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        return 0
    fi
    echo "python-tools: installing $(basename "$REQUIREMENTS") into $VENV (once)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
    echo "$want" >"$STAMP"
}

# Concurrent runs share the venv: set it up under a lock where flock exists.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ROOT/.tmp/venv.lock"
    flock 9
    setup_venv
    flock -u 9
    exec 9>&-
else
    setup_venv
fi
echo "$VENV"

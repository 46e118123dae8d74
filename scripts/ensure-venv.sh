#!/usr/bin/env bash
# Create the project virtualenv, or repair one whose interpreter no longer runs.
# A working venv is never touched: `make venv` calls this on every run.
# Usage: scripts/ensure-venv.sh [VENV_DIR] [PYTHON]
set -euo pipefail

venv=${1:-.venv}
python=${2:-python3}

if "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    # pip can be missing from a venv made with --without-pip; restore it.
    if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        "$venv/bin/python" -m ensurepip --upgrade
    fi
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: '$python' not found; install Python 3.11+ (Debian/Ubuntu: apt-get install python3 python3-venv) or run make PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "error: newsmon needs Python >= 3.11 but '$python' is $("$python" -V 2>&1); run make PYTHON=python3.11" >&2
    exit 1
fi
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "error: '$python' lacks the venv/ensurepip modules (Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
fi

if [ -e "$venv" ]; then
    echo "note: $venv exists but its python does not run; recreating it" >&2
    "$python" -m venv --clear "$venv"
else
    "$python" -m venv "$venv"
fi

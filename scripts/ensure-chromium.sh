#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the dashboard's browser tests.
# Installs it (apt-get, needs root or sudo) only when /usr/bin/chromium is missing, with
# fonts for Latin and Arabic-script text (Urdu, Pashto, Dari headlines in screenshots).
# Never downloads a browser build of its own. Exit 0 when the browser is there afterwards.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "ensure-chromium: $CHROMIUM is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and this system has no apt-get; install Chromium by hand" >&2
    exit 1
fi

echo "ensure-chromium: installing Debian's chromium (not found at $CHROMIUM)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-noto-ui-core >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    echo "ensure-chromium: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
"$CHROMIUM" --version >&2 || true

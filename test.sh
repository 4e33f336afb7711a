#!/usr/bin/env bash
# Every test of motcua, as CI runs them: the Rust tests of the workspace
# (domain, store conformance on SQLite and, when MOTCUA_TEST_POSTGRES_URL is
# set, PostgreSQL; the API, page and cluster tests over real HTTP), the
# OpenAPI conformance run (schemathesis), then the browser tests in headless
# Chromium with axe-core. Installs what the browser tests need (Debian's
# chromium, npm packages) when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

if [ -z "${MOTCUA_TEST_POSTGRES_URL:-}" ]; then
  echo "note: MOTCUA_TEST_POSTGRES_URL is not set: the PostgreSQL tests are SKIPPED (they say so below)."
fi

# The S3 attachment tests start moto's S3 server (Python, from PyPI) on
# 127.0.0.1; without it they print SKIPPED and pass.
if ! command -v python3 >/dev/null 2>&1; then
  echo "note: python3 is missing: the S3 tests are SKIPPED (they say so below)."
elif ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  echo "== installing moto[server] for the S3 tests (pip)"
  python3 -m pip install --quiet 'moto[server]' \
    || echo "note: could not install moto: the S3 tests are SKIPPED (they say so below)."
fi

echo "== cargo test --workspace"
cargo test --workspace --locked

# The OpenAPI document against the server: schemathesis (from PyPI, installed
# when missing; SKIPPED without python3 or pip) fuzzes every operation of a
# fresh demo server, anonymous and as a citizen, an officer and a province
# administrator, with the binary the tests above built.
echo "== OpenAPI conformance (schemathesis)"
bash tests/schemathesis/run.sh

echo "== browser tests (headless Chromium from Debian, axe-core)"
# Debian's Chromium and its driver; nothing downloads a browser of its own.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update
  $sudo_cmd apt-get install -y chromium chromium-driver
fi
if [ ! -d tests/browser/node_modules ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
bash tests/browser/run.sh

#!/usr/bin/env bash
# Browser tests of the motcua pages: builds the binary if needed, starts a
# fresh demo server on a free loopback port, runs tests.js in headless
# Chromium (Debian's), stops the server. Exits non-zero on any failure; the
# last line is "N passed, M failed".
#
#   bash tests/browser/run.sh            # everything
#   ONLY=axe bash tests/browser/run.sh   # tests whose name contains "axe"
#   MOTCUA_BIN=path/to/motcua bash tests/browser/run.sh   # a given binary, no build
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/motcua-target}"
bin="${MOTCUA_BIN:-$CARGO_TARGET_DIR/debug/motcua}"

fail() {
  echo "browser tests: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "no Chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)"
[ -d "$here/node_modules/playwright-core" ] && [ -d "$here/node_modules/axe-core" ] ||
  fail "run 'npm ci' in tests/browser first"

# Cargo decides whether anything changed; a no-op build takes a second.
if [ -z "${MOTCUA_BIN:-}" ]; then
  cargo build -p motcua --quiet || fail "cargo build -p motcua failed"
fi
[ -x "$bin" ] || fail "no motcua binary at $bin"

port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
data="$(mktemp -d "${TMPDIR:-/tmp}/motcua-browser.XXXXXX")"
log="$data/server.log"
server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

"$bin" serve --demo --data-dir "$data" --listen "127.0.0.1:$port" \
  --exchange-listen 127.0.0.1:0 >"$log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"

# Wait for readiness: at most 60 s, and not past the server's death.
ready=""
for _ in $(seq 1 300); do
  if ! kill -0 "$server" 2>/dev/null; then break; fi
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  cat "$log" >&2
  fail "the server did not become ready at $base"
fi

rm -rf "$here/artifacts"
mkdir -p "$here/artifacts"
echo "browser tests against $base (screenshots in tests/browser/artifacts/)"
set +e
MOTCUA_BASE_URL="$base" node "$here/tests.js" 2>&1 | tee "$here/artifacts/output.txt"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "--- server log (last 40 lines)"
  tail -n 40 "$log"
  echo "---"
  # The closing line again, last.
  closing="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$here/artifacts/output.txt" | tail -n 1)"
  echo "${closing:-0 passed, 1 failed}"
fi
exit "$status"

#!/usr/bin/env bash
# OpenAPI conformance of the JSON API: starts a fresh demo server on a free
# loopback port and lets schemathesis send generated requests (valid and
# invalid) to every operation of /api/openapi.json, four times: anonymous,
# then signed in as a citizen, a one-stop officer and a province
# administrator. Each answer must be no 5xx, have a documented status and
# content type, and match the documented schema. Exits non-zero on any
# failure, with schemathesis's report; the last line is "N passed, M failed"
# (runs, not requests).
#
#   bash tests/schemathesis/run.sh
#   MOTCUA_BIN=path/to/motcua bash tests/schemathesis/run.sh   # a given binary, no build
#   ST_MAX_EXAMPLES=5 bash tests/schemathesis/run.sh           # a quicker, shallower run
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/motcua-target}"
bin="${MOTCUA_BIN:-$CARGO_TARGET_DIR/debug/motcua}"
max_examples="${ST_MAX_EXAMPLES:-25}"
# A run that takes longer than this is stopped and counts as failed (four
# runs of usually 10–20 s each; the whole script stays well within 10 min).
run_limit_secs="${ST_RUN_LIMIT_SECS:-120}"

skip() {
  echo "schemathesis: $*"
  echo "note: schemathesis unavailable: the OpenAPI conformance run is SKIPPED"
  exit 0
}

fail() {
  echo "schemathesis: $*" >&2
  echo "schemathesis: 0 passed, 1 failed"
  exit 1
}

# schemathesis from PyPI, once; the 4.x command line is the one used below.
if ! command -v python3 >/dev/null 2>&1; then
  skip "python3 is missing"
fi
if ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
  echo "== installing schemathesis for the OpenAPI conformance run (pip)"
  python3 -m pip install --quiet 'schemathesis>=4.32,<5' ||
    skip "pip could not install it"
  python3 -c 'import schemathesis' >/dev/null 2>&1 || skip "it does not import after the install"
fi

# The debug binary `cargo test` built; built here only when it is missing.
if [ -z "${MOTCUA_BIN:-}" ] && [ ! -x "$bin" ]; then
  cargo build --locked -p motcua --quiet || fail "cargo build -p motcua failed"
fi
[ -x "$bin" ] || fail "no motcua binary at $bin"

# Nothing but the server under test is ever asked: no proxy in between.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY="127.0.0.1" no_proxy="127.0.0.1"

work="$(mktemp -d "${TMPDIR:-/tmp}/motcua-schemathesis.XXXXXX")"
log="$work/server.log"
server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A port the system picks (the server prints its address), so that no
# other process can take it in between; the gateway listens too, on a
# loopback port of its own, so that the exchange endpoints answer as on a
# node that runs it.
"$bin" serve --demo --data-dir "$work/data" --listen 127.0.0.1:0 \
  --exchange-listen 127.0.0.1:0 >"$log" 2>&1 &
server=$!

# Wait for its address, then readiness: at most 60 s, and not past the
# server's death.
base=""
ready=""
for _ in $(seq 1 300); do
  if ! kill -0 "$server" 2>/dev/null; then break; fi
  if [ -z "$base" ]; then
    base="$(sed -n 's|^motcua is running at \(http://127\.0\.0\.1:[0-9]*\)/ .*|\1|p' "$log" | head -n 1)"
  fi
  if [ -n "$base" ] &&
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$base/readyz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  cat "$log" >&2
  fail "the server did not become ready (${base:-no address printed})"
fi

# The demo's password, as the server printed it with its logins.
password="$(sed -n 's/^Demo logins (password: \(.*\)):$/\1/p' "$log" | head -n 1)"
[ -n "$password" ] || fail "the server printed no demo logins"

# Every token is taken before any run: the anonymous run's wrong passwords
# slow sign-ins from this address down.
token() {
  python3 - "$base/api/v1/auth/token" "$1" "$password" <<'EOF'
import json, sys, urllib.request
url, username, password = sys.argv[1:4]
req = urllib.request.Request(
    url,
    data=json.dumps({"username": username, "password": password}).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(req, timeout=30) as r:
    print(json.load(r)["token"])
EOF
}
citizen="$(token citizen)" || fail "no token for citizen"
officer="$(token officer)" || fail "no token for officer"
admin="$(token province.admin)" || fail "no token for province.admin"

# One dossier to reach past "not found": the citizen files a birth
# registration (as the integration tests' submit_birth does), so that the
# runs reach a real dossier, its document and its actions besides random
# codes.
dossier="$(python3 - "$base/api/v1/dossiers" "$citizen" <<'PY'
import datetime, json, sys, urllib.request, uuid
url, token = sys.argv[1:3]
born = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)).date().isoformat()
application = {
    "procedure_code": "1.001193",
    "unit_code": "00073",
    "fields": {
        "declarant_full_name": "Nguyễn Văn An",
        "declarant_national_id": "001090012345",
        "declarant_relationship": "father",
        "declarant_phone": "0912345678",
        "child_full_name": "Nguyễn Minh Khang",
        "child_birth_date": born,
        "child_sex": "male",
        "child_ethnicity": "Kinh",
        "child_nationality": "Việt Nam",
        "child_birth_place": "Bệnh viện Phụ sản Hà Nội, Hà Nội",
        "mother_full_name": "Trần Thị Hoa",
        "parents_residence": "12 phố Tràng Thi, Phường Cửa Nam, Hà Nội",
    },
}
pdf = b"%PDF-1.4\n% motcua conformance run\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
boundary = uuid.uuid4().hex
body = b"".join([
    f'--{boundary}\r\nContent-Disposition: form-data; name="application"\r\n\r\n'.encode(),
    json.dumps(application).encode(),
    f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="document:birth-notice"; '
    f'filename="giay-chung-sinh.pdf"\r\nContent-Type: application/pdf\r\n\r\n'.encode(),
    pdf,
    f"\r\n--{boundary}--\r\n".encode(),
])
req = urllib.request.Request(
    url,
    data=body,
    headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Authorization": f"Bearer {token}",
    },
    method="POST",
)
with urllib.request.urlopen(req, timeout=30) as r:
    print(json.load(r)["code"])
PY
)" || fail "the citizen could not file the seed dossier"

# The checked-in settings, plus values that schemathesis picks now and then
# instead of random ones: the seed dossier (and its first document), a
# procedure of the catalogue, a citizen account.
config="$work/schemathesis.toml"
cat "$here/schemathesis.toml" - >"$config" <<TOML

[dictionaries.dossiers]
values = ["$dossier"]

[dictionaries.procedures]
values = ["1.001193"]

[dictionaries.indexes]
values = ["0"]

[dictionaries.usernames]
values = ["citizen2"]

[[operations]]
include-path-regex = "^/api/v1/(dossiers|track)/"
parameters = { "path.code" = { dictionary = "dossiers", probability = 0.7 }, "path.index" = { dictionary = "indexes", probability = 0.7 } }

[[operations]]
include-operation-id = "get_procedure"
parameters = { "path.code" = { dictionary = "procedures", probability = 0.5 } }

[[operations]]
include-operation-id = "verify_national_id"
parameters = { "path.username" = { dictionary = "usernames", probability = 0.5 } }
TOML

passed=0
failed=0
run() {
  local name="$1"
  shift
  echo "== schemathesis: $name"
  local status=0
  # From the scratch directory: nothing (reports, example database) is
  # written into the repository.
  (cd "$work" && timeout --kill-after=10 "$run_limit_secs" \
    python3 -m schemathesis.cli --config-file "$config" run "$base/api/openapi.json" \
    --url "$base" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$max_examples" \
    --seed 20250601 \
    --request-timeout 10 \
    --max-redirects 0 \
    --workers 1 \
    --generation-database none \
    --no-color \
    "$@") || status=$?
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
  else
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
      echo "schemathesis: the $name run did not finish within ${run_limit_secs} s"
    fi
    failed=$((failed + 1))
  fi
}

run anonymous
# Signing out would revoke the very token under test, and every later
# request of the run would only be refused with 401: left out of the
# signed-in runs (the anonymous run covers its refusals).
run citizen -H "Authorization: Bearer $citizen" --exclude-operation-id revoke_token
run officer -H "Authorization: Bearer $officer" --exclude-operation-id revoke_token
run province.admin -H "Authorization: Bearer $admin" --exclude-operation-id revoke_token

if ! kill -0 "$server" 2>/dev/null; then
  echo "--- the server stopped during the runs; its log:"
  tail -n 60 "$log"
  failed=$((failed + 1))
fi
if [ "$failed" -ne 0 ]; then
  echo "--- server log (last 40 lines)"
  tail -n 40 "$log"
  echo "---"
fi
echo "schemathesis: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

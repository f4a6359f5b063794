#!/usr/bin/env bash
# The OpenAPI contract, fuzzed: schemathesis (from PyPI, in a venv) generates requests
# from openapi/hookgate.json against a real gateway and fails on any 5xx or any answer the
# document does not list. Bounded to a couple of minutes: the admin API on the admin
# listener, then the webhook endpoint on the public one (the live stream, which never
# ends, is left to tests/it/openapi.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/hookgate}"
work="$(mktemp -d)"
# The gateway writes its last files as it stops: wait for it before removing them.
trap 'kill "${pid:-0}" 2>/dev/null || true; wait "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
if ! command -v python3 >/dev/null || ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q 'schemathesis>=3.30'
token="ci-contract-token-0123456789"
HOOKGATE_LISTEN=127.0.0.1:0 HOOKGATE_ADMIN_LISTEN=127.0.0.1:0 HOOKGATE_DB="$work/hookgate.db" \
  HOOKGATE_ADMIN_TOKEN="$token" HOOKGATE_LOG=warn "$bin" serve >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 100); do grep -q "admin API:" "$work/out" 2>/dev/null && break; sleep 0.1; done
admin="$(sed -n 's/^ *admin API: *//p' "$work/out" | tr -d '\n')"
admin="${admin%/}"
admin="${admin%/v1}"   # the banner names the API at /v1/; the paths below are absolute
public="http://$(sed -n 's/.*(listening on \(.*\))$/\1/p' "$work/out" | tr -d '\n')"
[ -n "$admin" ] || { cat "$work/err"; echo "the gateway did not start"; exit 1; }
timeout 240 "$work/venv/bin/schemathesis" run "$admin/v1/openapi.json" \
  --url "$admin" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-path '/hooks/{account}' \
  --exclude-path '/v1/stream' \
  --max-examples 25
timeout 120 "$work/venv/bin/schemathesis" run "$admin/v1/openapi.json" \
  --url "$public" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --include-path '/hooks/{account}' \
  --max-examples 25

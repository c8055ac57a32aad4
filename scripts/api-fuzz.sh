#!/usr/bin/env bash
# Checks the running API against its contract, openapi.yaml: starts local-api (in-memory store,
# sandbox auth server, both on free 127.0.0.1 ports), runs schemathesis against it, stops it.
#
# First a short walk-through (a verification with the code read from the sandbox's outbox, a
# replay, a second SMS too soon; the session it opened read back by bearer token and by cookie,
# ended, then refused; the clients list; wrong codes to the end, a non-JSON and an oversized
# body), each answer checked with schemathesis' checks: fuzzing cannot reach a right code, so it
# never holds a session either.
#
# What schemathesis does: sends the spec's examples (real successes with `sandbox-client`), then
# boundary values, then generated valid and invalid bodies and, on `/user/info` and
# `/user/logout`, generated `Authorization: Bearer` headers and `sms_session` cookies (from the
# security schemes), then stateful sequences that feed the `auth_req_id` and `nonce` of a
# `/sms/auth` answer to `/sms/token` (the spec's link). Every answer must be no 5xx (the sandbox
# upstream is healthy, so none may occur here), a status the spec lists for that operation, with
# the listed content type, headers and body schema. A generated token is never a live session:
# `/user/info` must answer it `401` (a 2xx fails the run), `/user/logout` `401` or `204`.
#
# Reproducible and bounded: a fixed seed, one worker, no example database (the service's own
# rate limits run on the clock, so the stateful phase's length still varies a little);
# --max-examples per operation is chosen so the run sends well over 1,000 requests (checked from
# the recorded requests), in one to two minutes on 2 cores; a hard time limit stops it
# regardless. Only 127.0.0.1 is contacted: proxies are bypassed, redirects are not followed, and
# schemathesis 4 has no telemetry or report upload (the reports it writes here are local files).
#
# Exits non-zero if the walk-through or schemathesis finds any failure, if local-api logs a
# panic or dies, if any answer is a 5xx, if `/user/info` ever let schemathesis in, if any request
# went elsewhere than the local-api, if an operation of the spec got no request, or if fewer than
# API_FUZZ_MIN_REQUESTS requests were sent.
#
# Knobs (environment): API_FUZZ_MAX_EXAMPLES (400), API_FUZZ_SEED (20251129),
# API_FUZZ_TIME_LIMIT (seconds, 300), API_FUZZ_MIN_REQUESTS (1000).
# Artifacts (git-ignored): .tmp/api-fuzz.*/ holds local-api.log, schemathesis.toml,
# schemathesis.log and requests.har (every request and answer, for reproducing by hand).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MAX_EXAMPLES="${API_FUZZ_MAX_EXAMPLES:-400}"
SEED="${API_FUZZ_SEED:-20251129}"
TIME_LIMIT="${API_FUZZ_TIME_LIMIT:-300}"
MIN_REQUESTS="${API_FUZZ_MIN_REQUESTS:-1000}"
CHECKS="not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance"

VENV="$(scripts/python-tools.sh)"
PYTHON="$VENV/bin/python"
SCHEMATHESIS="$VENV/bin/schemathesis"

echo "api-fuzz: building local-api" >&2
cargo build --quiet -p local-api
LOCAL_API="${CARGO_TARGET_DIR:-$ROOT/target}/debug/local-api"

mkdir -p "$ROOT/.tmp"
WORK="$(mktemp -d "$ROOT/.tmp/api-fuzz.XXXXXX")"
SERVER_LOG="$WORK/local-api.log"
HAR="$WORK/requests.har"

# shellcheck source=scripts/local-api.sh
source "$ROOT/scripts/local-api.sh"
SCHEMATHESIS_PID=""
TAIL_PID=""
stop_schemathesis() {
    local pid
    for pid in "$SCHEMATHESIS_PID" "$TAIL_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    SCHEMATHESIS_PID=""
    TAIL_PID=""
}
cleanup() {
    stop_schemathesis
    stop_local_api
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_local_api "$LOCAL_API" "$SERVER_LOG"
echo "api-fuzz: local-api (pid $API_PID) on $API_URL, sandbox on $SANDBOX_URL" >&2
BASE_URL="$API_URL"

# A walk-through first, on the fresh instance: the answers fuzzing cannot reach (a right code
# needs the SMS, which the sandbox's outbox holds), each checked with schemathesis' own checks.
WALK_STATUS=0
"$PYTHON" - "$ROOT/openapi.yaml" "$BASE_URL" "$SANDBOX_URL" <<'EOF' || WALK_STATUS=$?
import http.cookiejar, json, sys, urllib.parse

import requests
import schemathesis
from schemathesis import checks

spec, base_url, sandbox_url = sys.argv[1:4]
schema = schemathesis.openapi.from_path(spec)
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance]
session = requests.Session()
session.trust_env = False  # no proxies: 127.0.0.1 only
# No cookie jar (/sms/token and /user/logout set the session cookie): each request sends exactly
# the cookies it names.
session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

def send(method, path, *expected, body=None, headers=None, cookies=None):
    """Sends one request (a JSON body if `body` is given, and `headers` and `cookies`), checks the
    answer against the spec and that its (status, error code) is one of `expected`. Returns the
    JSON answer, {} for none."""
    kwargs = {} if body is None else {"body": body, "media_type": "application/json"}
    case = schema[path][method].Case(**kwargs)
    response = case.call(base_url=base_url, session=session, headers=headers, cookies=cookies,
                         allow_redirects=False, timeout=10)
    case.validate_response(response, checks=CHECKS)
    content_type = (response.headers.get("content-type") or [""])[0]
    answer = response.json() if content_type.startswith("application/json") else {}
    if (response.status_code, answer.get("error")) not in expected:
        sent = "" if body is None else " " + json.dumps(body)[:200]
        sys.exit(f"api-fuzz: walk-through: {method} {path}{sent} answered "
                 f"{response.status_code} {response.text[:300]}; expected one of {expected}")
    print(f"  {method:4} {path:12} {response.status_code} {answer.get('error') or ''}")
    return answer

def call(path, body, *expected, headers=None):
    """POSTs body as JSON: `send` for the flow's endpoints."""
    return send("POST", path, *expected, body=body, headers=headers)

def fail(message):
    sys.exit(f"api-fuzz: walk-through: {message}")

def start(phone):
    started = call("/sms/auth", {"client_id": "sandbox-client", "login_hint": phone}, (200, None))
    flow = {"auth_req_id": started["auth_req_id"], "nonce": started["nonce"], "client_id": "sandbox-client"}
    outbox = session.get(f"{sandbox_url}/sandbox/messages?to={urllib.parse.quote(phone)}", timeout=10).json()
    code = outbox[0]["code"]
    return flow, code, ("0000" if code != "0000" else "1111")

print("api-fuzz: walk-through, each answer checked against openapi.yaml:")
# One wrong code, then the right one; the same again (its answer lost: the same session); another
# code against the completed one; a second SMS too soon.
flow, code, wrong = start("+447400123499")
call("/sms/token", {**flow, "code": wrong}, (400, "invalid_code"))
verified = call("/sms/token", {**flow, "code": code}, (200, None))
if call("/sms/token", {**flow, "code": code}, (200, None))["session"] != verified["session"]:
    fail("the same /sms/token request again answered another session")
call("/sms/token", {**flow, "code": wrong}, (404, "verification_not_found"))
call("/sms/auth", {"client_id": "sandbox-client", "login_hint": "+44 7400 123499"}, (429, "rate_limited"))
# The session /sms/token opened: read back by bearer token and by cookie (the claims it stored are
# the ones /sms/token answered), ended, then gone; ending it again is fine; no token at all is not.
bearer = {"Authorization": f"Bearer {verified['session']}"}
cookie = {"sms_session": verified["session"]}
info = send("GET", "/user/info", (200, None), headers=bearer)
claims = {k: v for k, v in verified.items() if k not in ("auth_server", "session", "verification_token")}
if info["userinfo"] != claims or info["client_id"] != "sandbox-client" or info["server_id"] != "sandbox":
    fail(f"GET /user/info read back {json.dumps(info)[:300]}, not the session of {json.dumps(claims)[:300]}")
if send("GET", "/user/info", (200, None), cookies=cookie) != info:
    fail("GET /user/info by cookie answered otherwise than by bearer token")
send("POST", "/user/logout", (204, None), headers=bearer)
send("GET", "/user/info", (401, "unauthorized"), headers=bearer)
send("GET", "/user/info", (401, "unauthorized"), cookies=cookie)
send("POST", "/user/logout", (204, None), cookies=cookie)
send("GET", "/user/info", (401, "unauthorized"))
send("POST", "/user/logout", (401, "unauthorized"))
# Ended: the same /sms/token request no longer brings the session back.
call("/sms/token", {**flow, "code": code}, (404, "verification_not_found"))
# Where a verification stands, then cancelled: found nowhere after. The signed result's keys.
flow, code, wrong = start("+447400123496")
status = call("/sms/status", flow, (200, None))
if status["status"] != "pending" or status["attempts_left"] < 1:
    fail(f"POST /sms/status answered {json.dumps(status)} for a fresh verification")
call("/sms/cancel", flow, (204, None))
call("/sms/status", flow, (404, "verification_not_found"))
call("/sms/cancel", flow, (404, "verification_not_found"))
call("/sms/token", {**flow, "code": code}, (404, "verification_not_found"))
send("GET", "/.well-known/jwks.json", (200, None))
# The public list: local-api's one client on the sandbox.
listed = send("GET", "/sms/clients", (200, None))
if [c["client_id"] for c in listed["clients"]] != ["sandbox-client"]:
    fail(f"GET /sms/clients listed {json.dumps(listed)[:300]}")
# Wrong codes until the verification is dead.
flow, code, wrong = start("+447400123498")
for _ in range(10):
    answer = call("/sms/token", {**flow, "code": wrong}, (400, "invalid_code"), (429, "too_many_attempts"))
    if answer["error"] == "too_many_attempts" or answer["data"]["attempts_left"] == 0:
        break
call("/sms/token", {**flow, "code": code}, (429, "too_many_attempts"))
# Bodies refused before any work.
call("/sms/log", {"data": {"step": "walk-through"}}, (415, "unsupported_media_type"), headers={"Content-Type": "text/plain"})
call("/sms/auth", {"client_id": "x" * 9000, "login_hint": "+447400123497"}, (413, "payload_too_large"))
EOF

# The signed result, checked by an independent JOSE implementation (PyJWT) as an app's backend
# would: it verifies, and a forged payload, another key, `none` and HS256 are refused.
"$PYTHON" "$ROOT/scripts/verification-token-check.py" "$BASE_URL" "$SANDBOX_URL" || WALK_STATUS=$?

# schemathesis writes its caches (.hypothesis, .schemathesis) into the working directory: WORK.
# Proxies are cleared and bypassed so requests go straight to 127.0.0.1.
# Stateful sequences follow the spec's own links only: schemathesis would also infer links from
# field names (`client_id` in a /user/info answer feeding /sms/auth), which makes /user/info, a
# 401 without a session, the only entry point and starves the /sms/auth -> /sms/token link.
cat >"$WORK/schemathesis.toml" <<'TOML'
[phases.stateful.inference]
algorithms = []
TOML
# Its warning that /user/info and /user/logout "returned only 401" is expected: it has no session.
# No output sanitising: the HAR keeps the generated Authorization headers and cookies (random,
# never a live session), so a request to /user/* can be replayed from it.
SCHEMATHESIS_CMD=(
    "$SCHEMATHESIS" --no-color --config-file "$WORK/schemathesis.toml" run "$ROOT/openapi.yaml"
    --url "$BASE_URL"
    --phases "examples,coverage,fuzzing,stateful"
    --checks "$CHECKS"
    --max-examples "$MAX_EXAMPLES"
    --seed "$SEED"
    --workers 1
    --generation-database none
    --request-timeout 10
    --max-redirects 0
    --report har --report-har-path "$HAR"
    --output-sanitize false
)
echo "api-fuzz: ${SCHEMATHESIS_CMD[*]}" >&2
# In the background, so a signal to this script stops it at once (timeout passes it on); its
# output is followed live from the log.
: >"$WORK/schemathesis.log"
(
    cd "$WORK" &&
        exec env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
            NO_PROXY='*' no_proxy='*' SCHEMATHESIS_TELEMETRY=false \
            timeout --kill-after=10 "$TIME_LIMIT" "${SCHEMATHESIS_CMD[@]}"
) >"$WORK/schemathesis.log" 2>&1 </dev/null &
SCHEMATHESIS_PID=$!
tail -n +1 -f --pid="$SCHEMATHESIS_PID" "$WORK/schemathesis.log" &
TAIL_PID=$!
STATUS=0
wait "$SCHEMATHESIS_PID" || STATUS=$?
SCHEMATHESIS_PID=""
wait "$TAIL_PID" || true
TAIL_PID=""
if [[ $STATUS -eq 124 || $STATUS -eq 137 ]]; then
    echo "api-fuzz: schemathesis did not finish within ${TIME_LIMIT}s" >&2
fi

API_ALIVE=1
kill -0 "$API_PID" 2>/dev/null || API_ALIVE=0
stop_local_api

# What was actually sent, from schemathesis' own record of every request and answer.
set +e
"$PYTHON" - "$HAR" "$MIN_REQUESTS" "$BASE_URL" "$ROOT/openapi.yaml" <<'EOF'
import collections, json, sys

import yaml

har_path, minimum, base_url, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
operations = {(path, method.upper()) for path, item in yaml.safe_load(open(spec))["paths"].items()
              for method in item if method in ("get", "put", "post", "delete", "patch", "head", "options")}
try:
    entries = json.load(open(har_path))["log"]["entries"]
except (OSError, ValueError, KeyError) as err:
    print(f"api-fuzz: no request record ({err})")
    sys.exit(1)
by_route = collections.Counter()
server_errors = []
elsewhere = [e["request"]["url"] for e in entries if not e["request"]["url"].startswith(base_url + "/")]
for entry in entries:
    method = entry["request"]["method"]
    path = "/" + entry["request"]["url"].split("/", 3)[-1].split("?")[0]
    response = entry.get("response") or {}
    status = response.get("status") or 0
    try:
        body = json.loads((response.get("content") or {}).get("text") or "")
        error = body.get("error", "") if isinstance(body, dict) else ""
    except ValueError:
        error = ""
    by_route[(path, method, status, str(error))] += 1
    if status >= 500 or status == 0:
        server_errors.append(f"{method} {path} -> {status}")
print(f"api-fuzz: {len(entries)} requests sent to local-api, by answer:")
for (path, method, status, error), count in sorted(by_route.items()):
    print(f"  {method:7} {path:12} {status:3} {error:26} x{count}")
failed = False
# schemathesis never holds a session (it cannot read the SMS), so a 2xx here is a way in.
let_in = sum(n for (path, method, status, _), n in by_route.items()
             if (path, method) == ("/user/info", "GET") and 200 <= status < 300)
if let_in:
    print(f"api-fuzz: GET /user/info answered 2xx to {let_in} generated requests, without a session")
    failed = True
untested = sorted(operations - {(path, method) for path, method, _, _ in by_route})
if untested:
    print("api-fuzz: operations of the spec that got no request: " + ", ".join(f"{m} {p}" for p, m in untested))
    failed = True
if elsewhere:
    print(f"api-fuzz: {len(elsewhere)} requests went elsewhere than {base_url}: {elsewhere[:5]}")
    failed = True
if server_errors:
    print(f"api-fuzz: {len(server_errors)} answers were 5xx or missing: " + "; ".join(server_errors[:10]))
    failed = True
if len(entries) < minimum:
    print(f"api-fuzz: fewer than {minimum} requests were sent")
    failed = True
sys.exit(1 if failed else 0)
EOF
COUNT_STATUS=$?
set -e

if grep -qE "thread '[^']*' panicked at" "$SERVER_LOG"; then
    echo "api-fuzz: local-api panicked; see $SERVER_LOG:" >&2
    grep -m5 -E "thread '[^']*' panicked at" "$SERVER_LOG" >&2
    STATUS=1
fi
if [[ $API_ALIVE -eq 0 ]]; then
    echo "api-fuzz: local-api exited during the run; see $SERVER_LOG" >&2
    STATUS=1
fi
[[ $COUNT_STATUS -eq 0 ]] || STATUS=1
if [[ $WALK_STATUS -ne 0 ]]; then
    echo "api-fuzz: the walk-through failed (above)" >&2
    STATUS=1
fi

echo "api-fuzz: artifacts in ${WORK#"$ROOT"/}" >&2
if [[ $STATUS -ne 0 ]]; then
    echo "api-fuzz: FAILED" >&2
    exit 1
fi
echo "api-fuzz: passed"

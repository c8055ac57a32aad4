#!/usr/bin/env bash
# The demo page (web/) in a real browser: installs the pinned test tools (tests/browser, npm ci:
# playwright-core and libphonenumber-js, no browser download), makes sure Debian's Chromium is
# there (installs it with apt when run as root, else says how), builds and starts local-api on
# free 127.0.0.1 ports (in-memory store, sandbox auth server), runs tests/browser/verify.spec.mjs
# with node's test runner, and stops local-api on exit, also when the tests fail.
#
# Screenshots of each step land in test-artifacts/browser/ (git-ignored), with local-api's log.
# UPDATE_DOCS_SCREENSHOT=1 also copies the verified-page screenshot to docs/demo-page.png.
# CHROMIUM_PATH overrides /usr/bin/chromium.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "browser-test: $*" >&2; }

# Never let the AWS SDK look for real credentials or the EC2 metadata address (the in-memory
# store needs no AWS at all; this is a guard should that change).
export AWS_EC2_METADATA_DISABLED=true
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_PROFILE AWS_SESSION_TOKEN

# --- Chromium: Debian's package, never a browser build downloaded by a test tool.
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    if [[ -z "${CHROMIUM_PATH:-}" && "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing Debian's chromium (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    if [[ ! -x "$CHROMIUM" ]]; then
        log "no Chromium at $CHROMIUM: install Debian's package (sudo apt-get install chromium)"
        log "or set CHROMIUM_PATH to a Chromium or Chrome binary"
        exit 1
    fi
fi
export CHROMIUM_PATH="$CHROMIUM"

# --- Node.js and the pinned test packages.
# shellcheck source=scripts/node-packages.sh
source "$ROOT/scripts/node-packages.sh"
install_node_test_packages

# --- local-api, on free loopback ports.
log "building local-api"
cargo build --quiet -p local-api --locked
LOCAL_API="${CARGO_TARGET_DIR:-$ROOT/target}/debug/local-api"

ARTIFACTS="$ROOT/test-artifacts/browser"
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png "$ARTIFACTS"/local-api.log
SERVER_LOG="$ARTIFACTS/local-api.log"

# shellcheck source=scripts/local-api.sh
source "$ROOT/scripts/local-api.sh"
trap stop_local_api EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! start_local_api "$LOCAL_API" "$SERVER_LOG"; then
    log "FAILED: local-api would not start"
    exit 1
fi
log "local-api (pid $API_PID) on $API_URL, sandbox on $SANDBOX_URL"

STATUS=0
(
    cd tests/browser &&
        env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
            NO_PROXY='*' no_proxy='*' \
            BASE_URL="$API_URL" SANDBOX_URL="$SANDBOX_URL" ARTIFACTS_DIR="$ARTIFACTS" \
            LOCAL_API_LOG="$SERVER_LOG" DOCS_SCREENSHOT="$ROOT/docs/demo-page.png" \
            timeout --kill-after=10 110 node --test --test-reporter=spec verify.spec.mjs
) || STATUS=$?
[[ $STATUS -eq 124 || $STATUS -eq 137 ]] && log "the browser tests did not finish within 110 s"

if ! kill -0 "$API_PID" 2>/dev/null; then
    log "local-api exited during the run; see ${SERVER_LOG#"$ROOT"/}"
    STATUS=1
fi
if grep -qE "thread '[^']*' panicked at" "$SERVER_LOG"; then
    log "local-api panicked; see ${SERVER_LOG#"$ROOT"/}"
    STATUS=1
fi
stop_local_api

log "screenshots and local-api.log in ${ARTIFACTS#"$ROOT"/}/"
if [[ $STATUS -ne 0 ]]; then
    log "FAILED"
    exit 1
fi
log "passed"

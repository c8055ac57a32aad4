# shellcheck shell=bash
# Sourced by the scripts that test a running local-api (api-fuzz.sh, browser-test.sh): the debug
# local-api with the in-memory store and its own sandbox, on loopback ports the kernel picks.

# shellcheck source=scripts/stop-process.sh
source "$(dirname "${BASH_SOURCE[0]}")/stop-process.sh"

API_PID=""
API_URL=""
SANDBOX_URL=""

# Starts local-api binary $1 with its output in file $2 and waits until it serves; sets API_PID,
# API_URL and SANDBOX_URL. Both ports are 0, so the kernel picks free ones and nothing can take
# them first; local-api's `local_api_started` line says where it listens. On failure prints the
# log and returns 1.
start_local_api() {
    local binary="$1" log="$2" started=""
    # No TABLE_NAME: the in-memory store. No CLIENT_SECRET: the sandbox's own. No RUST_LOG: the
    # default info level, whose JSON start line is waited for.
    env -u TABLE_NAME -u CLIENT_SECRET -u RUST_LOG PORT=0 SANDBOX_PORT=0 "$binary" >"$log" 2>&1 &
    API_PID=$!
    for _ in $(seq 300); do
        kill -0 "$API_PID" 2>/dev/null || break
        started="$(grep -m1 '"event":"local_api_started"' "$log" || true)"
        [[ -n "$started" ]] && break
        sleep 0.1
    done
    # The origins only: the sandbox's URL is its auth server's (`…/auth`), its outbox is at the root.
    API_URL="$(sed -n 's/.*"url":"\(http:\/\/127\.0\.0\.1:[0-9]*\)[^"]*".*/\1/p' <<<"$started")"
    SANDBOX_URL="$(sed -n 's/.*"sandbox":"\(http:\/\/127\.0\.0\.1:[0-9]*\)[^"]*".*/\1/p' <<<"$started")"
    if [[ -z "$API_URL" || -z "$SANDBOX_URL" ]]; then
        echo "local-api did not start; its log:" >&2
        cat "$log" >&2
        stop_local_api
        return 1
    fi
}

stop_local_api() {
    stop_process "$API_PID"
    API_PID=""
}

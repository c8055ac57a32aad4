# shellcheck shell=bash
# Sourced by the scripts that start servers in the background (with-test-services.sh, and through
# local-api.sh api-fuzz.sh and browser-test.sh): one way to stop one.

# Stops background process $1, if it is set and still running: TERM, up to 5 s to exit, then
# KILL; then reaps it.
stop_process() {
    local pid="$1"
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

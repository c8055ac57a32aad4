#!/usr/bin/env bash
# Runs a command against a local moto DynamoDB server.
#
#   scripts/with-moto.sh cargo test -p shared --test store_suite
#
# Makes sure the git-ignored virtualenv .venv holds the pinned tools (scripts/python-tools.sh),
# starts moto's server on a free 127.0.0.1 port (log in
# .tmp/moto.log; requests served one at a time, see below), exports the AWS_* variables that
# point the AWS SDK at it with dummy credentials, runs the command, stops moto on exit (even when
# the command fails) and exits with the command's status.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$("$ROOT/scripts/python-tools.sh")"
TMP_DIR="$ROOT/.tmp"
mkdir -p "$TMP_DIR"
LOG="$TMP_DIR/moto.log"
START_TIMEOUT_SECS=60

PORT="$("$VENV/bin/python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')"

# shellcheck source=scripts/stop-process.sh
source "$ROOT/scripts/stop-process.sh"
MOTO_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
stop_moto() {
    stop_process "$MOTO_PID"
}
trap stop_moto EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# `moto_server -H 127.0.0.1 -p PORT`, with one change: requests are served one at a time. moto
# serves each request on its own thread and does not make a conditional write atomic (it checks
# the condition, then writes), so without this lock two racing conditional writes can both pass,
# which DynamoDB never allows, and the store's concurrency tests would fail at random.
MOTO_SERIAL_SERVER='
import sys
import threading

import moto.server

lock = threading.Lock()
run_simple = moto.server.run_simple


def run_serially(host, port, app, **options):
    def serial_app(environ, start_response):
        with lock:
            body = app(environ, start_response)
            try:
                return list(body)
            finally:
                if hasattr(body, "close"):
                    body.close()

    return run_simple(host, port, serial_app, **options)


moto.server.run_simple = run_serially
moto.server.main(sys.argv[1:])
'
"$VENV/bin/python" -c "$MOTO_SERIAL_SERVER" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO_PID=$!

ENDPOINT="http://127.0.0.1:$PORT"
up=false
for _ in $(seq $((START_TIMEOUT_SECS * 5))); do
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
        break
    fi
    if "$VENV/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1).read()' "$ENDPOINT" >/dev/null 2>&1; then
        up=true
        break
    fi
    sleep 0.2
done
if [[ "$up" != true ]]; then
    echo "with-moto: moto_server did not come up on $ENDPOINT; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
fi

unset AWS_PROFILE
export AWS_ENDPOINT_URL_DYNAMODB="$ENDPOINT"
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true

status=0
"$@" || status=$?
exit "$status"

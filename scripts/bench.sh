#!/usr/bin/env bash
# The performance figures of BENCHMARKS.md, taken on this machine (not part of the test suite):
#
#   scripts/bench.sh            # full run, about 15 minutes after the builds; writes BENCHMARKS.md
#   scripts/bench.sh --quick    # fewer samples and shorter runs, for a look while tuning
#
# Builds what it measures, then runs the `bench` harness (dev/bench) against DynamoDB Local
# (scripts/with-test-services.sh):
# 1. release binaries of the three functions (built alone, as cargo-lambda builds them), and of
#    local-api, sandbox-auth and the harness;
# 2. the arm64 deployment zips with cargo-lambda (the pinned one in .venv, linking with zig) into
#    .tmp/bench/lambda, unless --no-arm64 or Rust's aarch64 target cannot be installed;
# 3. the criterion benchmarks of the handler cost (cargo bench -p shared --bench handler);
# 4. the harness: sizes, cold starts, warm instances, load through local-api, criterion's figures.
# Every server binds 127.0.0.1; the AWS SDK is kept off the network. Other arguments go to the
# harness (`target/release/bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

export AWS_EC2_METADATA_DISABLED=true
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_SECRETS_MANAGER
unset CLIENT_SECRET CLIENT_SECRET_ARN CONFIG_JSON CONFIG_FILE TABLE_NAME RUST_LOG

quick=false
arm64=true
harness_args=()
for arg in "$@"; do
    case "$arg" in
        --quick) quick=true; harness_args+=("$arg") ;;
        --no-arm64) arm64=false ;;
        *) harness_args+=("$arg") ;;
    esac
done

VENV="$(scripts/python-tools.sh)"
WORK=.tmp/bench
mkdir -p "$WORK"
# Every function of the stack: one package per directory of functions/.
packages=()
for dir in functions/*/; do
    packages+=(-p "$(basename "$dir")")
done

echo "bench.sh: release build of the functions (alone, as cargo-lambda builds them)"
cargo build --release --locked "${packages[@]}"
echo "bench.sh: release build of local-api, sandbox-auth and the harness"
cargo build --release --locked -p local-api -p sandbox-auth -p bench

if [[ "$arm64" == true ]]; then
    if rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
        || rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
        echo "bench.sh: arm64 deployment zips (cargo lambda build --release --arm64 --output-format zip)"
        rm -rf "$WORK/lambda"
        PATH="$VENV/bin:$PATH" cargo lambda build --release --locked --arm64 --output-format zip \
            --lambda-dir "$WORK/lambda" "${packages[@]}"
        harness_args+=(--arm64-dir "$WORK/lambda")
    else
        echo "bench.sh: Rust's aarch64-unknown-linux-gnu target cannot be installed here; no arm64 sizes"
    fi
fi

echo "bench.sh: criterion benchmarks of the handler cost"
rm -rf target/criterion
if [[ "$quick" == true ]]; then
    cargo bench --locked -p shared --bench handler -- --warm-up-time 1 --measurement-time 2
else
    cargo bench --locked -p shared --bench handler
fi

echo "bench.sh: the harness"
scripts/with-test-services.sh target/release/bench "${harness_args[@]}"

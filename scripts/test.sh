#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs and starts what the tests need
# (scripts/with-test-services.sh: AWS's DynamoDB Local for DynamoDB, with a Java runtime, in the
# git-ignored .tools/; moto for Secrets Manager, in the git-ignored virtualenv .venv), runs every
# Rust test against them and stops them, then the demo page in headless Chromium
# (playwright-core from npm), the README's curl walk-through, the API contract check (schemathesis against openapi.yaml on a
# running local-api) and the deploy checks (sam validate --lint, sam build).
set -euo pipefail
cd "$(dirname "$0")/.."

# Never let the AWS SDK look for real credentials or the EC2 metadata address.
export AWS_EC2_METADATA_DISABLED=true
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_PROFILE AWS_SESSION_TOKEN
# Tests wait on the network (sandbox delays, polling), not the CPU: run many at once.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"

scripts/with-test-services.sh cargo test --workspace --locked "$@"
scripts/browser-test.sh
scripts/api-client.sh
scripts/readme-walkthrough.sh
scripts/api-fuzz.sh
scripts/sam-check.sh

#!/usr/bin/env bash
# The whole test suite: installs what it needs, lints, type-checks/builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "== lint"
npx biome check .
echo "== tests"
npx vitest run "$@"

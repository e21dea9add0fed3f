#!/usr/bin/env bash
# The whole stack on this machine: installs what it needs, then `moltage up`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec node bin/moltage.js up "$@"

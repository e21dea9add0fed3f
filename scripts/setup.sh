#!/usr/bin/env bash
# Installs everything Moltage needs on a Debian 12 host (as root) and builds the code.
# Idempotent: packages already present are skipped, npm ci runs only when the lockfile changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: command to look for -> package that provides it.
declare -A NEED=(
  [redis-server]=redis-server
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-img]=qemu-utils
  [ssh]=openssh-client
  [sshd]=openssh-server
  [ssh-keygen]=openssh-client
  [debootstrap]=debootstrap
  [mkfs.ext4]=e2fsprogs
  [cpio]=cpio
  [ip]=iproute2
  [nft]=nftables
  [zstd]=zstd
  [lz4]=lz4
  [curl]=curl
  [systemd-analyze]=systemd
  [chromium]=chromium
)
missing=()
for cmd in "${!NEED[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ]; then
    missing+=("${NEED[$cmd]}")
  fi
done
# Packages without a command to look for: a Chinese font, so browser screenshots show Chinese.
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing+=(fonts-wqy-microhei)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "moltage setup: missing Debian packages: ${missing[*]} (run this as root, or apt-get install them)" >&2
    exit 1
  fi
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "moltage setup: installing ${pkgs[*]}"
  # Keep apt from starting redis/sshd system services: Moltage starts its own.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

# The image builder asks apt for the guest's packages (apt-get download): it needs an index.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "moltage setup: apt-get update (no package index yet)"
    apt-get update -qq
  fi
fi

# npm packages, pinned by package-lock.json.
stamp=node_modules/.moltage-lock-hash
hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  echo "moltage setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$hash" >"$stamp"
fi

# OpenClaw (pinned) and the Node 24 it needs, outside the root lockfile: the plugin builds
# against it, its tests run it, and the agent guest image ships it.
packages/openclaw-plugin/scripts/install-runtime.sh

echo "moltage setup: building TypeScript"
npx tsc -b

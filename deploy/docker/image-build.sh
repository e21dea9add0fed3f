#!/bin/sh
# Entry point of the image-builder container (the `image-build` service in docker-compose.yml):
# refreshes the apt index the builder downloads the guest's Debian packages with, then builds
# VM_IMAGE (agent or tiny) into VM_IMAGE_DIR. A build whose inputs did not change is reused.
# Extra arguments go to `moltage image build` (e.g. --force).
set -eu

image="${VM_IMAGE:-agent}"
dir="${VM_IMAGE_DIR:-/var/lib/moltage/images}"

case "$image" in
  agent) kind_flag="" ;;
  tiny) kind_flag="--tiny" ;;
  *)
    echo "moltage-image-build: VM_IMAGE must be agent or tiny, not '$image'" >&2
    exit 2
    ;;
esac

echo "moltage-image-build: apt-get update"
apt-get update -qq
# shellcheck disable=SC2086 # kind_flag is empty or one word
exec node /opt/moltage/bin/moltage.js image build $kind_flag --image-dir "$dir" "$@"

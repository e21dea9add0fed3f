#!/bin/sh
# Build time only (apps/orchestrator/src/images/agent-image.ts runs it inside the new rootfs,
# chrooted, in throw-away network, PID and mount namespaces): starts the OpenClaw gateway once
# as the VM user, waits until it is ready, then stops it. Node's compile cache for
# OpenClaw is left in /tmp/node-compile-cache, where the guest's gateway looks for it, so the
# guest does not compile OpenClaw's JavaScript from scratch under emulation at every boot.
set -eu
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
W=/tmp/moltage-prewarm
mount -t proc proc /proc
ip link set lo up
printf 'MOLTAGE_CONFIG_V1\nagent_token=prewarm-token-0123456789\nllm_base_url=http://127.0.0.1:9/v1\nllm_model=prewarm\n' >"$W/config"
node /opt/moltage/guest/openclaw-config.mjs --config "$W/config" --home "$W/home" --uid 1000 --gid 1000
cd "$W/home"
setpriv --reuid=1000 --regid=1000 --init-groups \
  env -i HOME="$W/home" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TZ=UTC \
  OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 NO_COLOR=1 \
  node /opt/moltage/runtime/node_modules/openclaw/openclaw.mjs gateway run >"$W/gateway.log" 2>&1 &
pid=$!
i=0
# As far as the guest's run-agent-gate waits: the plugin's webhook up, the gateway ready.
until curl -sf http://127.0.0.1:18780/health >/dev/null 2>&1 &&
  curl -sf http://127.0.0.1:18789/readyz >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "prewarm: the gateway did not come up" >&2
    tail -n 40 "$W/gateway.log" >&2
    exit 1
  fi
  sleep 0.5
done
# Let the startup work that follows readiness (channels, cron, sidecars) load its modules too.
sleep 10
kill -TERM "$pid"
wait "$pid" || true

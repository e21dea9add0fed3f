#!/bin/sh
# Runs once after the initrd handed over: kernel filesystems, SSH host key (kept on the data
# disk so the gateway sees the same host key across restarts), ACPI power button.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /data/.moltage/ssh
if [ ! -s /data/.moltage/ssh/dropbear_ed25519_host_key ]; then
  dropbearkey -t ed25519 -f /data/.moltage/ssh/dropbear_ed25519_host_key >/dev/null 2>&1
fi
acpid -c /etc/acpi
echo "moltage: boot complete" >/dev/console

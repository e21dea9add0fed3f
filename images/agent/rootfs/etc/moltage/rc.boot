#!/bin/sh
# Runs once after the initrd handed over (it already mounted /, /data, /home, set hostname,
# network and the gateway's SSH key, and wrote /etc/moltage/config): kernel filesystems, the
# SSH host key (kept on the data disk, so the gateway sees the same host key every boot),
# the ACPI power button.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
mkdir -p /run/sshd /run/moltage
chmod 0755 /run/sshd

KEYDIR=/data/.moltage/ssh
mkdir -p "$KEYDIR"
chmod 0700 "$KEYDIR"
if [ ! -s "$KEYDIR/ssh_host_ed25519_key" ]; then
  rm -f "$KEYDIR/ssh_host_ed25519_key" "$KEYDIR/ssh_host_ed25519_key.pub"
  ssh-keygen -q -t ed25519 -N '' -C "$(hostname)" -f "$KEYDIR/ssh_host_ed25519_key"
fi

acpid -c /etc/acpi
echo "moltage: boot complete" >/dev/console

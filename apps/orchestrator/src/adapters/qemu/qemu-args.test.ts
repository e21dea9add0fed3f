import { describe, expect, it } from 'vitest';
import type { VmSpec } from '../../domain/driver.js';
import { qemuArgs } from './qemu-driver.js';

const base: Omit<VmSpec, 'network'> = {
  vmId: 'vm-0123456789',
  userId: 'u',
  vcpu: 1,
  memMib: 256,
  kernelPath: '/img/vmlinuz',
  initrdPath: '/img/initrd.img',
  kernelArgs: 'console=ttyS0',
  baseRootfsPath: '/img/rootfs.ext4',
  dataDiskPath: '/vms/u/data.img',
  configDiskPath: '/vms/u/config.img',
  runDir: '/run/vm-0123456789',
};
const files = { qmpSocket: '/run/q.sock', pidFile: '/run/q.pid', consoleLog: '/run/console.log' };

function after(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

describe('qemu command line', () => {
  it('attaches base read-only, data read-write, config read-only, in that order', () => {
    const args = qemuArgs(
      {
        ...base,
        network: {
          mode: 'user',
          sshHostPort: 40022,
          agentHostPort: 40089,
          mac: '02:4d:0a:00:01:02',
          ip: '10.0.1.2',
          gatewayIp: '10.0.1.1',
          prefixLen: 24,
          netAddress: '10.0.1.0',
          dnsIp: '10.0.1.254',
          sshGuestPort: 22,
          agentGuestPort: 8789,
        },
      },
      'tcg',
      files,
    );
    const drives = after(args, '-drive');
    expect(drives[0]).toContain('file=/img/rootfs.ext4');
    expect(drives[0]).toContain('readonly=on');
    expect(drives[1]).toContain('file=/vms/u/data.img');
    expect(drives[1]).not.toContain('readonly');
    expect(drives[2]).toContain('readonly=on');
    expect(after(args, '-accel')).toEqual(['tcg']);
    expect(
      after(
        qemuArgs(
          {
            ...base,
            network: {
              mode: 'tap',
              tapName: 'mt0123456789',
              mac: '02:4d:0a:00:01:02',
              ip: '10.0.1.2',
              gatewayIp: '10.0.1.1',
              prefixLen: 24,
            },
          },
          'tcg',
          files,
          { tcgTbMib: 32 },
        ),
        '-accel',
      ),
    ).toEqual(['tcg,tb-size=32']);
    const netdev = after(args, '-netdev')[0]!;
    expect(netdev).toContain('hostfwd=tcp:127.0.0.1:40022-10.0.1.2:22');
    expect(netdev).toContain('hostfwd=tcp:127.0.0.1:40089-10.0.1.2:8789');
    expect(netdev).toContain('net=10.0.1.0/24,host=10.0.1.1');
    expect(after(args, '-qmp')).toEqual(['unix:/run/q.sock,server=on,wait=off']);
  });

  it('uses a TAP without helper scripts in tap mode and the host CPU under KVM', () => {
    const args = qemuArgs(
      {
        ...base,
        network: {
          mode: 'tap',
          tapName: 'mt0123456789',
          mac: '02:4d:0a:00:01:02',
          ip: '10.0.1.2',
          gatewayIp: '10.0.1.1',
          prefixLen: 24,
        },
      },
      'kvm',
      files,
    );
    expect(after(args, '-netdev')).toEqual(['tap,id=net0,ifname=mt0123456789,script=no,downscript=no']);
    expect(after(args, '-cpu')).toEqual(['host']);
  });
});

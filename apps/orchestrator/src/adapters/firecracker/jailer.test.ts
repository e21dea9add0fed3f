import { describe, expect, it } from 'vitest';
import type { VmSpec } from '../../domain/driver.js';
import { FirecrackerError } from './errors.js';
import { JAIL_API_SOCKET, jailOfSocket, type PlanJailInput, planJail } from './jailer.js';

const spec: VmSpec = {
  vmId: 'vm-1',
  userId: 'o6_user',
  vcpu: 1,
  memMib: 256,
  kernelPath: '/var/lib/moltage/images/agent/vmlinux',
  initrdPath: '/var/lib/moltage/images/agent/initrd.img',
  kernelArgs: '',
  baseRootfsPath: '/var/lib/moltage/images/agent/rootfs.ext4',
  dataDiskPath: '/var/lib/firecracker/vms/u1/data.ext4',
  configDiskPath: '/var/lib/firecracker/vms/u1/config.img',
  network: {
    mode: 'tap',
    tapName: 'fc-u1',
    mac: '06:00:0a:00:01:02',
    ip: '10.0.1.2',
    gatewayIp: '10.0.1.1',
    prefixLen: 24,
  },
  runDir: '/run/moltage/vm-1',
};

const base: PlanJailInput = {
  jailer: { bin: '/usr/local/bin/jailer', uid: 900, gid: 901 },
  execFile: '/opt/firecracker/release-v1.16.1/firecracker-v1.16.1-x86_64',
  chrootBaseDir: '/srv/jailer',
  jailId: 'vm-1',
  spec,
};

function jailErrorMessage(input: PlanJailInput): string {
  try {
    planJail(input);
  } catch (err) {
    expect(err).toBeInstanceOf(FirecrackerError);
    expect((err as FirecrackerError).code).toBe('ORCH_FIRECRACKER_JAIL');
    return (err as Error).message;
  }
  throw new Error('planJail accepted the input');
}

describe('planJail', () => {
  it('builds the jailer command line and names the jail after the real binary', () => {
    const jail = planJail(base);
    expect(jail.command).toBe('/usr/local/bin/jailer');
    expect(jail.args).toEqual([
      '--id',
      'vm-1',
      '--exec-file',
      '/opt/firecracker/release-v1.16.1/firecracker-v1.16.1-x86_64',
      '--uid',
      '900',
      '--gid',
      '901',
      '--chroot-base-dir',
      '/srv/jailer',
      '--',
      '--api-sock',
      JAIL_API_SOCKET,
    ]);
    expect(jail.jailDir).toBe('/srv/jailer/firecracker-v1.16.1-x86_64/vm-1');
    expect(jail.chrootDir).toBe('/srv/jailer/firecracker-v1.16.1-x86_64/vm-1/root');
    expect(jail.apiSocketOnHost).toBe('/srv/jailer/firecracker-v1.16.1-x86_64/vm-1/root/api.socket');
  });

  it('never passes --id to Firecracker itself (the jailer does)', () => {
    const { args } = planJail(base);
    const firecrackerArgs = args.slice(args.indexOf('--') + 1);
    expect(firecrackerArgs).not.toContain('--id');
  });

  it('links every guest file into the chroot and gives Firecracker jail paths', () => {
    const jail = planJail({ ...base, withLog: true });
    const byRole = Object.fromEntries(jail.files.map((f) => [f.role, f]));
    expect(byRole.rootfs).toEqual({
      role: 'rootfs',
      hostPath: spec.baseRootfsPath,
      jailPath: '/rootfs',
      linkPath: `${jail.chrootDir}/rootfs`,
      writable: false,
      copyAllowed: false,
    });
    expect(byRole.data).toMatchObject({ hostPath: spec.dataDiskPath, writable: true, copyAllowed: false });
    expect(byRole.config).toMatchObject({ writable: false, copyAllowed: true });
    expect(byRole.kernel).toMatchObject({ jailPath: '/kernel', copyAllowed: true });
    expect(byRole.initrd).toMatchObject({ jailPath: '/initrd' });
    expect(jail.guestPaths).toEqual({
      kernel: '/kernel',
      initrd: '/initrd',
      rootfs: '/rootfs',
      data: '/data',
      config: '/config',
      log: '/firecracker.log',
    });
    expect(jail.outputFiles).toEqual([`${jail.chrootDir}/firecracker.log`]);
  });

  it('leaves out the initrd when the image has none', () => {
    const jail = planJail({ ...base, spec: { ...spec, initrdPath: undefined } });
    expect(jail.files.map((f) => f.role)).toEqual(['kernel', 'rootfs', 'data', 'config']);
    expect(jail.guestPaths).not.toHaveProperty('initrd');
  });

  it('passes cgroup, resource-limit and netns options before the separator', () => {
    const { args } = planJail({
      ...base,
      jailer: {
        ...base.jailer,
        cgroupVersion: 2,
        parentCgroup: 'moltage/vms',
        cgroups: ['cpu.max=50000 100000', 'memory.max=600M'],
        resourceLimits: ['no-file=1024'],
        netnsPath: '/var/run/netns/vms',
      },
    });
    const own = args.slice(0, args.indexOf('--'));
    expect(own.slice(10)).toEqual([
      '--cgroup-version',
      '2',
      '--parent-cgroup',
      'moltage/vms',
      '--cgroup',
      'cpu.max=50000 100000',
      '--cgroup',
      'memory.max=600M',
      '--resource-limit',
      'no-file=1024',
      '--netns',
      '/var/run/netns/vms',
    ]);
  });

  it.each([
    [{ jailId: 'vm_1' }, /jail id "vm_1"/],
    [{ jailId: 'x'.repeat(65) }, /jail id/],
    [{ jailer: { bin: '/j', uid: -1, gid: 0 } }, /uid must be a non-negative integer/],
    [{ jailer: { bin: '/j', uid: 1, gid: 1.5 } }, /gid must be a non-negative integer/],
    [{ jailer: { bin: '/j', uid: 1, gid: 1, resourceLimits: ['nproc=10'] } }, /fsize=<n> or no-file=<n>/],
    [{ jailer: { bin: '/j', uid: 1, gid: 1, parentCgroup: '../escape' } }, /relative path without/],
    [{ jailer: { bin: '/j', uid: 1, gid: 1, cgroups: ['cpu.max'] } }, /<file>=<value>/],
    [{ execFile: '/opt/kernel' }, /may not be named kernel/],
    [{ chrootBaseDir: `/${'d'.repeat(90)}` }, /longer than 107 bytes/],
  ])('refuses %o', (override, reason) => {
    expect(jailErrorMessage({ ...base, ...override } as PlanJailInput)).toMatch(reason);
  });
});

describe('jailOfSocket', () => {
  it('finds the jail of a socket planJail made, from the path alone', () => {
    const jail = planJail(base);
    expect(jailOfSocket(jail.apiSocketOnHost)).toEqual({ jailDir: jail.jailDir, jailId: 'vm-1' });
  });

  it('ignores sockets outside a jail', () => {
    expect(jailOfSocket('/tmp/firecracker/sockets/vm-1.socket')).toBeUndefined();
    expect(jailOfSocket('/srv/jailer/firecracker/vm_1/root/api.socket')).toBeUndefined();
    expect(jailOfSocket('relative/firecracker/vm-1/root/api.socket')).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import type { VmSpec } from '../../domain/driver.js';
import {
  BASE_BOOT_ARGS,
  buildBootPlan,
  FIRECRACKER_LIMITS,
  firecrackerInstanceId,
  type GuestPaths,
  validateSpec,
} from './boot-plan.js';
import { FirecrackerError } from './errors.js';

const spec: VmSpec = {
  vmId: 'vm-1',
  userId: 'o6_user',
  vcpu: 2,
  memMib: 512,
  kernelPath: '/img/vmlinux',
  initrdPath: '/img/initrd.img',
  kernelArgs: 'ip=10.0.1.2::10.0.1.1:255.255.255.0::eth0:off',
  baseRootfsPath: '/img/rootfs.ext4',
  dataDiskPath: '/vms/u1/data.ext4',
  configDiskPath: '/vms/u1/config.img',
  network: {
    mode: 'tap',
    tapName: 'fc-u1',
    mac: '06:00:0A:00:01:02',
    ip: '10.0.1.2',
    gatewayIp: '10.0.1.1',
    prefixLen: 24,
  },
  runDir: '/run/moltage/vm-1',
};

const paths: GuestPaths = {
  kernel: spec.kernelPath,
  initrd: '/img/initrd.img',
  rootfs: spec.baseRootfsPath,
  data: spec.dataDiskPath,
  config: spec.configDiskPath,
};

function badSpecMessage(s: VmSpec): string {
  try {
    validateSpec(s);
  } catch (err) {
    expect(err).toBeInstanceOf(FirecrackerError);
    expect((err as FirecrackerError).code).toBe('ORCH_FIRECRACKER_BAD_SPEC');
    return (err as Error).message;
  }
  throw new Error('validateSpec accepted the spec');
}

describe('buildBootPlan', () => {
  it('configures machine, kernel, drives and network before InstanceStart', () => {
    const plan = buildBootPlan({ spec, paths });
    expect(plan.map((c) => `${c.method} ${c.path}`)).toEqual([
      'PUT /machine-config',
      'PUT /boot-source',
      'PUT /drives/rootfs',
      'PUT /drives/data',
      'PUT /drives/config',
      'PUT /network-interfaces/eth0',
      'PUT /actions',
    ]);
    const body = (path: string) => plan.find((c) => c.path === path)?.body;
    expect(body('/machine-config')).toEqual({ vcpu_count: 2, mem_size_mib: 512, smt: false });
    expect(body('/boot-source')).toEqual({
      kernel_image_path: '/img/vmlinux',
      initrd_path: '/img/initrd.img',
      boot_args: `${BASE_BOOT_ARGS} ip=10.0.1.2::10.0.1.1:255.255.255.0::eth0:off`,
    });
    expect(body('/drives/rootfs')).toEqual({
      drive_id: 'rootfs',
      path_on_host: '/img/rootfs.ext4',
      is_root_device: false,
      is_read_only: true,
    });
    expect(body('/drives/data')).toMatchObject({ is_read_only: false, is_root_device: false });
    expect(body('/drives/config')).toMatchObject({ is_read_only: true, is_root_device: false });
    expect(body('/network-interfaces/eth0')).toEqual({
      iface_id: 'eth0',
      host_dev_name: 'fc-u1',
      guest_mac: '06:00:0a:00:01:02',
    });
    expect(body('/actions')).toEqual({ action_type: 'InstanceStart' });
  });

  it('makes the read-only rootfs the root device when there is no initrd', () => {
    const { initrd: _omit, ...noInitrd } = paths;
    const plan = buildBootPlan({ spec: { ...spec, initrdPath: undefined }, paths: noInitrd });
    expect(plan.find((c) => c.path === '/boot-source')?.body).not.toHaveProperty('initrd_path');
    expect(plan.find((c) => c.path === '/drives/rootfs')?.body).toMatchObject({
      is_root_device: true,
      is_read_only: true,
    });
  });

  it('sets up logger and metrics first, and MMDS after the interface it serves', () => {
    const plan = buildBootPlan({
      spec,
      paths: { ...paths, log: '/run/fc.log', metrics: '/run/fc.metrics' },
      logLevel: 'Warning',
      metadata: { hostname: 'u1', agent_token: 't0k3n' },
    });
    const order = plan.map((c) => c.path);
    expect(order.slice(0, 2)).toEqual(['/logger', '/metrics']);
    expect(order.indexOf('/mmds/config')).toBeGreaterThan(order.indexOf('/network-interfaces/eth0'));
    expect(order.indexOf('/mmds')).toBe(order.indexOf('/mmds/config') + 1);
    expect(order.at(-1)).toBe('/actions');
    expect(plan.find((c) => c.path === '/mmds/config')?.body).toEqual({
      version: 'V2',
      network_interfaces: ['eth0'],
    });
    expect(plan.find((c) => c.path === '/logger')?.body).toMatchObject({
      log_path: '/run/fc.log',
      level: 'Warning',
    });
  });

  it('refuses MMDS metadata larger than Firecracker stores', () => {
    const metadata = { blob: 'x'.repeat(FIRECRACKER_LIMITS.mmdsMaxBytes) };
    expect(() => buildBootPlan({ spec, paths, metadata })).toThrow(/MMDS metadata is \d+ bytes/);
  });
});

describe('validateSpec', () => {
  it('accepts a well-formed TAP spec', () => {
    expect(() => validateSpec(spec)).not.toThrow();
  });

  it('refuses user-mode networking and says what to use instead', () => {
    const message = badSpecMessage({
      ...spec,
      network: {
        mode: 'user',
        sshHostPort: 2222,
        agentHostPort: 8789,
        mac: '52:54:00:00:00:02',
        ip: '10.0.2.15',
        gatewayIp: '10.0.2.2',
        prefixLen: 24,
        netAddress: '10.0.2.0',
        dnsIp: '10.0.2.3',
        sshGuestPort: 22,
        agentGuestPort: 8789,
      },
    });
    expect(message).toMatch(/VM_NETWORK=user.*VM_NETWORK=tap or the qemu driver/);
  });

  it.each([
    [{ vcpu: 0 }, /vcpu must be an integer from 1 to 32/],
    [{ vcpu: 33 }, /vcpu must be an integer from 1 to 32/],
    [{ memMib: 0 }, /memMib must be a positive integer/],
    [{ kernelPath: 'vmlinux' }, /kernelPath must be an absolute path/],
    [{ dataDiskPath: '' }, /dataDiskPath must be an absolute path/],
    [{ kernelArgs: 'quiet\ninit=/bin/sh' }, /control characters/],
    [{ kernelArgs: 'x'.repeat(2000) }, /kernel command line is \d+ characters/],
  ])('refuses %o', (override, reason) => {
    expect(badSpecMessage({ ...spec, ...override } as VmSpec)).toMatch(reason);
  });

  it('refuses TAP names Linux cannot have and malformed MACs', () => {
    const net = spec.network as Extract<VmSpec['network'], { mode: 'tap' }>;
    expect(badSpecMessage({ ...spec, network: { ...net, tapName: 'a-very-long-tap-name' } })).toMatch(
      /TAP name/,
    );
    expect(badSpecMessage({ ...spec, network: { ...net, mac: '06:00:0a:00:01' } })).toMatch(/MAC address/);
  });
});

describe('firecrackerInstanceId', () => {
  it('keeps ids Firecracker accepts', () => {
    expect(firecrackerInstanceId('vm-1')).toBe('vm-1');
  });

  it('maps other ids to distinct valid ids, the same every time', () => {
    const a = firecrackerInstanceId('o6_wJs5_x');
    const b = firecrackerInstanceId('o6.wJs5.x');
    expect(a).toMatch(FIRECRACKER_LIMITS.instanceId);
    expect(b).toMatch(FIRECRACKER_LIMITS.instanceId);
    expect(a).not.toBe(b);
    expect(firecrackerInstanceId('o6_wJs5_x')).toBe(a);
    expect(a.startsWith('o6-wJs5-x-')).toBe(true);
    expect(firecrackerInstanceId('u'.repeat(100))).toMatch(FIRECRACKER_LIMITS.instanceId);
    expect(firecrackerInstanceId('___')).toMatch(/^vm-[0-9a-f]{12}$/);
  });
});

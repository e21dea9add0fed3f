import { createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import type { VmSpec } from '../../domain/driver.js';
import type {
  BootSource,
  Drive,
  LoggerConfig,
  MachineConfig,
  MetricsConfig,
  MmdsConfig,
  NetworkInterface,
} from './api-types.js';
import { FirecrackerError } from './errors.js';

/**
 * Kernel arguments every Firecracker guest gets before `spec.kernelArgs`: serial console on
 * ttyS0 (Firecracker's stdout), a guest reboot ends the Firecracker process (`reboot=k`), a panic
 * reboots after 1 s (so a crashed guest ends its process instead of hanging), no PCI probing.
 */
export const BASE_BOOT_ARGS = 'console=ttyS0 reboot=k panic=1 pci=off';

/**
 * Drive ids, attached in this order. Without a root device flag they appear in the guest as
 * /dev/vda (base rootfs), /dev/vdb (data), /dev/vdc (config); Firecracker puts a root device
 * first, so the order is the same when the rootfs is the root device.
 */
export const DRIVE_IDS = { rootfs: 'rootfs', data: 'data', config: 'config' } as const;
export const IFACE_ID = 'eth0';

/** Firecracker's own limits (v1.16.1). */
export const FIRECRACKER_LIMITS = {
  maxVcpus: 32,
  /** `--id`: alphanumerics and hyphens, 1 to 64 characters. */
  instanceId: /^[A-Za-z0-9-]{1,64}$/,
  /** IFNAMSIZ - 1. */
  tapNameMaxBytes: 15,
  /** x86_64 kernel command line including the terminating NUL and what Firecracker appends. */
  bootArgsMaxChars: 2000,
  /** sun_path holds 108 bytes including the NUL. */
  unixSocketPathMaxBytes: 107,
  /** Default size of the MMDS data store (bytes of JSON). */
  mmdsMaxBytes: 51200,
} as const;

export type FirecrackerLogLevel = NonNullable<LoggerConfig['level']>;

/** Paths of the guest's files as Firecracker sees them (inside the chroot under the jailer). */
export interface GuestPaths {
  kernel: string;
  initrd?: string;
  rootfs: string;
  data: string;
  config: string;
  /** Firecracker's own log file; PUT /logger is sent only with `logLevel`. */
  log?: string;
  /** Metrics file; PUT /metrics is sent only when set. */
  metrics?: string;
}

export interface BootPlanInput {
  spec: VmSpec;
  paths: GuestPaths;
  logLevel?: FirecrackerLogLevel;
  /** Per-VM data served to the guest by MMDS (V2) on eth0; never logged. */
  metadata?: Record<string, unknown>;
}

export interface ApiCall {
  method: 'PUT';
  path: string;
  body: unknown;
}

/**
 * A Firecracker `--id` for a VM id: the VM id itself when Firecracker accepts it, otherwise a
 * deterministic readable form (allowed characters, then a hash of the original) so that two VM
 * ids never share a jail or socket name.
 */
export function firecrackerInstanceId(vmId: string): string {
  if (FIRECRACKER_LIMITS.instanceId.test(vmId)) return vmId;
  const hash = createHash('sha256').update(vmId).digest('hex').slice(0, 12);
  const readable = vmId.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  return readable ? `${readable.slice(0, 51)}-${hash}` : `vm-${hash}`;
}

export function buildBootArgs(kernelArgs: string): string {
  return `${BASE_BOOT_ARGS} ${kernelArgs}`.trim().replace(/\s+/g, ' ');
}

function badSpec(vmId: string, message: string): FirecrackerError {
  return new FirecrackerError('ORCH_FIRECRACKER_BAD_SPEC', `VM ${vmId}: ${message}`);
}

/** Rejects a spec Firecracker cannot run, with a reason an operator can act on. Changes nothing. */
export function validateSpec(spec: VmSpec): void {
  const { vmId } = spec;
  if (!Number.isInteger(spec.vcpu) || spec.vcpu < 1 || spec.vcpu > FIRECRACKER_LIMITS.maxVcpus) {
    throw badSpec(vmId, `vcpu must be an integer from 1 to ${FIRECRACKER_LIMITS.maxVcpus}, got ${spec.vcpu}`);
  }
  if (!Number.isInteger(spec.memMib) || spec.memMib < 1) {
    throw badSpec(vmId, `memMib must be a positive integer, got ${spec.memMib}`);
  }
  if (spec.network.mode !== 'tap') {
    throw badSpec(
      vmId,
      `Firecracker has no user-mode networking (VM_NETWORK=${spec.network.mode}); use VM_NETWORK=tap or the qemu driver`,
    );
  }
  const { tapName, mac } = spec.network;
  if (!/^[A-Za-z0-9_.-]+$/.test(tapName) || Buffer.byteLength(tapName) > FIRECRACKER_LIMITS.tapNameMaxBytes) {
    throw badSpec(vmId, `TAP name ${JSON.stringify(tapName)} must be 1-15 characters of [A-Za-z0-9_.-]`);
  }
  if (!/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(mac)) {
    throw badSpec(vmId, `MAC address ${JSON.stringify(mac)} is not of the form aa:bb:cc:dd:ee:ff`);
  }
  const files: Array<[string, string | undefined]> = [
    ['kernelPath', spec.kernelPath],
    ['initrdPath', spec.initrdPath],
    ['baseRootfsPath', spec.baseRootfsPath],
    ['dataDiskPath', spec.dataDiskPath],
    ['configDiskPath', spec.configDiskPath],
    ['runDir', spec.runDir],
  ];
  for (const [name, value] of files) {
    if (value === undefined && name === 'initrdPath') continue;
    if (!value || !isAbsolute(value))
      throw badSpec(vmId, `${name} must be an absolute path, got ${JSON.stringify(value)}`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(spec.kernelArgs)) {
    throw badSpec(vmId, 'kernelArgs must not contain control characters or newlines');
  }
  const bootArgs = buildBootArgs(spec.kernelArgs);
  if (bootArgs.length > FIRECRACKER_LIMITS.bootArgsMaxChars) {
    throw badSpec(
      vmId,
      `kernel command line is ${bootArgs.length} characters, Firecracker takes at most ${FIRECRACKER_LIMITS.bootArgsMaxChars}`,
    );
  }
}

/**
 * The API calls that configure and boot one microVM, in the order Firecracker needs them:
 * logger and metrics first (so later errors are logged), machine, kernel, drives, network,
 * MMDS (needs its interface to exist), then InstanceStart.
 *
 * The base rootfs is always read-only. With an initrd (the image contract's initramfs mounts the
 * root itself) it is a plain drive; without one it is Firecracker's root device, which makes
 * Firecracker add `root=/dev/vda ro` to the command line.
 */
export function buildBootPlan(input: BootPlanInput): ApiCall[] {
  const { spec, paths } = input;
  if (spec.network.mode !== 'tap') throw badSpec(spec.vmId, 'Firecracker needs a TAP network');
  const calls: ApiCall[] = [];
  const put = (path: string, body: unknown) => calls.push({ method: 'PUT', path, body });

  if (input.logLevel && paths.log) {
    const logger: LoggerConfig = {
      log_path: paths.log,
      level: input.logLevel,
      show_level: true,
      show_log_origin: false,
    };
    put('/logger', logger);
  }
  if (paths.metrics) {
    const metrics: MetricsConfig = { metrics_path: paths.metrics };
    put('/metrics', metrics);
  }

  const machine: MachineConfig = { vcpu_count: spec.vcpu, mem_size_mib: spec.memMib, smt: false };
  put('/machine-config', machine);

  const boot: BootSource = {
    kernel_image_path: paths.kernel,
    ...(paths.initrd ? { initrd_path: paths.initrd } : {}),
    boot_args: buildBootArgs(spec.kernelArgs),
  };
  put('/boot-source', boot);

  const drives: Drive[] = [
    {
      drive_id: DRIVE_IDS.rootfs,
      path_on_host: paths.rootfs,
      is_root_device: !paths.initrd,
      is_read_only: true,
    },
    { drive_id: DRIVE_IDS.data, path_on_host: paths.data, is_root_device: false, is_read_only: false },
    { drive_id: DRIVE_IDS.config, path_on_host: paths.config, is_root_device: false, is_read_only: true },
  ];
  for (const drive of drives) put(`/drives/${drive.drive_id}`, drive);

  const iface: NetworkInterface = {
    iface_id: IFACE_ID,
    host_dev_name: spec.network.tapName,
    guest_mac: spec.network.mac.toLowerCase(),
  };
  put(`/network-interfaces/${IFACE_ID}`, iface);

  if (input.metadata) {
    const size = Buffer.byteLength(JSON.stringify(input.metadata));
    if (size > FIRECRACKER_LIMITS.mmdsMaxBytes) {
      throw badSpec(
        spec.vmId,
        `MMDS metadata is ${size} bytes, Firecracker stores at most ${FIRECRACKER_LIMITS.mmdsMaxBytes}`,
      );
    }
    const mmds: MmdsConfig = { version: 'V2', network_interfaces: [IFACE_ID] };
    put('/mmds/config', mmds);
    put('/mmds', input.metadata);
  }

  put('/actions', { action_type: 'InstanceStart' });
  return calls;
}

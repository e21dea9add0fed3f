import { chown, constants, copyFile, link, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join, sep } from 'node:path';
import type { VmSpec } from '../../domain/driver.js';
import { FIRECRACKER_LIMITS, type GuestPaths } from './boot-plan.js';
import { FirecrackerError } from './errors.js';

/**
 * Running Firecracker under its jailer (docs/jailer.md, v1.16.1): the jailer builds
 * `<chroot base>/<exec file name>/<id>/root`, copies the firecracker binary into it, enters it,
 * drops to `uid:gid` and execs firecracker with `--id <id>` plus everything after `--`.
 * Everything Firecracker opens through the API must already be inside that root: the driver
 * hard-links (or, for small files, copies) the kernel, initrd and disks there first, and API
 * bodies name them by their path inside the jail.
 */

export interface JailerOptions {
  /** The jailer binary (JAILER_BIN). */
  bin: string;
  /** Unprivileged user and group Firecracker runs as. */
  uid: number;
  gid: number;
  /** Where jails are built; default /srv/jailer. Must be on the same filesystem as the disks. */
  chrootBaseDir?: string;
  /** Network namespace to join (`--netns`), e.g. /var/run/netns/vms. */
  netnsPath?: string;
  cgroupVersion?: 1 | 2;
  parentCgroup?: string;
  /** `--cgroup <file>=<value>` entries, e.g. `cpu.max=100000 100000`. */
  cgroups?: string[];
  /** `--resource-limit <resource>=<value>` entries (`fsize`, `no-file`). */
  resourceLimits?: string[];
}

export const DEFAULT_CHROOT_BASE_DIR = '/srv/jailer';
/** The API socket, as Firecracker sees it inside the jail (the jail root is owned by uid:gid). */
export const JAIL_API_SOCKET = '/api.socket';

/** Where each guest file lives inside the jail. */
const JAIL_PATHS = {
  kernel: '/kernel',
  initrd: '/initrd',
  rootfs: '/rootfs',
  data: '/data',
  config: '/config',
  log: '/firecracker.log',
  metrics: '/firecracker.metrics',
} as const;

export type JailFileRole = 'kernel' | 'initrd' | 'rootfs' | 'data' | 'config';

export interface JailFile {
  role: JailFileRole;
  /** The original file. */
  hostPath: string;
  /** Its path as Firecracker sees it. */
  jailPath: string;
  /** Where the link or copy goes on the host. */
  linkPath: string;
  /** Firecracker opens it read-write: it is chowned to uid:gid. */
  writable: boolean;
  /**
   * Small files may be copied when a hard link is impossible (another filesystem). Disks may not:
   * a copied rootfs costs its full size per VM, and writes to a copied data disk would be lost.
   */
  copyAllowed: boolean;
}

export interface JailLayout {
  jailId: string;
  execFileName: string;
  /** `<chroot base>/<exec file name>/<id>`: removed as a whole when the VM ends. */
  jailDir: string;
  /** `<jailDir>/root`: Firecracker's `/`. */
  chrootDir: string;
  apiSocketInJail: string;
  apiSocketOnHost: string;
  files: JailFile[];
  /** Files Firecracker writes (log, metrics), created empty and chowned before it starts. */
  outputFiles: string[];
  /** Paths for the boot plan, inside the jail. */
  guestPaths: GuestPaths;
  command: string;
  args: string[];
}

export interface PlanJailInput {
  jailer: JailerOptions;
  /** The firecracker binary, already resolved with realpath (the jailer names the jail after it). */
  execFile: string;
  /** The chroot base dir, already resolved with realpath (the jailer canonicalizes it). */
  chrootBaseDir: string;
  /** Firecracker instance id (see firecrackerInstanceId). */
  jailId: string;
  spec: VmSpec;
  withLog?: boolean;
  withMetrics?: boolean;
}

function jailError(message: string, cause?: unknown): FirecrackerError {
  return new FirecrackerError('ORCH_FIRECRACKER_JAIL', message, { cause });
}

const RESOURCE_LIMIT = /^(fsize|no-file)=\d+$/;
const CGROUP_ENTRY = /^[A-Za-z0-9_.-]+=.+$/;

/** Pure: the jailer's argv and every path of one VM's jail. Throws on arguments the jailer would refuse. */
export function planJail(input: PlanJailInput): JailLayout {
  const { jailer, execFile, chrootBaseDir, jailId, spec } = input;
  if (!FIRECRACKER_LIMITS.instanceId.test(jailId)) {
    throw jailError(`jail id ${JSON.stringify(jailId)} must be 1-64 characters of [A-Za-z0-9-]`);
  }
  for (const [name, value] of [
    ['uid', jailer.uid],
    ['gid', jailer.gid],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw jailError(`jailer ${name} must be a non-negative integer, got ${value}`);
    }
  }
  if (!isAbsolute(execFile)) throw jailError(`firecracker binary path must be absolute, got ${execFile}`);
  if (!isAbsolute(chrootBaseDir)) throw jailError(`chroot base dir must be absolute, got ${chrootBaseDir}`);
  if (jailer.parentCgroup !== undefined) {
    const parts = jailer.parentCgroup.split('/');
    if (jailer.parentCgroup.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
      throw jailError(
        `parent cgroup ${JSON.stringify(jailer.parentCgroup)} must be a relative path without . or ..`,
      );
    }
  }
  for (const entry of jailer.cgroups ?? []) {
    const file = entry.split('=')[0] ?? '';
    if (!CGROUP_ENTRY.test(entry) || file === '.' || file === '..') {
      throw jailError(`cgroup setting ${JSON.stringify(entry)} must look like <file>=<value>`);
    }
  }
  for (const entry of jailer.resourceLimits ?? []) {
    if (!RESOURCE_LIMIT.test(entry)) {
      throw jailError(`resource limit ${JSON.stringify(entry)} must be fsize=<n> or no-file=<n>`);
    }
  }
  if (jailer.netnsPath !== undefined && !isAbsolute(jailer.netnsPath)) {
    throw jailError(`network namespace path must be absolute, got ${jailer.netnsPath}`);
  }

  const execFileName = basename(execFile);
  if (
    Object.values(JAIL_PATHS).some((p) => p.slice(1) === execFileName) ||
    execFileName === JAIL_API_SOCKET.slice(1)
  ) {
    throw jailError(
      `the firecracker binary may not be named ${execFileName}: the jail uses that name for a guest file`,
    );
  }
  const jailDir = join(chrootBaseDir, execFileName, jailId);
  const chrootDir = join(jailDir, 'root');
  const inChroot = (jailPath: string) => join(chrootDir, jailPath);
  const apiSocketOnHost = inChroot(JAIL_API_SOCKET);
  if (Buffer.byteLength(apiSocketOnHost) > FIRECRACKER_LIMITS.unixSocketPathMaxBytes) {
    throw jailError(
      `API socket path ${apiSocketOnHost} is longer than ${FIRECRACKER_LIMITS.unixSocketPathMaxBytes} bytes; use a shorter chroot base dir`,
    );
  }

  const files: JailFile[] = [];
  const add = (role: JailFileRole, hostPath: string, writable: boolean, copyAllowed: boolean) =>
    files.push({
      role,
      hostPath,
      jailPath: JAIL_PATHS[role],
      linkPath: inChroot(JAIL_PATHS[role]),
      writable,
      copyAllowed,
    });
  add('kernel', spec.kernelPath, false, true);
  if (spec.initrdPath) add('initrd', spec.initrdPath, false, true);
  add('rootfs', spec.baseRootfsPath, false, false);
  add('data', spec.dataDiskPath, true, false);
  add('config', spec.configDiskPath, false, true);

  const outputFiles: string[] = [];
  if (input.withLog) outputFiles.push(inChroot(JAIL_PATHS.log));
  if (input.withMetrics) outputFiles.push(inChroot(JAIL_PATHS.metrics));

  const args = [
    '--id',
    jailId,
    '--exec-file',
    execFile,
    '--uid',
    String(jailer.uid),
    '--gid',
    String(jailer.gid),
    '--chroot-base-dir',
    chrootBaseDir,
  ];
  if (jailer.cgroupVersion !== undefined) args.push('--cgroup-version', String(jailer.cgroupVersion));
  if (jailer.parentCgroup !== undefined) args.push('--parent-cgroup', jailer.parentCgroup);
  for (const cg of jailer.cgroups ?? []) args.push('--cgroup', cg);
  for (const rl of jailer.resourceLimits ?? []) args.push('--resource-limit', rl);
  if (jailer.netnsPath !== undefined) args.push('--netns', jailer.netnsPath);
  // Firecracker's own arguments; the jailer passes --id itself.
  args.push('--', '--api-sock', JAIL_API_SOCKET);

  return {
    jailId,
    execFileName,
    jailDir,
    chrootDir,
    apiSocketInJail: JAIL_API_SOCKET,
    apiSocketOnHost,
    files,
    outputFiles,
    guestPaths: {
      kernel: JAIL_PATHS.kernel,
      ...(spec.initrdPath ? { initrd: JAIL_PATHS.initrd } : {}),
      rootfs: JAIL_PATHS.rootfs,
      data: JAIL_PATHS.data,
      config: JAIL_PATHS.config,
      ...(input.withLog ? { log: JAIL_PATHS.log } : {}),
      ...(input.withMetrics ? { metrics: JAIL_PATHS.metrics } : {}),
    },
    command: jailer.bin,
    args,
  };
}

/**
 * Pure: the jail of a control socket that `planJail` produced
 * (`<base>/<exec name>/<id>/root/api.socket`), or undefined for any other socket. Lets
 * stop/kill/status find the jail again after an orchestrator restart, from the handle alone.
 */
export function jailOfSocket(socketPath: string): { jailDir: string; jailId: string } | undefined {
  if (!isAbsolute(socketPath)) return undefined;
  const parts = socketPath.split(sep);
  if (parts.length < 6) return undefined;
  const [execName, jailId, root, socket] = parts.slice(-4) as [string, string, string, string];
  if (socket !== JAIL_API_SOCKET.slice(1) || root !== 'root') return undefined;
  if (!FIRECRACKER_LIMITS.instanceId.test(jailId) || execName === '' || execName.startsWith('.'))
    return undefined;
  return { jailDir: parts.slice(0, -2).join(sep), jailId };
}

function readableBy(st: { uid: number; gid: number; mode: number }, uid: number, gid: number): boolean {
  if (uid === 0) return true;
  if (st.uid === uid) return (st.mode & 0o400) !== 0;
  if (st.gid === gid) return (st.mode & 0o040) !== 0;
  return (st.mode & 0o004) !== 0;
}

const CROSS_DEVICE = new Set(['EXDEV', 'EPERM', 'EMLINK']);

/**
 * Builds the jail on disk: a fresh `<jailDir>/root` with every guest file hard-linked (small
 * files copied when linking is impossible) and output files created, owned by uid:gid where
 * Firecracker must write. Read-only shared files are never chowned (a hard link shares the
 * owner with the original). On failure the jail is removed before the error is thrown.
 */
export async function stageJail(layout: JailLayout, owner: { uid: number; gid: number }): Promise<void> {
  await rm(layout.jailDir, { recursive: true, force: true });
  try {
    await mkdir(layout.chrootDir, { recursive: true, mode: 0o755 });
    for (const file of layout.files) {
      let st: Awaited<ReturnType<typeof stat>>;
      try {
        st = await stat(file.hostPath);
      } catch (err) {
        throw jailError(`${file.role} ${file.hostPath} cannot be read: ${(err as Error).message}`, err);
      }
      if (!st.isFile()) throw jailError(`${file.role} ${file.hostPath} is not a regular file`);
      let copied = false;
      try {
        await link(file.hostPath, file.linkPath);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!CROSS_DEVICE.has(code) || !file.copyAllowed) {
          throw jailError(
            `cannot hard-link ${file.role} ${file.hostPath} into ${layout.chrootDir} (${code || (err as Error).message})` +
              (CROSS_DEVICE.has(code)
                ? '; put the jailer chroot base dir on the same filesystem as the VM disks'
                : ''),
            err,
          );
        }
        await copyFile(file.hostPath, file.linkPath, constants.COPYFILE_FICLONE);
        copied = true;
      }
      if (file.writable || copied) {
        await chown(file.linkPath, owner.uid, owner.gid);
      } else if (!readableBy(st, owner.uid, owner.gid)) {
        throw jailError(
          `${file.role} ${file.hostPath} is not readable by uid ${owner.uid}; make it world-readable (it is shared, so it is not chowned)`,
        );
      }
    }
    for (const out of layout.outputFiles) {
      await writeFile(out, '', { mode: 0o600 });
      await chown(out, owner.uid, owner.gid);
    }
  } catch (err) {
    await rm(layout.jailDir, { recursive: true, force: true });
    if (err instanceof FirecrackerError) throw err;
    throw jailError(`building the jail ${layout.jailDir} failed: ${(err as Error).message}`, err);
  }
}

/** Removes a jail; hard links go, the original files stay. */
export async function removeJail(jailDir: string): Promise<void> {
  await rm(jailDir, { recursive: true, force: true });
}

/**
 * Shared by the Firecracker driver tests: paths of the fake firecracker/jailer, throw-away guest
 * files, a VM spec, the fake's request record, and a /proc scan to prove nothing leaked.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VmSpec } from '../../src/domain/driver.js';

const here = dirname(fileURLToPath(import.meta.url));
export const FAKE_FIRECRACKER = join(here, 'fake-firecracker.mjs');
export const FAKE_JAILER = join(here, 'fake-jailer.sh');
export const API_DESCRIPTION = join(here, 'firecracker-api.v1.16.1.json');

export interface GuestFiles {
  dir: string;
  kernel: string;
  initrd: string;
  rootfs: string;
  data: string;
  config: string;
  runDir: string;
  record: string;
  cleanup(): Promise<void>;
}

/** Small stand-ins for a kernel, initrd and disks in a fresh directory under /tmp (short socket paths). */
export async function makeGuestFiles(): Promise<GuestFiles> {
  const dir = await mkdtemp('/tmp/fc-');
  const file = async (name: string, content: string) => {
    const path = join(dir, name);
    await writeFile(path, content, { mode: 0o644 });
    return path;
  };
  return {
    dir,
    kernel: await file('vmlinux', 'ELF kernel stand-in'),
    initrd: await file('initrd.img', 'initramfs stand-in'),
    rootfs: await file('rootfs.ext4', 'base rootfs stand-in'),
    data: await file('data.ext4', 'user data disk stand-in'),
    config: await file('config.img', 'per-VM config disk stand-in'),
    runDir: join(dir, 'run'),
    record: join(dir, 'requests.jsonl'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export function tapSpec(files: GuestFiles, overrides: Partial<VmSpec> = {}): VmSpec {
  return {
    vmId: 'vm-test-1',
    userId: 'o6_test_user',
    vcpu: 2,
    memMib: 256,
    kernelPath: files.kernel,
    initrdPath: files.initrd,
    kernelArgs: 'ip=10.0.1.2::10.0.1.1:255.255.255.0:vm-test-1:eth0:off moltage.config=/dev/vdc',
    baseRootfsPath: files.rootfs,
    dataDiskPath: files.data,
    configDiskPath: files.config,
    network: {
      mode: 'tap',
      tapName: 'fc-tap0',
      mac: '06:00:0a:00:01:02',
      ip: '10.0.1.2',
      gatewayIp: '10.0.1.1',
      prefixLen: 24,
    },
    runDir: files.runDir,
    ...overrides,
  };
}

export interface RecordedRequest {
  method: string;
  path: string;
  body?: unknown;
  status: number;
  fault_message?: string;
}

export async function readRecord(path: string): Promise<RecordedRequest[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as RecordedRequest);
}

/** Pids of live processes whose command line contains `text` (to prove a test leaked none). */
export async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      if (cmdline.includes(text)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** Whether `pid` runs (a zombie waiting to be reaped does not count). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

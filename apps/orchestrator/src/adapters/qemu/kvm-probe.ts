import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { dirname } from 'node:path';

export interface KvmProbeResult {
  /** KVM booted a guest kernel to its first panic (= it really runs guests). */
  usable: boolean;
  /** /dev/kvm exists and is read/write for us. */
  device: boolean;
  reason: string;
  probedAt: string;
  key: string;
}

async function kvmDeviceOk(): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Boots `kernelPath` under `-accel kvm` with no root device: a working KVM reaches the
 * kernel's "Unable to mount root fs" panic within the timeout and QEMU exits (-no-reboot).
 * On hosts whose nested hypervisor cannot run stock kernels the guest hangs instead.
 */
export async function bootProbe(qemuBin: string, kernelPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(
      qemuBin,
      [
        '-accel',
        'kvm',
        '-cpu',
        'host',
        '-m',
        '128',
        '-nodefaults',
        '-no-user-config',
        '-display',
        'none',
        '-no-reboot',
        '-serial',
        'stdio',
        '-kernel',
        kernelPath,
        '-append',
        'console=ttyS0 panic=-1 loglevel=4',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (out.includes('Kernel panic')) finish(true);
    });
    child.stderr.on('data', () => {});
    child.on('error', () => finish(false));
    child.on('exit', () => finish(out.includes('Kernel panic')));
  });
}

/**
 * Whether KVM can run guests here, probed once per (host kernel, QEMU, guest kernel) and
 * cached in `cacheFile` so later starts do not pay for the probe.
 */
export async function probeKvm(opts: {
  qemuBin: string;
  kernelPath: string;
  cacheFile: string;
  timeoutMs?: number;
}): Promise<KvmProbeResult> {
  const kst = await stat(opts.kernelPath).catch(() => undefined);
  const key = `${release()}|${opts.qemuBin}|${opts.kernelPath}|${kst?.size ?? 0}|${kst?.mtimeMs ?? 0}`;
  try {
    const cached = JSON.parse(await readFile(opts.cacheFile, 'utf8')) as KvmProbeResult;
    if (cached.key === key) return cached;
  } catch {
    // no cache yet
  }
  const device = await kvmDeviceOk();
  let result: KvmProbeResult;
  if (!device) {
    result = {
      usable: false,
      device,
      reason: '/dev/kvm is missing or not accessible',
      probedAt: new Date().toISOString(),
      key,
    };
  } else if (!kst) {
    // Without a kernel there is nothing to probe with; do not cache the answer.
    return {
      usable: false,
      device,
      reason: `no kernel at ${opts.kernelPath} to probe KVM with`,
      probedAt: new Date().toISOString(),
      key,
    };
  } else {
    const usable = await bootProbe(opts.qemuBin, opts.kernelPath, opts.timeoutMs ?? 10_000);
    result = {
      usable,
      device,
      reason: usable
        ? 'a probe guest booted under KVM'
        : 'a probe guest did not boot under KVM (QEMU failed or the guest hung: nested hypervisor?)',
      probedAt: new Date().toISOString(),
      key,
    };
  }
  await mkdir(dirname(opts.cacheFile), { recursive: true });
  await writeFile(opts.cacheFile, `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

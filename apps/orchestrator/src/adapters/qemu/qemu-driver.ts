import { spawn } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@moltage/core';
import type { DriverAvailability, VmDriver, VmHandle, VmProcessState, VmSpec } from '../../domain/driver.js';
import { DriverError, VmStartError } from '../../errors.js';
import { run } from '../exec.js';
import { cmdlineOf, waitForExit } from '../process.js';
import { type KvmProbeResult, probeKvm } from './kvm-probe.js';
import { qmpCommand } from './qmp.js';

export interface QemuDriverOptions {
  qemuBin: string;
  /** Kernel used for the one-time KVM probe boot. */
  probeKernelPath: string;
  /** Where the probe's answer is cached. */
  probeCacheFile: string;
  /** Force an accelerator instead of probing. */
  accel?: 'auto' | 'kvm' | 'tcg';
  /**
   * TCG translation cache per VM in MiB (QEMU_TCG_TB_MIB; 0 = QEMU's default of 1 GiB). Unset:
   * what the image asks for (`VmSpec.tcgTbMib`), else 32, which bounds idle RSS under TCG.
   */
  tcgTbMib?: number;
  logger: Logger;
}

export type QemuAccel = 'kvm' | 'tcg';

/**
 * TCG translation cache in MiB for a VM: the operator's QEMU_TCG_TB_MIB, else what the image
 * asks for, else 32 (bounds idle RSS). 0 = QEMU's own default (1 GiB).
 */
export function tcgTbMibFor(operatorMib: number | undefined, imageMib: number | undefined): number {
  return operatorMib ?? imageMib ?? 32;
}

/** The QEMU command line for a VM (pure; exported for tests and `moltage doctor`). */
export function qemuArgs(
  spec: VmSpec,
  accel: QemuAccel,
  files: { qmpSocket: string; pidFile: string; consoleLog: string },
  opts: { tcgTbMib?: number } = {},
): string[] {
  const args = [
    '-name',
    `moltage-${spec.vmId},process=moltage-${spec.vmId}`,
    '-accel',
    accel === 'tcg' && opts.tcgTbMib ? `tcg,tb-size=${opts.tcgTbMib}` : accel,
    '-cpu',
    accel === 'kvm' ? 'host' : 'max',
    '-m',
    String(spec.memMib),
    '-smp',
    String(spec.vcpu),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-serial',
    `file:${files.consoleLog}`,
    '-kernel',
    spec.kernelPath,
    '-append',
    spec.kernelArgs,
  ];
  if (spec.initrdPath) args.push('-initrd', spec.initrdPath);
  // Order matters: the guest sees vda = base rootfs, vdb = data disk, vdc = config disk.
  const dataFormat = spec.dataDiskPath.endsWith('.qcow2') ? 'qcow2' : 'raw';
  args.push(
    '-drive',
    `id=root,file=${spec.baseRootfsPath},format=raw,if=none,readonly=on,snapshot=off`,
    '-device',
    'virtio-blk-pci,drive=root',
    '-drive',
    `id=data,file=${spec.dataDiskPath},format=${dataFormat},if=none,cache=writeback,discard=unmap`,
    '-device',
    'virtio-blk-pci,drive=data',
    '-drive',
    `id=cfg,file=${spec.configDiskPath},format=raw,if=none,readonly=on`,
    '-device',
    'virtio-blk-pci,drive=cfg',
  );
  const net = spec.network;
  if (net.mode === 'user') {
    const fwd = [
      `hostfwd=tcp:127.0.0.1:${net.sshHostPort}-${net.ip}:${net.sshGuestPort}`,
      `hostfwd=tcp:127.0.0.1:${net.agentHostPort}-${net.ip}:${net.agentGuestPort}`,
    ];
    args.push(
      '-netdev',
      `user,id=net0,net=${net.netAddress}/${net.prefixLen},host=${net.gatewayIp},dns=${net.dnsIp},${fwd.join(',')}`,
      '-device',
      `virtio-net-pci,netdev=net0,mac=${net.mac},romfile=`,
    );
  } else {
    args.push(
      '-netdev',
      `tap,id=net0,ifname=${net.tapName},script=no,downscript=no`,
      '-device',
      `virtio-net-pci,netdev=net0,mac=${net.mac},romfile=`,
    );
  }
  args.push('-qmp', `unix:${files.qmpSocket},server=on,wait=off`, '-pidfile', files.pidFile, '-daemonize');
  return args;
}

/** Boots VMs with qemu-system-x86_64, KVM when a probe boot proves it works, else TCG. */
export class QemuDriver implements VmDriver {
  readonly name = 'qemu' as const;
  private availabilityCache?: Promise<DriverAvailability>;
  private accel: QemuAccel = 'tcg';
  private kvm?: KvmProbeResult;

  constructor(private readonly opts: QemuDriverOptions) {}

  availability(): Promise<DriverAvailability> {
    this.availabilityCache ??= this.detect();
    return this.availabilityCache;
  }

  private async detect(): Promise<DriverAvailability> {
    let version: string;
    try {
      version =
        (await run(this.opts.qemuBin, ['--version'], { timeoutMs: 10_000 })).stdout
          .toString()
          .split('\n')[0] ?? '';
    } catch (err) {
      // Do not cache a missing binary forever: an operator may install it.
      this.availabilityCache = undefined;
      return {
        ok: false,
        reason: `${this.opts.qemuBin} is not usable (apt-get install qemu-system-x86): ${(err as Error).message}`,
      };
    }
    const forced = this.opts.accel ?? 'auto';
    if (forced === 'auto') {
      this.kvm = await probeKvm({
        qemuBin: this.opts.qemuBin,
        kernelPath: this.opts.probeKernelPath,
        cacheFile: this.opts.probeCacheFile,
      });
      this.accel = this.kvm.usable ? 'kvm' : 'tcg';
      if (!this.kvm.usable)
        this.opts.logger.warn(
          { kvm: this.kvm.reason },
          'KVM is not usable; QEMU runs guests with TCG (software emulation)',
        );
    } else {
      this.accel = forced;
    }
    return { ok: true, details: { accel: this.accel, qemu: version, kvm: this.kvm ?? null } };
  }

  async start(spec: VmSpec): Promise<VmHandle> {
    const avail = await this.availability();
    if (!avail.ok) throw new DriverError(avail.reason ?? 'qemu is not available');
    await mkdir(spec.runDir, { recursive: true, mode: 0o700 });
    const files = {
      qmpSocket: join(spec.runDir, 'qmp.sock'),
      pidFile: join(spec.runDir, 'qemu.pid'),
      consoleLog: join(spec.runDir, 'console.log'),
    };
    await rm(files.qmpSocket, { force: true });
    await rm(files.pidFile, { force: true });
    const args = qemuArgs(spec, this.accel, files, {
      tcgTbMib: tcgTbMibFor(this.opts.tcgTbMib, spec.tcgTbMib),
    });
    // -daemonize: QEMU reports set-up errors on stderr and exits non-zero; on success the
    // parent exits 0 and the VM lives on in its own session, surviving our own restart.
    const stderr = await new Promise<string>((resolve, reject) => {
      const child = spawn(this.opts.qemuBin, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      child.on('error', (e) => reject(new VmStartError(`cannot run ${this.opts.qemuBin}: ${e.message}`, e)));
      child.on('exit', (code) => {
        if (code === 0) resolve(err);
        else
          reject(
            new VmStartError(
              `qemu failed to start VM ${spec.vmId}: ${err.trim().split('\n').slice(-3).join(' | ') || `exit ${code}`}`,
            ),
          );
      });
    });
    if (stderr.trim()) this.opts.logger.debug({ vmId: spec.vmId, stderr: stderr.trim() }, 'qemu stderr');
    const pid = Number((await readFile(files.pidFile, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0)
      throw new VmStartError(`qemu started VM ${spec.vmId} but wrote no pid file`);
    return {
      driver: 'qemu',
      pid,
      controlSocket: files.qmpSocket,
      runDir: spec.runDir,
      consoleLog: files.consoleLog,
    };
  }

  /** True when `handle.pid` is still the QEMU we started (pid reuse is checked via argv). */
  private async ours(handle: VmHandle): Promise<boolean> {
    const args = await cmdlineOf(handle.pid);
    return !!args?.some((a) => a.includes(handle.controlSocket));
  }

  async status(handle: VmHandle): Promise<VmProcessState> {
    if (!(await this.ours(handle))) return 'stopped';
    try {
      const st = (await qmpCommand(handle.controlSocket, 'query-status')) as { status?: string };
      if (st.status === 'running') return 'running';
      if (st.status === 'shutdown' || st.status === 'guest-panicked' || st.status === 'internal-error')
        return 'stopped';
      return 'paused';
    } catch {
      // Alive but its monitor does not answer: not a VM we can manage.
      return 'paused';
    }
  }

  async stop(handle: VmHandle, opts: { timeoutMs?: number } = {}): Promise<void> {
    if (await this.ours(handle)) {
      try {
        await qmpCommand(handle.controlSocket, 'system_powerdown');
      } catch (err) {
        this.opts.logger.debug({ pid: handle.pid, err: (err as Error).message }, 'system_powerdown failed');
      }
      const gone = await waitForExit(handle.pid, opts.timeoutMs ?? 10_000);
      if (!gone) {
        this.opts.logger.warn({ pid: handle.pid }, 'guest did not power off in time; killing QEMU');
        await this.kill(handle);
        return;
      }
    }
    await this.cleanup(handle);
  }

  async kill(handle: VmHandle): Promise<void> {
    if (await this.ours(handle)) {
      await qmpCommand(handle.controlSocket, 'quit', undefined, 1000).catch(() => {});
      if (!(await waitForExit(handle.pid, 2000))) {
        try {
          process.kill(handle.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        if (!(await waitForExit(handle.pid, 5000)))
          throw new DriverError(`QEMU pid ${handle.pid} survived SIGKILL`);
      }
    }
    await this.cleanup(handle);
  }

  private async cleanup(handle: VmHandle): Promise<void> {
    await rm(handle.controlSocket, { force: true });
    await rm(join(handle.runDir, 'qemu.pid'), { force: true });
  }
}

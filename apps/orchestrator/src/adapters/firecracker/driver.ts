import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:fs';
import { access, appendFile, mkdir, open, realpath, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Logger } from '@moltage/core';
import type { DriverAvailability, VmDriver, VmHandle, VmProcessState, VmSpec } from '../../domain/driver.js';
import { FirecrackerClient } from './api-client.js';
import {
  type ApiCall,
  buildBootPlan,
  FIRECRACKER_LIMITS,
  type FirecrackerLogLevel,
  firecrackerInstanceId,
  type GuestPaths,
  validateSpec,
} from './boot-plan.js';
import { FirecrackerApiError, FirecrackerError } from './errors.js';
import {
  DEFAULT_CHROOT_BASE_DIR,
  JAIL_API_SOCKET,
  type JailerOptions,
  type JailLayout,
  jailOfSocket,
  planJail,
  removeJail,
  stageJail,
} from './jailer.js';
import { argValue, liveProcessArgs, signalProcess, tailFile, waitForExit } from './process.js';

const execFileAsync = promisify(execFile);

export interface FirecrackerDriverOptions {
  /** FIRECRACKER_BIN. */
  firecrackerBin: string;
  /** Run Firecracker under the jailer (JAILER_BIN is set). */
  jailer?: JailerOptions;
  /** Directory for API sockets without the jailer (SOCKET_DIR); default: each VM's runDir. */
  socketDir?: string;
  logger?: Logger;
  /** When set, Firecracker logs at this level to `<runDir>/firecracker.log` (PUT /logger). */
  logLevel?: FirecrackerLogLevel;
  /** Write Firecracker metrics to `<runDir>/firecracker.metrics` (PUT /metrics). */
  metrics?: boolean;
  /**
   * Per-VM data for the guest through MMDS V2 on eth0 (http://169.254.169.254/). Undefined:
   * no MMDS. The data is never logged.
   */
  metadata?: (
    spec: VmSpec,
  ) => Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined>;
  /**
   * Environment of the firecracker/jailer process. Default: PATH only, so the orchestrator's
   * secrets never reach it.
   */
  env?: NodeJS.ProcessEnv;
  /** Default /dev/kvm. */
  kvmDevice?: string;
  /**
   * Whether KVM can really run a guest (e.g. the qemu driver's cached probe boot). /dev/kvm can
   * open fine on hosts whose nested hypervisor hangs every guest; only a boot tells.
   */
  kvmProbe?: () => Promise<DriverAvailability>;
  /** Bound on one API call; default 5000. */
  apiTimeoutMs?: number;
  /** Bound on the API socket appearing after spawn; default 10000. */
  socketTimeoutMs?: number;
  /** Default stop() grace period before SIGKILL; default 10000. */
  stopTimeoutMs?: number;
}

/** Files the driver keeps in a VM's runDir. */
export const RUN_FILES = {
  consoleLog: 'console.log',
  pid: 'firecracker.pid',
  log: 'firecracker.log',
  metrics: 'firecracker.metrics',
} as const;

const KILL_TIMEOUT_MS = 5000;
const VERSION_TIMEOUT_MS = 5000;
const SOCKET_POLL_MS = 20;

interface Launch {
  command: string;
  args: string[];
  socketPath: string;
  guestPaths: GuestPaths;
  jail?: JailLayout;
}

export function createFirecrackerDriver(opts: FirecrackerDriverOptions): VmDriver {
  return new FirecrackerDriver(opts);
}

class FirecrackerDriver implements VmDriver {
  readonly name = 'firecracker' as const;
  private readonly opts: FirecrackerDriverOptions;
  private readonly apiTimeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;
  private availabilityResult: Promise<DriverAvailability> | undefined;

  constructor(opts: FirecrackerDriverOptions) {
    this.opts = opts;
    this.apiTimeoutMs = opts.apiTimeoutMs ?? 5000;
    this.env = opts.env ?? {
      PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    };
  }

  availability(): Promise<DriverAvailability> {
    this.availabilityResult ??= this.checkAvailability();
    return this.availabilityResult;
  }

  async start(spec: VmSpec): Promise<VmHandle> {
    validateSpec(spec);
    const log = this.opts.logger?.child({ vmId: spec.vmId });
    const instanceId = firecrackerInstanceId(spec.vmId);
    await mkdir(spec.runDir, { recursive: true });
    const consoleLog = join(spec.runDir, RUN_FILES.consoleLog);
    const metadata = this.opts.metadata ? await this.opts.metadata(spec) : undefined;

    const launch = this.opts.jailer
      ? await this.planJailed(spec, instanceId, this.opts.jailer)
      : await this.planDirect(spec, instanceId);
    const plan = buildBootPlan({
      spec,
      paths: launch.guestPaths,
      ...(this.opts.logLevel ? { logLevel: this.opts.logLevel } : {}),
      ...(metadata ? { metadata } : {}),
    });
    await this.claimSocket(launch.socketPath, spec.vmId);
    if (launch.jail && this.opts.jailer) await stageJail(launch.jail, this.opts.jailer);

    let child: ChildProcess;
    try {
      child = await this.spawnProcess(launch, consoleLog);
    } catch (err) {
      if (launch.jail) await removeJail(launch.jail.jailDir);
      throw err;
    }
    const pid = child.pid as number;
    const client = new FirecrackerClient({ socketPath: launch.socketPath, timeoutMs: this.apiTimeoutMs });
    let step = 'waiting for the API socket';
    try {
      await this.waitForApi(client, child, consoleLog);
      for (const call of plan) {
        step = describeCall(call);
        await client.request(call.method, call.path, call.body);
      }
      step = 'GET / after InstanceStart';
      const info = await client.describeInstance();
      if (info.state !== 'Running') {
        throw new FirecrackerError(
          'ORCH_FIRECRACKER_START',
          `VM ${spec.vmId}: Firecracker reports "${info.state}" after InstanceStart`,
        );
      }
      await writeFile(join(spec.runDir, RUN_FILES.pid), `${pid}\n`);
    } catch (err) {
      // A broken connection usually means the process died: give its exit a moment to arrive,
      // and read how it ended before abortStart kills what is left.
      if (err instanceof FirecrackerApiError && err.code === 'ORCH_FIRECRACKER_API_UNREACHABLE') {
        await exitOrTimeout(child, 500);
      }
      const died = hasExited(child) ? `; ${describeExit(child)}${await consoleTail(consoleLog)}` : '';
      await this.abortStart(child, launch, spec.runDir);
      const failure = startFailure(spec, step, err, died);
      log?.warn(
        { err: failure.message, code: failure.code },
        'firecracker start failed; process and socket removed',
      );
      throw failure;
    }
    log?.info({ pid, socket: launch.socketPath, jailed: Boolean(launch.jail) }, 'firecracker VM started');
    return {
      driver: 'firecracker',
      pid,
      controlSocket: launch.socketPath,
      runDir: spec.runDir,
      consoleLog,
    };
  }

  async stop(handle: VmHandle, opts: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? this.opts.stopTimeoutMs ?? 10_000;
    const log = this.opts.logger?.child({ pid: handle.pid });
    if (await this.isOurs(handle)) {
      const client = new FirecrackerClient({
        socketPath: handle.controlSocket,
        timeoutMs: Math.max(100, Math.min(this.apiTimeoutMs, timeoutMs)),
      });
      let asked = false;
      try {
        await client.action('SendCtrlAltDel');
        asked = true;
      } catch (err) {
        log?.warn({ err: (err as Error).message }, 'could not ask the guest to shut down; killing it');
      }
      const exited = asked && (await waitForExit(handle.pid, timeoutMs));
      if (!exited) {
        if (asked) log?.warn({ timeoutMs }, 'guest did not power off in time; killing it');
        await this.killProcess(handle);
      }
    }
    await this.cleanup(handle);
  }

  async kill(handle: VmHandle): Promise<void> {
    if (await this.isOurs(handle)) await this.killProcess(handle);
    await this.cleanup(handle);
  }

  async status(handle: VmHandle): Promise<VmProcessState> {
    if (!(await this.isOurs(handle))) return 'stopped';
    const client = new FirecrackerClient({ socketPath: handle.controlSocket, timeoutMs: this.apiTimeoutMs });
    try {
      const info = await client.describeInstance();
      if (info.state === 'Running') return 'running';
      if (info.state === 'Paused') return 'paused';
      // 'Not started': the process lives but never booted a guest (a start that broke off).
      return 'stopped';
    } catch {
      // The process runs the guest even when its API socket is gone or wedged.
      return 'running';
    }
  }

  // ------------------------------------------------------------------ start helpers

  private async planDirect(spec: VmSpec, instanceId: string): Promise<Launch> {
    const socketDir = this.opts.socketDir ?? spec.runDir;
    const socketPath = join(socketDir, `${instanceId}.socket`);
    if (Buffer.byteLength(socketPath) > FIRECRACKER_LIMITS.unixSocketPathMaxBytes) {
      throw new FirecrackerError(
        'ORCH_FIRECRACKER_BAD_SPEC',
        `VM ${spec.vmId}: API socket path ${socketPath} is longer than ${FIRECRACKER_LIMITS.unixSocketPathMaxBytes} bytes; use a shorter SOCKET_DIR`,
      );
    }
    await mkdir(socketDir, { recursive: true, mode: 0o700 });
    return {
      command: this.opts.firecrackerBin,
      args: ['--api-sock', socketPath, '--id', instanceId],
      socketPath,
      guestPaths: {
        kernel: spec.kernelPath,
        ...(spec.initrdPath ? { initrd: spec.initrdPath } : {}),
        rootfs: spec.baseRootfsPath,
        data: spec.dataDiskPath,
        config: spec.configDiskPath,
        ...(this.opts.logLevel ? { log: join(spec.runDir, RUN_FILES.log) } : {}),
        ...(this.opts.metrics ? { metrics: join(spec.runDir, RUN_FILES.metrics) } : {}),
      },
    };
  }

  private async planJailed(spec: VmSpec, instanceId: string, jailer: JailerOptions): Promise<Launch> {
    const baseDir = jailer.chrootBaseDir ?? DEFAULT_CHROOT_BASE_DIR;
    let execFilePath: string;
    let chrootBaseDir: string;
    try {
      execFilePath = await realpath(this.opts.firecrackerBin);
      await mkdir(baseDir, { recursive: true, mode: 0o755 });
      chrootBaseDir = await realpath(baseDir);
    } catch (err) {
      throw new FirecrackerError(
        'ORCH_FIRECRACKER_JAIL',
        `VM ${spec.vmId}: cannot prepare the jail: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const jail = planJail({
      jailer,
      execFile: execFilePath,
      chrootBaseDir,
      jailId: instanceId,
      spec,
      withLog: Boolean(this.opts.logLevel),
      withMetrics: Boolean(this.opts.metrics),
    });
    return {
      command: jail.command,
      args: jail.args,
      socketPath: jail.apiSocketOnHost,
      guestPaths: jail.guestPaths,
      jail,
    };
  }

  /**
   * Makes sure the socket path is free. Firecracker refuses to start on an existing path, and
   * never removes its socket itself: a leftover from a dead process is removed, a path a live
   * Firecracker answers on is an error (two processes must never share a VM).
   */
  private async claimSocket(socketPath: string, vmId: string): Promise<void> {
    try {
      await stat(socketPath);
    } catch {
      return;
    }
    const probe = new FirecrackerClient({ socketPath, timeoutMs: 1000 });
    try {
      await probe.describeInstance();
    } catch (err) {
      if (err instanceof FirecrackerApiError && err.code === 'ORCH_FIRECRACKER_API_UNREACHABLE') {
        await rm(socketPath, { force: true });
        return;
      }
    }
    throw new FirecrackerError(
      'ORCH_FIRECRACKER_SOCKET_IN_USE',
      `VM ${vmId}: a running Firecracker already answers on ${socketPath}`,
      { statusCode: 409 },
    );
  }

  private async spawnProcess(launch: Launch, consoleLog: string): Promise<ChildProcess> {
    await appendFile(
      consoleLog,
      `--- ${new Date().toISOString()} ${launch.command} ${launch.args.join(' ')}\n`,
    );
    const out = await open(consoleLog, 'a');
    let child: ChildProcess;
    let spawned: Promise<void>;
    try {
      // Own session and no pipes: the VM outlives the orchestrator and is adopted on restart.
      child = spawn(launch.command, launch.args, {
        detached: true,
        stdio: ['ignore', out.fd, out.fd],
        env: this.env,
      });
      // Listen before any await: 'spawn' / 'error' fire on the next tick.
      spawned = new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      // It may reject while the log file closes; it is awaited right after.
      spawned.catch(() => {});
    } finally {
      await out.close();
    }
    try {
      await spawned;
    } catch (err) {
      throw new FirecrackerError(
        'ORCH_FIRECRACKER_SPAWN',
        `cannot run ${launch.command}: ${(err as Error).message}`,
        { cause: err, statusCode: 503 },
      );
    }
    child.on('error', () => {});
    child.unref();
    return child;
  }

  private async waitForApi(
    client: FirecrackerClient,
    child: ChildProcess,
    consoleLog: string,
  ): Promise<void> {
    const timeoutMs = this.opts.socketTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (hasExited(child)) {
        throw new FirecrackerError(
          'ORCH_FIRECRACKER_SPAWN',
          `${describeExit(child)} before its API socket ${client.socketPath} came up${await consoleTail(consoleLog)}`,
        );
      }
      try {
        await client.describeInstance({ timeoutMs: Math.min(1000, this.apiTimeoutMs) });
        return;
      } catch (err) {
        if (!(err instanceof FirecrackerApiError) || err.code === 'ORCH_FIRECRACKER_API') throw err;
      }
      if (Date.now() >= deadline) {
        throw new FirecrackerError(
          'ORCH_FIRECRACKER_SOCKET_TIMEOUT',
          `Firecracker (pid ${child.pid}) did not open its API socket ${client.socketPath} within ${timeoutMs} ms${await consoleTail(consoleLog)}`,
        );
      }
      await sleep(SOCKET_POLL_MS);
    }
  }

  /** Undo a half-finished start: no process, socket, jail or pid file survives. */
  private async abortStart(child: ChildProcess, launch: Launch, runDir: string): Promise<void> {
    const pid = child.pid as number;
    if (!hasExited(child)) {
      signalProcess(pid, 'SIGKILL');
      await waitForExit(pid, KILL_TIMEOUT_MS);
    }
    await rm(launch.socketPath, { force: true });
    if (launch.jail) await removeJail(launch.jail.jailDir);
    await rm(join(runDir, RUN_FILES.pid), { force: true });
  }

  // ------------------------------------------------------------------ stop helpers

  /**
   * Whether `handle.pid` is still the Firecracker (or jailer) process of this handle, so a pid
   * reused by another process after a restart is never signalled.
   */
  private async isOurs(handle: VmHandle): Promise<boolean> {
    const args = await liveProcessArgs(handle.pid);
    if (!args) return false;
    const jail = jailOfSocket(handle.controlSocket);
    if (jail) return argValue(args, 'api-sock') === JAIL_API_SOCKET && argValue(args, 'id') === jail.jailId;
    return argValue(args, 'api-sock') === handle.controlSocket;
  }

  private async killProcess(handle: VmHandle): Promise<void> {
    signalProcess(handle.pid, 'SIGKILL');
    if (!(await waitForExit(handle.pid, KILL_TIMEOUT_MS))) {
      throw new FirecrackerError(
        'ORCH_FIRECRACKER_KILL',
        `Firecracker pid ${handle.pid} still runs ${KILL_TIMEOUT_MS} ms after SIGKILL`,
      );
    }
    this.opts.logger?.info({ pid: handle.pid }, 'firecracker process killed');
  }

  private async cleanup(handle: VmHandle): Promise<void> {
    await unlink(handle.controlSocket).catch(() => {});
    const jail = jailOfSocket(handle.controlSocket);
    if (jail) await removeJail(jail.jailDir);
    await rm(join(handle.runDir, RUN_FILES.pid), { force: true });
  }

  // ------------------------------------------------------------------ availability

  private async checkAvailability(): Promise<DriverAvailability> {
    const details: Record<string, unknown> = {};
    const fc = await this.probeBinary(this.opts.firecrackerBin, 'Firecracker', 'FIRECRACKER_BIN');
    if ('reason' in fc) return { ok: false, reason: fc.reason };
    details.version = fc.version;

    if (this.opts.jailer) {
      const jailer = await this.probeBinary(this.opts.jailer.bin, 'Jailer', 'JAILER_BIN');
      if ('reason' in jailer) return { ok: false, reason: jailer.reason, details };
      if (jailer.version !== fc.version) {
        return {
          ok: false,
          reason: `jailer v${jailer.version} and Firecracker v${fc.version} differ; install matching releases`,
          details,
        };
      }
      details.jailer = {
        version: jailer.version,
        chrootBaseDir: this.opts.jailer.chrootBaseDir ?? DEFAULT_CHROOT_BASE_DIR,
      };
    }

    const kvm = this.opts.kvmDevice ?? '/dev/kvm';
    try {
      const handle = await open(kvm, constants.O_RDWR);
      await handle.close();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason =
        code === 'ENOENT'
          ? `${kvm} does not exist: this host has no KVM (enable virtualization or load the kvm module)`
          : code === 'EACCES' || code === 'EPERM'
            ? `${kvm} cannot be opened read-write by this user (add it to the kvm group)`
            : `${kvm} cannot be opened read-write: ${(err as Error).message}`;
      return { ok: false, reason, details };
    }
    details.kvm = kvm;

    if (this.opts.kvmProbe) {
      const probe = await this.opts.kvmProbe();
      if (!probe.ok) {
        return {
          ok: false,
          reason: probe.reason ?? `KVM at ${kvm} cannot run a guest`,
          details: { ...details, ...probe.details },
        };
      }
      details.kvmProbe = probe.details ?? true;
    }
    return { ok: true, details };
  }

  private async probeBinary(
    bin: string,
    product: 'Firecracker' | 'Jailer',
    variable: string,
  ): Promise<{ version: string } | { reason: string }> {
    try {
      await access(bin, constants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return {
        reason:
          code === 'ENOENT'
            ? `${product} binary not found at ${bin} (install it or set ${variable})`
            : `${product} binary ${bin} is not executable (${code})`,
      };
    }
    try {
      const { stdout } = await execFileAsync(bin, ['--version'], {
        timeout: VERSION_TIMEOUT_MS,
        env: this.env,
      });
      const match = new RegExp(`${product} v(\\S+)`).exec(stdout);
      if (!match?.[1]) {
        return {
          reason: `${bin} --version did not print "${product} v<version>": ${stdout.trim().slice(0, 200)}`,
        };
      }
      return { version: match[1] };
    } catch (err) {
      return { reason: `${bin} --version failed: ${(err as Error).message.split('\n')[0]}` };
    }
  }
}

function startFailure(spec: VmSpec, step: string, err: unknown, died: string): FirecrackerError {
  if (
    err instanceof FirecrackerError &&
    (err.code === 'ORCH_FIRECRACKER_SPAWN' ||
      err.code === 'ORCH_FIRECRACKER_SOCKET_TIMEOUT' ||
      err.code === 'ORCH_FIRECRACKER_START')
  ) {
    return err;
  }
  return new FirecrackerError(
    'ORCH_FIRECRACKER_START',
    `VM ${spec.vmId}: ${step} failed: ${(err as Error).message}${died}`,
    {
      cause: err,
    },
  );
}

function describeCall(call: ApiCall): string {
  const action = call.path === '/actions' ? ` ${(call.body as { action_type: string }).action_type}` : '';
  return `${call.method} ${call.path}${action}`;
}

async function exitOrTimeout(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (hasExited(child)) return;
  const ac = new AbortController();
  await Promise.race([
    once(child, 'exit', { signal: ac.signal }).catch(() => {}),
    sleep(timeoutMs, undefined, { signal: ac.signal }).catch(() => {}),
  ]);
  ac.abort();
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function describeExit(child: ChildProcess): string {
  return child.signalCode !== null
    ? `Firecracker (pid ${child.pid}) was killed by ${child.signalCode}`
    : `Firecracker (pid ${child.pid}) exited with code ${child.exitCode}`;
}

async function consoleTail(consoleLog: string): Promise<string> {
  const tail = (await tailFile(consoleLog, 1500)).trim();
  return tail ? `; console output:\n${tail}` : '';
}

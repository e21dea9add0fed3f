import { createConnection } from 'node:net';
import { callVmHost, type HostCallFailure, HostDirectory, type Logger } from '@moltage/core';
import type { Redis } from 'ioredis';
import type { VmControl, VmDirectory } from '../domain/ports.js';
import type { VmView } from '../domain/route.js';
import { GatewayError } from '../errors.js';
import { OrchestratorCallError, OrchestratorClient } from './orchestrator-client.js';

/** Refusals after which a new VM is tried on the next host. */
const CAPACITY_CODES = new Set([
  'ORCH_MAX_VMS',
  'ORCH_IP_POOL_EXHAUSTED',
  'ORCH_NO_DRIVER',
  'ORCH_IMAGE_MISSING',
]);

export function classifyOrchestratorFailure(err: unknown): HostCallFailure {
  if (!(err instanceof OrchestratorCallError)) return 'fail';
  if (err.orchCode === 'ORCH_VM_ON_OTHER_HOST') return 'moved';
  if (err.unreachable) return 'next-host';
  return err.status === 503 && err.orchCode !== null && CAPACITY_CODES.has(err.orchCode)
    ? 'next-host'
    : 'fail';
}

export interface RoutedVmControlOptions {
  redis: Redis;
  /** ORCHESTRATOR_URL: without registered hosts, and for records from before the host registry. */
  defaultUrl: string;
  token: string | undefined;
  startTimeoutMs: number;
  logger?: Logger;
}

/**
 * Starts and touches VMs on the host that owns them (`vm:<openid>`.host_id → `host:<id>`.url);
 * a user without a VM is placed on the live host with the most free capacity. When the VM's
 * host is down the user is told so, and no second VM is started elsewhere (the user's data disk
 * lives on that host).
 */
export class RoutedVmControl implements VmControl {
  readonly #hosts: HostDirectory;
  readonly #clients = new Map<string, OrchestratorClient>();

  constructor(private readonly o: RoutedVmControlOptions) {
    this.#hosts = new HostDirectory(o.redis);
  }

  #client(url: string): OrchestratorClient {
    let c = this.#clients.get(url);
    if (!c) {
      c = new OrchestratorClient(url, this.o.token, { startTimeoutMs: this.o.startTimeoutMs });
      this.#clients.set(url, c);
    }
    return c;
  }

  #run<T>(openid: string, place: boolean, op: (c: OrchestratorClient) => Promise<T>): Promise<T> {
    return callVmHost(this.#hosts, {
      openid,
      defaultUrl: this.o.defaultUrl,
      place,
      call: (url, host) => {
        if (host) this.o.logger?.debug({ openid, host: host.host_id }, 'orchestrator call routed to host');
        return op(this.#client(url));
      },
      classify: classifyOrchestratorFailure,
      hostDown: (hostId) =>
        new GatewayError('SSHGW_VM_HOST_DOWN', `host ${hostId} of the VM is down (no heartbeat)`, {
          userMessage:
            'The server that hosts your VM is unreachable right now; your files are kept there. Please try again later.',
        }),
    });
  }

  start(openid: string, signal?: AbortSignal): Promise<VmView> {
    return this.#run(openid, true, (c) => c.start(openid, signal));
  }

  touch(openid: string): Promise<void> {
    return this.#run(openid, false, (c) => c.touch(openid));
  }
}

/** True when something at host:port greets like an SSH server within `timeoutMs`. */
export function sshGreets(host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.length >= 4) done(buf.startsWith('SSH-'));
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

/**
 * VM records as the gateway routes them. A record that says `running` on a host whose heartbeat
 * expired is used only while the VM still greets (its orchestrator may just be restarting);
 * otherwise it is shown as not running, so the login goes through {@link RoutedVmControl.start},
 * which tells the user that the VM's server is down instead of timing out on its address.
 */
export class HostAwareVmDirectory implements VmDirectory {
  readonly #hosts: HostDirectory;

  constructor(
    private readonly inner: VmDirectory,
    redis: Redis,
    private readonly probeTimeoutMs = 3000,
  ) {
    this.#hosts = new HostDirectory(redis);
  }

  async get(openid: string): Promise<VmView | null> {
    const vm = await this.inner.get(openid);
    if (vm?.state !== 'running' || vm.ssh === null) return vm;
    const target = await this.#hosts.target(openid);
    if (target.kind !== 'down') return vm;
    if (await sshGreets(vm.ssh.host, vm.ssh.port, this.probeTimeoutMs)) return vm;
    return { ...vm, state: 'stopped' };
  }
}

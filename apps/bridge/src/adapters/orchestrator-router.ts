import { callVmHost, type HostCallFailure, HostDirectory, type Logger } from '@moltage/core';
import type { Redis } from 'ioredis';
import type { Orchestrator, VmRecord } from '../domain/ports.js';
import { BridgeError } from '../errors.js';
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

/**
 * The orchestrator API across hosts (README "Scaling past one host"): each call goes to the
 * orchestrator of the host that owns the user's VM (`vm:<openid>`.host_id → `host:<id>`.url). A
 * user without a VM is placed on the live host with the most free VM slots (then the most free
 * memory); a host that refuses for capacity or cannot be reached is skipped. Without registered
 * hosts, and for records from before the registry, ORCHESTRATOR_URL is used as before. A VM whose
 * host is down is not recreated elsewhere (its data disk is there): `BRIDGE_VM_HOST_DOWN`.
 */
export class RoutedOrchestrator implements Orchestrator {
  readonly #hosts: HostDirectory;
  readonly #clients = new Map<string, OrchestratorClient>();

  constructor(
    redis: Redis,
    private readonly defaultUrl: string,
    private readonly token: string | undefined,
    private readonly log?: Logger,
    /** The bridge's VM_READY_TIMEOUT_MS: a create call waits that long for the VM, plus slack. */
    private readonly vmReadyTimeoutMs = 30_000,
  ) {
    this.#hosts = new HostDirectory(redis);
  }

  #client(url: string): OrchestratorClient {
    let c = this.#clients.get(url);
    if (!c) {
      c = new OrchestratorClient(url, this.token, 15_000, this.vmReadyTimeoutMs + 15_000);
      this.#clients.set(url, c);
    }
    return c;
  }

  #run<T>(openid: string, place: boolean, op: (c: OrchestratorClient) => Promise<T>): Promise<T> {
    return callVmHost(this.#hosts, {
      openid,
      defaultUrl: this.defaultUrl,
      place,
      call: (url, host) => {
        if (host) this.log?.debug({ openid, host: host.host_id }, 'orchestrator call routed to host');
        return op(this.#client(url));
      },
      classify: classifyOrchestratorFailure,
      hostDown: (hostId) =>
        new BridgeError('BRIDGE_VM_HOST_DOWN', `the host ${hostId} of this user's VM is down (no heartbeat)`),
    });
  }

  ensure(openid: string, callback: { url: string; token: string }, signal?: AbortSignal): Promise<VmRecord> {
    return this.#run(openid, true, (c) => c.ensure(openid, callback, signal));
  }

  get(openid: string, signal?: AbortSignal): Promise<VmRecord | null> {
    return this.#run(openid, false, (c) => c.get(openid, signal));
  }

  touch(openid: string): Promise<void> {
    return this.#run(openid, false, (c) => c.touch(openid));
  }

  stop(openid: string, signal?: AbortSignal): Promise<void> {
    return this.#run(openid, false, (c) => c.stop(openid, signal));
  }
}

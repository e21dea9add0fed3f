import { longWaitDispatcher } from '@moltage/core';
import type { Orchestrator, VmRecord } from '../domain/ports.js';
import { BridgeError } from '../errors.js';

/**
 * An orchestrator call that failed (`BRIDGE_ORCH_UNAVAILABLE`), with what the router needs to
 * decide between another host and giving up: the HTTP status and the orchestrator's error `code`
 * (e.g. `ORCH_MAX_VMS`, `ORCH_VM_ON_OTHER_HOST`), or `unreachable` when nothing answered.
 */
export class OrchestratorCallError extends BridgeError {
  constructor(
    message: string,
    readonly status: number | null,
    readonly orchCode: string | null,
    readonly unreachable: boolean,
    options?: { cause?: unknown },
  ) {
    super('BRIDGE_ORCH_UNAVAILABLE', message, options);
  }
}

/** HTTP client of the orchestrator API (DESIGN.md → Orchestrator API), with a bearer token when set. */
export class OrchestratorClient implements Orchestrator {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly timeoutMs = 15_000,
    /**
     * Bound on `POST /api/v1/vms`, which the orchestrator answers once the VM is ready (or 504
     * after its own VM_READY_TIMEOUT_MS): it must outlast that wait, or every slow cold start
     * would fail. Default: the bridge's VM_READY_TIMEOUT_MS default plus the normal bound.
     */
    private readonly createTimeoutMs = 30_000 + timeoutMs,
  ) {}

  async ensure(
    openid: string,
    callback: { url: string; token: string },
    signal?: AbortSignal,
  ): Promise<VmRecord> {
    const rec = await this.#call(
      'POST',
      '/api/v1/vms',
      signal,
      { user_id: openid, callback_url: callback.url, callback_token: callback.token },
      this.createTimeoutMs,
    );
    if (!rec) throw new BridgeError('BRIDGE_ORCH_UNAVAILABLE', 'orchestrator returned no VM record');
    return rec;
  }

  async get(openid: string, signal?: AbortSignal): Promise<VmRecord | null> {
    return this.#call('GET', `/api/v1/vms/${encodeURIComponent(openid)}`, signal);
  }

  async touch(openid: string): Promise<void> {
    await this.#call('POST', `/api/v1/vms/${encodeURIComponent(openid)}/touch`);
  }

  async stop(openid: string, signal?: AbortSignal): Promise<void> {
    await this.#call('DELETE', `/api/v1/vms/${encodeURIComponent(openid)}`, signal);
  }

  async #call(
    method: string,
    path: string,
    signal?: AbortSignal,
    body?: unknown,
    timeoutMs = this.timeoutMs,
  ): Promise<VmRecord | null> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    const timeout = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        // The create call waits for the VM: past undici's own 300 s limit on a slow cold start.
        ...(timeoutMs > 300_000 ? { dispatcher: longWaitDispatcher() } : {}),
      });
    } catch (err) {
      if (signal?.aborted) throw new BridgeError('BRIDGE_ABORTED', 'shutting down', { cause: err });
      throw new OrchestratorCallError(
        `orchestrator ${method} ${path} failed: ${errText(err)}`,
        null,
        null,
        // A timeout may mean the request is being served: only a refused connection is "down".
        !timeout.aborted,
        { cause: err },
      );
    }
    const text = await res.text();
    if (res.status === 404 && method !== 'POST') return null;
    if (!res.ok) {
      throw new OrchestratorCallError(
        `orchestrator ${method} ${path} answered ${res.status}: ${text.slice(0, 200)}`,
        res.status,
        errorCode(text),
        false,
      );
    }
    if (text.trim() === '') return null;
    try {
      const parsed = JSON.parse(text) as unknown;
      return isRecord(parsed) ? (parsed as unknown as VmRecord) : null;
    } catch (err) {
      throw new BridgeError('BRIDGE_ORCH_UNAVAILABLE', `orchestrator ${method} ${path} sent invalid JSON`, {
        cause: err,
      });
    }
  }
}

/** The `code` of an orchestrator error body (`{"code","message"}`), if there is one. */
function errorCode(text: string): string | null {
  try {
    const body = JSON.parse(text) as unknown;
    return isRecord(body) && typeof body['code'] === 'string' ? body['code'] : null;
  } catch {
    return null;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function errText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = (cause as { code?: string } | undefined)?.code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

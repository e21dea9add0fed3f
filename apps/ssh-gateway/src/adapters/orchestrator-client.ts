import { longWaitDispatcher } from '@moltage/core';
import type { VmControl } from '../domain/ports.js';
import { parseVmRecord, type VmView } from '../domain/route.js';
import { GatewayError } from '../errors.js';

/**
 * A failed orchestrator call with what the host router needs: the HTTP status and the
 * orchestrator's error `code` (`ORCH_MAX_VMS`, `ORCH_VM_ON_OTHER_HOST`, …), or `unreachable`.
 */
export class OrchestratorCallError extends GatewayError {
  constructor(
    code: 'SSHGW_ORCH_UNAVAILABLE' | 'SSHGW_ORCH_REJECTED',
    message: string,
    readonly status: number | null,
    readonly orchCode: string | null,
    readonly unreachable: boolean,
    opts: { userMessage?: string; cause?: unknown } = {},
  ) {
    super(code, message, opts);
  }
}

/** The orchestrator API (DESIGN.md "Orchestrator API"), with the bearer token when one is set. */
export class OrchestratorClient implements VmControl {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly opts: { startTimeoutMs: number; requestTimeoutMs?: number },
  ) {}

  async start(openid: string, signal?: AbortSignal): Promise<VmView> {
    const body = await this.#call('POST', '/api/v1/vms', this.opts.startTimeoutMs, signal, {
      user_id: openid,
    });
    const vm = parseVmRecord(body);
    if (!vm)
      throw new GatewayError(
        'SSHGW_ORCH_REJECTED',
        'orchestrator answered POST /api/v1/vms without a VM record',
      );
    return vm;
  }

  async touch(openid: string): Promise<void> {
    await this.#call(
      'POST',
      `/api/v1/vms/${encodeURIComponent(openid)}/touch`,
      this.opts.requestTimeoutMs ?? 10_000,
    );
  }

  async #call(
    method: string,
    path: string,
    timeoutMs: number,
    signal?: AbortSignal,
    body?: unknown,
  ): Promise<unknown> {
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
        // A start waits for the VM: past undici's own 300 s limit on a slow cold start.
        ...(timeoutMs > 300_000 ? { dispatcher: longWaitDispatcher() } : {}),
      });
    } catch (err) {
      const why = timeout.aborted ? `timed out after ${timeoutMs} ms` : errorText(err);
      throw new OrchestratorCallError(
        'SSHGW_ORCH_UNAVAILABLE',
        `orchestrator ${method} ${path} failed: ${why}`,
        null,
        null,
        !timeout.aborted && !signal?.aborted,
        {
          cause: err,
          userMessage: timeout.aborted
            ? 'Your VM did not start in time. Please try again in a minute.'
            : 'The VM service is not reachable right now. Please try again later.',
        },
      );
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) {
      throw new OrchestratorCallError(
        'SSHGW_ORCH_REJECTED',
        `orchestrator ${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`,
        res.status,
        errorCode(text),
        false,
        { userMessage: startFailureMessage(res.status) },
      );
    }
    if (text.trim() === '') return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new GatewayError('SSHGW_ORCH_REJECTED', `orchestrator ${method} ${path} sent invalid JSON`, {
        cause: err,
      });
    }
  }
}

function startFailureMessage(status: number): string {
  if (status === 503 || status === 429)
    return 'No VM capacity is available right now. Please try again later.';
  if (status === 401 || status === 403)
    return 'The SSH gateway is misconfigured. Please contact the operator.';
  return 'Your VM could not be started. Please try again later.';
}

/** The `code` of an orchestrator error body (`{"code","message"}`), if there is one. */
function errorCode(text: string): string | null {
  try {
    const body = JSON.parse(text) as { code?: unknown } | null;
    return typeof body?.code === 'string' ? body.code : null;
  } catch {
    return null;
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err.cause as { code?: string } | undefined)?.code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

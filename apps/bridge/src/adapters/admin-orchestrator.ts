import { BridgeError } from '../errors.js';
import { errText } from './orchestrator-client.js';

/**
 * What the console shows of a VM record: an allow-list of the orchestrator's fields, so the
 * agent token (and anything added later) never reaches a page.
 */
export interface ConsoleVm {
  user_id: string;
  state: string;
  ip: string | null;
  ssh: { host: string; port: number } | null;
  vcpu: number | null;
  mem_mib: number | null;
  /** Resident memory of the hypervisor process, when the orchestrator reports it. */
  rss_mib: number | null;
  created_at: string | null;
  /** When the running VM booted, when the orchestrator reports it (uptime). */
  started_at: string | null;
  last_active_at: string | null;
  error: string | null;
  /** The host that runs the VM (several orchestrators), and its API. */
  host_id: string | null;
  host_url: string | null;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function toConsoleVm(raw: unknown): ConsoleVm | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  const userId = str(r['user_id']);
  if (!userId) return null;
  const ssh = r['ssh'] as { host?: unknown; port?: unknown } | null | undefined;
  return {
    user_id: userId,
    state: str(r['state']) ?? 'unknown',
    ip: str(r['ip']),
    ssh:
      ssh && typeof ssh.host === 'string' && typeof ssh.port === 'number'
        ? { host: ssh.host, port: ssh.port }
        : null,
    vcpu: num(r['vcpu']),
    mem_mib: num(r['mem_mib']),
    rss_mib: num(r['rss_mib']),
    created_at: str(r['created_at']),
    started_at: str(r['started_at']),
    last_active_at: str(r['last_active_at']),
    error: str(r['error']),
    host_id: str(r['host_id']),
    host_url: httpUrl(r['host_url']),
  };
}

function httpUrl(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:' ? v.replace(/\/+$/, '') : null;
  } catch {
    return null;
  }
}

/** The outcome of asking a service's health endpoint. */
export interface Probe {
  url: string;
  ok: boolean;
  /** HTTP status, or null when nothing answered. */
  status: number | null;
  /** The JSON answer (for display; health endpoints carry no secrets). */
  body: Record<string, unknown> | null;
  error: string | null;
}

/** GETs a JSON health endpoint; never throws. */
export async function probeHealth(
  url: string,
  timeoutMs = 2000,
  headers: Record<string, string> = {},
): Promise<Probe> {
  try {
    const res = await fetch(url, {
      headers: { accept: 'application/json', ...headers },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let body: Record<string, unknown> | null = null;
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
        body = parsed as Record<string, unknown>;
    } catch {
      // Not JSON: the status says enough.
    }
    return { url, ok: res.ok, status: res.status, body, error: res.ok ? null : `HTTP ${res.status}` };
  } catch (err) {
    return { url, ok: false, status: null, body: null, error: errText(err) };
  }
}

/** Passes a Prometheus text page through (the console proxies the services' /metrics). */
export async function fetchMetrics(
  url: string,
  timeoutMs = 5000,
): Promise<{ status: number; contentType: string; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return {
      status: res.ok ? 200 : 502,
      contentType: res.headers.get('content-type') ?? 'text/plain; charset=utf-8',
      body: res.ok ? await res.text() : `upstream answered HTTP ${res.status}\n`,
    };
  } catch (err) {
    return {
      status: 502,
      contentType: 'text/plain; charset=utf-8',
      body: `upstream unreachable: ${errText(err)}\n`,
    };
  }
}

/**
 * The console's client of the orchestrator API (DESIGN.md → Orchestrator API): list, start
 * (`POST /api/v1/vms`), stop (`POST /api/v1/vms/:id/stop`), reset (DELETE then POST, data disk
 * kept), health and metrics. Kept apart from the worker's client: it strips records to
 * {@link ConsoleVm} and waits as long as a start may take. With several hosts, an action on an
 * existing VM goes to the orchestrator of the host that owns it (the record's `host_url`); the
 * list comes from ORCHESTRATOR_URL, which sees every host's records.
 */
export class AdminOrchestratorClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly opts: { timeoutMs?: number; startTimeoutMs?: number } = {},
  ) {}

  async list(): Promise<ConsoleVm[]> {
    // Short: the console page waits for it.
    const body = (await this.#call('GET', '/api/v1/vms', { timeoutMs: 5000 })) as { vms?: unknown } | null;
    const vms = Array.isArray(body?.vms) ? body.vms : [];
    return vms.map(toConsoleVm).filter((v): v is ConsoleVm => v !== null);
  }

  /** Creates or starts the user's VM; waits until the orchestrator answers (ready or failed). */
  async start(openid: string, callback?: { url: string; token: string }): Promise<ConsoleVm | null> {
    return this.#start(await this.#owner(openid), openid, callback);
  }

  /** Stops the VM and keeps its record (state `stopped`). */
  async stop(openid: string): Promise<ConsoleVm | null> {
    const base = await this.#owner(openid);
    return toConsoleVm(await this.#call('POST', `/api/v1/vms/${encodeURIComponent(openid)}/stop`, { base }));
  }

  /** Recreates the VM: DELETE (data disk kept) then POST, on the host that has its data disk. */
  async reset(openid: string, callback?: { url: string; token: string }): Promise<ConsoleVm | null> {
    const base = await this.#owner(openid);
    await this.#call('DELETE', `/api/v1/vms/${encodeURIComponent(openid)}`, { base });
    return this.#start(base, openid, callback);
  }

  async #start(base: string, openid: string, callback?: { url: string; token: string }) {
    const body = await this.#call('POST', '/api/v1/vms', {
      base,
      body: {
        user_id: openid,
        ...(callback ? { callback_url: callback.url, callback_token: callback.token } : {}),
      },
      timeoutMs: this.opts.startTimeoutMs ?? 60_000,
    });
    return toConsoleVm(body);
  }

  /** The API of the host that owns the user's VM (ORCHESTRATOR_URL when one host, or no VM yet). */
  async #owner(openid: string): Promise<string> {
    const vm = toConsoleVm(
      await this.#call('GET', `/api/v1/vms/${encodeURIComponent(openid)}`, { nullOn404: true }),
    );
    return vm?.host_url ?? this.baseUrl;
  }

  health(): Promise<Probe> {
    return probeHealth(`${this.baseUrl}/health`);
  }

  metrics(): Promise<{ status: number; contentType: string; body: string }> {
    return fetchMetrics(`${this.baseUrl}/metrics`);
  }

  async #call(
    method: string,
    path: string,
    opts: { base?: string; body?: unknown; timeoutMs?: number; nullOn404?: boolean } = {},
  ): Promise<unknown> {
    const { body, timeoutMs } = opts;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(`${opts.base ?? this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs ?? this.opts.timeoutMs ?? 15_000),
      });
    } catch (err) {
      throw new BridgeError(
        'BRIDGE_ORCH_UNAVAILABLE',
        `orchestrator ${method} ${path} failed: ${errText(err)}`,
        {
          cause: err,
        },
      );
    }
    const text = await res.text();
    if (res.status === 404 && opts.nullOn404) return null;
    if (!res.ok) {
      throw new BridgeError(
        'BRIDGE_ORCH_UNAVAILABLE',
        `orchestrator answered ${res.status}: ${orchMessage(text)}`,
      );
    }
    if (text.trim() === '') return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new BridgeError('BRIDGE_ORCH_UNAVAILABLE', `orchestrator ${method} ${path} sent invalid JSON`, {
        cause: err,
      });
    }
  }
}

/** The orchestrator's error message (`{"code","message"}`), short. */
function orchMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { code?: unknown; message?: unknown; error?: unknown };
    const msg = typeof j.message === 'string' ? j.message : typeof j.error === 'string' ? j.error : '';
    const code = typeof j.code === 'string' ? `${j.code}: ` : '';
    if (msg || code) return `${code}${msg}`.slice(0, 300);
  } catch {
    // Not JSON.
  }
  return text.slice(0, 200);
}

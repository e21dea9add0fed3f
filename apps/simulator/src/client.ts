import type { AccountPatch, PublicAccount } from './domain/account.js';
import type { EndpointFaults, FaultEndpoint, FaultPatch } from './domain/faults.js';
import type { UserMessage } from './domain/inbound.js';
import type { ApiCall, InboxEntry, LlmRequestRecord, PushRecord, SimUser } from './domain/records.js';

export interface SimulatorClientOptions {
  /** Per request, when not waiting server-side (default 30 s). */
  timeoutMs?: number;
}

/** A faults change, as `PUT /sim/faults/:endpoint` takes it. */
export type FaultSpec = FaultPatch;

/** The simulator answered with an error (4xx/5xx). `code` is the simulator's error code. */
export class SimulatorClientError extends Error {
  readonly code: string;
  readonly status: number;
  readonly body: unknown;

  constructor(status: number, code: string, message: string, body: unknown) {
    super(message);
    this.name = 'SimulatorClientError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export interface UserWindow {
  ref: string;
  kind: string;
  at: string;
  used: number;
  remaining: number;
  closesAt: string;
  open: boolean;
}

export interface VerifyResult {
  ok: boolean;
  echostr: string;
  badSignature: boolean;
  url: string;
  status: number | null;
  body: string | null;
  outcome: string;
  error: string | null;
  durationMs: number;
}

/**
 * A typed client of the simulator's JSON API (`/sim/…`), for tests of other services:
 * play users, read what reached them, arm faults, move the clock.
 */
export class SimulatorClient {
  readonly baseUrl: string;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, opts: SimulatorClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async #call<T>(method: string, path: string, body?: unknown, extraTimeoutMs = 0): Promise<T> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(this.#timeoutMs + extraTimeoutMs),
    });
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let data: unknown = text;
    try {
      data = text === '' ? null : JSON.parse(text);
    } catch {
      // keep the text
    }
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new SimulatorClientError(
        res.status,
        err?.code ?? `HTTP_${res.status}`,
        `simulator ${method} ${path}: ${err?.message ?? `HTTP ${res.status}`}`,
        data,
      );
    }
    return data as T;
  }

  // account
  account(): Promise<PublicAccount> {
    return this.#call('GET', '/sim/account');
  }
  updateAccount(patch: AccountPatch): Promise<PublicAccount> {
    return this.#call('PATCH', '/sim/account', patch);
  }

  // users
  async createUser(
    opts: { openid?: string; nickname?: string; follow?: boolean; qrscene?: string } = {},
  ): Promise<{ user: SimUser; push?: PushRecord }> {
    return this.#call('POST', '/sim/users', opts);
  }
  async users(): Promise<SimUser[]> {
    return (await this.#call<{ users: SimUser[] }>('GET', '/sim/users')).users;
  }
  user(openid: string): Promise<{ user: SimUser; window: UserWindow | null }> {
    return this.#call('GET', `/sim/users/${encodeURIComponent(openid)}`);
  }
  follow(openid: string, opts: { qrscene?: string; wait?: boolean } = {}): Promise<PushRecord> {
    return this.#call('POST', `/sim/users/${encodeURIComponent(openid)}/follow`, opts, 60_000);
  }
  unfollow(openid: string, opts: { wait?: boolean } = {}): Promise<PushRecord> {
    return this.#call('POST', `/sim/users/${encodeURIComponent(openid)}/unfollow`, opts, 60_000);
  }

  /** The user sends `message`; resolves with the push record once delivery finished (unless `wait: false`). */
  send(openid: string, message: UserMessage, opts: { wait?: boolean } = {}): Promise<PushRecord> {
    return this.#call(
      'POST',
      `/sim/users/${encodeURIComponent(openid)}/messages`,
      { ...message, ...opts },
      60_000,
    );
  }
  sendText(openid: string, content: string, opts: { wait?: boolean } = {}): Promise<PushRecord> {
    return this.send(openid, { type: 'text', content }, opts);
  }

  async inbox(openid: string): Promise<InboxEntry[]> {
    return (
      await this.#call<{ entries: InboxEntry[] }>('GET', `/sim/users/${encodeURIComponent(openid)}/inbox`)
    ).entries;
  }
  /** Waits (server-side) until the user has at least `count` messages; throws after `timeoutMs`. */
  async waitForInbox(
    openid: string,
    count: number,
    opts: { timeoutMs?: number } = {},
  ): Promise<InboxEntry[]> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const r = await this.#call<{ entries: InboxEntry[]; complete: boolean }>(
      'GET',
      `/sim/users/${encodeURIComponent(openid)}/inbox?min=${count}&timeoutMs=${timeoutMs}`,
      undefined,
      timeoutMs,
    );
    if (!r.complete) {
      throw new SimulatorClientError(
        408,
        'SIM_WAIT_TIMEOUT',
        `user ${openid} has ${r.entries.length} of ${count} expected messages after ${timeoutMs} ms`,
        r,
      );
    }
    return r.entries;
  }

  // pushes
  async pushes(openid?: string): Promise<PushRecord[]> {
    const q = openid === undefined ? '' : `?openid=${encodeURIComponent(openid)}`;
    return (await this.#call<{ pushes: PushRecord[] }>('GET', `/sim/pushes${q}`)).pushes;
  }
  push(id: string): Promise<PushRecord> {
    return this.#call('GET', `/sim/pushes/${encodeURIComponent(id)}`);
  }
  /** Waits until the push finished; throws when it is still pending after `timeoutMs`. */
  async waitForPush(id: string, opts: { timeoutMs?: number } = {}): Promise<PushRecord> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const p = await this.#call<PushRecord>(
      'GET',
      `/sim/pushes/${encodeURIComponent(id)}?wait=true&timeoutMs=${timeoutMs}`,
      undefined,
      timeoutMs,
    );
    if (p.status === 'pending') {
      throw new SimulatorClientError(
        408,
        'SIM_WAIT_TIMEOUT',
        `push ${id} still pending after ${timeoutMs} ms`,
        p,
      );
    }
    return p;
  }
  verifyUrl(opts: { badSignature?: boolean } = {}): Promise<VerifyResult> {
    return this.#call('POST', '/sim/verify', opts);
  }

  // calls and faults
  async calls(endpoint?: string): Promise<ApiCall[]> {
    const q = endpoint === undefined ? '' : `?endpoint=${encodeURIComponent(endpoint)}`;
    return (await this.#call<{ calls: ApiCall[] }>('GET', `/sim/calls${q}`)).calls;
  }
  clearCalls(): Promise<void> {
    return this.#call('DELETE', '/sim/calls');
  }
  async faults(): Promise<Partial<Record<FaultEndpoint, EndpointFaults>>> {
    return (
      await this.#call<{ faults: Partial<Record<FaultEndpoint, EndpointFaults>> }>('GET', '/sim/faults')
    ).faults;
  }
  async setFault(endpoint: FaultEndpoint, spec: FaultSpec): Promise<EndpointFaults> {
    return (await this.#call<{ faults: EndpointFaults }>('PUT', `/sim/faults/${endpoint}`, spec)).faults;
  }
  clearFaults(endpoint?: FaultEndpoint): Promise<void> {
    return this.#call('DELETE', endpoint ? `/sim/faults/${endpoint}` : '/sim/faults');
  }
  async expireTokens(): Promise<number> {
    return (await this.#call<{ expired: number }>('POST', '/sim/tokens/expire')).expired;
  }

  // clock
  clock(): Promise<{ now: string; offsetMs: number }> {
    return this.#call('GET', '/sim/clock');
  }
  advanceClock(by: { ms?: number; seconds?: number; minutes?: number; hours?: number }): Promise<{
    now: string;
    offsetMs: number;
  }> {
    return this.#call('POST', '/sim/clock/advance', by);
  }

  reset(): Promise<void> {
    return this.#call('POST', '/sim/reset');
  }

  // fake LLM
  async llmRequests(): Promise<LlmRequestRecord[]> {
    return (await this.#call<{ requests: LlmRequestRecord[] }>('GET', '/sim/llm/requests')).requests;
  }
  clearLlmRequests(): Promise<void> {
    return this.#call('DELETE', '/sim/llm/requests');
  }
  setLlmApiKey(apiKey: string | null): Promise<{ apiKeyRequired: boolean }> {
    return this.#call('PUT', '/sim/llm', { apiKey });
  }
}

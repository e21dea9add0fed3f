/** Endpoints a test can inject faults into. */
export const FAULT_ENDPOINTS = [
  'token',
  'stable_token',
  'custom_send',
  'typing',
  'chat_completions',
  'responses',
  'models',
] as const;
export type FaultEndpoint = (typeof FAULT_ENDPOINTS)[number];

/** WeChat endpoints answer faults with an errcode; the fake LLM's endpoints cannot. */
export const WECHAT_FAULT_ENDPOINTS: readonly FaultEndpoint[] = [
  'token',
  'stable_token',
  'custom_send',
  'typing',
];

export function isFaultEndpoint(name: string): name is FaultEndpoint {
  return (FAULT_ENDPOINTS as readonly string[]).includes(name);
}

/** The faults armed on one endpoint. Counters go down by one per call they affect. */
export interface EndpointFaults {
  /** Added to every call's answer time, until cleared. */
  latencyMs: number;
  /** The errcode the next `errcodeTimes` calls answer with (WeChat endpoints only). */
  errcode: number | null;
  errcodeTimes: number;
  /** The next N calls answer HTTP 500. */
  http500Times: number;
  /** The next N calls get no answer at all (the connection is held open until the client gives up). */
  timeoutTimes: number;
}

export interface FaultPatch {
  latencyMs?: number;
  errcode?: number | null;
  errcodeTimes?: number;
  http500Times?: number;
  timeoutTimes?: number;
}

/** What a call must do, decided (and counted) when it arrives. Timeout wins over 500 over errcode. */
export type FaultAction =
  | { kind: 'timeout' }
  | { kind: 'http500' }
  | { kind: 'errcode'; errcode: number }
  | null;

export interface FaultDecision {
  latencyMs: number;
  action: FaultAction;
}

const NONE: EndpointFaults = Object.freeze({
  latencyMs: 0,
  errcode: null,
  errcodeTimes: 0,
  http500Times: 0,
  timeoutTimes: 0,
});

export class FaultBoard {
  #faults = new Map<FaultEndpoint, EndpointFaults>();

  /** Merges `patch` into the endpoint's faults. Setting `errcode` without `errcodeTimes` arms it once. */
  set(endpoint: FaultEndpoint, patch: FaultPatch): EndpointFaults {
    const next = { ...this.get(endpoint) };
    if (patch.latencyMs !== undefined) next.latencyMs = patch.latencyMs;
    if (patch.errcode !== undefined) {
      next.errcode = patch.errcode;
      next.errcodeTimes = patch.errcode === null ? 0 : (patch.errcodeTimes ?? 1);
    } else if (patch.errcodeTimes !== undefined) {
      next.errcodeTimes = next.errcode === null ? 0 : patch.errcodeTimes;
    }
    if (patch.http500Times !== undefined) next.http500Times = patch.http500Times;
    if (patch.timeoutTimes !== undefined) next.timeoutTimes = patch.timeoutTimes;
    this.#store(endpoint, next);
    return { ...next };
  }

  get(endpoint: FaultEndpoint): EndpointFaults {
    return { ...(this.#faults.get(endpoint) ?? NONE) };
  }

  /** Every endpoint with something armed. */
  all(): Partial<Record<FaultEndpoint, EndpointFaults>> {
    const out: Partial<Record<FaultEndpoint, EndpointFaults>> = {};
    for (const [k, v] of this.#faults) out[k] = { ...v };
    return out;
  }

  clear(endpoint?: FaultEndpoint): void {
    if (endpoint) this.#faults.delete(endpoint);
    else this.#faults.clear();
  }

  /** Decides the fate of one call to `endpoint` and counts it against the armed faults. */
  take(endpoint: FaultEndpoint): FaultDecision {
    const f = this.#faults.get(endpoint);
    if (!f) return { latencyMs: 0, action: null };
    let action: FaultAction = null;
    if (f.timeoutTimes > 0) {
      f.timeoutTimes -= 1;
      action = { kind: 'timeout' };
    } else if (f.http500Times > 0) {
      f.http500Times -= 1;
      action = { kind: 'http500' };
    } else if (f.errcode !== null && f.errcodeTimes > 0) {
      f.errcodeTimes -= 1;
      action = { kind: 'errcode', errcode: f.errcode };
      if (f.errcodeTimes === 0) f.errcode = null;
    }
    const latencyMs = f.latencyMs;
    this.#store(endpoint, f);
    return { latencyMs, action };
  }

  #store(endpoint: FaultEndpoint, f: EndpointFaults): void {
    const idle =
      f.latencyMs === 0 &&
      f.errcode === null &&
      f.errcodeTimes === 0 &&
      f.http500Times === 0 &&
      f.timeoutTimes === 0;
    if (idle) this.#faults.delete(endpoint);
    else this.#faults.set(endpoint, f);
  }
}

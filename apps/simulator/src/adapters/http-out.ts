/**
 * Outgoing HTTP calls the simulator makes as WeChat: pushes to the bridge and the URL check.
 * One attempt per call; the caller decides about retries.
 */

/** Bodies larger than this are cut when recorded (WeChat itself reads only a few KiB). */
export const MAX_RECORDED_BODY_BYTES = 64 * 1024;

export type CallOutcome = 'answered' | 'timeout' | 'network_error' | 'aborted';

export interface CallResult {
  outcome: CallOutcome;
  /** HTTP status when answered. */
  status: number | null;
  /** Response body (UTF-8, cut to MAX_RECORDED_BODY_BYTES) when answered. */
  body: string | null;
  /** Whether `body` was cut. */
  truncated: boolean;
  /** Wall-clock duration of the attempt. */
  durationMs: number;
  /** What went wrong, for timeouts and network errors. */
  error: string | null;
}

export interface OutgoingRequest {
  method: 'GET' | 'POST';
  url: string;
  body?: string;
  contentType?: string;
  timeoutMs: number;
  /** Aborts the call (simulator shutdown or reset). */
  signal?: AbortSignal;
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error && cause.message) {
      const code = (cause as { code?: unknown }).code;
      return typeof code === 'string' ? `${code}: ${cause.message}` : cause.message;
    }
    return err.message;
  }
  return String(err);
}

/** Makes one HTTP call, giving up after `timeoutMs` for the whole exchange (headers and body). */
export async function callOnce(req: OutgoingRequest): Promise<CallResult> {
  const started = performance.now();
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout.signal]) : timeout.signal;
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  const failed = (outcome: CallOutcome, error: string): CallResult => ({
    outcome,
    status: null,
    body: null,
    truncated: false,
    durationMs: elapsed(),
    error,
  });
  try {
    const headers: Record<string, string> = { 'user-agent': 'Mozilla/4.0', accept: '*/*' };
    if (req.body !== undefined) headers['content-type'] = req.contentType ?? 'text/xml';
    const res = await fetch(req.url, {
      method: req.method,
      headers,
      ...(req.body !== undefined ? { body: req.body } : {}),
      signal,
      redirect: 'manual',
    });
    const buf = Buffer.from(await res.arrayBuffer());
    const truncated = buf.length > MAX_RECORDED_BODY_BYTES;
    return {
      outcome: 'answered',
      status: res.status,
      body: (truncated ? buf.subarray(0, MAX_RECORDED_BODY_BYTES) : buf).toString('utf8'),
      truncated,
      durationMs: elapsed(),
      error: null,
    };
  } catch (err) {
    if (timeout.signal.aborted && !req.signal?.aborted) {
      return failed('timeout', `no answer within ${req.timeoutMs} ms`);
    }
    if (req.signal?.aborted) return failed('aborted', 'aborted by the simulator');
    return failed('network_error', describe(err));
  } finally {
    clearTimeout(timer);
  }
}

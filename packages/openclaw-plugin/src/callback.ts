import { CallbackError, errorMessage } from './errors.js';
import type { PluginLogger } from './logger.js';

/** Where one user's replies go: the bridge callback URL and the token bound to that user. */
export interface CallbackTarget {
  url: string;
  token?: string;
}

/** One message for the bridge: a reply, a proactive message, or the report of a failure. */
export interface CallbackMessage {
  openid: string;
  /** The reply text (absent for failures). */
  text?: string;
  /** The inbound message this answers; absent for messages the agent sends on its own. */
  messageId?: string;
  /** False when the agent could not answer; `error` then says why. */
  success: boolean;
  error?: string;
}

/** The JSON body POSTed to the callback URL. `success`/`result` keep the community bridge working. */
export interface CallbackBody {
  openid: string;
  text?: string;
  message_id?: string;
  token?: string;
  success: boolean;
  result?: string;
  error?: string;
}

export function buildCallbackBody(target: CallbackTarget, msg: CallbackMessage): CallbackBody {
  return {
    openid: msg.openid,
    ...(msg.text !== undefined ? { text: msg.text } : {}),
    ...(msg.messageId !== undefined ? { message_id: msg.messageId } : {}),
    ...(target.token !== undefined ? { token: target.token } : {}),
    success: msg.success,
    ...(msg.success && msg.text !== undefined ? { result: msg.text } : {}),
    ...(msg.error !== undefined ? { error: msg.error } : {}),
  };
}

export interface RetryPolicy {
  /** Attempts in total, the first one included. */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Per-attempt request timeout. */
  timeoutMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 6,
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  timeoutMs: 15_000,
};

/** Delay before attempt `attempt + 1`: exponential, capped, with up to 20% jitter. */
export function backoffDelayMs(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
  return Math.round(base * (0.8 + 0.2 * random()));
}

/** 5xx, 408 and 429 may succeed later; other 4xx answers will not. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

export interface DeliveryReport {
  attempts: number;
  status: number;
}

export interface CallbackClientOptions {
  logger: PluginLogger;
  policy?: Partial<RetryPolicy>;
  sleep?: (ms: number) => Promise<void>;
  fetchImpl?: typeof fetch;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The URL without query string or credentials, for log lines. */
export function loggableUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

function describe(msg: CallbackMessage): string {
  const id = msg.messageId !== undefined ? `message ${msg.messageId}` : 'proactive message';
  return `${id} for openid ${msg.openid}`;
}

/**
 * POSTs agent output to the bridge. Network errors, timeouts and retryable statuses are retried
 * with exponential backoff up to `maxAttempts`; then the failure is logged at error level (with
 * the message id) and thrown, never dropped silently.
 */
export class CallbackClient {
  private readonly policy: RetryPolicy;
  private readonly logger: PluginLogger;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly fetchImpl: typeof fetch;

  constructor(opts: CallbackClientOptions) {
    this.policy = { ...DEFAULT_RETRY_POLICY, ...opts.policy };
    this.logger = opts.logger;
    this.sleep = opts.sleep ?? defaultSleep;
    this.fetchImpl = opts.fetchImpl ?? fetch;
  }

  async deliver(target: CallbackTarget, msg: CallbackMessage): Promise<DeliveryReport> {
    const body = JSON.stringify(buildCallbackBody(target, msg));
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
    const what = describe(msg);
    let lastStatus: number | undefined;
    let lastError: unknown;

    for (let attempt = 1; attempt <= this.policy.maxAttempts; attempt++) {
      let retryable = true;
      try {
        const res = await this.fetchImpl(target.url, {
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.timeout(this.policy.timeoutMs),
          redirect: 'error',
        });
        lastStatus = res.status;
        // Drain the body so the connection can be reused.
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          if (attempt > 1) this.logger.info(`callback delivered ${what} after ${attempt} attempts`);
          return { attempts: attempt, status: res.status };
        }
        retryable = isRetryableStatus(res.status);
        lastError = new Error(`callback answered HTTP ${res.status}`);
      } catch (err) {
        lastError = err;
        lastStatus = undefined;
      }
      if (!retryable) {
        const message = `callback rejected ${what}: HTTP ${lastStatus} from ${loggableUrl(target.url)}; not retried`;
        this.logger.error(message);
        throw new CallbackError('OCP_CALLBACK_REJECTED', message, {
          attempts: attempt,
          ...(lastStatus !== undefined ? { lastStatus } : {}),
          cause: lastError,
        });
      }
      if (attempt < this.policy.maxAttempts) {
        const delayMs = backoffDelayMs(attempt, this.policy);
        this.logger.warn(
          `callback for ${what} failed (attempt ${attempt}/${this.policy.maxAttempts}: ${errorMessage(lastError)}); retrying in ${delayMs} ms`,
        );
        await this.sleep(delayMs);
      }
    }

    const message = `callback gave up on ${what} after ${this.policy.maxAttempts} attempts to ${loggableUrl(target.url)}: ${errorMessage(lastError)}`;
    this.logger.error(message);
    throw new CallbackError('OCP_CALLBACK_FAILED', message, {
      attempts: this.policy.maxAttempts,
      ...(lastStatus !== undefined ? { lastStatus } : {}),
      cause: lastError,
    });
  }
}

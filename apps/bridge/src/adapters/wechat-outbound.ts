import type { Logger } from '@moltage/core';
import { type WeChatApiClient, WeChatApiError, WeChatError } from '@moltage/wechat';
import type { SendOutcome, WeChatOutbound } from '../domain/ports.js';
import type { Metrics } from '../metrics.js';

/**
 * errcodes worth retrying: system busy, per-minute quota, and token errors that survived the
 * client's own refresh-and-retry. Everything else (45015 window closed, 45047 budget used,
 * 40003 bad openid, 48001 no permission, …) is permanent for this message.
 */
const TRANSIENT_ERRCODES = new Set([-1, 45011, 40001, 40014, 42001]);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** Customer-service sends with retries and backoff for transient failures; errcodes counted in metrics. */
export class WeChatSender implements WeChatOutbound {
  constructor(
    private readonly client: WeChatApiClient,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly retry: { attempts: number; baseMs: number } = { attempts: 4, baseMs: 500 },
  ) {}

  async sendText(openid: string, text: string, signal?: AbortSignal): Promise<SendOutcome> {
    let last = '';
    for (let attempt = 1; attempt <= this.retry.attempts; attempt++) {
      try {
        await this.client.sendText(openid, text);
        return { ok: true };
      } catch (err) {
        const label = errLabel(err);
        this.metrics.wechatErrors.inc({ errcode: label });
        if (err instanceof WeChatApiError && !TRANSIENT_ERRCODES.has(err.errcode)) {
          return { ok: false, permanent: true, errcode: err.errcode };
        }
        if (!(err instanceof WeChatError)) throw err;
        last = err.message;
        this.log.warn({ openid, errcode: label, attempt }, 'customer-service send failed; will retry');
        if (attempt < this.retry.attempts && !signal?.aborted) {
          await sleep(this.retry.baseMs * 2 ** (attempt - 1), signal);
        }
        if (signal?.aborted) break;
      }
    }
    return { ok: false, permanent: false, error: last };
  }

  async typing(openid: string, command: 'Typing' | 'CancelTyping'): Promise<void> {
    try {
      await this.client.typing(openid, command);
    } catch (err) {
      this.metrics.wechatErrors.inc({ errcode: errLabel(err) });
      this.log.debug({ openid, errcode: errLabel(err) }, 'typing indicator failed');
    }
  }
}

function errLabel(err: unknown): string {
  if (err instanceof WeChatApiError) return String(err.errcode);
  if (err instanceof WeChatError) return err.code === 'WECHAT_TIMEOUT' ? 'timeout' : 'http';
  return 'other';
}

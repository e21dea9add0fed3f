import type { Logger } from '@moltage/core';
import type { AgentWaits } from '../adapters/agent-waits.js';
import type { WeChatOutbound } from '../domain/ports.js';

/**
 * Shows "typing…" in the user's chat while an agent works on a message. It first shows after
 * `firstAfterMs` if no answer came by then (an answer within a second needs no indicator, and
 * spares a WeChat API call), and as WeChat shows it for 15 s, it is refreshed every `refreshMs`
 * while the user still has an unanswered message (any process may receive the reply: the wait in
 * Redis decides), up to `maxMs`. The typing indicator is not a message: it never uses the user's
 * 5-message budget.
 */
export class TypingIndicator {
  readonly #loops = new Map<string, { timer: NodeJS.Timeout; until: number }>();

  constructor(
    private readonly wechat: WeChatOutbound,
    private readonly waits: AgentWaits,
    private readonly log: Logger,
    private readonly opts: { firstAfterMs: number; refreshMs: number; maxMs: number },
  ) {}

  start(openid: string): void {
    const until = Date.now() + this.opts.maxMs;
    const existing = this.#loops.get(openid);
    if (existing) {
      existing.until = until;
      return;
    }
    const timer = setTimeout(() => this.#begin(openid), this.opts.firstAfterMs);
    timer.unref();
    this.#loops.set(openid, { timer, until });
  }

  /** The first indicator (if the user still waits), then the refreshes. */
  #begin(openid: string): void {
    const loop = this.#loops.get(openid);
    if (!loop) return;
    loop.timer = setInterval(() => {
      void this.#tick(openid);
    }, this.opts.refreshMs);
    loop.timer.unref();
    void this.#tick(openid);
  }

  stop(openid: string): void {
    const loop = this.#loops.get(openid);
    if (!loop) return;
    clearInterval(loop.timer);
    this.#loops.delete(openid);
  }

  close(): void {
    for (const openid of [...this.#loops.keys()]) this.stop(openid);
  }

  async #tick(openid: string): Promise<void> {
    const loop = this.#loops.get(openid);
    if (!loop) return;
    try {
      if (Date.now() > loop.until || (await this.waits.count(openid)) === 0) {
        this.stop(openid);
        return;
      }
      await this.wechat.typing(openid, 'Typing');
    } catch (err) {
      this.log.debug({ err, openid }, 'typing refresh failed');
    }
  }
}

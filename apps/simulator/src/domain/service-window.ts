/**
 * The customer-service message rules (客服消息下发规则): a user action (a message, following,
 * scanning a QR code, clicking a menu) opens a window of 48 hours in which the account may
 * send that user at most 5 customer-service messages. Windows do not add up: each new user
 * action resets the budget to the full 5 and restarts the 48 hours. Unfollowing closes the
 * window. Outside a window WeChat answers 45015; past the budget, 45047.
 */

/** The user action a window was opened by; sends are counted against it. */
export interface Interaction {
  /** MsgId of a message, or `FromUserName:CreateTime` of an event (WeChat's own dedup key). */
  ref: string;
  /** `text`, `image`, …, or `event:<Event>`. */
  kind: string;
  /** Simulator-clock ms. */
  at: number;
}

export interface WindowOptions {
  /** WeChat: 48 h. */
  windowMs?: number;
  /** Messages per user action (WeChat: 5). */
  budget?: number;
}

export interface WindowState {
  interaction: Interaction;
  used: number;
  remaining: number;
  /** Simulator-clock ms after which sends fail with 45015. */
  closesAt: number;
  /** Closed by an unfollow. */
  closed: boolean;
}

export type SendVerdict =
  | { ok: true; countsAgainst: Interaction; used: number; remaining: number }
  | { ok: false; errcode: 45015 | 45047 };

interface Entry {
  interaction: Interaction;
  used: number;
  closed: boolean;
}

export class ServiceWindows {
  readonly windowMs: number;
  readonly budget: number;
  #entries = new Map<string, Entry>();

  constructor(opts: WindowOptions = {}) {
    this.windowMs = opts.windowMs ?? 48 * 3_600_000;
    this.budget = opts.budget ?? 5;
  }

  /** A user action: a fresh window with the full budget. */
  open(openid: string, interaction: Interaction): void {
    this.#entries.set(openid, { interaction: { ...interaction }, used: 0, closed: false });
  }

  /** The user unfollowed: nothing can be sent until they act again. */
  close(openid: string): void {
    const e = this.#entries.get(openid);
    if (e) e.closed = true;
  }

  /** Whether a message could be sent now, without using the budget (the typing indicator). */
  check(openid: string, now: number): SendVerdict {
    return this.#verdict(openid, now, false);
  }

  /** Uses one message of the budget, or says why WeChat would refuse. */
  consume(openid: string, now: number): SendVerdict {
    return this.#verdict(openid, now, true);
  }

  state(openid: string): WindowState | null {
    const e = this.#entries.get(openid);
    if (!e) return null;
    return {
      interaction: { ...e.interaction },
      used: e.used,
      remaining: Math.max(0, this.budget - e.used),
      closesAt: e.interaction.at + this.windowMs,
      closed: e.closed,
    };
  }

  forget(openid: string): void {
    this.#entries.delete(openid);
  }

  reset(): void {
    this.#entries.clear();
  }

  #verdict(openid: string, now: number, consume: boolean): SendVerdict {
    const e = this.#entries.get(openid);
    if (!e || e.closed || now - e.interaction.at > this.windowMs) return { ok: false, errcode: 45015 };
    if (e.used >= this.budget) return { ok: false, errcode: 45047 };
    if (consume) e.used += 1;
    return { ok: true, countsAgainst: { ...e.interaction }, used: e.used, remaining: this.budget - e.used };
  }
}

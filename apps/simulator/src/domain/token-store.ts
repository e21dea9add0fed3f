import type { Clock } from './clock.js';

/** `basic`: GET /cgi-bin/token; `stable`: POST /cgi-bin/stable_token. WeChat keeps the two apart. */
export type TokenKind = 'basic' | 'stable';

/**
 * How a presented access_token stands:
 * - `valid`
 * - `expired` → 42001 (lifetime over, or expired on purpose by a test)
 * - `superseded` → 40001 (a newer token replaced it and its grace period is over, or force refresh)
 * - `unknown` → 40001 (looks like a token, but this account never issued it)
 * - `malformed` → 40014 (not shaped like an access_token at all)
 */
export type TokenStatus = 'valid' | 'expired' | 'superseded' | 'unknown' | 'malformed';

export interface TokenStoreOptions {
  /** Lifetime of a token (WeChat: 7200 s). */
  ttlMs?: number;
  /** GET /cgi-bin/token: the previous token keeps working this long after a new one is issued (WeChat: 5 min). */
  graceMs?: number;
  /** Stable tokens: normal mode hands out a fresh token once the current one has less than this left (WeChat: 5 min). */
  stableRenewBeforeMs?: number;
  /** Stable tokens: minimum spacing of force_refresh calls (WeChat: 30 s). */
  forceRefreshIntervalMs?: number;
  /** Stable tokens: force_refresh calls allowed per day (WeChat: 20). */
  forceRefreshPerDay?: number;
  /** Generates a new opaque token string. */
  newToken: () => string;
}

export interface IssuedToken {
  token: string;
  /** Seconds left, as WeChat's `expires_in`. */
  expiresIn: number;
}

export type StableResult = ({ ok: true } & IssuedToken) | { ok: false; errcode: 45009 | 45011 };

interface TokenRecord {
  token: string;
  kind: TokenKind;
  issuedAt: number;
  expiresAt: number;
  /** When set, the token stops working at this time even though it has not expired. */
  invalidAt: number | null;
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,512}$/;
const DAY_MS = 86_400_000;
/** WeChat's daily quotas reset at midnight Beijing time (UTC+8). */
const BEIJING_OFFSET_MS = 8 * 3_600_000;
/** Records of tokens that died this long ago are forgotten (they then read as `unknown`). */
const FORGET_AFTER_MS = 7 * DAY_MS;

export class TokenStore {
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #graceMs: number;
  readonly #renewBeforeMs: number;
  readonly #forceIntervalMs: number;
  readonly #forcePerDay: number;
  readonly #newToken: () => string;
  #records = new Map<string, TokenRecord>();
  #current: Partial<Record<TokenKind, TokenRecord>> = {};
  #lastForceAt: number | null = null;
  #forceDay = -1;
  #forceCount = 0;

  constructor(clock: Clock, opts: TokenStoreOptions) {
    this.#clock = clock;
    this.#ttlMs = opts.ttlMs ?? 7_200_000;
    this.#graceMs = opts.graceMs ?? 300_000;
    this.#renewBeforeMs = opts.stableRenewBeforeMs ?? 300_000;
    this.#forceIntervalMs = opts.forceRefreshIntervalMs ?? 30_000;
    this.#forcePerDay = opts.forceRefreshPerDay ?? 20;
    this.#newToken = opts.newToken;
  }

  /** GET /cgi-bin/token: always a new token; the previous one works for the grace period only. */
  issueBasic(): IssuedToken {
    const now = this.#clock.now();
    const prev = this.#current.basic;
    if (prev && this.#statusOf(prev, now) === 'valid') {
      prev.invalidAt = Math.min(prev.expiresAt, now + this.#graceMs);
    }
    const rec = this.#issue('basic', now);
    return { token: rec.token, expiresIn: this.#secondsLeft(rec, now) };
  }

  /**
   * POST /cgi-bin/stable_token. Normal mode returns the current token while it has more than
   * `stableRenewBeforeMs` left, else a new one (the old one lives out its lifetime). Force
   * refresh kills the current token at once and is rate-limited (45011 within the interval,
   * 45009 past the daily quota).
   */
  issueStable(forceRefresh: boolean): StableResult {
    const now = this.#clock.now();
    const cur = this.#current.stable;
    if (forceRefresh) {
      const day = Math.floor((now + BEIJING_OFFSET_MS) / DAY_MS);
      if (day !== this.#forceDay) {
        this.#forceDay = day;
        this.#forceCount = 0;
      }
      if (this.#lastForceAt !== null && now - this.#lastForceAt < this.#forceIntervalMs) {
        return { ok: false, errcode: 45011 };
      }
      if (this.#forceCount >= this.#forcePerDay) return { ok: false, errcode: 45009 };
      this.#lastForceAt = now;
      this.#forceCount += 1;
      if (cur && this.#statusOf(cur, now) === 'valid') cur.invalidAt = now;
      const rec = this.#issue('stable', now);
      return { ok: true, token: rec.token, expiresIn: this.#secondsLeft(rec, now) };
    }
    if (cur && this.#statusOf(cur, now) === 'valid' && cur.expiresAt - now > this.#renewBeforeMs) {
      return { ok: true, token: cur.token, expiresIn: this.#secondsLeft(cur, now) };
    }
    const rec = this.#issue('stable', now);
    return { ok: true, token: rec.token, expiresIn: this.#secondsLeft(rec, now) };
  }

  /** How `token` stands right now. */
  check(token: string): TokenStatus {
    const rec = this.#records.get(token);
    if (!rec) return TOKEN_SHAPE.test(token) ? 'unknown' : 'malformed';
    return this.#statusOf(rec, this.#clock.now());
  }

  /** Which endpoint issued `token`, when known. */
  kindOf(token: string): TokenKind | undefined {
    return this.#records.get(token)?.kind;
  }

  /** Expires every live token now (both kinds); returns how many were live. */
  expireAll(): number {
    const now = this.#clock.now();
    let n = 0;
    for (const rec of this.#records.values()) {
      if (this.#statusOf(rec, now) === 'valid') {
        rec.expiresAt = now;
        n += 1;
      }
    }
    return n;
  }

  /** Forgets every token and the force-refresh counters. */
  reset(): void {
    this.#records.clear();
    this.#current = {};
    this.#lastForceAt = null;
    this.#forceDay = -1;
    this.#forceCount = 0;
  }

  #issue(kind: TokenKind, now: number): TokenRecord {
    this.#forgetOld(now);
    let token = this.#newToken();
    while (this.#records.has(token)) token = this.#newToken();
    const rec: TokenRecord = { token, kind, issuedAt: now, expiresAt: now + this.#ttlMs, invalidAt: null };
    this.#records.set(token, rec);
    this.#current[kind] = rec;
    return rec;
  }

  #statusOf(rec: TokenRecord, now: number): TokenStatus {
    const superseded = rec.invalidAt !== null && rec.invalidAt < rec.expiresAt;
    if (superseded && now >= (rec.invalidAt as number)) return 'superseded';
    if (now >= rec.expiresAt) return 'expired';
    return 'valid';
  }

  #secondsLeft(rec: TokenRecord, now: number): number {
    return Math.max(0, Math.floor((rec.expiresAt - now) / 1000));
  }

  #forgetOld(now: number): void {
    for (const [token, rec] of this.#records) {
      const diedAt = Math.min(rec.expiresAt, rec.invalidAt ?? Number.POSITIVE_INFINITY);
      if (now - diedAt > FORGET_AFTER_MS) this.#records.delete(token);
    }
  }
}

import type { Redis } from 'ioredis';
import { keys } from '../keys.js';
import { LuaScript } from './lua.js';
import type { AttemptCounter } from './queue-worker.js';

/** A ledger lives as long as WeChat lets us answer a message (48 h) plus a margin. */
export const LEDGER_TTL_S = 50 * 3600;
const QUOTA_TTL_S = 48 * 3600;

const RESERVE = new LuaScript(`
-- KEYS: ledger, quota ; ARGV: field, needed, budget, quotaTtlS, ledgerTtlS
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then return tonumber(prev) end
local used = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local avail = tonumber(ARGV[3]) - used
if avail < 0 then avail = 0 end
local n = tonumber(ARGV[2])
if n > avail then n = avail end
if n > 0 then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBY', KEYS[2], n)
  else redis.call('SET', KEYS[2], n, 'EX', ARGV[4]) end
end
redis.call('HSET', KEYS[1], ARGV[1], n)
redis.call('EXPIRE', KEYS[1], ARGV[5])
return n
`);

// One EVALSHA (pipelined with the process's other commands) instead of a MULTI of four.
const SET = new LuaScript(`
-- KEYS: ledger ; ARGV: ttlS, field, value
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
`);

const ATTEMPT = new LuaScript(`
-- KEYS: ledger ; ARGV: ttlS
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
`);

const SET_NX = new LuaScript(`
-- KEYS: ledger ; ARGV: field, value, ttlS
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return redis.call('HGET', KEYS[1], ARGV[1])
`);

/** Answers kept for a user's next message live this long after the last one was kept. */
export const HELD_TTL_S = 7 * 24 * 3600;

const HOLD = new LuaScript(`
-- KEYS: ledger, held ; ARGV: field, answer JSON, heldTtlS, ledgerTtlS
-- Once per (entry, field): a retry after a crash does not keep the same answer twice.
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
`);

/** An answer that could not be sent (no budget left, window closed), kept for the next message. */
export interface HeldAnswer {
  text: string;
  /** ms since epoch when it was kept. */
  at: number;
}

/**
 * Per-entry processing state in `ledger:<entry id>` (a hash): attempts, the decided answer or
 * reply plan, whether the message was dispatched (and when the agent replied), and the state of every customer-service
 * message (`sending`, `sent`, `failed:<errcode>`, `skipped`). A message marked `sent` is never
 * sent again, by any process, after any crash. Also keeps the user's customer-service budget in
 * `quota:<openid>`.
 */
export class SendLedger implements AttemptCounter {
  constructor(
    private readonly redis: Redis,
    readonly budget = 5,
  ) {}

  async attempt(eid: string): Promise<number> {
    return Number(await ATTEMPT.run(this.redis, [keys.ledger(eid)], [LEDGER_TTL_S]));
  }

  async unattempt(eid: string): Promise<void> {
    await this.redis.hincrby(keys.ledger(eid), 'attempts', -1);
  }

  async get(eid: string, field: string): Promise<string | null> {
    return this.redis.hget(keys.ledger(eid), field);
  }

  /** Whether any of `fields` is recorded for the entry. */
  async hasAny(eid: string, fields: string[]): Promise<boolean> {
    const values = await this.redis.hmget(keys.ledger(eid), ...fields);
    return values.some((v) => v !== null);
  }

  async set(eid: string, field: string, value: string): Promise<void> {
    await SET.run(this.redis, [keys.ledger(eid)], [LEDGER_TTL_S, field, value]);
  }

  async del(eid: string, ...fields: string[]): Promise<void> {
    if (fields.length) await this.redis.hdel(keys.ledger(eid), ...fields);
  }

  /** Stores `value` unless the field exists; returns the stored value either way. */
  async setOnce(eid: string, field: string, value: string): Promise<string> {
    return String(await SET_NX.run(this.redis, [keys.ledger(eid)], [field, value, LEDGER_TTL_S]));
  }

  /**
   * Reserves up to `needed` messages of the user's budget for `eid` (once: a repeated call
   * returns the first reservation). Returns how many may be sent.
   */
  async reserve(openid: string, eid: string, field: string, needed: number): Promise<number> {
    const n = await RESERVE.run(
      this.redis,
      [keys.ledger(eid), keys.quota(openid)],
      [`reserved:${field}`, needed, this.budget, QUOTA_TTL_S, LEDGER_TTL_S],
    );
    return Number(n);
  }

  /** Messages the user's current window still allows. */
  async remaining(openid: string): Promise<number> {
    const used = Number((await this.redis.get(keys.quota(openid))) ?? 0);
    return Math.max(0, this.budget - used);
  }

  /**
   * Keeps an answer the budget did not let out (`held:<openid>`), once per entry and `field`, to
   * be sent when the user writes next (each message of theirs opens a new budget).
   */
  async hold(openid: string, eid: string, field: string, text: string, at: number): Promise<void> {
    const answer: HeldAnswer = { text, at };
    await HOLD.run(
      this.redis,
      [keys.ledger(eid), keys.held(openid)],
      [field, JSON.stringify(answer), HELD_TTL_S, LEDGER_TTL_S],
    );
  }

  /** The user's kept answers, oldest first, and how many list items were read (to drop them). */
  async held(openid: string): Promise<{ answers: HeldAnswer[]; count: number }> {
    const raw = await this.redis.lrange(keys.held(openid), 0, -1);
    const answers: HeldAnswer[] = [];
    for (const item of raw) {
      try {
        const a = JSON.parse(item) as Partial<HeldAnswer>;
        if (typeof a.text === 'string') answers.push({ text: a.text, at: Number(a.at ?? 0) });
      } catch {
        // Not ours: skipped, and dropped with the rest once delivered.
      }
    }
    return { answers, count: raw.length };
  }

  /** Forgets the oldest `count` kept answers (delivered). */
  async dropHeld(openid: string, count: number): Promise<void> {
    if (count > 0) await this.redis.ltrim(keys.held(openid), count, -1);
  }

  /** WeChat said the budget is used up (45047) or the window closed (45015). */
  async exhaust(openid: string): Promise<void> {
    await this.redis.set(keys.quota(openid), this.budget, 'EX', QUOTA_TTL_S);
  }
}

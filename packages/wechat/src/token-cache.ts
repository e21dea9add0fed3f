import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DEFAULT_TOKEN_KEY_PREFIX, tokenKey, tokenLockKey } from './keys.js';

export interface CachedToken {
  token: string;
  /** Epoch milliseconds at which WeChat stops accepting the token. */
  expiresAt: number;
}

/** Where access tokens are shared, and how refreshes are serialized. */
export interface TokenCache {
  get(appId: string): Promise<CachedToken | null>;
  set(appId: string, value: CachedToken): Promise<void>;
  /** Runs fn while holding a cross-process refresh lock for appId; returns null if another holder had it and did not finish within waitMs. */
  withLock<T>(appId: string, fn: () => Promise<T>, waitMs: number): Promise<T | null>;
  /** Drops the cached token, but only if it is still `token` (another process may have replaced it). */
  invalidate(appId: string, token: string): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function parseCached(raw: string | null): CachedToken | null {
  if (raw === null) return null;
  try {
    const v = JSON.parse(raw) as Partial<CachedToken>;
    if (typeof v.token === 'string' && v.token.length > 0 && typeof v.expiresAt === 'number') {
      return { token: v.token, expiresAt: v.expiresAt };
    }
  } catch {
    // A value we did not write: treat as absent, the next refresh overwrites it.
  }
  return null;
}

/** In-process cache and lock: enough for a single process. */
export class MemoryTokenCache implements TokenCache {
  readonly #tokens = new Map<string, CachedToken>();
  readonly #locks = new Map<string, Promise<void>>();

  async get(appId: string): Promise<CachedToken | null> {
    const v = this.#tokens.get(appId);
    if (!v) return null;
    if (v.expiresAt <= Date.now()) {
      this.#tokens.delete(appId);
      return null;
    }
    return { ...v };
  }

  async set(appId: string, value: CachedToken): Promise<void> {
    this.#tokens.set(appId, { ...value });
  }

  async invalidate(appId: string, token: string): Promise<void> {
    if (this.#tokens.get(appId)?.token === token) this.#tokens.delete(appId);
  }

  async withLock<T>(appId: string, fn: () => Promise<T>, waitMs: number): Promise<T | null> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const held = this.#locks.get(appId);
      if (!held) break;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return null;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        held.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), remaining);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut && this.#locks.get(appId) === held) return null;
    }
    let release!: () => void;
    this.#locks.set(
      appId,
      new Promise<void>((resolve) => {
        release = resolve;
      }),
    );
    try {
      return await fn();
    } finally {
      this.#locks.delete(appId);
      release();
    }
  }
}

export interface RedisTokenCacheOptions {
  /** Key prefix; the token lives at `<prefix><appId>`, the lock at `<prefix><appId>:lock`. Default `wechat:token:`. */
  keyPrefix?: string;
  /** Lifetime of the refresh lock, so a crashed holder cannot block refreshes for long. Default 15000. */
  lockTtlMs?: number;
  /** How often a waiter retries the lock. Default 50. */
  pollMs?: number;
}

// Deletes KEYS[1] only if it still holds ARGV[1] (our lock value).
const RELEASE_LOCK_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

// Deletes the cached token KEYS[1] only if its token is still ARGV[1].
const INVALIDATE_LUA = `
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, v = pcall(cjson.decode, raw)
if (not ok) or type(v) ~= 'table' or v.token == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/**
 * Shares one access token among all processes through Redis. The refresh lock is `SET NX PX`
 * with a random value, released by a Lua compare-and-delete so a holder never frees a lock
 * that expired and was taken by someone else.
 */
export class RedisTokenCache implements TokenCache {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #lockTtlMs: number;
  readonly #pollMs: number;

  constructor(redis: Redis, opts: RedisTokenCacheOptions = {}) {
    this.#redis = redis;
    this.#prefix = opts.keyPrefix ?? DEFAULT_TOKEN_KEY_PREFIX;
    this.#lockTtlMs = opts.lockTtlMs ?? 15_000;
    this.#pollMs = opts.pollMs ?? 50;
  }

  async get(appId: string): Promise<CachedToken | null> {
    const v = parseCached(await this.#redis.get(tokenKey(this.#prefix, appId)));
    return v && v.expiresAt > Date.now() ? v : null;
  }

  async set(appId: string, value: CachedToken): Promise<void> {
    const ttlMs = Math.floor(value.expiresAt - Date.now());
    if (ttlMs <= 0) return;
    await this.#redis.set(tokenKey(this.#prefix, appId), JSON.stringify(value), 'PX', ttlMs);
  }

  async invalidate(appId: string, token: string): Promise<void> {
    await this.#redis.eval(INVALIDATE_LUA, 1, tokenKey(this.#prefix, appId), token);
  }

  async withLock<T>(appId: string, fn: () => Promise<T>, waitMs: number): Promise<T | null> {
    const key = tokenLockKey(this.#prefix, appId);
    const value = randomBytes(16).toString('hex');
    const deadline = Date.now() + waitMs;
    for (;;) {
      const ok = await this.#redis.set(key, value, 'PX', this.#lockTtlMs, 'NX');
      if (ok === 'OK') break;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return null;
      await sleep(Math.min(this.#pollMs, remaining));
    }
    try {
      return await fn();
    } finally {
      await this.#redis.eval(RELEASE_LOCK_LUA, 1, key, value).catch(() => {
        // The lock expires by itself after lockTtlMs.
      });
    }
  }
}

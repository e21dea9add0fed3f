import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { keys } from '../keys.js';

/** A console login, stored at `admin:session:<sha256(cookie)>` (README → Console). */
export interface AdminSession {
  /** Sent back with every action (form field or `x-csrf-token`). */
  csrf: string;
  createdAt: string;
  /** Ties the session to the ADMIN_TOKEN it was opened with: a new token ends old sessions. */
  tokenTag: string;
}

export interface LoginLimits {
  /** Failed logins from one address before it must wait. */
  maxFailures: number;
  /** How long failures are remembered (and how long a blocked address waits). */
  windowS: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { maxFailures: 5, windowS: 15 * 60 };

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Compares two secrets in constant time (whatever their lengths). */
export function secretEquals(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

/**
 * Console logins: the admin token check (constant time), failed-login counting per client
 * address, and sessions in Redis with a TTL. Any bridge process sharing the Redis can serve a
 * session; logging out or changing ADMIN_TOKEN ends it.
 */
export class AdminSessions {
  readonly #tokenTag: string;

  constructor(
    private readonly redis: Redis,
    private readonly adminToken: string,
    readonly ttlS: number,
    readonly limits: LoginLimits = DEFAULT_LOGIN_LIMITS,
  ) {
    this.#tokenTag = createHmac('sha256', adminToken)
      .update('moltage-console-session')
      .digest('hex')
      .slice(0, 32);
  }

  tokenMatches(given: string): boolean {
    return secretEquals(given, this.adminToken);
  }

  /** Seconds the address must still wait before trying again, or 0. */
  async blockedForS(ip: string): Promise<number> {
    const key = keys.adminLoginFailures(ip);
    const [n, ttl] = await Promise.all([this.redis.get(key), this.redis.ttl(key)]);
    if (Number(n ?? 0) < this.limits.maxFailures) return 0;
    return ttl > 0 ? ttl : this.limits.windowS;
  }

  /** Counts a failed login; returns how many attempts the address has left. */
  async recordFailure(ip: string): Promise<number> {
    const key = keys.adminLoginFailures(ip);
    // The window starts at the first failure (INCR keeps the TTL); works on Redis 6.2.
    const res = (await this.redis.multi().set(key, 0, 'EX', this.limits.windowS, 'NX').incr(key).exec()) as [
      Error | null,
      unknown,
    ][];
    const n = Number(res[1]?.[1] ?? this.limits.maxFailures);
    return Math.max(0, this.limits.maxFailures - Number(n));
  }

  async clearFailures(ip: string): Promise<void> {
    await this.redis.del(keys.adminLoginFailures(ip));
  }

  /** Opens a session; returns the cookie value (shown to nobody else) and the session. */
  async create(now: Date): Promise<{ sid: string; session: AdminSession }> {
    const sid = randomBytes(32).toString('base64url');
    const session: AdminSession = {
      csrf: randomBytes(24).toString('base64url'),
      createdAt: now.toISOString(),
      tokenTag: this.#tokenTag,
    };
    await this.redis.set(this.#key(sid), JSON.stringify(session), 'EX', this.ttlS);
    return { sid, session };
  }

  /** The session behind a cookie value, or null (unknown, expired, or opened with another token). */
  async get(sid: string | undefined): Promise<AdminSession | null> {
    if (!sid || !/^[A-Za-z0-9_-]{43}$/.test(sid)) return null;
    const raw = await this.redis.get(this.#key(sid));
    if (!raw) return null;
    try {
      const s = JSON.parse(raw) as AdminSession;
      if (typeof s.csrf !== 'string' || s.tokenTag !== this.#tokenTag) return null;
      return s;
    } catch {
      return null;
    }
  }

  async destroy(sid: string | undefined): Promise<void> {
    if (sid && /^[A-Za-z0-9_-]{43}$/.test(sid)) await this.redis.del(this.#key(sid));
  }

  #key(sid: string): string {
    return keys.adminSession(createHash('sha256').update(sid).digest('hex'));
  }
}

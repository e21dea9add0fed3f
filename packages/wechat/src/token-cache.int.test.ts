import { randomBytes } from 'node:crypto';
import { type RedisServer, startRedis, waitFor } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisTokenCache } from './token-cache.js';

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis({ appendonly: false });
  redis = new Redis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

function prefix(): string {
  return `test:${randomBytes(4).toString('hex')}:`;
}

describe('RedisTokenCache', () => {
  it('stores the token as JSON with a TTL matching its expiry', async () => {
    const p = prefix();
    const c = new RedisTokenCache(redis, { keyPrefix: p });
    const expiresAt = Date.now() + 60_000;
    await c.set('app', { token: 't1', expiresAt });
    expect(await c.get('app')).toEqual({ token: 't1', expiresAt });
    expect(JSON.parse((await redis.get(`${p}app`))!)).toEqual({ token: 't1', expiresAt });
    const ttl = await redis.pttl(`${p}app`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('uses wechat:token:<appid> by default', async () => {
    const c = new RedisTokenCache(redis);
    const appId = `wx${randomBytes(4).toString('hex')}`;
    await c.set(appId, { token: 't', expiresAt: Date.now() + 10_000 });
    expect(await redis.exists(`wechat:token:${appId}`)).toBe(1);
    await redis.del(`wechat:token:${appId}`);
  });

  it('treats missing, expired and foreign values as absent', async () => {
    const p = prefix();
    const c = new RedisTokenCache(redis, { keyPrefix: p });
    expect(await c.get('app')).toBeNull();
    await c.set('app', { token: 'gone', expiresAt: Date.now() - 1 });
    expect(await c.get('app')).toBeNull();
    await redis.set(`${p}app`, 'not json');
    expect(await c.get('app')).toBeNull();
    await redis.set(`${p}app`, JSON.stringify({ token: 'x', expiresAt: Date.now() - 5 }));
    expect(await c.get('app')).toBeNull();
  });

  it('invalidate deletes only if the stored token is still the given one', async () => {
    const p = prefix();
    const c = new RedisTokenCache(redis, { keyPrefix: p });
    await c.set('app', { token: 'new', expiresAt: Date.now() + 60_000 });
    await c.invalidate('app', 'old');
    expect(await c.get('app')).toMatchObject({ token: 'new' });
    await c.invalidate('app', 'new');
    expect(await redis.exists(`${p}app`)).toBe(0);
  });

  it('withLock excludes a second holder across connections and hands over on release', async () => {
    const p = prefix();
    const other = new Redis(server.url);
    try {
      const a = new RedisTokenCache(redis, { keyPrefix: p, pollMs: 10 });
      const b = new RedisTokenCache(other, { keyPrefix: p, pollMs: 10 });
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const events: string[] = [];
      const first = a.withLock(
        'app',
        async () => {
          events.push('a:start');
          await gate;
          events.push('a:end');
          return 'a';
        },
        1000,
      );
      await waitFor(async () => (await redis.exists(`${p}app:lock`)) === 1, { what: 'lock taken' });
      expect(await b.withLock('app', async () => 'b-too-early', 50)).toBeNull();
      const second = b.withLock(
        'app',
        async () => {
          events.push('b');
          return 'b';
        },
        5000,
      );
      release();
      expect(await Promise.all([first, second])).toEqual(['a', 'b']);
      expect(events).toEqual(['a:start', 'a:end', 'b']);
      expect(await redis.exists(`${p}app:lock`)).toBe(0);
    } finally {
      other.disconnect();
    }
  });

  it('a holder whose lock expired does not release the next holder’s lock', async () => {
    const p = prefix();
    const c = new RedisTokenCache(redis, { keyPrefix: p, lockTtlMs: 100, pollMs: 10 });
    let release!: () => void;
    const slow = c.withLock('app', () => new Promise<void>((r) => (release = r)), 1000);
    await new Promise((r) => setTimeout(r, 150)); // the lock expired
    let releaseSecond!: () => void;
    const second = c.withLock('app', () => new Promise<void>((r) => (releaseSecond = r)), 1000);
    const secondValue = await waitFor(() => redis.get(`${p}app:lock`), { what: 'second holder' });
    release();
    await slow;
    expect(await redis.get(`${p}app:lock`)).toBe(secondValue);
    releaseSecond();
    await second;
    expect(await redis.exists(`${p}app:lock`)).toBe(0);
  });

  it('releases the lock when fn throws', async () => {
    const p = prefix();
    const c = new RedisTokenCache(redis, { keyPrefix: p });
    await expect(c.withLock('app', async () => Promise.reject(new Error('boom')), 100)).rejects.toThrow(
      'boom',
    );
    expect(await redis.exists(`${p}app:lock`)).toBe(0);
  });
});

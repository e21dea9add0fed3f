import { describe, expect, it } from 'vitest';
import { MemoryTokenCache } from './token-cache.js';

describe('MemoryTokenCache', () => {
  it('stores, returns and expires tokens', async () => {
    const c = new MemoryTokenCache();
    expect(await c.get('app')).toBeNull();
    await c.set('app', { token: 't1', expiresAt: Date.now() + 60_000 });
    expect(await c.get('app')).toMatchObject({ token: 't1' });
    expect(await c.get('other')).toBeNull();
    await c.set('app', { token: 'old', expiresAt: Date.now() - 1 });
    expect(await c.get('app')).toBeNull();
  });

  it('invalidate drops the token only if it is still the given one', async () => {
    const c = new MemoryTokenCache();
    await c.set('app', { token: 't2', expiresAt: Date.now() + 60_000 });
    await c.invalidate('app', 't1');
    expect(await c.get('app')).toMatchObject({ token: 't2' });
    await c.invalidate('app', 't2');
    expect(await c.get('app')).toBeNull();
  });

  it('withLock runs holders one at a time, in turn', async () => {
    const c = new MemoryTokenCache();
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const first = c.withLock(
      'app',
      async () => {
        order.push('first:start');
        await gate;
        order.push('first:end');
        return 1;
      },
      1000,
    );
    const second = c.withLock(
      'app',
      async () => {
        order.push('second');
        return 2;
      },
      5000,
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual(['first:start']);
    release();
    expect(await Promise.all([first, second])).toEqual([1, 2]);
    expect(order).toEqual(['first:start', 'first:end', 'second']);
  });

  it('withLock gives null when the holder does not finish within waitMs, and frees the lock on errors', async () => {
    const c = new MemoryTokenCache();
    let release!: () => void;
    const held = c.withLock('app', () => new Promise<void>((r) => (release = r)), 1000);
    expect(await c.withLock('app', async () => 'never', 50)).toBeNull();
    release();
    await held;
    await expect(c.withLock('app', async () => Promise.reject(new Error('boom')), 50)).rejects.toThrow(
      'boom',
    );
    expect(await c.withLock('app', async () => 'free again', 50)).toBe('free again');
  });
});

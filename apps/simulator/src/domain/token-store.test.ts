import { beforeEach, describe, expect, it } from 'vitest';
import { VirtualClock } from './clock.js';
import { TokenStore } from './token-store.js';

const MIN = 60_000;
let wall: number;
let clock: VirtualClock;
let store: TokenStore;
let n: number;

beforeEach(() => {
  wall = Date.UTC(2025, 0, 1, 4, 0, 0);
  clock = new VirtualClock(() => wall);
  n = 0;
  store = new TokenStore(clock, { newToken: () => `token_${String(++n).padStart(20, '0')}` });
});

describe('GET /cgi-bin/token tokens', () => {
  it('a new token leaves the old one valid for exactly 5 minutes', () => {
    const a = store.issueBasic();
    expect(a.expiresIn).toBe(7200);
    clock.advance(10 * MIN);
    const b = store.issueBasic();
    expect(b.token).not.toBe(a.token);
    clock.advance(5 * MIN - 1);
    expect(store.check(a.token)).toBe('valid');
    clock.advance(1);
    expect(store.check(a.token)).toBe('superseded');
    expect(store.check(b.token)).toBe('valid');
  });

  it('expires after the lifetime', () => {
    const a = store.issueBasic();
    clock.advance(7_200_000 - 1);
    expect(store.check(a.token)).toBe('valid');
    clock.advance(1);
    expect(store.check(a.token)).toBe('expired');
  });

  it('an old token near its end is not extended by the grace period', () => {
    const a = store.issueBasic();
    clock.advance(7_200_000 - MIN);
    store.issueBasic();
    clock.advance(MIN);
    expect(store.check(a.token)).toBe('expired');
  });
});

describe('stable tokens', () => {
  it('normal mode returns the same token with the time left', () => {
    const a = store.issueStable(false);
    clock.advance(10 * MIN);
    const b = store.issueStable(false);
    expect(b).toEqual({ ok: true, token: a.ok ? a.token : '', expiresIn: 7200 - 600 });
  });

  it('normal mode renews in the last 5 minutes; the old token lives out its lifetime', () => {
    const a = store.issueStable(false);
    clock.advance(7_200_000 - 5 * MIN);
    const b = store.issueStable(false);
    expect(b.ok && a.ok && b.token !== a.token).toBe(true);
    expect(a.ok && store.check(a.token)).toBe('valid');
  });

  it('force refresh kills the current token, at most once per 30 s and 20 times a day', () => {
    const a = store.issueStable(false);
    const b = store.issueStable(true);
    expect(b.ok).toBe(true);
    expect(a.ok && store.check(a.token)).toBe('superseded');
    expect(store.issueStable(true)).toEqual({ ok: false, errcode: 45011 });
    for (let i = 0; i < 19; i++) {
      clock.advance(30_000);
      expect(store.issueStable(true).ok).toBe(true);
    }
    clock.advance(30_000);
    expect(store.issueStable(true)).toEqual({ ok: false, errcode: 45009 });
    // The quota resets at midnight Beijing time (16:00 UTC).
    clock.advance(12 * 3_600_000);
    expect(store.issueStable(true).ok).toBe(true);
  });

  it('is independent of basic tokens', () => {
    const s = store.issueStable(false);
    store.issueBasic();
    store.issueBasic();
    clock.advance(6 * MIN);
    expect(s.ok && store.check(s.token)).toBe('valid');
    expect(s.ok && store.kindOf(s.token)).toBe('stable');
  });
});

describe('checking and expiring', () => {
  it('tells malformed from unknown', () => {
    expect(store.check('bogus')).toBe('malformed');
    expect(store.check('has spaces in it, clearly not a token')).toBe('malformed');
    expect(store.check('A'.repeat(64))).toBe('unknown');
  });

  it('expireAll ends every live token now', () => {
    const a = store.issueBasic();
    const s = store.issueStable(false);
    expect(store.expireAll()).toBe(2);
    expect(store.check(a.token)).toBe('expired');
    expect(s.ok && store.check(s.token)).toBe('expired');
    const s2 = store.issueStable(false);
    expect(s2.ok && s.ok && s2.token !== s.token).toBe(true);
  });

  it('reset forgets everything', () => {
    const a = store.issueBasic();
    store.reset();
    expect(store.check(a.token)).toBe('unknown');
  });
});

import { describe, expect, it } from 'vitest';
import { checkBearer, secretsEqual } from './auth.js';

describe('checkBearer', () => {
  const token = 'the-webhook-token';

  it('accepts the right token, any case of the scheme', () => {
    expect(checkBearer(`Bearer ${token}`, token)).toEqual({ ok: true });
    expect(checkBearer(`bearer ${token}`, token)).toEqual({ ok: true });
  });

  it('refuses a missing header', () => {
    expect(checkBearer(undefined, token)).toEqual({ ok: false, reason: 'missing bearer token' });
    expect(checkBearer('', token)).toEqual({ ok: false, reason: 'missing bearer token' });
  });

  it('refuses other schemes', () => {
    expect(checkBearer(`Basic ${token}`, token).ok).toBe(false);
  });

  it('refuses a wrong token of any length without throwing', () => {
    for (const wrong of ['x', 'the-webhook-tokeN', `${token}-and-more`, 'a'.repeat(10_000)]) {
      expect(checkBearer(`Bearer ${wrong}`, token)).toEqual({ ok: false, reason: 'invalid bearer token' });
    }
  });
});

describe('secretsEqual', () => {
  it('compares secrets of different lengths (hashing keeps timingSafeEqual from throwing)', () => {
    expect(secretsEqual('abc', 'abc')).toBe(true);
    expect(secretsEqual('abc', 'abcd')).toBe(false);
    expect(secretsEqual('', 'abcd')).toBe(false);
  });
});

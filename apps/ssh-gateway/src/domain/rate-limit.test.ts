import { describe, expect, it } from 'vitest';
import { loginBlockedBy } from './rate-limit.js';

const limits = { perIp: 30, perUser: 10 };

describe('loginBlockedBy', () => {
  it('lets logins through below both limits', () => {
    expect(loginBlockedBy({ ip: 29, user: 9 }, limits)).toBeNull();
  });

  it('blocks an address at its limit, whoever logs in', () => {
    expect(loginBlockedBy({ ip: 30, user: 0 }, limits)).toBe('ip');
    expect(loginBlockedBy({ ip: 30, user: null }, limits)).toBe('ip');
  });

  it('blocks a user at its limit from any address', () => {
    expect(loginBlockedBy({ ip: 0, user: 10 }, limits)).toBe('user');
  });

  it('does not count a user for names that are not user names', () => {
    expect(loginBlockedBy({ ip: 3, user: null }, limits)).toBeNull();
  });
});

import { describe, expect, it } from 'vitest';
import {
  generateSshPassword,
  hashSshPassword,
  SSH_PASSWORD_LENGTH,
  verifySshPassword,
} from './ssh-password.js';

describe('one-time SSH passwords', () => {
  it('are random, unambiguous and verify only against their own hash', async () => {
    const a = generateSshPassword();
    const b = generateSshPassword();
    expect(a).toHaveLength(SSH_PASSWORD_LENGTH);
    expect(a).not.toBe(b);
    expect(a).not.toMatch(/[0O1lI]/);
    const stored = await hashSshPassword(a, new Date());
    expect(JSON.stringify(stored)).not.toContain(a);
    expect(await verifySshPassword(stored, a)).toBe(true);
    expect(await verifySshPassword(stored, b)).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { checkHostKey, type HostKeyPin, hostKeySha256 } from './host-key-pin.js';

const now = new Date('2026-02-01T00:00:00.000Z');
const pin: HostKeyPin = { sha256: 'AAA', vmCreatedAt: 'c1', pinnedAt: '2026-01-01T00:00:00.000Z' };

describe('checkHostKey', () => {
  it('pins the first key it sees', () => {
    expect(checkHostKey(null, 'AAA', 'c1', now)).toEqual({
      kind: 'pin',
      pin: { sha256: 'AAA', vmCreatedAt: 'c1', pinnedAt: now.toISOString() },
      replaces: null,
    });
  });

  it('accepts the pinned key', () => {
    expect(checkHostKey(pin, 'AAA', 'c1', now)).toEqual({ kind: 'match' });
  });

  it('refuses another key for the same VM record', () => {
    expect(checkHostKey(pin, 'BBB', 'c1', now)).toEqual({
      kind: 'mismatch',
      expected: 'AAA',
      presented: 'BBB',
    });
    expect(checkHostKey(pin, 'BBB', null, now)).toMatchObject({ kind: 'mismatch' });
  });

  it('trusts on first use again for a VM record created anew', () => {
    expect(checkHostKey(pin, 'BBB', 'c2', now)).toMatchObject({
      kind: 'pin',
      pin: { sha256: 'BBB', vmCreatedAt: 'c2' },
      replaces: pin,
    });
  });

  it('moves the pin to a new record even when the key stayed, so the old record cannot reopen trust', () => {
    const v = checkHostKey(pin, 'AAA', 'c2', now);
    expect(v).toMatchObject({ kind: 'pin', pin: { sha256: 'AAA', vmCreatedAt: 'c2' } });
    if (v.kind !== 'pin') throw new Error('expected a pin');
    expect(checkHostKey(v.pin, 'BBB', 'c2', now)).toMatchObject({ kind: 'mismatch' });
  });

  it('fingerprints like ssh-keygen (base64 sha256 without padding)', () => {
    expect(hostKeySha256(Buffer.from('abc'))).toBe('ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0');
  });
});

import { randomBytes, scryptSync } from 'node:crypto';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { generateEd25519Key } from '../adapters/openssh-key.js';
import {
  authorizedKeysOf,
  findAuthorizedKey,
  isValidLoginName,
  keyFingerprint,
  loginUserOf,
  parseStoredOtp,
  verifyKeySignature,
  verifyOneTimePassword,
} from './credentials.js';

const { utils } = ssh2;

/** A record in the bridge's format (apps/bridge hashSshPassword). */
function bridgeRecord(password: string, params = { N: 16384, r: 8, p: 1, keyLen: 32 }) {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, params.keyLen, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 64 << 20,
  });
  return JSON.stringify({
    alg: 'scrypt',
    ...params,
    salt: salt.toString('base64'),
    hash: hash.toString('base64'),
    issuedAt: '2026-01-01T00:00:00.000Z',
  });
}

describe('login names', () => {
  it('accepts openids and user ids, nothing else', () => {
    expect(isValidLoginName('oAbc-123_xyzXYZ0123456789abc')).toBe(true);
    for (const bad of ['', 'a b', 'a/b', '../x', 'x'.repeat(65), 'ü', 'a:b'])
      expect(isValidLoginName(bad)).toBe(false);
  });
});

describe('one-time passwords', () => {
  it('verifies a password the bridge stored', async () => {
    const stored = parseStoredOtp(bridgeRecord('Kq7mPz2xVb4nRt'));
    expect(stored).not.toBeNull();
    expect(await verifyOneTimePassword(stored, 'Kq7mPz2xVb4nRt')).toBe(true);
    expect(await verifyOneTimePassword(stored, 'Kq7mPz2xVb4nRT')).toBe(false);
    expect(await verifyOneTimePassword(stored, '')).toBe(false);
  });

  it('says no without a stored password, whatever is typed', async () => {
    expect(await verifyOneTimePassword(null, 'anything')).toBe(false);
    expect(await verifyOneTimePassword(null, '')).toBe(false);
  });

  it('refuses passwords longer than it hashes', async () => {
    const long = 'a'.repeat(2000);
    expect(await verifyOneTimePassword(parseStoredOtp(bridgeRecord(long.slice(0, 1024))), long)).toBe(false);
  });

  it.each([
    ['not JSON', '{'],
    [
      'another algorithm',
      JSON.stringify({ alg: 'md5', N: 16384, r: 8, p: 1, keyLen: 32, salt: 'AA==', hash: 'AA==' }),
    ],
    ['N not a power of two', bridgeRecord('x').replace('"N":16384', '"N":16383')],
    [
      'absurd cost',
      JSON.stringify({ alg: 'scrypt', N: 1 << 22, r: 8, p: 1, keyLen: 32, salt: 'AAAA', hash: 'AAAA' }),
    ],
    [
      'hash of the wrong length',
      JSON.stringify({ alg: 'scrypt', N: 16384, r: 8, p: 1, keyLen: 32, salt: 'AAAA', hash: 'AAAA' }),
    ],
  ])('treats a record with %s as absent', (_what, raw) => {
    expect(parseStoredOtp(raw)).toBeNull();
  });
});

describe('public keys', () => {
  const pair = generateEd25519Key('pair');
  const other = generateEd25519Key('other');
  const [type, b64] = pair.publicKey.split(' ');
  const record = (keys: { type: string; key: string }[]) =>
    JSON.stringify({ openid: 'alice', ssh: { publicKeys: keys, otpIssuedAt: null }, binding: null });

  it('reads the keys of a bridge user record and finds the offered one', () => {
    const keys = authorizedKeysOf(
      record([
        { type: type!, key: b64! },
        { type: 'ssh-ed25519', key: 'garbage' },
      ]),
    );
    expect(keys).toHaveLength(1);
    const blob = Buffer.from(b64!, 'base64');
    expect(keys[0]!.fingerprint).toBe(keyFingerprint(blob));
    expect(findAuthorizedKey(keys, blob)).toBe(keys[0]);
    expect(findAuthorizedKey(keys, Buffer.from(other.publicKey.split(' ')[1]!, 'base64'))).toBeUndefined();
  });

  it('marks users who unfollowed as inactive, and unknown users as absent', () => {
    const rec = (subscribed: boolean) =>
      JSON.stringify({ openid: 'a', subscribed, ssh: { publicKeys: [{ type, key: b64 }] } });
    expect(loginUserOf(rec(true))).toMatchObject({ active: true });
    expect(loginUserOf(rec(false))).toMatchObject({ active: false });
    expect(loginUserOf(null)).toBeNull();
    expect(loginUserOf('[]')).toBeNull();
  });

  it('has no keys for a missing or malformed record', () => {
    expect(authorizedKeysOf(null)).toEqual([]);
    expect(authorizedKeysOf('{')).toEqual([]);
    expect(authorizedKeysOf(JSON.stringify({ openid: 'x' }))).toEqual([]);
  });

  it('verifies signatures made with the private key only', () => {
    const [key] = authorizedKeysOf(record([{ type: type!, key: b64! }]));
    const data = randomBytes(64);
    const priv = utils.parseKey(pair.privateKey);
    const otherPriv = utils.parseKey(other.privateKey);
    if (
      priv instanceof Error ||
      Array.isArray(priv) ||
      otherPriv instanceof Error ||
      Array.isArray(otherPriv)
    ) {
      throw new Error('test keys do not parse');
    }
    expect(verifyKeySignature(key!, data, priv.sign(data), undefined)).toBe(true);
    expect(verifyKeySignature(key!, data, otherPriv.sign(data), undefined)).toBe(false);
    expect(verifyKeySignature(key!, randomBytes(64), priv.sign(data), undefined)).toBe(false);
  });
});

import { randomBytes, randomInt, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';

/** scrypt on the libuv thread pool: a hash costs ~50 ms of CPU that must not block the event loop. */
function scryptAsync(password: string, salt: Buffer, keyLen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** No 0/O, 1/l/I: readable on a phone and easy to type. ~5.9 bits per character. */
const ALPHABET = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
export const SSH_PASSWORD_LENGTH = 14;

/** scrypt parameters of stored one-time passwords (documented in the README for the SSH gateway). */
export const SCRYPT_PARAMS = { N: 16384, r: 8, p: 1, keyLen: 32 } as const;

/** The JSON stored at `sshotp:<openid>`. */
export interface StoredSshPassword {
  alg: 'scrypt';
  N: number;
  r: number;
  p: number;
  keyLen: number;
  /** base64 */
  salt: string;
  /** base64 of scrypt(password, salt) */
  hash: string;
  /** ISO time */
  issuedAt: string;
}

/** A fresh random one-time password (≈ 82 bits). */
export function generateSshPassword(): string {
  let out = '';
  for (let i = 0; i < SSH_PASSWORD_LENGTH; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

export async function hashSshPassword(password: string, issuedAt: Date): Promise<StoredSshPassword> {
  const salt = randomBytes(16);
  const { N, r, p, keyLen } = SCRYPT_PARAMS;
  const hash = await scryptAsync(password, salt, keyLen, { N, r, p, maxmem: 64 * 1024 * 1024 });
  return {
    alg: 'scrypt',
    N,
    r,
    p,
    keyLen,
    salt: salt.toString('base64'),
    hash: hash.toString('base64'),
    issuedAt: issuedAt.toISOString(),
  };
}

/** Verifies a password against a stored record in constant time (what the SSH gateway does). */
export async function verifySshPassword(stored: StoredSshPassword, password: string): Promise<boolean> {
  if (stored.alg !== 'scrypt') return false;
  const expected = Buffer.from(stored.hash, 'base64');
  const actual = await scryptAsync(password, Buffer.from(stored.salt, 'base64'), stored.keyLen, {
    N: stored.N,
    r: stored.r,
    p: stored.p,
    maxmem: 64 * 1024 * 1024,
  });
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

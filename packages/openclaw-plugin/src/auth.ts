import { createHash, timingSafeEqual } from 'node:crypto';

export type BearerCheck = { ok: true } | { ok: false; reason: string };

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Compares two secrets in constant time. Both sides are hashed first so that neither the
 * content nor the length of the expected token leaks through timing.
 */
export function secretsEqual(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** Checks an `Authorization: Bearer <token>` header against the configured token. */
export function checkBearer(header: string | string[] | undefined, expected: string): BearerCheck {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return { ok: false, reason: 'missing bearer token' };
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  if (!match) return { ok: false, reason: 'Authorization header is not a bearer token' };
  return secretsEqual(match[1]!, expected) ? { ok: true } : { ok: false, reason: 'invalid bearer token' };
}

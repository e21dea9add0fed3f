import { createHash, timingSafeEqual } from 'node:crypto';

/** WeChat's signature: sort the parts lexicographically (by code unit), concatenate, SHA-1, lowercase hex. */
export function sha1Signature(...parts: string[]): string {
  const sorted = [...parts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha1').update(sorted.join(''), 'utf8').digest('hex');
}

/** Constant-time comparison of two hex signatures (case-insensitive); false on any length mismatch. */
export function safeEqualHex(expected: string, given: string): boolean {
  if (typeof given !== 'string' || typeof expected !== 'string') return false;
  const a = Buffer.from(expected.toLowerCase(), 'utf8');
  const b = Buffer.from(given.toLowerCase(), 'utf8');
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Verifies the `signature` query parameter of a plaintext push or of the GET URL check. */
export function checkSignature(token: string, timestamp: string, nonce: string, signature: string): boolean {
  if (typeof signature !== 'string' || signature.length === 0) return false;
  return safeEqualHex(sha1Signature(token, timestamp, nonce), signature);
}

/** Verifies `msg_signature` of a safe-mode push: sha1 over sorted token, timestamp, nonce and the Encrypt value. */
export function checkMsgSignature(
  token: string,
  timestamp: string,
  nonce: string,
  encrypt: string,
  msgSignature: string,
): boolean {
  if (typeof msgSignature !== 'string' || msgSignature.length === 0) return false;
  return safeEqualHex(sha1Signature(token, timestamp, nonce, encrypt), msgSignature);
}

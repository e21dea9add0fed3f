import { createHash, randomBytes, scryptSync } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Writes users and one-time passwords exactly as the bridge does (apps/bridge: `user:<openid>`
 * JSON with `ssh.publicKeys[]`; `sshotp:<openid>` = scrypt record with EX), so the gateway is
 * tested against the bridge's storage format.
 */
export async function seedUser(redis: Redis, openid: string, publicKeys: string[] = []): Promise<void> {
  const now = new Date().toISOString();
  const keys = publicKeys.map((line) => {
    const [type = '', key = '', ...comment] = line.trim().split(/\s+/);
    const fp = `SHA256:${createHash('sha256').update(Buffer.from(key, 'base64')).digest('base64').replace(/=+$/, '')}`;
    return { type, key, comment: comment.join(' '), fingerprint: fp, addedAt: now };
  });
  await redis.set(
    `user:${openid}`,
    JSON.stringify({
      openid,
      createdAt: now,
      lastSeenAt: now,
      subscribed: true,
      unsubscribedAt: null,
      callbackToken: randomBytes(16).toString('base64url'),
      binding: null,
      ssh: { publicKeys: keys, otpIssuedAt: null },
    }),
  );
}

export async function issuePassword(
  redis: Redis,
  openid: string,
  password: string,
  ttlS = 600,
): Promise<void> {
  const salt = randomBytes(16);
  const params = { N: 16384, r: 8, p: 1, keyLen: 32 };
  const hash = scryptSync(password, salt, params.keyLen, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 64 * 1024 * 1024,
  });
  await redis.set(
    `sshotp:${openid}`,
    JSON.stringify({
      alg: 'scrypt',
      ...params,
      salt: salt.toString('base64'),
      hash: hash.toString('base64'),
      issuedAt: new Date().toISOString(),
    }),
    'EX',
    ttlS,
  );
}

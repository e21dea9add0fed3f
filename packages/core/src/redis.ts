import { Redis, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import { env } from './config.js';

/** A `host:port` of a Redis Sentinel. */
export interface RedisEndpoint {
  host: string;
  port: number;
}

/** Parses `host:port,host:port` (IPv6 hosts in brackets); null when any item is malformed. */
export function parseSentinels(text: string): RedisEndpoint[] | null {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) return null;
  const out: RedisEndpoint[] = [];
  for (const item of items) {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(item);
    const port = Number(m?.[3]);
    if (!m || !Number.isInteger(port) || port < 1 || port > 65535) return null;
    out.push({ host: (m[1] ?? m[2])!, port });
  }
  return out;
}

/**
 * The Redis variables every service shares; spread into a service's config schema. With
 * `REDIS_SENTINELS` set, the services find the primary through Redis Sentinel: the host and port
 * of `REDIS_URL` are then ignored, its user, password, database and `rediss:` (TLS) still apply.
 */
export const redisEnv = {
  REDIS_URL: env.redisUrl(),
  /** `host:port,host:port` of the Sentinels; unset = connect to REDIS_URL directly. */
  REDIS_SENTINELS: z
    .string()
    .refine((v) => parseSentinels(v) !== null, {
      error: 'must be a comma-separated list of host:port, e.g. 10.0.0.5:26379,10.0.0.6:26379',
    })
    .transform((v) => parseSentinels(v)!)
    .optional(),
  /** The master name the Sentinels monitor (`sentinel monitor <name> …`). */
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be a Sentinel master name ([A-Za-z0-9._-])' })
    .default('mymaster'),
  /** Password of the Sentinels themselves (their `requirepass`), when they have one. */
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
};

export interface RedisSettings {
  REDIS_URL: string;
  REDIS_SENTINELS?: RedisEndpoint[] | undefined;
  REDIS_SENTINEL_NAME?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
}

/**
 * A Redis client for the services' settings: `REDIS_URL` directly, or the primary named
 * `REDIS_SENTINEL_NAME` found through `REDIS_SENTINELS` (ioredis follows failovers). `options`
 * are the service's own client options (timeouts, retry policy, lazyConnect, …).
 */
export function createRedis(settings: RedisSettings, options: RedisOptions = {}): Redis {
  const sentinels = settings.REDIS_SENTINELS;
  if (!sentinels || sentinels.length === 0) return new Redis(settings.REDIS_URL, options);
  const u = new URL(settings.REDIS_URL);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error('REDIS_URL: the path must be a database number');
  const username = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  return new Redis({
    // After a failover the old primary turns read-only: reconnect (through the Sentinels, to
    // the new primary) and send the command again.
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
    ...options,
    // Listen to the Sentinels' +switch-master instead of waiting for the old primary to fail.
    failoverDetector: true,
    sentinels,
    name: settings.REDIS_SENTINEL_NAME ?? 'mymaster',
    db,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(settings.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: settings.REDIS_SENTINEL_PASSWORD } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
  });
}

/** Where the services' Redis is, for messages: never a password. */
export function describeRedis(settings: RedisSettings): string {
  let url = 'REDIS_URL';
  try {
    const u = new URL(settings.REDIS_URL);
    if (u.password) u.password = '***';
    url = u.toString();
  } catch {
    // keep the placeholder
  }
  const sentinels = settings.REDIS_SENTINELS;
  if (!sentinels || sentinels.length === 0) return url;
  const list = sentinels.map((s) => (s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`));
  return `Sentinel master "${settings.REDIS_SENTINEL_NAME ?? 'mymaster'}" via ${list.join(',')}`;
}

/** Messages of ioredis errors that mean "Redis cannot be reached now" (not a bad command). */
const UNAVAILABLE_RE =
  /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|Stream isn't writeable|Command timed out|Reached the max retries per request limit/;

/**
 * Whether `err` (or an error it was caused by) says Redis is unreachable right now — the caller
 * should answer "try again later" (503), not report an internal error.
 */
export function isRedisUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.name === 'MaxRetriesPerRequestError' || UNAVAILABLE_RE.test(e.message)) return true;
  }
  return false;
}

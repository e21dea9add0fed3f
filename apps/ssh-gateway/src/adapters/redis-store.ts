import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { HostKeyPin } from '../domain/host-key-pin.js';
import type { CredentialStore, FailureCounter, HostKeyPins, VmDirectory } from '../domain/ports.js';
import type { FailureCounts } from '../domain/rate-limit.js';
import { parseVmRecord, type VmView } from '../domain/route.js';
import { GatewayError } from '../errors.js';
import { keys } from '../keys.js';

/** A Lua script run with EVALSHA, loaded with EVAL when Redis does not know it yet. */
class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keyList: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keyList.length, ...keyList, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return redis.eval(this.source, keyList.length, ...keyList, ...args);
      }
      throw err;
    }
  }
}

/** Compare-and-delete: a one-time password is consumed by exactly one login. */
const CONSUME = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`);

/** INCR each counter; a counter's first failure starts its window (EXPIRE). */
const RECORD_FAILURE = new LuaScript(`
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  out[i] = n
end
return out
`);

/** DECR each counter that is above zero (undoes a RECORD_FAILURE of an attempt that did not fail). */
const RELEASE_FAILURE = new LuaScript(`
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 0
`);

async function redisCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new GatewayError(
      'SSHGW_REDIS',
      `redis ${what} failed: ${err instanceof Error ? err.message : err}`,
      {
        cause: err,
        userMessage: 'The SSH gateway is having trouble right now. Please try again in a minute.',
      },
    );
  }
}

export class RedisCredentialStore implements CredentialStore {
  constructor(private readonly redis: Redis) {}

  oneTimePassword(openid: string): Promise<string | null> {
    return redisCall('GET sshotp', () => this.redis.get(keys.sshOtp(openid)));
  }

  async consumeOneTimePassword(openid: string, raw: string): Promise<boolean> {
    const n = await redisCall('consume sshotp', () => CONSUME.run(this.redis, [keys.sshOtp(openid)], [raw]));
    return n === 1;
  }

  userRecord(openid: string): Promise<string | null> {
    return redisCall('GET user', () => this.redis.get(keys.user(openid)));
  }
}

export class RedisFailureCounter implements FailureCounter {
  constructor(
    private readonly redis: Redis,
    private readonly windowS: number,
  ) {}

  async counts(address: string, openid: string | null): Promise<FailureCounts> {
    const list = [keys.authFailIp(address)];
    if (openid !== null) list.push(keys.authFailUser(openid));
    const values = await redisCall('MGET sshfail', () => this.redis.mget(...list));
    return { ip: Number(values[0] ?? 0), user: openid === null ? null : Number(values[1] ?? 0) };
  }

  async record(address: string, openid: string | null): Promise<FailureCounts> {
    const list = [keys.authFailIp(address)];
    if (openid !== null) list.push(keys.authFailUser(openid));
    const out = (await redisCall('INCR sshfail', () =>
      RECORD_FAILURE.run(this.redis, list, [this.windowS]),
    )) as number[];
    return { ip: Number(out[0] ?? 0), user: openid === null ? null : Number(out[1] ?? 0) };
  }

  async release(address: string, openid: string | null): Promise<void> {
    const list = [keys.authFailIp(address)];
    if (openid !== null) list.push(keys.authFailUser(openid));
    await redisCall('DECR sshfail', () => RELEASE_FAILURE.run(this.redis, list, []));
  }
}

const pinSchema = z.object({ sha256: z.string(), vmCreatedAt: z.string().nullable(), pinnedAt: z.string() });

export class RedisHostKeyPins implements HostKeyPins {
  constructor(private readonly redis: Redis) {}

  async get(openid: string): Promise<HostKeyPin | null> {
    const raw = await redisCall('GET sshhostkey', () => this.redis.get(keys.hostKeyPin(openid)));
    if (raw === null) return null;
    try {
      const parsed = pinSchema.safeParse(JSON.parse(raw));
      if (parsed.success) return parsed.data;
    } catch {
      // fall through
    }
    throw new GatewayError('SSHGW_REDIS', `${keys.hostKeyPin(openid)} holds an unreadable host key pin`, {
      userMessage: "The SSH gateway cannot verify your VM's identity. Please contact the operator.",
    });
  }

  async set(openid: string, pin: HostKeyPin): Promise<void> {
    await redisCall('SET sshhostkey', () => this.redis.set(keys.hostKeyPin(openid), JSON.stringify(pin)));
  }
}

export class RedisVmDirectory implements VmDirectory {
  constructor(private readonly redis: Redis) {}

  async get(openid: string): Promise<VmView | null> {
    const raw = await redisCall('GET vm', () => this.redis.get(keys.vm(openid)));
    if (raw === null) return null;
    try {
      return parseVmRecord(JSON.parse(raw));
    } catch {
      return null;
    }
  }
}

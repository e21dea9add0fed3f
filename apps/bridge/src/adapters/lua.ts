import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A Lua script run with EVALSHA, loaded on demand (NOSCRIPT) — one round trip in the common case. */
export class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * As `run`, but written to the connection at once, in a pipeline of its own, outside ioredis's
   * auto-pipeline (which would hold it for the next event-loop turn): for callers that batch
   * their calls themselves.
   */
  async runNow(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    const once = async (cmd: 'evalsha' | 'eval') => {
      const script = cmd === 'evalsha' ? this.sha : this.source;
      const res = await redis
        .pipeline()
        [cmd](script, keys.length, ...keys, ...args)
        .exec();
      const [err, value] = res?.[0] ?? [new Error('empty pipeline reply'), null];
      if (err) throw err;
      return value;
    };
    try {
      return await once('evalsha');
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return once('eval');
      throw err;
    }
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return redis.eval(this.source, keys.length, ...keys, ...args);
      }
      throw err;
    }
  }
}

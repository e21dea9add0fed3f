import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

type Send = (cmd: 'evalsha' | 'eval', script: string) => Promise<unknown>;

/** A Lua script run with EVALSHA, loaded on demand (NOSCRIPT) — one round trip in the common case. */
export class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.#evaluate((cmd, script) => redis[cmd](script, keys.length, ...keys, ...args));
  }

  /**
   * As `run`, but written to the connection at once, in a pipeline of its own, outside ioredis's
   * auto-pipeline (which would hold it for the next event-loop turn): for callers that batch
   * their calls themselves.
   */
  async runNow(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.#evaluate(async (cmd, script) => {
      const res = await redis
        .pipeline()
        [cmd](script, keys.length, ...keys, ...args)
        .exec();
      const [err, value] = res?.[0] ?? [new Error('empty pipeline reply'), null];
      if (err) throw err;
      return value;
    });
  }

  /** EVALSHA; the whole script (EVAL, which also loads it) when Redis does not know it yet. */
  async #evaluate(send: Send): Promise<unknown> {
    try {
      return await send('evalsha', this.sha);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return send('eval', this.source);
      throw err;
    }
  }
}

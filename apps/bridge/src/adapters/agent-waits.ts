import type { Redis } from 'ioredis';
import { keys } from '../keys.js';
import { LuaScript } from './lua.js';
import { ANSWER_COUNT, NOTIFY } from './queue.js';

/** A message handed to an agent whose reply has not come yet. */
export interface Wait {
  receivedAt: number;
  deadline: number;
}

// One EVALSHA (pipelined with the process's other commands) instead of a MULTI of four.
const ADD = new LuaScript(`
-- KEYS: waits, due ; ARGV: eid, wait JSON, deadline, member
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
`);

const CLEAR = new LuaScript(`
-- KEYS: waits, due ; ARGV: openid, eid ('' = all)
local out = {}
if ARGV[2] ~= '' then
  local v = redis.call('HGET', KEYS[1], ARGV[2])
  if v then
    table.insert(out, v)
    redis.call('HDEL', KEYS[1], ARGV[2])
    redis.call('ZREM', KEYS[2], ARGV[1] .. '\\t' .. ARGV[2])
  end
  return out
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  table.insert(out, all[i + 1])
  redis.call('ZREM', KEYS[2], ARGV[1] .. '\\t' .. all[i])
end
redis.call('DEL', KEYS[1])
return out
`);

const EXPIRE_ONE = new LuaScript(`${ANSWER_COUNT}${NOTIFY}
-- KEYS: due, waits, inbox, ready, depth, answers, notified ; ARGV: member, wait eid, openid, notice eid, data, at
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
local was_len = redis.call('XLEN', KEYS[3])
count_added(KEYS[3], KEYS[6], 'notice', was_len)
redis.call('XADD', KEYS[3], '*', 'eid', ARGV[4], 'kind', 'notice', 'data', ARGV[5], 'at', ARGV[6])
notify(KEYS[4], KEYS[7], ARGV[3])
redis.call('INCR', KEYS[5])
return 1
`);

/**
 * Messages waiting for an agent's reply: `waits:<openid>` (hash eid → JSON) and `waits:due`
 * (sorted set by deadline). A reply ends the wait (atomically with queueing it, see
 * RedisQueue.enqueue); a wait past its deadline becomes a "timed out" notice in the user's inbox
 * (exactly once, whichever process sweeps first). While a wait exists, the user's later messages
 * stay queued (RedisQueue: answers go out in the order the messages came).
 */
export class AgentWaits {
  constructor(private readonly redis: Redis) {}

  async add(openid: string, eid: string, wait: Wait): Promise<void> {
    await ADD.run(
      this.redis,
      [keys.waits(openid), keys.waitsDue()],
      [eid, JSON.stringify(wait), wait.deadline, `${openid}\t${eid}`],
    );
  }

  /** The wait of one message (or all of the user's when `eid` is absent), without ending it. */
  async peek(openid: string, eid?: string): Promise<Wait[]> {
    const raw =
      eid === undefined
        ? await this.redis.hvals(keys.waits(openid))
        : [await this.redis.hget(keys.waits(openid), eid)].filter((v): v is string => v !== null);
    return raw.map((s) => JSON.parse(s) as Wait);
  }

  /** Clears one wait (or all of the user's when `eid` is absent); returns what was cleared. */
  async clear(openid: string, eid?: string): Promise<Wait[]> {
    const res = (await CLEAR.run(
      this.redis,
      [keys.waits(openid), keys.waitsDue()],
      [openid, eid ?? ''],
    )) as string[];
    return res.map((s) => JSON.parse(s) as Wait);
  }

  async count(openid: string): Promise<number> {
    return this.redis.hlen(keys.waits(openid));
  }

  /** Turns waits past their deadline into timeout notices; returns how many. */
  async sweep(now: number, limit = 50): Promise<number> {
    const due = await this.redis.zrangebyscore(keys.waitsDue(), '-inf', now, 'LIMIT', 0, limit);
    let n = 0;
    for (const member of due) {
      const tab = member.indexOf('\t');
      if (tab < 0) {
        await this.redis.zrem(keys.waitsDue(), member);
        continue;
      }
      const openid = member.slice(0, tab);
      const eid = member.slice(tab + 1);
      const res = await EXPIRE_ONE.run(
        this.redis,
        [
          keys.waitsDue(),
          keys.waits(openid),
          keys.inbox(openid),
          keys.ready(),
          keys.depth(),
          keys.answers(openid),
          keys.notified(openid),
        ],
        [
          member,
          eid,
          openid,
          `timeout:${eid}`,
          JSON.stringify({ code: 'agent_timeout', messageId: eid }),
          now,
        ],
      );
      if (res === 1) n++;
    }
    return n;
  }
}

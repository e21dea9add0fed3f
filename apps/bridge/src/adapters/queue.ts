import type { Redis } from 'ioredis';
import { CONSUMER_GROUP, keys } from '../keys.js';
import { LuaScript } from './lua.js';

/**
 * The durable queue, on Redis Streams (see apps/bridge/README.md → Queue):
 * - `inbox:<openid>`: the user's entries, processed oldest first, deleted when done;
 * - `queue:ready`: one notification per entry, read by workers through consumer group `bridge`;
 *   a notification stays pending until the user's inbox is drained, so a crashed worker's
 *   notification is claimed (XAUTOCLAIM) by another process;
 * - `lease:<openid>`: which worker drains the user right now (one at a time per user).
 */

export type EntryKind = 'push' | 'reply' | 'notice';

export interface NewEntry {
  /** Unique id of the entry (ledger key); for pushes derived from the WeChat dedup key. */
  eid: string;
  kind: EntryKind;
  /** JSON. */
  data: string;
  /** ms since epoch when the bridge received it. */
  at: number;
}

export interface QueueEntry extends NewEntry {
  /** Stream id in `inbox:<openid>`. */
  id: string;
  openid: string;
}

/** Customer-service window bookkeeping done atomically with the enqueue. */
export type WindowChange = 'open' | 'close' | null;

const ENQUEUE = new LuaScript(`
-- KEYS: inbox, ready, depth, dedup, quota
-- ARGV: openid, eid, kind, data, at, dedupTtlS ('' = no dedup), window ('', open, close), quotaTtlS, budget
if ARGV[6] ~= '' then
  if not redis.call('SET', KEYS[4], ARGV[2], 'NX', 'EX', ARGV[6]) then return 0 end
end
redis.call('XADD', KEYS[1], '*', 'eid', ARGV[2], 'kind', ARGV[3], 'data', ARGV[4], 'at', ARGV[5])
redis.call('XADD', KEYS[2], '*', 'u', ARGV[1])
redis.call('INCR', KEYS[3])
if ARGV[7] == 'open' then
  redis.call('SET', KEYS[5], 0, 'EX', ARGV[8])
elseif ARGV[7] == 'close' then
  redis.call('SET', KEYS[5], ARGV[9], 'EX', ARGV[8])
end
return 1
`);

const COMPLETE = new LuaScript(`
-- KEYS: inbox, depth ; ARGV: stream id
if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
  if redis.call('DECR', KEYS[2]) < 0 then redis.call('SET', KEYS[2], 0) end
end
return 1
`);

const ADVANCE = new LuaScript(`
-- KEYS: inbox, depth ; ARGV: stream id of the entry just done ('' = none), ledger key prefix, ledger TTL s
-- Removes the finished entry, then returns the oldest one with its attempt counted:
-- {id, fields, attempts}, or nil when the inbox is empty.
if ARGV[1] ~= '' then
  if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
    if redis.call('DECR', KEYS[2]) < 0 then redis.call('SET', KEYS[2], 0) end
  end
end
local rows = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #rows == 0 then return nil end
local id = rows[1][1]
local fields = rows[1][2]
local eid = id
for i = 1, #fields, 2 do
  if fields[i] == 'eid' then eid = fields[i + 1] end
end
local ledger = ARGV[2] .. eid
local attempts = redis.call('HINCRBY', ledger, 'attempts', 1)
redis.call('EXPIRE', ledger, ARGV[3])
return {id, fields, attempts}
`);

const RENEW = new LuaScript(`
-- KEYS: lease, ready ; ARGV: token, leaseMs, group, consumer, notification id
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('XCLAIM', KEYS[2], ARGV[3], ARGV[4], 0, ARGV[5], 'JUSTID')
return 1
`);

const FINISH = new LuaScript(`
-- KEYS: lease, inbox, ready ; ARGV: token, group, notification id, openid, mode (drained|handback|ack)
local mine = redis.call('GET', KEYS[1]) == ARGV[1]
local len = redis.call('XLEN', KEYS[2])
if ARGV[5] == 'drained' and mine and len > 0 then return 0 end
if mine then redis.call('DEL', KEYS[1]) end
if ARGV[5] == 'drained' and mine and len == 0 then redis.call('DEL', KEYS[2]) end
redis.call('XACK', KEYS[3], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[3], ARGV[3])
if ARGV[5] == 'handback' and len > 0 then redis.call('XADD', KEYS[3], '*', 'u', ARGV[4]) end
return 1
`);

export interface QueueOptions {
  /** How long a push's dedup key lives (WeChat retries within ~15 s; MsgIds are unique). */
  dedupTtlS?: number;
  /** Customer-service messages per user action (WeChat: 5). */
  budget?: number;
}

const QUOTA_TTL_S = 48 * 3600;

export class RedisQueue {
  readonly dedupTtlS: number;
  readonly budget: number;

  constructor(
    private readonly redis: Redis,
    opts: QueueOptions = {},
  ) {
    this.dedupTtlS = opts.dedupTtlS ?? 24 * 3600;
    this.budget = opts.budget ?? 5;
  }

  /** Creates the consumer group (and the stream) if missing. */
  async init(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', keys.ready(), CONSUMER_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    }
  }

  /**
   * Queues an entry for `openid` atomically with its dedup key (when given) and the user's
   * customer-service window bookkeeping. Returns false when `dedupKey` was seen already.
   */
  async enqueue(
    openid: string,
    entry: NewEntry,
    opts: { dedupKey?: string; window?: WindowChange } = {},
  ): Promise<boolean> {
    const res = await ENQUEUE.run(
      this.redis,
      [keys.inbox(openid), keys.ready(), keys.depth(), keys.dedup(opts.dedupKey ?? ''), keys.quota(openid)],
      [
        openid,
        entry.eid,
        entry.kind,
        entry.data,
        entry.at,
        opts.dedupKey ? this.dedupTtlS : '',
        opts.window ?? '',
        QUOTA_TTL_S,
        this.budget,
      ],
    );
    return res === 1;
  }

  /** The oldest entry of the user's inbox. */
  async head(openid: string): Promise<QueueEntry | null> {
    const rows = (await this.redis.xrange(keys.inbox(openid), '-', '+', 'COUNT', 1)) as [string, string[]][];
    const row = rows[0];
    if (!row) return null;
    const [id, flat] = row;
    return toEntry(openid, id, flat);
  }

  /**
   * One round trip per entry: removes the entry just processed (`doneId`), then returns the
   * user's oldest entry with its attempt counted in its ledger (`ledgerTtlS`), or null.
   */
  async advance(
    openid: string,
    doneId: string | null,
    ledgerTtlS: number,
  ): Promise<{ entry: QueueEntry; attempt: number } | null> {
    const res = (await ADVANCE.run(
      this.redis,
      [keys.inbox(openid), keys.depth()],
      [doneId ?? '', keys.ledger(''), ledgerTtlS],
    )) as [string, string[], number] | null;
    if (!res) return null;
    const [id, flat, attempt] = res;
    return { entry: toEntry(openid, id, flat), attempt: Number(attempt) };
  }

  /** Removes a processed entry. */
  async complete(entry: QueueEntry): Promise<void> {
    await COMPLETE.run(this.redis, [keys.inbox(entry.openid), keys.depth()], [entry.id]);
  }

  async acquireLease(openid: string, token: string, leaseMs: number): Promise<boolean> {
    return (await this.redis.set(keys.lease(openid), token, 'PX', leaseMs, 'NX')) === 'OK';
  }

  /** Extends the lease and resets the idle time of its notification; false when the lease was lost. */
  async renewLease(
    openid: string,
    token: string,
    leaseMs: number,
    consumer: string,
    nid: string,
  ): Promise<boolean> {
    const res = await RENEW.run(
      this.redis,
      [keys.lease(openid), keys.ready()],
      [token, leaseMs, CONSUMER_GROUP, consumer, nid],
    );
    return res === 1;
  }

  /**
   * Ends a drain. `drained`: releases the lease only if the inbox is empty (false: keep going);
   * `handback`: releases the lease and re-notifies if entries are left (shutdown); `ack`: just
   * acknowledges the notification (someone else holds the user).
   */
  async finish(
    openid: string,
    token: string,
    nid: string,
    mode: 'drained' | 'handback' | 'ack',
  ): Promise<boolean> {
    const res = await FINISH.run(
      this.redis,
      [keys.lease(openid), keys.inbox(openid), keys.ready()],
      [token, CONSUMER_GROUP, nid, openid, mode],
    );
    return res === 1;
  }

  /** New notifications for this consumer; blocks up to `blockMs` on the given (blocking) connection. */
  async read(
    blocking: Redis,
    consumer: string,
    count: number,
    blockMs: number,
  ): Promise<{ nid: string; openid: string }[]> {
    const res = (await blocking.xreadgroup(
      'GROUP',
      CONSUMER_GROUP,
      consumer,
      'COUNT',
      count,
      'BLOCK',
      blockMs,
      'STREAMS',
      keys.ready(),
      '>',
    )) as [string, [string, string[]][]][] | null;
    return parseNotifications(res?.[0]?.[1] ?? []);
  }

  /** Takes over notifications idle for `minIdleMs` (their worker died or stalled). */
  async claimIdle(
    consumer: string,
    minIdleMs: number,
    count: number,
  ): Promise<{ nid: string; openid: string }[]> {
    const out: { nid: string; openid: string }[] = [];
    let cursor = '0-0';
    do {
      const res = (await this.redis.xautoclaim(
        keys.ready(),
        CONSUMER_GROUP,
        consumer,
        minIdleMs,
        cursor,
        'COUNT',
        count - out.length,
      )) as [string, [string, string[] | null][], string[]?];
      cursor = res[0];
      out.push(...parseNotifications(res[1]));
    } while (cursor !== '0-0' && out.length < count);
    return out;
  }

  /** Removes consumers that hold nothing and were idle for long (old bridge processes). */
  async pruneConsumers(minIdleMs: number, self: string): Promise<number> {
    const rows = (await this.redis.xinfo('CONSUMERS', keys.ready(), CONSUMER_GROUP)) as unknown[][];
    let removed = 0;
    for (const row of rows) {
      const info: Record<string, unknown> = {};
      for (let i = 0; i + 1 < row.length; i += 2) info[String(row[i])] = row[i + 1];
      const name = String(info['name']);
      if (name !== self && Number(info['pending']) === 0 && Number(info['idle']) > minIdleMs) {
        await this.redis.xgroup('DELCONSUMER', keys.ready(), CONSUMER_GROUP, name);
        removed++;
      }
    }
    return removed;
  }

  async stats(): Promise<{ depth: number; pending: number }> {
    const [depth, pending] = await Promise.all([
      this.redis.get(keys.depth()),
      this.redis.xpending(keys.ready(), CONSUMER_GROUP).catch(() => [0]) as Promise<unknown[]>,
    ]);
    return { depth: Number(depth ?? 0), pending: Number(pending[0] ?? 0) };
  }
}

function toEntry(openid: string, id: string, flat: string[]): QueueEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string;
  return {
    id,
    openid,
    eid: f['eid'] ?? id,
    kind: (f['kind'] ?? 'push') as EntryKind,
    data: f['data'] ?? '{}',
    at: Number(f['at'] ?? Date.now()),
  };
}

function parseNotifications(rows: [string, string[] | null][]): { nid: string; openid: string }[] {
  const out: { nid: string; openid: string }[] = [];
  for (const [nid, flat] of rows) {
    if (!flat) continue;
    const idx = flat.indexOf('u');
    // A notification without a user is acknowledged and dropped by the worker (openid '').
    out.push({ nid, openid: idx >= 0 ? (flat[idx + 1] ?? '') : '' });
  }
  return out;
}

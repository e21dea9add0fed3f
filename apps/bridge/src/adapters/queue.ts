import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { CONSUMER_GROUP, keys } from '../keys.js';
import { LEDGER_TTL_S } from './ledger.js';
import { LuaScript } from './lua.js';

/**
 * The durable queue, on Redis Streams (see apps/bridge/README.md → Queue):
 * - `inbox:<openid>`: the user's entries, processed oldest first, deleted when done;
 * - `queue:ready`: one notification per entry, read by workers through consumer group `bridge`;
 *   a notification stays pending until the user's inbox is drained, so a crashed worker's
 *   notification is claimed (XAUTOCLAIM) by another process, which takes over its lease;
 * - `lease:<openid>`: which worker drains the user right now (one at a time per user), as
 *   `<notification id> <consumer> <random>`;
 * - `waits:<openid>`: the user's messages the agent has not answered yet. While one is awaited,
 *   the user's later messages stay queued (answers go out in the order the messages came); replies
 *   and notices — the answers — always go before queued messages. The event that ends a wait (a
 *   reply, the timeout notice) queues a notification, so a user held back this way needs no lease.
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
  /**
   * A push the bridge answers itself (a command such as `status`): it goes when it is the user's
   * oldest push even while an earlier message awaits the agent's reply.
   */
  answeredByBridge?: boolean;
}

export interface QueueEntry extends NewEntry {
  /** Stream id in `inbox:<openid>`. */
  id: string;
  openid: string;
}

/** Customer-service window bookkeeping done atomically with the enqueue. */
export type WindowChange = 'open' | 'close' | null;

/** The awaited messages an agent's reply answers: the one it names, or all of the user's. */
export type Answers = { messageId: string } | { all: true };

/** A fresh lease token for the drain of notification `nid` by `consumer`. */
export function leaseToken(nid: string, consumer: string): string {
  return `${nid} ${consumer} ${randomUUID()}`;
}

/**
 * Lua: `pick(inbox, waits, answers)`, the entry to process next. Replies and notices first — they
 * answer messages handed on already, all older than any message still queued — oldest first; then
 * the oldest push, unless the user has a message awaiting the agent's reply: the push waits until
 * that is answered (it is not held back by its own wait: a worker died while dispatching it), or
 * the bridge answers it itself (field own: a command, which needs no agent).
 * `answers` counts the reply and notice entries of the inbox (see {@link ANSWER_COUNT}): at 0 the
 * oldest entry is the one, without scanning the inbox (a backlog of hundreds of pushes made every
 * pick read them all); missing (an inbox queued before the count existed) means scan.
 * Returns the stream row or nil.
 */
const PICK = `
local function field(row, name)
  local f = row[2]
  for i = 1, #f, 2 do
    if f[i] == name then return f[i + 1] end
  end
  return nil
end
local function pick(inbox, waits, answers)
  local oldest_push = nil
  local counted = redis.call('GET', answers)
  if counted == '0' then
    oldest_push = redis.call('XRANGE', inbox, '-', '+', 'COUNT', 1)[1]
  else
    local start = '-'
    while true do
      local page = redis.call('XRANGE', inbox, start, '+', 'COUNT', 64)
      for _, row in ipairs(page) do
        if field(row, 'kind') ~= 'push' then return row end
        if not oldest_push then oldest_push = row end
      end
      if #page < 64 then break end
      start = '(' .. page[#page][1]
    end
    -- The whole inbox holds pushes only: from now on the count is known.
    redis.call('SET', answers, 0)
  end
  if not oldest_push then return nil end
  if field(oldest_push, 'own') == '1' then return oldest_push end
  local awaited = redis.call('HLEN', waits)
  if awaited == 0 then return oldest_push end
  local eid = field(oldest_push, 'eid') or oldest_push[1]
  if awaited == 1 and redis.call('HEXISTS', waits, eid) == 1 then return oldest_push end
  return nil
end
`;

/**
 * Lua: keeping `answers:<openid>` (reply and notice entries in the inbox) exact. When it exists it
 * is exact: it is created only for an empty inbox (or after a scan found no answers), changes in
 * the same script as every XADD and XDEL of an answer, and goes when the inbox is deleted.
 * `count_added(inbox, answers, kind, was_len)` after an XADD (`was_len`: XLEN before it);
 * `remove_entry(inbox, depth, answers, id)` deletes an entry and counts it out of the depth too.
 */
export const ANSWER_COUNT = `
local function count_added(inbox, answers, kind, was_len)
  local is_answer = kind ~= 'push'
  if redis.call('EXISTS', answers) == 1 then
    if is_answer then redis.call('INCR', answers) end
  elseif was_len == 0 then
    redis.call('SET', answers, is_answer and 1 or 0)
  end
end
local function remove_entry(inbox, depth, answers, id)
  local rows = redis.call('XRANGE', inbox, id, id)
  if #rows == 0 then return end
  local f = rows[1][2]
  local kind = 'push'
  for i = 1, #f, 2 do
    if f[i] == 'kind' then kind = f[i + 1] end
  end
  redis.call('XDEL', inbox, id)
  if redis.call('DECR', depth) < 0 then redis.call('SET', depth, 0) end
  if kind ~= 'push' and redis.call('EXISTS', answers) == 1 then
    if redis.call('DECR', answers) < 0 then redis.call('SET', answers, 0) end
  end
end
`;

/**
 * Lua: whether `consumer` owns pending notification `nid` (a notification whose worker stalled
 * may have been claimed by another process meanwhile; only its owner may acknowledge it).
 */
const OWNS = `
local function owns(ready, group, nid, consumer)
  local p = redis.call('XPENDING', ready, group, nid, nid, 1)
  return #p > 0 and p[1][2] == consumer
end
`;

/** How long `notified:<openid>` lives at most. */
export const NOTIFIED_TTL_S = 600;

/**
 * Lua: one outstanding notification per user. `notify(ready, notified, openid)` adds a
 * notification to `queue:ready` unless `notified:<openid>` names one not acknowledged yet — that
 * one's drain sees every entry queued before it finishes (its last step checks the inbox in the
 * same script that acknowledges it), so a backlog of pushes costs one notification, not one each
 * (the worker used to read, fail to lease and acknowledge the others one by one). `acked(notified,
 * nid)` forgets the marker when its notification is acknowledged. The marker expires after
 * {@link NOTIFIED_TTL_S} in any case: a notification more is harmless, one fewer would not be.
 */
export const NOTIFY = `
local function notify(ready, notified, openid)
  if redis.call('EXISTS', notified) == 1 then return end
  local nid = redis.call('XADD', ready, '*', 'u', openid)
  redis.call('SET', notified, nid, 'EX', ${NOTIFIED_TTL_S})
end
local function acked(notified, nid)
  if redis.call('GET', notified) == nid then redis.call('DEL', notified) end
end
`;

/** Entries one ENQUEUE call takes at most (a batch is what one event-loop turn received). */
const ENQUEUE_BATCH_MAX = 64;

const ENQUEUE = new LuaScript(`${ANSWER_COUNT}${NOTIFY}
-- A batch of entries, each with 9 KEYS and 14 ARGV, queued one after the other; returns one
-- result per entry (1 queued, 0 duplicate, 'ERR …' refused). Per entry:
-- KEYS: inbox, ready, depth, dedup, quota, waits, waits due, answers, notified
-- ARGV: openid, eid, kind, data, at, dedupTtlS ('' = no dedup), window ('', open, close), quotaTtlS, budget,
--       answers ('' = none, 'one' = the message ARGV[11], 'all' = every awaited message), answered eid,
--       ledger key prefix, ledger TTL s, '1' when the bridge answers the push itself (field own)
-- An agent's reply ends the wait for the message it answers in the same step as it is queued, so
-- the user's next message can never go to the agent before this reply is in the inbox.
local function enqueue(kb, ab)
  local function K(i) return KEYS[kb + i] end
  local function A(i) return ARGV[ab + i] end
  local cleared = 0
  local function answered(id)
    redis.call('ZREM', K(7), A(1) .. '\\t' .. id)
    local ledger = A(12) .. id
    redis.call('HSET', ledger, 'replied', A(5))
    redis.call('EXPIRE', ledger, A(13))
    cleared = cleared + 1
  end
  if A(10) == 'one' then
    if redis.call('HDEL', K(6), A(11)) == 1 then answered(A(11)) end
  elseif A(10) == 'all' then
    for _, id in ipairs(redis.call('HKEYS', K(6))) do answered(id) end
    redis.call('DEL', K(6))
  end
  if A(6) ~= '' and redis.call('EXISTS', K(4)) == 1 then
    -- A repeated reply: nothing to queue, but the user's messages held back by the wait it ended go on.
    if cleared > 0 and redis.call('XLEN', K(1)) > 0 then notify(K(2), K(9), A(1)) end
    return 0
  end
  local was_len = redis.call('XLEN', K(1))
  if A(14) == '1' then
    redis.call('XADD', K(1), '*', 'eid', A(2), 'kind', A(3), 'data', A(4), 'at', A(5), 'own', '1')
  else
    redis.call('XADD', K(1), '*', 'eid', A(2), 'kind', A(3), 'data', A(4), 'at', A(5))
  end
  -- The dedup key only once the entry is in: an entry that failed before is not a duplicate later.
  if A(6) ~= '' then redis.call('SET', K(4), A(2), 'EX', A(6)) end
  count_added(K(1), K(8), A(3), was_len)
  notify(K(2), K(9), A(1))
  redis.call('INCR', K(3))
  if A(7) == 'open' then
    redis.call('SET', K(5), 0, 'EX', A(8))
  elseif A(7) == 'close' then
    redis.call('SET', K(5), A(9), 'EX', A(8))
  end
  return 1
end
-- One entry's error (a key of the wrong type) fails that entry alone: {err} in its place.
local out = {}
for n = 0, #ARGV / 14 - 1 do
  local ok, res = pcall(enqueue, n * 9, n * 14)
  if ok then
    out[n + 1] = res
  else
    out[n + 1] = 'ERR ' .. (type(res) == 'table' and tostring(res.err) or tostring(res))
  end
end
return out
`);

const COMPLETE = new LuaScript(`${ANSWER_COUNT}
-- KEYS: inbox, depth, answers ; ARGV: stream id
remove_entry(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return 1
`);

const ADVANCE = new LuaScript(`${PICK}${ANSWER_COUNT}
-- KEYS: inbox, depth, waits, lease, answers ; ARGV: stream id of the entry just done ('' = none), ledger key prefix,
--       ledger TTL s, lease token
-- Removes the finished entry, then returns the next entry to process (see pick) with its attempt
-- counted: {id, fields, attempts}; nil when there is none; {'lost'} when the lease is no longer
-- this worker's (expired, or taken over after this process stalled): it must not start another entry.
if ARGV[1] ~= '' then remove_entry(KEYS[1], KEYS[2], KEYS[5], ARGV[1]) end
if redis.call('GET', KEYS[4]) ~= ARGV[4] then return {'lost'} end
local row = pick(KEYS[1], KEYS[3], KEYS[5])
if not row then return nil end
local id = row[1]
local fields = row[2]
local eid = field(row, 'eid') or id
local ledger = ARGV[2] .. eid
local attempts = redis.call('HINCRBY', ledger, 'attempts', 1)
redis.call('EXPIRE', ledger, ARGV[3])
return {id, fields, attempts}
`);

const ACQUIRE = new LuaScript(`${OWNS}
-- KEYS: lease, ready ; ARGV: token ('<nid> <consumer> <random>'), leaseMs, group, consumer, nid
-- Takes the user's lease for the drain of notification nid: when it is free, or when it is held
-- for this same notification — its worker stopped renewing both (it died), this process claimed
-- the notification and continues that drain where it stopped, at the oldest entry. Only while
-- this consumer still owns the notification (another process may have claimed it meanwhile).
if not owns(KEYS[2], ARGV[3], ARGV[5], ARGV[4]) then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[5] + 1) ~= ARGV[5] .. ' ' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`);

const RENEW = new LuaScript(`
-- KEYS: lease, ready ; ARGV: token, leaseMs, group, consumer, notification id
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('XCLAIM', KEYS[2], ARGV[3], ARGV[4], 0, ARGV[5], 'JUSTID')
return 1
`);

const FINISH = new LuaScript(`${PICK}${OWNS}${NOTIFY}
-- KEYS: lease, inbox, ready, waits, answers, notified ; ARGV: token, group, notification id, openid, mode (drained|handback|ack), consumer
-- drained: the worker found nothing to process. If the lease is still its own and there is work
-- after all (queued meanwhile, or a wait just ended), returns 0: keep going. Else releases the
-- lease (deletes the empty inbox) and acknowledges the notification. Entries held back by a wait
-- stay in the inbox without a notification: the end of the wait brings one.
-- handback / ack / drained without the lease: releases the lease if it is the worker's own, and
-- acknowledges the notification only if this consumer still owns it (else another process took
-- it over and drains the user); handback (and drained) re-notify when work is left for someone else.
local mine = redis.call('GET', KEYS[1]) == ARGV[1]
local len = redis.call('XLEN', KEYS[2])
if ARGV[5] == 'drained' and mine then
  if len > 0 and pick(KEYS[2], KEYS[4], KEYS[5]) then return 0 end
  redis.call('DEL', KEYS[1])
  if len == 0 then redis.call('DEL', KEYS[2], KEYS[5]) end
  redis.call('XACK', KEYS[3], ARGV[2], ARGV[3])
  redis.call('XDEL', KEYS[3], ARGV[3])
  acked(KEYS[6], ARGV[3])
  return 1
end
if mine then redis.call('DEL', KEYS[1]) end
if not owns(KEYS[3], ARGV[2], ARGV[3], ARGV[6]) then return 1 end
redis.call('XACK', KEYS[3], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[3], ARGV[3])
acked(KEYS[6], ARGV[3])
if ARGV[5] ~= 'ack' and len > 0 and pick(KEYS[2], KEYS[4], KEYS[5]) then notify(KEYS[3], KEYS[6], ARGV[4]) end
return 1
`);

export interface QueueOptions {
  /** How long a push's dedup key lives (WeChat retries within ~15 s; MsgIds are unique). */
  dedupTtlS?: number;
  /** Customer-service messages per user action (WeChat: 5). */
  budget?: number;
}

const QUOTA_TTL_S = 48 * 3600;

/** An enqueue waiting for the batch it belongs to. */
interface PendingEnqueue {
  keys: string[];
  args: (string | number)[];
  resolve(queued: boolean): void;
  reject(err: unknown): void;
}

export class RedisQueue {
  readonly dedupTtlS: number;
  readonly budget: number;
  #batch: PendingEnqueue[] = [];
  #flushScheduled = false;

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
   * `answers` (agent replies): ends the waits of the messages the reply answers in the same step
   * (also for a repeated reply) and marks them `replied` in their ledgers.
   */
  enqueue(
    openid: string,
    entry: NewEntry,
    opts: { dedupKey?: string; window?: WindowChange; answers?: Answers } = {},
  ): Promise<boolean> {
    const answers = opts.answers;
    const keyList = [
      keys.inbox(openid),
      keys.ready(),
      keys.depth(),
      keys.dedup(opts.dedupKey ?? ''),
      keys.quota(openid),
      keys.waits(openid),
      keys.waitsDue(),
      keys.answers(openid),
      keys.notified(openid),
    ];
    const args = [
      openid,
      entry.eid,
      entry.kind,
      entry.data,
      entry.at,
      opts.dedupKey ? this.dedupTtlS : '',
      opts.window ?? '',
      QUOTA_TTL_S,
      this.budget,
      answers === undefined ? '' : 'messageId' in answers ? 'one' : 'all',
      answers && 'messageId' in answers ? answers.messageId : '',
      keys.ledger(''),
      LEDGER_TTL_S,
      entry.answeredByBridge ? '1' : '',
    ];
    return new Promise((resolve, reject) => {
      this.#batch.push({ keys: keyList, args, resolve, reject });
      if (this.#batch.length >= ENQUEUE_BATCH_MAX) {
        this.#flush();
      } else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /**
   * Sends the enqueues of this event-loop turn (the pushes of every request read in it) as one
   * script call: one command for Redis to parse and run instead of one each. Each entry is queued
   * exactly as alone, in call order, and fails alone (the script catches an entry's error). If the
   * call itself fails (connection lost, Redis out of memory), every enqueue of the batch fails:
   * their pushes get 503 and WeChat retries them.
   */
  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    ENQUEUE.runNow(
      this.redis,
      batch.flatMap((b) => b.keys),
      batch.flatMap((b) => b.args),
    ).then(
      (res) => {
        const results = res as unknown[];
        batch.forEach((b, i) => {
          const r = results[i];
          if (typeof r === 'string') b.reject(new Error(`Redis refused the entry: ${r.slice(4)}`));
          else b.resolve(r === 1);
        });
      },
      (err: unknown) => {
        for (const b of batch) b.reject(err);
      },
    );
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
   * user's next entry — the oldest reply or notice, else the oldest message unless an agent reply
   * is awaited — with its attempt counted in its ledger (`ledgerTtlS`); null when there is none, `'lost'`
   * when the lease no longer holds `token` (nothing more may be started).
   */
  async advance(
    openid: string,
    doneId: string | null,
    token: string,
    ledgerTtlS: number,
  ): Promise<{ entry: QueueEntry; attempt: number } | null | 'lost'> {
    const res = (await ADVANCE.run(
      this.redis,
      [keys.inbox(openid), keys.depth(), keys.waits(openid), keys.lease(openid), keys.answers(openid)],
      [doneId ?? '', keys.ledger(''), ledgerTtlS, token],
    )) as [string, string[], number] | ['lost'] | null;
    if (!res) return null;
    if (res.length === 1) return 'lost';
    const [id, flat, attempt] = res;
    return { entry: toEntry(openid, id, flat), attempt: Number(attempt) };
  }

  /** Removes a processed entry. */
  async complete(entry: QueueEntry): Promise<void> {
    await COMPLETE.run(
      this.redis,
      [keys.inbox(entry.openid), keys.depth(), keys.answers(entry.openid)],
      [entry.id],
    );
  }

  /**
   * Takes the user's lease for the drain of notification `nid` (`token` from {@link leaseToken}):
   * when it is free, or held for that same notification by a worker that stopped renewing it (this
   * consumer claimed the notification: it continues that drain). False when another drain holds
   * the user, or another process claimed the notification meanwhile.
   */
  async acquireLease(
    openid: string,
    token: string,
    leaseMs: number,
    consumer: string,
    nid: string,
  ): Promise<boolean> {
    const res = await ACQUIRE.run(
      this.redis,
      [keys.lease(openid), keys.ready()],
      [token, leaseMs, CONSUMER_GROUP, consumer, nid],
    );
    return res === 1;
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
   * Ends a drain. `drained`: releases the lease only if nothing is left to process — the inbox is
   * empty, or holds only messages waiting for an agent reply (false: keep going); `handback`:
   * releases the lease and re-notifies if work is left (shutdown, lost lease); `ack`: just
   * acknowledges the notification (someone else holds the user). A notification another process
   * took over meanwhile is left to it.
   */
  async finish(
    openid: string,
    token: string,
    consumer: string,
    nid: string,
    mode: 'drained' | 'handback' | 'ack',
  ): Promise<boolean> {
    const res = await FINISH.run(
      this.redis,
      [
        keys.lease(openid),
        keys.inbox(openid),
        keys.ready(),
        keys.waits(openid),
        keys.answers(openid),
        keys.notified(openid),
      ],
      [token, CONSUMER_GROUP, nid, openid, mode, consumer],
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

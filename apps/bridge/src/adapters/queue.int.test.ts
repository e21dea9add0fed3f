import { type RedisServer, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { HELP, T } from '../domain/texts.js';
import { type Harness, postPush, startHarness, waitFor } from '../test-support/harness.js';
import type { AgentRequest } from '../test-support/test-agent.js';
import { AgentWaits } from './agent-waits.js';
import { leaseToken, RedisQueue } from './queue.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop());
  return sum;
}

describe('deduplication of WeChat retries', () => {
  it('three simultaneous deliveries of one message to two bridge processes run once and are answered once', async () => {
    h = await startHarness();
    const second = await h.startBridge();
    const u = await h.newUser();
    const msgId = `9${Date.now()}`;
    const push = h.signedPush({
      ToUserName: 'gh_test',
      FromUserName: u,
      CreateTime: Math.floor(Date.now() / 1000),
      MsgType: 'text',
      Content: '同一条消息',
      MsgId: msgId,
    });
    const results = await Promise.all([
      postPush(h.bridgeUrl, push),
      postPush(second.url, push),
      postPush(h.bridgeUrl, push),
    ]);
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.body).toBe('success');
    }
    await h.waitTexts(u, 2);
    // A later message is answered after it: nothing else is coming for the first one.
    await h.client.sendText(u, '下一条');
    await h.waitTexts(u, 3);
    await h.idle();
    expect(await h.texts(u)).toEqual([expect.any(String), '收到：同一条消息', '收到：下一条']);
    expect(h.agent.requests.filter((r) => r.payload.message_id === `m:${msgId}`)).toHaveLength(1);
    const metrics = (
      await Promise.all([h.bridgeUrl, second.url].map((b) => fetch(`${b}/metrics`).then((r) => r.text())))
    ).join('\n');
    expect(metricSum(metrics, 'moltage_bridge_dedup_hits_total')).toBe(2);
  });

  it('deduplicates events on FromUserName + CreateTime', async () => {
    h = await startHarness();
    const u = await h.newUser();
    const push = h.signedPush({
      ToUserName: 'gh_test',
      FromUserName: u,
      CreateTime: Math.floor(Date.now() / 1000),
      MsgType: 'event',
      Event: 'CLICK',
      EventKey: 'help',
    });
    await Promise.all([
      postPush(h.bridgeUrl, push),
      postPush(h.bridgeUrl, push),
      postPush(h.bridgeUrl, push),
    ]);
    await h.waitTexts(u, 2);
    await h.client.sendText(u, 'help');
    await h.waitTexts(u, 3);
    await h.idle();
    expect((await h.texts(u)).slice(1)).toEqual([HELP, HELP]);
  });
});

describe('ordering and parallelism', () => {
  it('processes different users in parallel', async () => {
    h = await startHarness();
    const a = await h.newUser();
    const b = await h.newUser();
    h.agent.behavior = () => ({ hold: true });
    await h.client.sendText(a, '甲');
    await h.client.sendText(b, '乙');
    // Both messages reach the agent while neither has been accepted: the users did not wait for each other.
    await waitFor(() => h?.agent.requests.length === 2, { what: 'both users dispatched' });
    expect(h.agent.maxInFlight).toBe(2);
    h.agent.release();
    expect((await h.waitTexts(a, 2))[1]).toBe('收到：甲');
    expect((await h.waitTexts(b, 2))[1]).toBe('收到：乙');
  });

  it("processes one user's messages in order, one at a time", async () => {
    h = await startHarness();
    const u = await h.newUser();
    h.agent.behavior = () => ({ acceptDelayMs: 100 });
    const sent = ['一', '二', '三', '四', '五'];
    for (const t of sent) await h.client.sendText(u, t);
    const texts = await h.waitTexts(u, 1 + sent.length);
    expect(h.agent.requests.map((r) => r.payload.text)).toEqual(sent);
    expect(h.agent.maxInFlightPerUser.get(u)).toBe(1);
    expect(texts.slice(1)).toEqual(sent.map((t) => `收到：${t}`));
  });
});

describe('acks before answers (push pressure)', () => {
  /**
   * A bridge that counts as under a storm of pushes from the first push on (high-water mark 1, a
   * long calm period), and two users whose messages the agent holds: 甲 is sent first.
   */
  async function twoUsersInAStorm(pushMaxDeferMs: number) {
    h = await startHarness({ tuning: { pushHighWater: 1, pushCalmMs: 600_000, pushMaxDeferMs } });
    const a = await h.newUser();
    const b = await h.newUser();
    h.agent.behavior = () => ({ hold: true });
    await h.client.sendText(a, '甲');
    await h.client.sendText(b, '乙');
    return { h, a, b };
  }

  it('under a storm of pushes, steps go one at a time: the next starts when the running one is done', async () => {
    const { h, a, b } = await twoUsersInAStorm(600_000);
    await waitFor(() => h.agent.requests.length === 1, { what: 'the first user dispatched' });
    h.agent.behavior = () => ({});
    h.agent.release();
    expect((await h.waitTexts(a, 2))[1]).toBe('收到：甲');
    expect((await h.waitTexts(b, 2))[1]).toBe('收到：乙');
    // Where `processes different users in parallel` sees both at the agent at once.
    expect(h.agent.maxInFlight).toBe(1);
    const metrics = await fetch(`${h.bridgeUrl}/metrics`).then((r) => r.text());
    expect(metricSum(metrics, 'moltage_bridge_deferred_steps_total')).toBeGreaterThan(0);
  });

  it('a step waits for acks only so long: a storm slows answers down but never stops them', async () => {
    const { h, a, b } = await twoUsersInAStorm(100);
    // The first step is still running (held by the agent), and the second went on after its wait.
    await waitFor(() => h.agent.requests.length === 2, { what: 'both users dispatched' });
    h.agent.release();
    expect((await h.waitTexts(a, 2))[1]).toBe('收到：甲');
    expect((await h.waitTexts(b, 2))[1]).toBe('收到：乙');
  });
});

/** Posts an agent reply for a message the test agent accepted without answering. */
async function replyAs(req: { payload: Record<string, unknown> }, text: string): Promise<number> {
  const res = await fetch(String(req.payload['callback_url']), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      openid: req.payload['openid'],
      text,
      message_id: req.payload['message_id'],
      token: req.payload['callback_token'],
    }),
  });
  return res.status;
}

describe('one message at a time per user', () => {
  it('the next message waits for the agent’s reply to the one before, a command does not: answers come in the order sent', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.idle();
    // The agent accepts 一 and answers it only when the test says so; 二 it answers at once.
    h.agent.behavior = (r) => (r.payload.text === '一' ? { reply: null } : {});
    await h.client.sendText(u, '一');
    await waitFor(() => h?.agent.requests.length === 1, { what: 'the dispatch of 一' });
    // The bridge answers a command itself, at once, while the agent works on 一.
    await h.client.sendText(u, 'help');
    await h.waitTexts(u, 2);
    await h.client.sendText(u, '二');
    // 二 waits in the queue, held by no worker.
    await waitFor(
      async () => {
        const [depth, leases, pending] = await Promise.all([
          h?.r.get('queue:depth'),
          h?.r.keys('lease:*'),
          h?.r.xpending('queue:ready', 'bridge') as Promise<unknown[]>,
        ]);
        return depth === '1' && leases?.length === 0 && pending?.[0] === 0;
      },
      { what: 'the later message waiting' },
    );
    expect(h.agent.requests.map((r) => r.payload.text)).toEqual(['一']);
    expect(await replyAs(h.agent.requests[0] as AgentRequest, '答：一')).toBe(200);
    await h.waitTexts(u, 4);
    await h.idle();
    expect((await h.texts(u)).slice(1)).toEqual([HELP, '答：一', '收到：二']);
  });

  it('an agent that answers two messages out of order: the answers still go out in order', async () => {
    h = await startHarness();
    const u = await h.newUser();
    // Were both handed to the agent at once, 二's answer would come first.
    h.agent.behavior = (r) => ({ replyDelayMs: r.payload.text === '一' ? 800 : 0 });
    await h.client.sendText(u, '一');
    await h.client.sendText(u, '二');
    await h.waitTexts(u, 3);
    await h.idle();
    expect((await h.texts(u)).slice(1)).toEqual(['收到：一', '收到：二']);
  });

  it('a reply that never comes holds the next message only until the timeout notice', async () => {
    h = await startHarness({ env: { AGENT_REPLY_TIMEOUT_MS: '1000' } });
    const u = await h.newUser();
    h.agent.behavior = (r) => (r.payload.text === '一' ? { reply: null } : {});
    await h.client.sendText(u, '一');
    await h.client.sendText(u, '二');
    await h.waitTexts(u, 3);
    await h.idle();
    expect((await h.texts(u)).slice(1)).toEqual([T.agentTimeout, '收到：二']);
  });
});

describe('durability and failures', () => {
  it('acked pushes survive a Redis crash (append-only file) and are processed afterwards', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.idle();
    // This process keeps acking but stops processing.
    await h.bridge?.bridge.worker.stop(0);
    const push = await h.client.sendText(u, '崩溃前');
    expect(push.attempts[0]?.body).toBe('success');
    await h.redis.restart();
    const other = await h.startBridge();
    h.pointSimAt(other.url);
    expect((await h.waitTexts(u, 2, 20_000))[1]).toBe('收到：崩溃前');
  });

  it('an entry that keeps failing is given up after a few attempts and the user is told once', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.idle();
    await h.r
      .multi()
      .xadd(
        `inbox:${u}`,
        '*',
        'eid',
        'r:poison',
        'kind',
        'reply',
        'data',
        '{not json',
        'at',
        String(Date.now()),
      )
      .xadd('queue:ready', '*', 'u', u)
      .incr('queue:depth')
      .exec();
    expect((await h.waitTexts(u, 2))[1]).toBe(T.internalError);
    await h.idle();
    expect(await h.texts(u)).toHaveLength(2);
    expect(await h.r.hget('ledger:r:poison', 'attempts')).toBe('5');
  });
});

describe('RedisQueue (the Redis side of the queue)', () => {
  let server: RedisServer | undefined;
  let conns: Redis[] = [];
  afterEach(async () => {
    for (const c of conns) c.disconnect();
    conns = [];
    await server?.stop();
    server = undefined;
  });

  function connect(): Redis {
    const c = new Redis((server as RedisServer).url);
    c.on('error', () => {});
    conns.push(c);
    return c;
  }

  async function queue(): Promise<{ q: RedisQueue; r: Redis; blocking: Redis }> {
    server = await startRedis();
    const r = connect();
    const q = new RedisQueue(r);
    await q.init();
    return { q, r, blocking: connect() };
  }

  const entry = (eid: string) => ({ eid, kind: 'push' as const, data: '{}', at: Date.now() });

  it('enqueues a deduplicated push once', async () => {
    const { q, r } = await queue();
    expect(await q.enqueue('u1', entry('m:1'), { dedupKey: '1' })).toBe(true);
    expect(await q.enqueue('u1', entry('m:1'), { dedupKey: '1' })).toBe(false);
    expect(await r.xlen('inbox:u1')).toBe(1);
    expect(await r.xlen('queue:ready')).toBe(1);
    expect(await r.get('queue:depth')).toBe('1');
  });

  it('enqueues of one event-loop turn go as batches: each queued as alone, in order, duplicates seen', async () => {
    const { q, r } = await queue();
    const results = await Promise.all(
      Array.from({ length: 150 }, (_, i) =>
        // 150 calls in one turn: more than one batch; message 7 is delivered twice.
        q.enqueue(`u${i % 5}`, entry(`m:${i === 149 ? 7 : i}`), { dedupKey: String(i === 149 ? 7 : i) }),
      ),
    );
    expect(results.filter((x) => x)).toHaveLength(149);
    expect(results[149]).toBe(false);
    for (let u = 0; u < 5; u++) {
      const rows = (await r.xrange(`inbox:u${u}`, '-', '+')) as [string, string[]][];
      const eids = rows.map(([, f]) => f[f.indexOf('eid') + 1]);
      expect(eids).toEqual(
        Array.from({ length: 30 }, (_, k) => `m:${k * 5 + u}`).filter((e) => e !== 'm:149'),
      );
    }
    expect(await r.get('queue:depth')).toBe('149');
    // One notification per user, however many entries the batch queued for them.
    expect(await r.xlen('queue:ready')).toBe(5);
  });

  it('an entry Redis refuses fails alone, leaves no trace, and its batch goes on', async () => {
    const { q, r } = await queue();
    await r.set('inbox:broken', 'not a stream');
    const results = await Promise.allSettled([
      q.enqueue('u1', entry('m:1'), { dedupKey: '1' }),
      q.enqueue('broken', entry('m:2'), { dedupKey: '2' }),
      q.enqueue('u3', entry('m:3'), { dedupKey: '3' }),
    ]);
    expect(results.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(results[0]).toEqual({ status: 'fulfilled', value: true });
    expect(results[2]).toEqual({ status: 'fulfilled', value: true });
    expect(await r.xlen('inbox:u1')).toBe(1);
    expect(await r.xlen('inbox:u3')).toBe(1);
    expect(await r.get('queue:depth')).toBe('2');
    // Not marked as seen: once the key is repaired, WeChat's retry of that push is queued.
    expect(await r.exists('dedup:2')).toBe(0);
    await r.del('inbox:broken');
    expect(await q.enqueue('broken', entry('m:2'), { dedupKey: '2' })).toBe(true);
  });

  type Step = Awaited<ReturnType<RedisQueue['advance']>>;
  const eidOf = (step: Step) => (step && step !== 'lost' ? step.entry.eid : step);
  const idOf = (step: Step) => (step && step !== 'lost' ? step.entry.id : null);

  it('releases a user only once the inbox is empty, and cleans up after it', async () => {
    const { q, r, blocking } = await queue();
    await q.enqueue('u1', entry('m:1'));
    const [n, n2] = await q.read(blocking, 'c1', 10, 100);
    expect(n2).toBeUndefined();
    const nid = n?.nid as string;
    const tok = leaseToken(nid, 'c1');
    expect(await q.acquireLease('u1', tok, 10_000, 'c1', nid)).toBe(true);
    // The drain in progress sees what comes meanwhile: no second notification.
    await q.enqueue('u1', entry('m:2'));
    expect(await q.read(blocking, 'c1', 10, 100)).toEqual([]);
    // Once the marker is gone (it expires), one more comes: harmless, the user is held, so it is just acknowledged.
    await r.del('notified:u1');
    await q.enqueue('u1', entry('m:3'));
    const [other] = await q.read(blocking, 'c1', 10, 100);
    const otherNid = other?.nid as string;
    const otherTok = leaseToken(otherNid, 'c1');
    expect(await q.acquireLease('u1', otherTok, 10_000, 'c1', otherNid)).toBe(false);
    expect(await q.finish('u1', otherTok, 'c1', otherNid, 'ack')).toBe(true);
    const head = await q.head('u1');
    expect(head?.eid).toBe('m:1');
    await q.complete(head as NonNullable<typeof head>);
    expect(await q.finish('u1', tok, 'c1', nid, 'drained')).toBe(false);
    await q.complete((await q.head('u1')) as NonNullable<Awaited<ReturnType<typeof q.head>>>);
    expect(await q.finish('u1', tok, 'c1', nid, 'drained')).toBe(false);
    await q.complete((await q.head('u1')) as NonNullable<Awaited<ReturnType<typeof q.head>>>);
    expect(await q.finish('u1', tok, 'c1', nid, 'drained')).toBe(true);
    expect(await r.exists('inbox:u1', 'lease:u1', 'notified:u1', 'answers:u1')).toBe(0);
    expect(await r.get('queue:depth')).toBe('0');
    expect(((await r.xpending('queue:ready', 'bridge')) as unknown[])[0]).toBe(0);
  });

  it('advances through a user’s entries in order, counting attempts in the ledger', async () => {
    const { q, r } = await queue();
    await q.enqueue('u1', entry('m:1'));
    await q.enqueue('u1', entry('m:2'));
    await r.set('lease:u1', 'tok');
    const first = await q.advance('u1', null, 'tok', 60);
    expect(first).toMatchObject({ entry: { eid: 'm:1' }, attempt: 1 });
    // Not done yet (a crash, a retry): the same entry again, attempt 2.
    const again = await q.advance('u1', null, 'tok', 60);
    expect(again).toMatchObject({ entry: { eid: 'm:1' }, attempt: 2 });
    const second = await q.advance('u1', idOf(again), 'tok', 60);
    expect(second).toMatchObject({ entry: { eid: 'm:2' }, attempt: 1 });
    expect(await q.advance('u1', idOf(second), 'tok', 60)).toBeNull();
    expect(await r.get('queue:depth')).toBe('0');
    expect(await r.hget('ledger:m:1', 'attempts')).toBe('2');
    expect(await r.ttl('ledger:m:2')).toBeGreaterThan(0);
  });

  it('starts nothing more once the lease is no longer the worker’s own', async () => {
    const { q, r } = await queue();
    await q.enqueue('u1', entry('m:1'));
    await q.enqueue('u1', entry('m:2'));
    await r.set('lease:u1', 'tok');
    const first = await q.advance('u1', null, 'tok', 60);
    await r.set('lease:u1', 'someone else');
    // The finished entry is still removed; the next one is left to the lease's holder.
    expect(await q.advance('u1', idOf(first), 'tok', 60)).toBe('lost');
    expect((await q.head('u1'))?.eid).toBe('m:2');
    expect(await r.hget('ledger:m:2', 'attempts')).toBeNull();
  });

  it('while an agent reply is awaited, later messages wait and answers go first; the reply wakes the user', async () => {
    const { q, r, blocking } = await queue();
    const waits = new AgentWaits(r);
    await q.enqueue('u1', entry('m:1'));
    const [n] = await q.read(blocking, 'c1', 10, 100);
    const nid = n?.nid as string;
    const tok = leaseToken(nid, 'c1');
    expect(await q.acquireLease('u1', tok, 10_000, 'c1', nid)).toBe(true);
    const first = await q.advance('u1', null, tok, 60);
    expect(eidOf(first)).toBe('m:1');
    // m:1 went to the agent; the user writes again before the reply.
    await waits.add('u1', 'm:1', { receivedAt: 1, deadline: Date.now() + 60_000 });
    await q.enqueue('u1', entry('m:2'));
    await q.enqueue('u1', { eid: 't:1', kind: 'notice', data: '{}', at: Date.now() });
    // The notice (an answer) goes ahead of the waiting message; then nothing is left to do.
    const notice = await q.advance('u1', idOf(first), tok, 60);
    expect(eidOf(notice)).toBe('t:1');
    expect(await q.advance('u1', idOf(notice), tok, 60)).toBeNull();
    expect(await q.finish('u1', tok, 'c1', nid, 'drained')).toBe(true);
    expect(await r.exists('lease:u1')).toBe(0);
    expect((await q.head('u1'))?.eid).toBe('m:2');
    expect(((await r.xpending('queue:ready', 'bridge')) as unknown[])[0]).toBe(0);
    // m:2 and the notice came during that drain: no notification of their own, none left over.
    expect(await q.read(blocking, 'c1', 10, 100)).toEqual([]);
    // The reply ends the wait and is queued in one step, and brings a notification.
    const reply = { eid: 'r:1', kind: 'reply' as const, data: '{}', at: Date.now() };
    expect(await q.enqueue('u1', reply, { dedupKey: 'cb:1', answers: { messageId: 'm:1' } })).toBe(true);
    expect(await waits.count('u1')).toBe(0);
    expect(await r.zcard('waits:due')).toBe(0);
    expect(await r.hget('ledger:m:1', 'replied')).toBe(String(reply.at));
    const [n3] = await q.read(blocking, 'c1', 10, 100);
    const nid3 = n3?.nid as string;
    const tok3 = leaseToken(nid3, 'c1');
    expect(await q.acquireLease('u1', tok3, 10_000, 'c1', nid3)).toBe(true);
    // The answer to m:1 goes out before the later message, which is queued before it.
    const answer = await q.advance('u1', null, tok3, 60);
    expect(eidOf(answer)).toBe('r:1');
    expect(eidOf(await q.advance('u1', idOf(answer), tok3, 60))).toBe('m:2');
  });

  it('a repeated reply still ends the wait and wakes the user’s waiting messages', async () => {
    const { q, r, blocking } = await queue();
    const waits = new AgentWaits(r);
    const reply = { eid: 'r:1', kind: 'reply' as const, data: '{}', at: Date.now() };
    expect(await q.enqueue('u1', reply, { dedupKey: 'cb:1', answers: { all: true } })).toBe(true);
    const ack = async () => {
      const [n] = await q.read(blocking, 'c1', 10, 100);
      const nid = n?.nid as string;
      expect(await q.finish('u1', leaseToken(nid, 'c1'), 'c1', nid, 'ack')).toBe(true);
    };
    await ack();
    // The message was dispatched again (a crash) and the agent repeats its reply.
    await waits.add('u1', 'm:1', { receivedAt: 1, deadline: Date.now() + 60_000 });
    await q.enqueue('u1', entry('m:2'));
    // A drain found m:2 held back by the wait and let the user go.
    await ack();
    expect(await q.enqueue('u1', reply, { dedupKey: 'cb:1', answers: { messageId: 'm:1' } })).toBe(false);
    expect(await waits.count('u1')).toBe(0);
    expect((await q.read(blocking, 'c1', 10, 100)).map((x) => x.openid)).toEqual(['u1']);
  });

  it('a backlog is one notification; an answer behind hundreds of waiting messages still goes first', async () => {
    const { q, r, blocking } = await queue();
    const waits = new AgentWaits(r);
    await q.enqueue('u1', entry('m:0'));
    await r.set('lease:u1', 'tok');
    const m0 = await q.advance('u1', null, 'tok', 60);
    expect(eidOf(m0)).toBe('m:0');
    // m:0 went to the agent; 300 more messages come before its answer.
    await waits.add('u1', 'm:0', { receivedAt: 1, deadline: Date.now() + 60_000 });
    for (let i = 1; i <= 300; i++) await q.enqueue('u1', entry(`m:${i}`));
    expect(await q.read(blocking, 'c1', 100, 100)).toHaveLength(1);
    expect(await q.advance('u1', idOf(m0), 'tok', 60)).toBeNull();
    expect(await r.get('answers:u1')).toBe('0');
    const reply = { eid: 'r:0', kind: 'reply' as const, data: '{}', at: Date.now() };
    await q.enqueue('u1', reply, { dedupKey: 'cb:0', answers: { messageId: 'm:0' } });
    expect(await r.get('answers:u1')).toBe('1');
    const answer = await q.advance('u1', null, 'tok', 60);
    expect(eidOf(answer)).toBe('r:0');
    expect(eidOf(await q.advance('u1', idOf(answer), 'tok', 60))).toBe('m:1');
    expect(await r.get('answers:u1')).toBe('0');
    expect(await r.get('queue:depth')).toBe('300');
  });

  it('an inbox queued before the answer count existed is scanned, then counted', async () => {
    const { q, r } = await queue();
    await q.enqueue('u1', entry('m:1'));
    await q.enqueue('u1', { eid: 't:1', kind: 'notice', data: '{}', at: Date.now() });
    await r.del('answers:u1');
    // Not knowing the count, the next answer leaves it unknown rather than guess.
    await q.enqueue('u1', { eid: 't:2', kind: 'notice', data: '{}', at: Date.now() });
    expect(await r.exists('answers:u1')).toBe(0);
    await r.set('lease:u1', 'tok');
    const a = await q.advance('u1', null, 'tok', 60);
    expect(eidOf(a)).toBe('t:1');
    const b = await q.advance('u1', idOf(a), 'tok', 60);
    expect(eidOf(b)).toBe('t:2');
    const c = await q.advance('u1', idOf(b), 'tok', 60);
    expect(eidOf(c)).toBe('m:1');
    // That scan found pushes only: from here the count is kept.
    expect(await r.get('answers:u1')).toBe('0');
    await q.enqueue('u1', { eid: 't:3', kind: 'notice', data: '{}', at: Date.now() });
    expect(await r.get('answers:u1')).toBe('1');
    expect(eidOf(await q.advance('u1', idOf(c), 'tok', 60))).toBe('t:3');
  });

  it('the oldest message is not held back by its own wait (its worker died while dispatching it)', async () => {
    const { q, r } = await queue();
    const waits = new AgentWaits(r);
    await q.enqueue('u1', entry('m:1'));
    await q.enqueue('u1', entry('m:2'));
    await waits.add('u1', 'm:1', { receivedAt: 1, deadline: Date.now() + 60_000 });
    await r.set('lease:u1', 'tok');
    expect(eidOf(await q.advance('u1', null, 'tok', 60))).toBe('m:1');
  });

  it('hands a user back with a fresh notification, also when its lease expired meanwhile', async () => {
    const { q, r, blocking } = await queue();
    await q.enqueue('u1', entry('m:1'));
    const [n] = await q.read(blocking, 'c1', 10, 100);
    const nid = n?.nid as string;
    const tok = leaseToken(nid, 'c1');
    await q.acquireLease('u1', tok, 10_000, 'c1', nid);
    await r.del('lease:u1');
    expect(await q.renewLease('u1', tok, 10_000, 'c1', nid)).toBe(false);
    await q.finish('u1', tok, 'c1', nid, 'handback');
    const again = await q.read(blocking, 'c2', 10, 100);
    expect(again.map((x) => x.openid)).toEqual(['u1']);
  });

  it('a process that claims a dead worker’s notification takes over its lease at once and continues the inbox', async () => {
    const { q, r, blocking } = await queue();
    await q.enqueue('u1', entry('m:1'));
    const [n] = await q.read(blocking, 'dead', 10, 100);
    const nid = n?.nid as string;
    // The dead worker took the lease (long, still valid) and died before renewing anything.
    const deadToken = leaseToken(nid, 'dead');
    expect(await q.acquireLease('u1', deadToken, 60_000, 'dead', nid)).toBe(true);
    // A later message: the dead worker's notification (still pending) stands for it too.
    await q.enqueue('u1', entry('m:2'));
    expect(await q.read(blocking, 'alive', 10, 100)).toEqual([]);
    await new Promise((res) => setTimeout(res, 300));
    const claimed = await q.claimIdle('alive', 200, 10);
    expect(claimed).toEqual([{ nid, openid: 'u1' }]);
    const tok = leaseToken(nid, 'alive');
    expect(await q.acquireLease('u1', tok, 60_000, 'alive', nid)).toBe(true);
    const first = await q.advance('u1', null, tok, 60);
    expect(first).toMatchObject({ entry: { eid: 'm:1' }, attempt: 1 });
    // The dead worker's handback (had it only stalled) leaves the notification to its new owner.
    await q.finish('u1', deadToken, 'dead', nid, 'handback');
    expect(await r.xpending('queue:ready', 'bridge', '-', '+', 10)).toEqual([
      [nid, 'alive', expect.any(Number), 2],
    ]);
    expect(await r.get('lease:u1')).toBe(tok);
    expect(eidOf(await q.advance('u1', idOf(first), tok, 60))).toBe('m:2');
  });

  it('a notification claimed by another process meanwhile is left to it', async () => {
    const { q, blocking } = await queue();
    await q.enqueue('u1', entry('m:1'));
    const [n] = await q.read(blocking, 'slow', 10, 100);
    const nid = n?.nid as string;
    await new Promise((res) => setTimeout(res, 300));
    expect(await q.claimIdle('fast', 200, 10)).toHaveLength(1);
    expect(await q.acquireLease('u1', leaseToken(nid, 'slow'), 60_000, 'slow', nid)).toBe(false);
    expect(await q.acquireLease('u1', leaseToken(nid, 'fast'), 60_000, 'fast', nid)).toBe(true);
  });

  it('lets another consumer claim the notification of one that stopped renewing it', async () => {
    const { q, blocking } = await queue();
    await q.enqueue('u1', entry('m:1'));
    const [n] = await q.read(blocking, 'dead', 10, 100);
    expect(await q.claimIdle('alive', 60_000, 10)).toEqual([]);
    await new Promise((res) => setTimeout(res, 300));
    expect(await q.claimIdle('alive', 200, 10)).toEqual([{ nid: n?.nid, openid: 'u1' }]);
  });
});

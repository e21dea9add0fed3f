import { type RedisServer, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { HELP, T } from '../domain/texts.js';
import { type Harness, postPush, startHarness, waitFor } from '../test-support/harness.js';
import { RedisQueue } from './queue.js';

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

  it('releases a user only once the inbox is empty, and cleans up after it', async () => {
    const { q, r, blocking } = await queue();
    await q.enqueue('u1', entry('m:1'));
    const [n] = await q.read(blocking, 'c1', 10, 100);
    expect(await q.acquireLease('u1', 'tok', 10_000)).toBe(true);
    expect(await q.acquireLease('u1', 'other', 10_000)).toBe(false);
    const head = await q.head('u1');
    expect(head?.eid).toBe('m:1');
    await q.enqueue('u1', entry('m:2'));
    await q.complete(head as NonNullable<typeof head>);
    expect(await q.finish('u1', 'tok', n?.nid as string, 'drained')).toBe(false);
    await q.complete((await q.head('u1')) as NonNullable<Awaited<ReturnType<typeof q.head>>>);
    expect(await q.finish('u1', 'tok', n?.nid as string, 'drained')).toBe(true);
    expect(await r.exists('inbox:u1', 'lease:u1')).toBe(0);
    expect(await r.get('queue:depth')).toBe('0');
  });

  it('advances through a user’s entries in order, counting attempts in the ledger', async () => {
    const { q, r } = await queue();
    await q.enqueue('u1', entry('m:1'));
    await q.enqueue('u1', entry('m:2'));
    const first = await q.advance('u1', null, 60);
    expect([first?.entry.eid, first?.attempt]).toEqual(['m:1', 1]);
    // Not done yet (a crash, a retry): the same entry again, attempt 2.
    const again = await q.advance('u1', null, 60);
    expect([again?.entry.eid, again?.attempt]).toEqual(['m:1', 2]);
    const second = await q.advance('u1', again?.entry.id as string, 60);
    expect([second?.entry.eid, second?.attempt]).toEqual(['m:2', 1]);
    expect(await q.advance('u1', second?.entry.id as string, 60)).toBeNull();
    expect(await r.get('queue:depth')).toBe('0');
    expect(await r.hget('ledger:m:1', 'attempts')).toBe('2');
    expect(await r.ttl('ledger:m:2')).toBeGreaterThan(0);
  });

  it('hands a user back with a fresh notification, also when its lease expired meanwhile', async () => {
    const { q, r, blocking } = await queue();
    await q.enqueue('u1', entry('m:1'));
    const [n] = await q.read(blocking, 'c1', 10, 100);
    await q.acquireLease('u1', 'tok', 10_000);
    await r.del('lease:u1');
    expect(await q.renewLease('u1', 'tok', 10_000, 'c1', n?.nid as string)).toBe(false);
    await q.finish('u1', 'tok', n?.nid as string, 'handback');
    const again = await q.read(blocking, 'c2', 10, 100);
    expect(again.map((x) => x.openid)).toEqual(['u1']);
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

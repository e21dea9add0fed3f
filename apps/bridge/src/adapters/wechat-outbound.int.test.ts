import { afterEach, describe, expect, it } from 'vitest';
import { T } from '../domain/texts.js';
import { type Harness, startHarness, waitFor } from '../test-support/harness.js';
import type { UserRecord } from './user-store.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const THREE_PARTS = ['甲', '乙', '丙'].map((p) => `${p}：${'一段话。'.repeat(160)}`).join('\n\n');

async function ledgerStates(h: Harness): Promise<string[]> {
  const out: string[] = [];
  for (const key of await h.r.keys('ledger:*')) {
    const all = await h.r.hgetall(key);
    for (const [k, v] of Object.entries(all)) if (k.startsWith('part:')) out.push(v);
  }
  return out;
}

describe('customer-service sending', () => {
  it('45047 from WeChat is recorded and not retried; the rest of that reply is skipped', async () => {
    h = await startHarness({ messageBudget: 2 });
    const u = await h.newUser();
    h.agent.behavior = () => ({ reply: THREE_PARTS });
    await h.client.sendText(u, '长一点');
    await h.waitTexts(u, 3);
    await h.idle();
    const calls = h.sim.sim.calls({ endpoint: 'custom_send' });
    expect(calls.filter((c) => c.errcode === 45047)).toHaveLength(1);
    expect(await h.texts(u)).toHaveLength(3);
    expect(await ledgerStates(h)).toContain('failed:45047');
    const metrics = await (await fetch(`${h.bridgeUrl}/metrics`)).text();
    expect(metrics).toContain('moltage_bridge_wechat_errors_total{errcode="45047"} 1');
    // The next message opens a new window: the part WeChat refused goes first, then its answer.
    h.agent.behavior = () => ({});
    await h.client.sendText(u, '短的');
    const texts = await h.waitTexts(u, 5);
    expect(texts[3]).toBe(`${T.heldAnswers}\n\n丙：${'一段话。'.repeat(160)}`);
    expect(texts[4]).toBe('收到：短的');
    await h.idle();
    expect(await h.r.llen(`held:${u}`)).toBe(0);
  });

  it('answers past the budget are kept and go out ahead of the answer to the next message', async () => {
    h = await startHarness();
    const u = await h.newUser();
    // Six messages before the first answer: the last of them opened a budget of 5 for all six.
    h.agent.behavior = () => ({ replyDelayMs: 800 });
    for (let i = 1; i <= 6; i++) await h.client.sendText(u, `问${i}`);
    await waitFor(async () => (await h?.r.llen(`held:${u}`)) === 1, {
      timeoutMs: 30_000,
      what: 'a kept answer',
    });
    await h.idle();
    expect((await h.texts(u)).slice(1)).toEqual([
      '收到：问1',
      '收到：问2',
      '收到：问3',
      '收到：问4',
      '收到：问5',
    ]);
    // WeChat was never asked past the budget.
    expect(h.sim.sim.calls({ endpoint: 'custom_send' }).every((c) => c.errcode === 0)).toBe(true);
    h.agent.behavior = () => ({});
    await h.client.sendText(u, '问7');
    await h.waitTexts(u, 8);
    await h.idle();
    expect((await h.texts(u)).slice(6)).toEqual([`${T.heldAnswers}\n\n收到：问6`, '收到：问7']);
    expect(await h.r.exists(`held:${u}`)).toBe(0);
    // Once out, they are not sent again.
    await h.client.sendText(u, '问8');
    await h.waitTexts(u, 9);
    await h.idle();
    expect((await h.texts(u)).slice(8)).toEqual(['收到：问8']);
  });

  it('many kept answers go out in at most two messages, the rest on a page', async () => {
    h = await startHarness();
    const u = await h.newUser();
    const long = (n: number) => `${n}：${'很长的回答。'.repeat(80)}`;
    h.agent.behavior = (req) => ({
      reply: long(Number(String(req.payload.text).slice(1))),
      replyDelayMs: 300,
    });
    // Ten answers of ~1.4 KB for one budget of 5: five are kept, ~7 KB, more than two messages.
    for (let i = 1; i <= 10; i++) await h.client.sendText(u, `问${i}`);
    await waitFor(async () => (await h?.r.llen(`held:${u}`)) === 5, {
      timeoutMs: 60_000,
      what: 'kept answers',
    });
    await h.idle();
    const before = (await h.texts(u)).length;
    h.agent.behavior = () => ({});
    await h.client.sendText(u, '问11');
    await h.waitTexts(u, before + 3, 30_000);
    await h.idle();
    const after = (await h.texts(u)).slice(before);
    expect(after).toHaveLength(3);
    expect(after[0]?.startsWith(T.heldAnswers)).toBe(true);
    const link = /\/r\/[A-Za-z0-9_-]+/.exec(after[1] as string)?.[0];
    expect(link).toBeDefined();
    const page = await (await fetch(`${h.bridgeUrl}${link}`)).text();
    for (const n of [6, 10]) expect(page).toContain(`${n}：很长的回答。`);
    expect(after[2]).toBe('收到：问11');
  });

  it('never sends more than 5 messages per user message, without asking WeChat', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.client.sendText(u, '你好');
    await h.waitTexts(u, 2);
    await h.idle();
    const rec = JSON.parse((await h.r.get(`user:${u}`)) as string) as UserRecord;
    for (let i = 1; i <= 5; i++) {
      const res = await fetch(`${h.bridgeUrl}/callback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${rec.callbackToken}` },
        body: JSON.stringify({ openid: u, text: `追加 ${i}` }),
      });
      expect(res.status).toBe(200);
    }
    await h.idle();
    const texts = await h.texts(u);
    expect(texts.slice(1)).toEqual(['收到：你好', '追加 1', '追加 2', '追加 3', '追加 4']);
    expect(h.sim.sim.calls({ endpoint: 'custom_send' }).every((c) => c.errcode === 0)).toBe(true);
  });

  it('a reply for a user who unfollowed meanwhile is not sent', async () => {
    h = await startHarness();
    const u = await h.newUser();
    h.agent.behavior = () => ({ replyDelayMs: 300 });
    await h.client.sendText(u, '你好');
    await waitFor(() => h?.agent.requests.length === 1);
    await h.client.unfollow(u);
    await waitFor(() => h?.agent.callbacks.length === 1);
    await h.idle();
    expect(h.sim.sim.calls({ endpoint: 'custom_send' })).toHaveLength(1); // the welcome only
    expect(await h.texts(u)).toHaveLength(1);
  });

  it('45015 from WeChat (the 48-hour window closed) is recorded and not retried', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.idle();
    await h.client.advanceClock({ hours: 49 });
    const rec = JSON.parse((await h.r.get(`user:${u}`)) as string) as UserRecord;
    const res = await fetch(`${h.bridgeUrl}/callback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${rec.callbackToken}` },
      body: JSON.stringify({ openid: u, text: '迟到的消息' }),
    });
    expect(res.status).toBe(200);
    await h.idle();
    expect(h.sim.sim.calls({ endpoint: 'custom_send' }).filter((c) => c.errcode === 45015)).toHaveLength(1);
    expect(await ledgerStates(h)).toContain('failed:45015');
    expect(await h.texts(u)).toHaveLength(1);
  });

  it('transient failures (HTTP 500, system busy) are retried with backoff and delivered once', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.client.setFault('custom_send', { http500Times: 2 });
    await h.client.sendText(u, '一');
    expect((await h.waitTexts(u, 2))[1]).toBe('收到：一');
    await h.client.setFault('custom_send', { errcode: -1, errcodeTimes: 2 });
    await h.client.sendText(u, '二');
    expect((await h.waitTexts(u, 3))[2]).toBe('收到：二');
    await h.idle();
    expect(await h.texts(u)).toHaveLength(3);
    const calls = h.sim.sim.calls({ endpoint: 'custom_send' });
    expect(calls.filter((c) => c.fault !== null)).toHaveLength(4);
  });

  it('shares one access token between bridge processes through Redis and refreshes it on 42001', async () => {
    h = await startHarness();
    const a = await h.newUser();
    const second = await h.startBridge();
    h.pointSimAt(second.url);
    const b = await h.newUser();
    expect(await h.r.exists(`wechat:token:${h.sim.account.appId}`)).toBe(1);
    expect(h.sim.sim.calls({ endpoint: 'stable_token' })).toHaveLength(1);
    await h.client.expireTokens();
    await h.client.sendText(b, '过期之后');
    expect((await h.waitTexts(b, 2))[1]).toBe('收到：过期之后');
    h.pointSimAt(h.bridgeUrl);
    await h.client.sendText(a, '另一个进程');
    expect((await h.waitTexts(a, 2))[1]).toBe('收到：另一个进程');
    expect(h.sim.sim.calls({ endpoint: 'stable_token' })).toHaveLength(2);
  });
});

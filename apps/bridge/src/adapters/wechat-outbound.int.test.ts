import { afterEach, describe, expect, it } from 'vitest';
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
    // The next message opens a new window and is answered.
    h.agent.behavior = () => ({});
    await h.client.sendText(u, '短的');
    expect((await h.waitTexts(u, 4))[3]).toBe('收到：短的');
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

import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, startHarness, waitFor } from '../test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('operations', () => {
  it('GET /health reports Redis and the queue depth', async () => {
    h = await startHarness();
    const res = await fetch(`${h.bridgeUrl}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', redis: 'ok', queue: { depth: 0, pending: 0 } });
    // Work waiting behind a user the bridge is busy with shows up in the depth.
    const u = await h.newUser();
    h.agent.behavior = () => ({ hold: true });
    await h.client.sendText(u, '一');
    await waitFor(() => h?.agent.requests.length === 1);
    await h.client.sendText(u, '二');
    await h.client.sendText(u, '三');
    const busy = (await (await fetch(`${h.bridgeUrl}/health`)).json()) as { queue: { depth: number } };
    expect(busy.queue.depth).toBe(3);
    h.agent.behavior = () => ({});
    h.agent.release();
    await h.waitTexts(u, 4);
  });

  it('GET /metrics exposes pushes, acks, dedup hits, queue depth, reply latency and WeChat errcodes', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.client.setFault('custom_send', { errcode: -1, errcodeTimes: 1 });
    await h.client.sendText(u, '你好');
    await h.waitTexts(u, 2);
    await h.idle();
    const res = await fetch(`${h.bridgeUrl}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('moltage_bridge_pushes_total{outcome="queued"} 2');
    expect(text).toContain('moltage_bridge_acks_total 2');
    expect(text).toContain('moltage_bridge_dedup_hits_total 0');
    expect(text).toContain('moltage_bridge_queue_depth 0');
    expect(text).toContain('moltage_bridge_ack_duration_seconds_count 2');
    expect(text).toMatch(/moltage_bridge_reply_latency_seconds_count [1-9]/);
    expect(text).toContain('moltage_bridge_wechat_errors_total{errcode="-1"} 1');
    expect(text).toContain('moltage_bridge_agent_dispatches_total{target="vm",outcome="accepted"} 1');
  });

  it('answers pushes with 503 (so WeChat retries) and reports unhealthy when Redis is down', async () => {
    h = await startHarness();
    await h.redis.stop();
    const push = h.signedPush({
      ToUserName: 'gh',
      FromUserName: 'someone',
      CreateTime: Math.floor(Date.now() / 1000),
      MsgType: 'text',
      Content: 'hi',
      MsgId: '1',
    });
    const res = await fetch(`${h.bridgeUrl}/wechat?${push.query}`, { method: 'POST', body: push.body });
    expect(res.status).toBe(503);
    expect(await res.text()).not.toBe('success');
    const health = await fetch(`${h.bridgeUrl}/health`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { redis: string }).redis).toBe('unreachable');
  });

  it('logs are structured and carry no secrets', async () => {
    h = await startHarness({ mode: 'safe', env: { BIND_ALLOW_PRIVATE: 'true' } });
    h.agent.tokens = null;
    const u = await h.newUser();
    await h.client.sendText(u, `bind ${h.agent.url} user-secret-token-42`);
    await h.client.sendText(u, 'ssh');
    await h.client.sendText(u, '你好');
    await h.waitTexts(u, 4);
    await h.idle();
    const logs = h.logs();
    for (const line of logs.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
    const account = h.sim.account;
    const rec = JSON.parse((await h.r.get(`user:${u}`)) as string) as {
      callbackToken: string;
      binding: { callbackToken: string };
    };
    const password = /一次性密码：(\S+)/.exec((await h.texts(u))[2] as string)?.[1] as string;
    const accessToken = JSON.parse((await h.r.get(`wechat:token:${account.appId}`)) as string)
      .token as string;
    for (const secret of [
      account.appSecret,
      account.token,
      account.encodingAesKey as string,
      h.orch.token,
      'user-secret-token-42',
      password,
      rec.callbackToken,
      rec.binding.callbackToken,
      accessToken,
    ]) {
      expect(logs).not.toContain(secret);
    }
  });
});

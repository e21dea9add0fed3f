import { afterEach, describe, expect, it } from 'vitest';
import type { UserRecord } from '../adapters/user-store.js';
import { T } from '../domain/texts.js';
import { type Harness, startHarness, waitFor } from '../test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function user(h: Harness, openid: string): Promise<UserRecord> {
  return JSON.parse((await h.r.get(`user:${openid}`)) as string) as UserRecord;
}

describe('agent path', () => {
  it('gets a VM from the orchestrator and posts the message to its agent with both payload formats', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.client.sendText(u, '写一首诗');
    expect((await h.waitTexts(u, 2))[1]).toBe('收到：写一首诗');
    await h.idle();
    const rec = await user(h, u);
    const create = h.orch.requests.find((r) => r.method === 'POST' && r.path === '/api/v1/vms');
    expect(create?.authorized).toBe(true);
    expect(create?.body).toEqual({
      user_id: u,
      callback_url: `${h.bridge?.url}/callback`,
      callback_token: rec.callbackToken,
    });
    expect(h.orch.requests.some((r) => r.method === 'POST' && r.path === `/api/v1/vms/${u}/touch`)).toBe(
      true,
    );
    const vm = h.orch.vms.get(u);
    const req = h.agent.requests[0];
    expect(req?.auth).toBe(`Bearer ${vm?.agent_token}`);
    expect(req?.payload).toMatchObject({
      openid: u,
      text: '写一首诗',
      msg_type: 'text',
      callback_token: rec.callbackToken,
      task: '写一首诗',
      metadata: { openid: u, msg_type: 'text' },
    });
    expect(typeof req?.payload.message_id).toBe('string');
    expect(String(req?.payload.callback_url)).toMatch(new RegExp(`^${h.bridge?.url}/callback\\?`));
  });

  it('a VM replaced behind the bridge’s back (idle reaper, restart) is looked up again', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.client.sendText(u, '一');
    await h.waitTexts(u, 2);
    const creates = () =>
      h?.orch.requests.filter((r) => r.method === 'POST' && r.path === '/api/v1/vms').length;
    expect(creates()).toBe(1);
    await h.client.sendText(u, '二');
    await h.waitTexts(u, 3);
    // The running VM's record was reused.
    expect(creates()).toBe(1);
    // The orchestrator dropped the VM; the old agent token is no longer valid anywhere.
    h.orch.vms.delete(u);
    await h.client.sendText(u, '三');
    expect((await h.waitTexts(u, 4))[3]).toBe('收到：三');
    expect(creates()).toBe(2);
    expect(h.agent.requests.at(-1)?.auth).toBe(`Bearer ${h.orch.vms.get(u)?.agent_token}`);
  });

  it('tells the user once when a cold start takes a while, then answers', async () => {
    h = await startHarness({ tuning: { coldStartNoticeMs: 300 } });
    h.orch.behavior.readyAfterMs = 1500;
    const u = await h.newUser();
    await h.client.sendText(u, '你好');
    await h.waitTexts(u, 3);
    await h.client.sendText(u, '还在吗');
    await h.waitTexts(u, 4);
    await h.idle();
    expect((await h.texts(u)).slice(1)).toEqual([T.coldStart, '收到：你好', '收到：还在吗']);
  });

  it('a VM that never becomes ready within VM_READY_TIMEOUT_MS: the user is told', async () => {
    h = await startHarness({ env: { VM_READY_TIMEOUT_MS: '1000' }, tuning: { coldStartNoticeMs: 60_000 } });
    h.orch.behavior.readyAfterMs = 600_000;
    const u = await h.newUser();
    await h.client.sendText(u, '你好');
    expect((await h.waitTexts(u, 2))[1]).toBe(T.vmTimeout);
    expect(h.agent.requests).toHaveLength(0);
  });

  it('a VM in error, an orchestrator error and an unreachable orchestrator reach the user as one short message', async () => {
    h = await startHarness();
    const u = await h.newUser();
    h.orch.behavior.failVm = true;
    h.orch.behavior.readyAfterMs = 100;
    await h.client.sendText(u, '一');
    expect((await h.waitTexts(u, 2))[1]).toBe(T.vmFailed);
    h.orch.behavior.failVm = false;
    h.orch.behavior.fail500 = true;
    await h.client.sendText(u, '二');
    expect((await h.waitTexts(u, 3))[2]).toBe(T.vmFailed);
    await h.orch.close();
    await h.client.sendText(u, '三');
    expect((await h.waitTexts(u, 4))[3]).toBe(T.vmFailed);
    await h.idle();
    expect(await h.texts(u)).toHaveLength(4);
  });

  it('a running VM whose image has no agent: the user is told at once, not after the ready timeout', async () => {
    h = await startHarness({ env: { VM_READY_TIMEOUT_MS: '600000' }, tuning: { coldStartNoticeMs: 60_000 } });
    h.orch.behavior.noAgent = true;
    const u = await h.newUser();
    await h.client.sendText(u, '你好');
    expect((await h.waitTexts(u, 2))[1]).toBe(T.agentUnreachable);
    expect(h.agent.requests).toHaveLength(0);
  });

  it('an agent that refuses or cannot be reached: the user is told', async () => {
    h = await startHarness();
    const u = await h.newUser();
    h.agent.behavior = () => ({ status: 500 });
    await h.client.sendText(u, '你好');
    expect((await h.waitTexts(u, 2))[1]).toBe(T.agentUnreachable);
    await h.agent.close();
    await h.client.sendText(u, '还好吗');
    expect((await h.waitTexts(u, 3, 20_000))[2]).toBe(T.agentUnreachable);
  });

  it('an agent that never replies: the user is told after AGENT_REPLY_TIMEOUT_MS, once', async () => {
    h = await startHarness({ env: { AGENT_REPLY_TIMEOUT_MS: '1000' } });
    const u = await h.newUser();
    h.agent.behavior = () => ({ reply: null });
    await h.client.sendText(u, '你好');
    expect((await h.waitTexts(u, 2))[1]).toBe(T.agentTimeout);
    h.agent.behavior = () => ({});
    await h.client.sendText(u, '再试');
    await h.waitTexts(u, 3);
    await h.idle();
    expect((await h.texts(u)).slice(1)).toEqual([T.agentTimeout, '收到：再试']);
  });

  it('shows no typing indicator when the answer comes before it is due', async () => {
    h = await startHarness({ tuning: { typingFirstAfterMs: 600_000 } });
    const u = await h.newUser();
    await h.client.sendText(u, '快问快答');
    expect((await h.waitTexts(u, 2))[1]).toBe('收到：快问快答');
    await h.idle();
    expect(h.sim.sim.calls({ endpoint: 'typing' })).toEqual([]);
    expect(h.sim.sim.user(u).typing).toBe(false);
  });

  it('shows the typing indicator while the agent works, without using the message budget', async () => {
    h = await startHarness();
    const u = await h.newUser();
    h.agent.behavior = () => ({ replyDelayMs: 1200 });
    await h.client.sendText(u, '慢慢想');
    await waitFor(() => h?.sim.sim.user(u).typing === true, { what: 'typing indicator' });
    const entries = await h.client.waitForInbox(u, 2);
    expect(entries[1]?.text).toBe('收到：慢慢想');
    expect(entries[1]?.countsAgainst?.n).toBe(1);
    const typing = h.sim.sim.calls({ endpoint: 'typing' });
    expect(typing.length).toBeGreaterThanOrEqual(2);
    expect(typing.every((c) => c.errcode === 0 && (c.body as { command: string }).command === 'Typing')).toBe(
      true,
    );
    expect(h.sim.sim.user(u).typing).toBe(false);
  });
});

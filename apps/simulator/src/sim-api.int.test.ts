import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimulatorClient, SimulatorClientError } from './client.js';
import { type StartedSimulator, startSimulator } from './start.js';
import { type FakeBridge, startFakeBridge } from './test-support/fake-bridge.js';

const TOKEN = 'pageToken1';
const APPID = 'wxpage0000001';

let sim: StartedSimulator;
let bridge: FakeBridge;
let client: SimulatorClient;

beforeEach(async () => {
  bridge = await startFakeBridge({ token: TOKEN, appId: APPID });
  sim = await startSimulator({ account: { appId: APPID, token: TOKEN, bridgeUrl: bridge.url } });
  client = new SimulatorClient(sim.url);
});
afterEach(async () => {
  await sim.close();
  await bridge.close();
});

describe('the chat page', () => {
  it('is served at / as HTML with the key controls, readable on a phone', async () => {
    const res = await fetch(`${sim.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('<meta name="viewport"');
    for (const id of [
      'userSelect',
      'newUserBtn',
      'followBtn',
      'text',
      'sendBtn',
      'clickBtn',
      'locationBtn',
      'imageBtn',
      'typing',
      'bridgeUrl',
      'verifyBtn',
    ]) {
      expect(html).toContain(`id="${id}"`);
    }
    expect(html).toContain("new EventSource('/sim/events')");
    expect(html).toContain('发送 Send');
    expect(html).toContain('关注 Follow');
  });

  it('streams changes as Server-Sent Events', async () => {
    const { user } = await client.createUser();
    const ac = new AbortController();
    const res = await fetch(`${sim.url}/sim/events?openid=${user.openid}`, { signal: ac.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const seen: string[] = [];
    const follow = client.follow(user.openid);
    let buf = '';
    while (!seen.includes('push:ok')) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString('utf8');
      const blocks = buf.split('\n\n');
      buf = blocks.pop() ?? '';
      for (const b of blocks) {
        const ev = /^event: (.+)$/m.exec(b)?.[1];
        const data = /^data: (.+)$/m.exec(b)?.[1];
        if (!ev || !data) continue;
        const parsed = JSON.parse(data) as { push?: { status: string } };
        seen.push(ev === 'push' ? `push:${parsed.push!.status}` : ev);
      }
    }
    ac.abort();
    await follow;
    expect(seen).toContain('user');
    expect(seen).toContain('push:pending');
    expect(seen).toContain('push:ok');
  });
});

describe('the JSON API', () => {
  it('creates, lists and follows users; follow with qrscene in one call', async () => {
    const { user, push } = await client.createUser({ nickname: '测试 Test', follow: true, qrscene: 'abc' });
    expect(user).toMatchObject({ nickname: '测试 Test', following: true });
    expect(user.openid).toMatch(/^o[A-Za-z0-9_-]{27}$/);
    expect(push).toMatchObject({ kind: 'event:subscribe', status: 'ok' });
    expect(push!.fields['EventKey']).toBe('qrscene_abc');
    const named = await client.createUser({ openid: 'o_custom_1' });
    expect(named.user.following).toBe(false);
    expect((await client.users()).map((u) => u.openid)).toEqual([user.openid, 'o_custom_1']);
    await expect(client.createUser({ openid: 'o_custom_1' })).rejects.toMatchObject({
      status: 409,
      code: 'SIM_USER_EXISTS',
    });
  });

  it('answers 404 for unknown users and 409 for impossible actions, changing nothing', async () => {
    await expect(client.sendText('o_ghost', 'hi')).rejects.toMatchObject({
      status: 404,
      code: 'SIM_USER_NOT_FOUND',
    });
    const { user } = await client.createUser();
    await expect(client.sendText(user.openid, 'hi')).rejects.toMatchObject({
      status: 409,
      code: 'SIM_NOT_FOLLOWING',
    });
    await expect(client.unfollow(user.openid)).rejects.toMatchObject({ status: 409 });
    await client.follow(user.openid);
    await expect(client.follow(user.openid)).rejects.toMatchObject({
      status: 409,
      code: 'SIM_ALREADY_FOLLOWING',
    });
    expect(await client.pushes(user.openid)).toHaveLength(1);
  });

  it('reports the window and budget of a user', async () => {
    const { user } = await client.createUser({ follow: true });
    const push = await client.sendText(user.openid, 'hello');
    const { window } = await client.user(user.openid);
    expect(window).toMatchObject({ ref: push.msgId, kind: 'text', used: 0, remaining: 5, open: true });
  });

  it('waits for inbox messages server-side, and says when they did not come', async () => {
    const { user } = await client.createUser({ follow: true });
    await client.sendText(user.openid, 'hi');
    const token = (
      (await (
        await fetch(
          `${sim.url}/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${sim.account.appSecret}`,
        )
      ).json()) as { access_token: string }
    ).access_token;
    const waiting = client.waitForInbox(user.openid, 2, { timeoutMs: 5000 });
    for (const content of ['one', 'two']) {
      await fetch(`${sim.url}/cgi-bin/message/custom/send?access_token=${token}`, {
        method: 'POST',
        body: JSON.stringify({ touser: user.openid, msgtype: 'text', text: { content } }),
      });
    }
    expect((await waiting).map((e) => e.text)).toEqual(['one', 'two']);
    const err = await client.waitForInbox(user.openid, 3, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimulatorClientError);
    expect((err as SimulatorClientError).code).toBe('SIM_WAIT_TIMEOUT');
  });

  it('changes the account at runtime, validating everything first', async () => {
    const before = await client.account();
    expect(before.appSecret).not.toBe(sim.account.appSecret);
    expect(before.appSecret).toMatch(/…/);
    await expect(client.updateAccount({ mode: 'safe', encodingAesKey: 'short' })).rejects.toMatchObject({
      status: 400,
    });
    await expect(client.updateAccount({ token: 'has spaces' })).rejects.toMatchObject({ status: 400 });
    expect(await client.account()).toEqual(before);
    const after = await client.updateAccount({ mode: 'safe', token: 'newToken42' });
    expect(after.mode).toBe('safe');
    expect(sim.account.token).toBe('newToken42');
  });

  it('moves the clock and resets everything but the account', async () => {
    const c = await client.advanceClock({ hours: 48 });
    expect(c.offsetMs).toBe(48 * 3_600_000);
    await expect(client.advanceClock({})).rejects.toMatchObject({ status: 400 });
    await client.createUser({ follow: true });
    await client.setFault('token', { latencyMs: 10 });
    const account = await client.account();
    await client.reset();
    expect(await client.users()).toEqual([]);
    expect(await client.pushes()).toEqual([]);
    expect(await client.calls()).toEqual([]);
    expect(await client.faults()).toEqual({});
    expect((await client.clock()).offsetMs).toBe(0);
    expect(await client.account()).toEqual(account);
  });

  it('refuses malformed JSON with 400', async () => {
    const res = await fetch(`${sim.url}/sim/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{bad',
    });
    expect(res.status).toBe(400);
    const res2 = await fetch(`${sim.url}/sim/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ openid: 'has space' }),
    });
    expect(res2.status).toBe(400);
    expect(await client.users()).toEqual([]);
  });
});

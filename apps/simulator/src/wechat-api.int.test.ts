import { waitFor } from '@moltage/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimulatorClient } from './client.js';
import { type StartedSimulator, startSimulator } from './start.js';
import { type FakeBridge, startFakeBridge } from './test-support/fake-bridge.js';

const APPID = 'wxapitest000001';
const SECRET = 'apisecret0123456789';
const TOKEN = 'apiToken';

let sim: StartedSimulator;
let bridge: FakeBridge;
let client: SimulatorClient;

beforeEach(async () => {
  bridge = await startFakeBridge({ token: TOKEN, appId: APPID });
  sim = await startSimulator({
    account: { appId: APPID, appSecret: SECRET, token: TOKEN, bridgeUrl: bridge.url },
    typingMs: 1000,
  });
  client = new SimulatorClient(sim.url);
});

afterEach(async () => {
  await sim.close();
  await bridge.close();
});

type Json = Record<string, unknown>;

async function getToken(appid = APPID, secret = SECRET): Promise<Json> {
  const res = await fetch(
    `${sim.url}/cgi-bin/token?grant_type=client_credential&appid=${encodeURIComponent(appid)}&secret=${encodeURIComponent(secret)}`,
  );
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/json; encoding=utf-8');
  return (await res.json()) as Json;
}

async function postJson(path: string, body: unknown): Promise<Json> {
  const res = await fetch(`${sim.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Json;
}

const stable = (force?: boolean) =>
  postJson('/cgi-bin/stable_token', {
    grant_type: 'client_credential',
    appid: APPID,
    secret: SECRET,
    ...(force === undefined ? {} : { force_refresh: force }),
  });

const send = (token: string, touser: string, content: string) =>
  postJson(`/cgi-bin/message/custom/send?access_token=${encodeURIComponent(token)}`, {
    touser,
    msgtype: 'text',
    text: { content },
  });

const typing = (token: string, touser: string, command = 'Typing') =>
  postJson(`/cgi-bin/message/custom/typing?access_token=${encodeURIComponent(token)}`, { touser, command });

async function followedUser(): Promise<string> {
  const { user } = await client.createUser({ follow: true });
  return user.openid;
}

describe('access tokens', () => {
  it('GET /cgi-bin/token answers access_token and expires_in 7200', async () => {
    const t = await getToken();
    expect(typeof t['access_token']).toBe('string');
    expect((t['access_token'] as string).length).toBeGreaterThan(100);
    expect(t['expires_in']).toBe(7200);
  });

  it('wrong appid → 40013, wrong secret → 40125, bad grant_type → 40002, in WeChat’s shape', async () => {
    const a = await getToken('wxnotmine', SECRET);
    expect(a).toEqual({
      errcode: 40013,
      errmsg: expect.stringMatching(/^invalid appid rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$/),
    });
    expect((await getToken(APPID, 'nope'))['errcode']).toBe(40125);
    const g = await fetch(`${sim.url}/cgi-bin/token?grant_type=password&appid=${APPID}&secret=${SECRET}`);
    expect(((await g.json()) as Json)['errcode']).toBe(40002);
    expect(Object.keys(a).sort()).toEqual(['errcode', 'errmsg']);
  });

  it('a new token leaves the previous one working for 5 minutes only', async () => {
    const { user } = await client.createUser({ follow: true });
    const old = (await getToken())['access_token'] as string;
    const fresh = (await getToken())['access_token'] as string;
    expect(fresh).not.toBe(old);
    expect((await send(old, user.openid, 'still fine'))['errcode']).toBe(0);
    await client.advanceClock({ minutes: 5, seconds: 1 });
    expect((await send(old, user.openid, 'too late'))['errcode']).toBe(40001);
    expect((await send(fresh, user.openid, 'new one works'))['errcode']).toBe(0);
  });

  it('a token expires after 7200 s → 42001', async () => {
    const openid = await followedUser();
    const t = (await getToken())['access_token'] as string;
    await client.advanceClock({ seconds: 7200 });
    expect(await send(t, openid, 'x')).toMatchObject({ errcode: 42001 });
  });

  it('stable_token returns the same token while valid; force_refresh replaces it at once', async () => {
    const openid = await followedUser();
    const a = await stable();
    const b = await stable(false);
    expect(b['access_token']).toBe(a['access_token']);
    expect(b['expires_in']).toBeLessThanOrEqual(7200);
    const c = await stable(true);
    expect(c['access_token']).not.toBe(a['access_token']);
    expect((await send(a['access_token'] as string, openid, 'old'))['errcode']).toBe(40001);
    expect((await send(c['access_token'] as string, openid, 'new'))['errcode']).toBe(0);
    // A second force refresh within 30 s is refused.
    expect((await stable(true))['errcode']).toBe(45011);
  });

  it('stable and basic tokens are independent', async () => {
    const openid = await followedUser();
    const s = (await stable())['access_token'] as string;
    await getToken();
    await getToken();
    await client.advanceClock({ minutes: 6 });
    expect((await send(s, openid, 'stable still valid'))['errcode']).toBe(0);
  });

  it('stable_token: empty body → 44002, not JSON → 47001, only POST', async () => {
    expect((await postJson('/cgi-bin/stable_token', ''))['errcode']).toBe(44002);
    expect((await postJson('/cgi-bin/stable_token', '{oops'))['errcode']).toBe(47001);
    const get = await fetch(`${sim.url}/cgi-bin/stable_token`);
    expect(((await get.json()) as Json)['errcode']).toBe(43002);
  });

  it('expiring tokens now (fault switch) → 42001 until a new token is fetched', async () => {
    const openid = await followedUser();
    const s = (await stable())['access_token'] as string;
    expect(await client.expireTokens()).toBe(1);
    expect((await send(s, openid, 'x'))['errcode']).toBe(42001);
    const s2 = (await stable())['access_token'] as string;
    expect(s2).not.toBe(s);
    expect((await send(s2, openid, 'x'))['errcode']).toBe(0);
  });
});

describe('customer-service messages', () => {
  let token: string;
  beforeEach(async () => {
    token = (await getToken())['access_token'] as string;
  });

  it('a text reaches the user’s inbox, counted against the message that opened the window', async () => {
    const { user } = await client.createUser({ follow: true });
    const push = await client.sendText(user.openid, 'hello');
    expect(await send(token, user.openid, '你好!')).toEqual({ errcode: 0, errmsg: 'ok' });
    const [entry] = await client.inbox(user.openid);
    expect(entry).toMatchObject({
      via: 'custom_send',
      msgtype: 'text',
      text: '你好!',
      body: { touser: user.openid, msgtype: 'text', text: { content: '你好!' } },
      countsAgainst: { ref: push.msgId, msgId: push.msgId, kind: 'text', n: 1, budget: 5 },
    });
    expect(typeof entry!.arrivedAt).toBe('string');
  });

  it('2048 bytes of UTF-8 pass, 2049 → 45002', async () => {
    const openid = await followedUser();
    const exactly = `${'中'.repeat(682)}ab`; // 682 × 3 + 2 = 2048 bytes
    expect((await send(token, openid, exactly))['errcode']).toBe(0);
    expect((await send(token, openid, `${exactly}c`))['errcode']).toBe(45002);
    expect(await client.inbox(openid)).toHaveLength(1);
  });

  it('5 messages per user message, then 45047; the next user message opens a new budget', async () => {
    const openid = await followedUser();
    const first = await client.sendText(openid, 'one');
    for (let i = 1; i <= 5; i++) expect((await send(token, openid, `reply ${i}`))['errcode']).toBe(0);
    expect((await send(token, openid, 'sixth'))['errcode']).toBe(45047);
    const second = await client.sendText(openid, 'two');
    expect((await send(token, openid, 'again'))['errcode']).toBe(0);
    const inbox = await client.inbox(openid);
    expect(inbox.map((e) => e.countsAgainst?.ref)).toEqual([...Array(5).fill(first.msgId), second.msgId]);
    expect(inbox.at(-1)!.countsAgainst!.n).toBe(1);
  });

  it('45015 when the user’s last message is more than 48 h old, and after unfollow', async () => {
    const openid = await followedUser();
    await client.sendText(openid, 'hi');
    await client.advanceClock({ hours: 47, minutes: 59 });
    // The first token is long dead by now (7200 s): fetch a new one.
    const t2 = (await getToken())['access_token'] as string;
    expect((await send(t2, openid, 'just in time'))['errcode']).toBe(0);
    await client.advanceClock({ minutes: 1, seconds: 1 });
    expect((await send(t2, openid, 'too late'))['errcode']).toBe(45015);
    await client.sendText(openid, 'back again');
    expect((await send(t2, openid, 'welcome back'))['errcode']).toBe(0);
    await client.unfollow(openid);
    expect((await send(t2, openid, 'gone'))['errcode']).toBe(45015);
  });

  it('typing does not use the budget, shows on the user, and is cancelled by a message', async () => {
    const openid = await followedUser();
    await client.sendText(openid, 'hi');
    for (let i = 0; i < 8; i++) expect((await typing(token, openid))['errcode']).toBe(0);
    expect((await client.user(openid)).user.typing).toBe(true);
    for (let i = 1; i <= 5; i++) expect((await send(token, openid, `r${i}`))['errcode']).toBe(0);
    expect((await client.user(openid)).user.typing).toBe(false);
    expect((await client.user(openid)).window).toMatchObject({ used: 5, remaining: 0 });
    expect((await typing(token, openid, 'CancelTyping'))['errcode']).toBe(0);
    expect((await typing(token, openid, 'Dance'))['errcode']).toBe(45072);
    await client.unfollow(openid);
    expect((await typing(token, openid))['errcode']).toBe(45015);
  });

  it('the typing indicator goes away by itself when not renewed', async () => {
    const openid = await followedUser();
    expect((await typing(token, openid))['errcode']).toBe(0);
    expect((await client.user(openid)).user.typing).toBe(true);
    await waitFor(async () => !(await client.user(openid)).user.typing, { what: 'typing to end' });
  });

  it('bad input: 40003 unknown openid, 44002 empty body, 47001 not JSON, 40008 bad msgtype, 44004 empty text', async () => {
    const openid = await followedUser();
    expect((await send(token, 'o_nobody', 'x'))['errcode']).toBe(40003);
    expect((await postJson(`/cgi-bin/message/custom/send?access_token=${token}`, ''))['errcode']).toBe(44002);
    expect(
      (await postJson(`/cgi-bin/message/custom/send?access_token=${token}`, 'not json'))['errcode'],
    ).toBe(47001);
    expect(
      (
        await postJson(`/cgi-bin/message/custom/send?access_token=${token}`, {
          touser: openid,
          msgtype: 'hologram',
        })
      )['errcode'],
    ).toBe(40008);
    expect((await send(token, openid, ''))['errcode']).toBe(44004);
    expect(await client.inbox(openid)).toHaveLength(0);
  });

  it('bad tokens: none → 41001, garbage → 40014, well-formed but unknown → 40001', async () => {
    const openid = await followedUser();
    const none = await postJson('/cgi-bin/message/custom/send', {
      touser: openid,
      msgtype: 'text',
      text: { content: 'x' },
    });
    expect(none['errcode']).toBe(41001);
    expect((await send('bogus', openid, 'x'))['errcode']).toBe(40014);
    expect((await send('A'.repeat(120), openid, 'x'))['errcode']).toBe(40001);
  });

  it('other message types are accepted and previewed', async () => {
    const openid = await followedUser();
    const r = await postJson(`/cgi-bin/message/custom/send?access_token=${token}`, {
      touser: openid,
      msgtype: 'msgmenu',
      msgmenu: { head_content: 'Pick one', list: [{ id: '1', content: 'Yes' }], tail_content: 'Thanks' },
    });
    expect(r['errcode']).toBe(0);
    expect((await client.inbox(openid))[0]).toMatchObject({
      msgtype: 'msgmenu',
      text: null,
      preview: 'Pick one\n• Yes\nThanks',
    });
  });
});

describe('fault switches', () => {
  it('an errcode for the next N calls, then normal again', async () => {
    await client.setFault('token', { errcode: -1, errcodeTimes: 2 });
    expect((await getToken())['errcode']).toBe(-1);
    expect((await getToken())['errcode']).toBe(-1);
    expect(typeof (await getToken())['access_token']).toBe('string');
    const calls = await client.calls('token');
    expect(calls.map((c) => c.fault)).toEqual(['errcode', 'errcode', null]);
  });

  it('HTTP 500 the next time', async () => {
    const openid = await followedUser();
    const token = (await getToken())['access_token'] as string;
    await client.setFault('custom_send', { http500Times: 1 });
    const res = await fetch(`${sim.url}/cgi-bin/message/custom/send?access_token=${token}`, {
      method: 'POST',
      body: JSON.stringify({ touser: openid, msgtype: 'text', text: { content: 'x' } }),
    });
    expect(res.status).toBe(500);
    expect((await send(token, openid, 'x'))['errcode']).toBe(0);
    expect(await client.inbox(openid)).toHaveLength(1);
  });

  it('no answer at all the next time (the client has to give up), then normal', async () => {
    await client.setFault('stable_token', { timeoutTimes: 1 });
    const hung = fetch(`${sim.url}/cgi-bin/stable_token`, {
      method: 'POST',
      body: JSON.stringify({ grant_type: 'client_credential', appid: APPID, secret: SECRET }),
      signal: AbortSignal.timeout(300),
    });
    await expect(hung).rejects.toThrow();
    expect(typeof (await stable())['access_token']).toBe('string');
    expect((await client.calls('stable_token')).map((c) => c.fault)).toEqual(['timeout', null]);
  });

  it('added latency holds every answer until cleared', async () => {
    await client.setFault('token', { latencyMs: 2000 });
    const slow = fetch(
      `${sim.url}/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${SECRET}`,
      {
        signal: AbortSignal.timeout(200),
      },
    );
    await expect(slow).rejects.toThrow();
    expect((await client.faults()).token).toMatchObject({ latencyMs: 2000 });
    await client.clearFaults('token');
    expect(typeof (await getToken())['access_token']).toBe('string');
  });

  it('refuses unknown endpoints and errcode faults on the fake LLM', async () => {
    await expect(client.setFault('nope' as 'token', { http500Times: 1 })).rejects.toMatchObject({
      status: 404,
    });
    await expect(client.setFault('chat_completions', { errcode: 40001 })).rejects.toMatchObject({
      status: 400,
    });
    await expect(client.setFault('token', { latencyMs: -5 })).rejects.toMatchObject({ status: 400 });
    expect(await client.faults()).toEqual({});
  });
});

describe('the calls log', () => {
  it('records every call with secrets masked', async () => {
    const openid = await followedUser();
    const token = (await getToken())['access_token'] as string;
    await stable();
    await send(token, openid, 'logged');
    const calls = await client.calls();
    expect(calls.map((c) => c.endpoint)).toEqual(['token', 'stable_token', 'custom_send']);
    const text = JSON.stringify(calls);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(token);
    expect(calls[2]).toMatchObject({ errcode: 0, httpStatus: 200, tokenHint: token.slice(0, 8) });
    expect(calls[2]!.body).toMatchObject({ touser: openid, text: { content: 'logged' } });
    await client.clearCalls();
    expect(await client.calls()).toEqual([]);
  });
});

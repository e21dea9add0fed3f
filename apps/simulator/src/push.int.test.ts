import { buildXml, parseMessage, sha1Signature } from '@moltage/wechat';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatorClient } from './client.js';
import type { Mode } from './domain/account.js';
import { SERVICE_UNAVAILABLE_NOTICE } from './simulator.js';
import { type StartedSimulator, startSimulator } from './start.js';
import { type FakeBridge, startFakeBridge } from './test-support/fake-bridge.js';

const TOKEN = 'pushToken123';
const AES_KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const APPID = 'wx1234567890abcdef';
const ORIGINAL_ID = 'gh_0123456789ab';

let sim: StartedSimulator | undefined;
let bridge: FakeBridge | undefined;

afterEach(async () => {
  await sim?.close();
  await bridge?.close();
  sim = undefined;
  bridge = undefined;
});

async function setup(mode: Mode, extra: { pushTimeoutMs?: number; pushAttempts?: number } = {}) {
  bridge = await startFakeBridge({ token: TOKEN, appId: APPID, encodingAesKey: AES_KEY });
  sim = await startSimulator({
    account: {
      appId: APPID,
      token: TOKEN,
      encodingAesKey: AES_KEY,
      mode,
      bridgeUrl: bridge.url,
      originalId: ORIGINAL_ID,
    },
    ...extra,
  });
  const client = new SimulatorClient(sim.url);
  const { user } = await client.createUser({ nickname: 'Tester' });
  return { client, openid: user.openid, bridge, sim };
}

describe('pushes to the bridge', () => {
  it('plaintext mode: signed URL with openid, plain XML body, success acknowledged', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    await client.follow(openid);
    const push = await client.sendText(openid, '你好 <world> & ]]> friends');

    expect(push.status).toBe('ok');
    expect(push.attempts).toHaveLength(1);
    const req = bridge.requests.at(-1)!;
    expect(req.method).toBe('POST');
    expect(req.signatureOk).toBe(true);
    expect(req.query['openid']).toBe(openid);
    expect(req.query['encrypt_type']).toBeUndefined();
    expect(req.query['msg_signature']).toBeUndefined();
    const msg = parseMessage(req.body);
    expect(msg).toMatchObject({
      msgType: 'text',
      content: '你好 <world> & ]]> friends',
      toUserName: ORIGINAL_ID,
      fromUserName: openid,
    });
    // MsgId is a bare 64-bit number above 2^53, as WeChat's are.
    expect(req.body).toMatch(/<MsgId>\d{17,}<\/MsgId>/);
    expect(BigInt(push.msgId!)).toBeGreaterThan(BigInt(Number.MAX_SAFE_INTEGER));
    expect((msg as { msgId: string }).msgId).toBe(push.msgId);
  });

  it('compatible mode: plaintext fields and <Encrypt> side by side, both signatures valid', async () => {
    const { client, openid, bridge } = await setup('compatible');
    await client.follow(openid);
    await client.sendText(openid, 'compat');
    const req = bridge.requests.at(-1)!;
    expect(req.signatureOk).toBe(true);
    expect(req.query['encrypt_type']).toBe('aes');
    expect(req.query['msg_signature']).toBe(
      sha1Signature(TOKEN, req.query['timestamp']!, req.query['nonce']!, req.outer!['Encrypt']!),
    );
    expect(req.outer).toMatchObject({ MsgType: 'text', Content: 'compat', FromUserName: openid });
    expect(req.decrypted).not.toBeNull();
    expect(parseMessage(req.decrypted!)).toMatchObject({ msgType: 'text', content: 'compat' });
  });

  it('safe mode: only ToUserName and Encrypt in the body; the encrypted passive reply reaches the chat', async () => {
    const { client, openid, bridge } = await setup('safe');
    await client.follow(openid);
    bridge.answer = (req) => {
      const f = req.fields!;
      const reply = buildXml({
        ToUserName: f['FromUserName']!,
        FromUserName: f['ToUserName']!,
        CreateTime: Math.floor(Date.now() / 1000),
        MsgType: 'text',
        Content: `收到: ${f['Content']}`,
      });
      return { body: bridge!.crypt!.encryptReply(reply, req.query['timestamp']!, req.query['nonce']!) };
    };
    const push = await client.sendText(openid, 'secret hello');
    const req = bridge.requests.at(-1)!;
    expect(Object.keys(req.outer!).sort()).toEqual(['Encrypt', 'ToUserName']);
    expect(req.outer!['ToUserName']).toBe(ORIGINAL_ID);
    expect(parseMessage(req.decrypted!)).toMatchObject({ msgType: 'text', content: 'secret hello' });

    expect(push.status).toBe('ok');
    expect(push.reply).toMatchObject({ msgType: 'text', encrypted: true });
    const inbox = await client.inbox(openid);
    expect(inbox).toHaveLength(1);
    expect(inbox[0]).toMatchObject({
      via: 'passive_reply',
      msgtype: 'text',
      text: '收到: secret hello',
      pushId: push.id,
    });
  });

  it('compatible mode accepts plaintext and encrypted replies; plaintext mode refuses encrypted ones', async () => {
    const { client, openid, bridge } = await setup('compatible');
    await client.follow(openid);
    let encrypt = false;
    bridge.answer = (req) => {
      const xml = buildXml({
        ToUserName: openid,
        FromUserName: ORIGINAL_ID,
        CreateTime: 1,
        MsgType: 'text',
        Content: 'r',
      });
      return { body: encrypt ? bridge!.crypt!.encryptReply(xml, req.query['timestamp']!, '123') : xml };
    };
    expect((await client.sendText(openid, 'a')).reply).toMatchObject({ encrypted: false });
    encrypt = true;
    expect((await client.sendText(openid, 'b')).reply).toMatchObject({ encrypted: true });
    expect(await client.inbox(openid)).toHaveLength(2);
    await client.updateAccount({ mode: 'plaintext' });
    const p = await client.sendText(openid, 'c');
    expect(p.status).toBe('bad_reply');
    expect(p.problem).toMatch(/plaintext mode/);
  });

  it('safe mode refuses a plaintext passive reply and shows WeChat’s notice', async () => {
    const { client, openid, bridge } = await setup('safe');
    await client.follow(openid);
    bridge.answer = (req) => ({
      body: buildXml({
        ToUserName: openid,
        FromUserName: ORIGINAL_ID,
        CreateTime: 1,
        MsgType: 'text',
        Content: req.fields?.['Content'] ?? '',
      }),
    });
    const push = await client.sendText(openid, 'hi');
    expect(push.status).toBe('bad_reply');
    expect(push.notice).toBe(SERVICE_UNAVAILABLE_NOTICE);
    expect(await client.inbox(openid)).toHaveLength(0);
  });

  it('plaintext passive reply becomes a chat message; a reply to the wrong user does not', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    await client.follow(openid);
    let to = openid;
    bridge.answer = () => ({
      body: buildXml({
        ToUserName: to,
        FromUserName: ORIGINAL_ID,
        CreateTime: 1,
        MsgType: 'text',
        Content: 'pong',
      }),
    });
    expect((await client.sendText(openid, 'ping')).status).toBe('ok');
    expect((await client.inbox(openid)).map((e) => e.text)).toEqual(['pong']);

    to = 'someone-else';
    const bad = await client.sendText(openid, 'ping');
    expect(bad.status).toBe('bad_reply');
    expect(bad.problem).toMatch(/ToUserName/);
    expect(await client.inbox(openid)).toHaveLength(1);
  });

  it('an answer that is neither success, empty nor XML is a bad reply; an empty body is fine', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    await client.follow(openid);
    bridge.answer = () => ({ body: '' });
    expect((await client.sendText(openid, 'a')).status).toBe('ok');
    bridge.answer = () => ({ body: '{"ok":true}' });
    const p = await client.sendText(openid, 'b');
    expect(p.status).toBe('bad_reply');
    expect(p.attempts).toHaveLength(1);
  });

  it('retries a slow bridge with the same MsgId, 3 attempts in all', async () => {
    const { client, openid, bridge } = await setup('plaintext', { pushTimeoutMs: 1000 });
    await client.follow(openid);
    bridge.answer = (_req, n) => (n <= 3 ? { hang: true } : { body: 'success' });
    // Requests 2 and 3 (the first was the follow) hang; the third attempt is answered.
    const push = await client.sendText(openid, 'slow');
    expect(push.status).toBe('ok');
    expect(push.attempts.map((a) => a.outcome)).toEqual(['timeout', 'timeout', 'ok']);
    const msgIds = bridge.requests.slice(1).map((r) => r.fields?.['MsgId']);
    expect(msgIds).toHaveLength(3);
    expect(new Set(msgIds)).toEqual(new Set([push.msgId]));
    // Every attempt is signed afresh.
    expect(bridge.requests.slice(1).every((r) => r.signatureOk)).toBe(true);
  });

  it('gives up after 3 attempts when the bridge answers 500, and tells the user', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    await client.follow(openid);
    bridge.answer = () => ({ status: 500, body: 'boom' });
    const push = await client.sendText(openid, 'x');
    expect(push.status).toBe('failed');
    expect(push.attempts).toHaveLength(3);
    expect(push.attempts.every((a) => a.outcome === 'http_error' && a.status === 500)).toBe(true);
    expect(push.notice).toBe(SERVICE_UNAVAILABLE_NOTICE);
  });

  it('the attempt count is an option', async () => {
    const { client, openid, bridge } = await setup('plaintext', { pushAttempts: 5 });
    await client.follow(openid);
    bridge.answer = () => ({ status: 503 });
    expect((await client.sendText(openid, 'x')).attempts).toHaveLength(5);
  });

  it('records network errors when nobody listens at the bridge URL', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    await bridge.close();
    await client.follow(openid).catch(() => undefined);
    const push = await client.sendText(openid, 'anyone?');
    expect(push.status).toBe('failed');
    expect(push.attempts.map((a) => a.outcome)).toEqual(['network_error', 'network_error', 'network_error']);
  });

  it('without waiting: 202 with the pending record, then the finished one', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    await client.follow(openid);
    bridge.answer = () => ({ body: 'success', delayMs: 200 });
    const res = await fetch(`${sim!.url}/sim/users/${openid}/messages?wait=false`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'text', content: 'later' }),
    });
    expect(res.status).toBe(202);
    const pending = (await res.json()) as { id: string; status: string };
    expect(pending.status).toBe('pending');
    const done = await client.waitForPush(pending.id);
    expect(done.status).toBe('ok');
  });

  it('a message without a bridge URL is recorded as undeliverable', async () => {
    const { client, openid } = await setup('plaintext');
    await client.updateAccount({ bridgeUrl: null });
    await client.follow(openid);
    const p = await client.sendText(openid, 'void');
    expect(p.status).toBe('undeliverable');
    expect(p.attempts).toHaveLength(0);
  });

  it('URL verification: GET with echostr; the bridge echoes it, and refuses a bad signature', async () => {
    const { client, bridge } = await setup('safe');
    const ok = await client.verifyUrl();
    expect(ok.ok).toBe(true);
    const req = bridge.requests.at(-1)!;
    expect(req.method).toBe('GET');
    expect(req.signatureOk).toBe(true);
    expect(req.query['echostr']).toBe(ok.echostr);
    const bad = await client.verifyUrl({ badSignature: true });
    expect(bad.ok).toBe(false);
    expect(bad.status).toBe(401);
  });
});

describe('what users can send', () => {
  it('follow with a QR scene, unfollow: subscribe/unsubscribe events without MsgId', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    const follow = await client.follow(openid, { qrscene: 'invite42' });
    expect(follow.msgId).toBeNull();
    expect(follow.ref).toBe(`${openid}:${follow.createTime}`);
    expect(parseMessage(bridge.requests.at(-1)!.body)).toMatchObject({
      msgType: 'event',
      event: 'subscribe',
      eventKey: 'qrscene_invite42',
      scene: 'invite42',
    });
    expect(bridge.requests.at(-1)!.body).not.toContain('<MsgId>');
    await client.unfollow(openid);
    expect(parseMessage(bridge.requests.at(-1)!.body)).toMatchObject({
      msgType: 'event',
      event: 'unsubscribe',
    });
    await expect(client.sendText(openid, 'after unfollow')).rejects.toMatchObject({
      status: 409,
      code: 'SIM_NOT_FOLLOWING',
    });
  });

  it('every message and event type arrives as WeChat writes it', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    await client.follow(openid);
    const last = () => parseMessage(bridge.requests.at(-1)!.body);

    await client.send(openid, { type: 'image' });
    const img = last() as { msgType: string; picUrl: string; mediaId: string };
    expect(img.msgType).toBe('image');
    expect(img.picUrl).toBe(`${sim!.url}/sim/media/${img.mediaId}`);
    const pic = await fetch(img.picUrl);
    expect(pic.headers.get('content-type')).toBe('image/png');

    await client.send(openid, { type: 'voice', recognition: '帮我查天气' });
    expect(last()).toMatchObject({ msgType: 'voice', format: 'amr', recognition: '帮我查天气' });
    await client.send(openid, { type: 'voice' });
    expect(last()).not.toHaveProperty('recognition');
    await client.send(openid, { type: 'video' });
    expect(last()).toMatchObject({ msgType: 'video' });
    await client.send(openid, { type: 'location', latitude: 23.1, longitude: 113.3, label: '广州' });
    expect(last()).toMatchObject({
      msgType: 'location',
      latitude: 23.1,
      longitude: 113.3,
      scale: 15,
      label: '广州',
    });
    await client.send(openid, { type: 'link', title: 'Docs', url: 'https://example.com/a' });
    expect(last()).toMatchObject({ msgType: 'link', title: 'Docs', url: 'https://example.com/a' });
    await client.send(openid, { type: 'event', event: 'CLICK', eventKey: 'MENU_HELP' });
    expect(last()).toMatchObject({ event: 'CLICK', eventKey: 'MENU_HELP' });
    await client.send(openid, { type: 'event', event: 'VIEW', eventKey: 'https://example.com/menu' });
    expect(last()).toMatchObject({ event: 'VIEW', eventKey: 'https://example.com/menu' });
    await client.send(openid, { type: 'event', event: 'SCAN', eventKey: '123' });
    expect(last()).toMatchObject({ event: 'SCAN', eventKey: '123' });
    await client.send(openid, { type: 'event', event: 'LOCATION', latitude: 1.5, longitude: 2.5 });
    expect(last()).toMatchObject({ event: 'LOCATION', latitude: 1.5, longitude: 2.5 });
    expect(bridge.requests.every((r) => r.signatureOk)).toBe(true);
  });

  it('refuses malformed messages with 400 and pushes nothing', async () => {
    const { client, openid, bridge } = await setup('plaintext');
    await client.follow(openid);
    const before = bridge.requests.length;
    const bad = [
      { type: 'text', content: '' },
      { type: 'sticker' },
      { type: 'location', latitude: 200, longitude: 0 },
    ];
    for (const body of bad) {
      const res = await fetch(`${sim!.url}/sim/users/${openid}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SIM_VALIDATION');
    }
    expect(bridge.requests.length).toBe(before);
    expect(await client.pushes(openid)).toHaveLength(1);
  });
});

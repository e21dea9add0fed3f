import { sha1Signature, WXBizMsgCrypt } from '@moltage/wechat';
import { afterEach, describe, expect, it } from 'vitest';
import { HELP } from '../domain/texts.js';
import { type Harness, type Mode, postPush, startHarness } from '../test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function textFields(
  openid: string,
  content: string,
  msgId = String(Date.now()) + String(Math.random()).slice(2, 8),
) {
  return {
    ToUserName: 'gh_test',
    FromUserName: openid,
    CreateTime: Math.floor(Date.now() / 1000),
    MsgType: 'text',
    Content: content,
    MsgId: msgId,
  };
}

async function allKeys(h: Harness): Promise<string[]> {
  return (await h.r.keys('*')).filter((k) => !k.startsWith('wechat:token:')).sort();
}

describe('GET /wechat (URL verification)', () => {
  it('echoes echostr for a good signature and refuses a bad one with 401', async () => {
    h = await startHarness({ mode: 'safe' });
    const ok = await h.client.verifyUrl();
    expect(ok.ok).toBe(true);
    expect(ok.body).toBe(ok.echostr);
    const bad = await h.client.verifyUrl({ badSignature: true });
    expect(bad.status).toBe(401);
    expect(bad.body).not.toContain(bad.echostr);
  });

  it('refuses a stale timestamp with 401', async () => {
    h = await startHarness();
    const ts = String(Math.floor(Date.now() / 1000) - 600);
    const nonce = '12345';
    const signature = sha1Signature(h.env['WECHAT_TOKEN'] as string, ts, nonce);
    const res = await fetch(
      `${h.bridgeUrl}/wechat?signature=${signature}&timestamp=${ts}&nonce=${nonce}&echostr=abc`,
    );
    expect(res.status).toBe(401);
    expect(await res.text()).not.toBe('abc');
  });
});

describe.each<Mode>(['plaintext', 'compatible', 'safe'])('POST /wechat in %s mode', (mode) => {
  it('acks with plain "success" and answers the user', async () => {
    h = await startHarness({ mode });
    const u = await h.newUser();
    const push = await h.client.sendText(u, 'help');
    expect(push.status).toBe('ok');
    expect(push.attempts).toHaveLength(1);
    expect(push.attempts[0]?.body).toBe('success');
    const texts = await h.waitTexts(u, 2);
    expect(texts[1]).toBe(HELP);
  });
});

describe('refused pushes', () => {
  it('get 401/400, change nothing in Redis and produce no reply', async () => {
    h = await startHarness({ mode: 'safe' });
    const u = await h.newUser();
    await h.idle();
    const keysBefore = await allKeys(h);
    const account = h.sim.account;
    const url = h.bridgeUrl;

    // Bad msg_signature.
    const badSig = h.signedPush(textFields(u, 'help'));
    badSig.query.set('msg_signature', 'f'.repeat(40));
    expect((await postPush(url, badSig)).status).toBe(401);

    // Bad plaintext signature.
    const badPlain = h.signedPush(textFields(u, 'help'), { mode: 'plaintext' });
    badPlain.query.set('signature', '0'.repeat(40));
    expect((await postPush(url, badPlain)).status).toBe(401);

    // Timestamp older than 5 minutes (signatures valid).
    const stale = h.signedPush(textFields(u, 'help'), { timestamp: Math.floor(Date.now() / 1000) - 301 });
    expect((await postPush(url, stale)).status).toBe(401);

    // Tampered ciphertext, signed again so only decryption can notice.
    const tampered = h.signedPush(textFields(u, 'help'));
    const enc = /<Encrypt><!\[CDATA\[(.*?)\]\]><\/Encrypt>/.exec(tampered.body)?.[1] as string;
    const raw = Buffer.from(enc, 'base64');
    raw[raw.length - 5] = (raw[raw.length - 5] ?? 0) ^ 0xff;
    const badEnc = raw.toString('base64');
    tampered.body = tampered.body.replace(enc, badEnc);
    tampered.query.set(
      'msg_signature',
      sha1Signature(
        account.token,
        tampered.query.get('timestamp') as string,
        tampered.query.get('nonce') as string,
        badEnc,
      ),
    );
    expect((await postPush(url, tampered)).status).toBe(400);

    // Encrypted for another AppID with the right key.
    const other = new WXBizMsgCrypt({
      token: account.token,
      encodingAesKey: account.encodingAesKey as string,
      appId: 'wxsomeoneelse',
    });
    const ts = String(Math.floor(Date.now() / 1000));
    const foreign = other.encrypt(
      `<xml><ToUserName>gh</ToUserName><FromUserName>${u}</FromUserName><CreateTime>${ts}</CreateTime><MsgType>text</MsgType><Content>help</Content><MsgId>1</MsgId></xml>`,
    );
    const wrongAppid = {
      query: new URLSearchParams({
        timestamp: ts,
        nonce: '1',
        encrypt_type: 'aes',
        msg_signature: sha1Signature(account.token, ts, '1', foreign),
      }),
      body: `<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[${foreign}]]></Encrypt></xml>`,
    };
    expect((await postPush(url, wrongAppid)).status).toBe(400);

    // Malformed XML (valid plaintext signature), and a malformed envelope in safe mode.
    const malformed = h.signedPush(textFields(u, 'help'), { mode: 'plaintext' });
    malformed.body = '<xml><ToUserName>oops';
    expect((await postPush(url, malformed)).status).toBe(400);
    const envelope = h.signedPush(textFields(u, 'help'));
    envelope.body = '<xml><Encrypt>';
    expect((await postPush(url, envelope)).status).toBe(400);
    // Well-formed XML that is not a message (no MsgType).
    const notMessage = h.signedPush(
      { ToUserName: 'gh', FromUserName: u, CreateTime: Number(ts) },
      { mode: 'plaintext' },
    );
    expect((await postPush(url, notMessage)).status).toBe(400);

    // Over 64 KiB.
    const huge = h.signedPush(textFields(u, 'x'.repeat(70 * 1024)), { mode: 'plaintext' });
    const hugeRes = await postPush(url, huge);
    expect(hugeRes.status).toBe(400);

    expect(await allKeys(h)).toEqual(keysBefore);

    // A valid message afterwards is answered, and it is the only new message the user got.
    await h.client.sendText(u, 'help');
    const texts = await h.waitTexts(u, 2);
    expect(texts).toHaveLength(2);
    expect(texts[1]).toBe(HELP);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/moltage_bridge_pushes_total\{outcome="bad_signature"\} 2/);
    expect(metrics).toMatch(/moltage_bridge_pushes_total\{outcome="stale_timestamp"\} 1/);
    expect(metrics).toMatch(/moltage_bridge_pushes_total\{outcome="too_large"\} 1/);
  });

  it('refuses an encrypted push with 400 when no EncodingAESKey is configured', async () => {
    h = await startHarness({ mode: 'safe', env: { WECHAT_ENCODING_AES_KEY: '' } });
    const push = h.signedPush(textFields('someone', 'help'));
    const res = await postPush(h.bridgeUrl, push);
    expect(res.status).toBe(400);
    expect(res.body).toContain('WECHAT_ENCODING_AES_KEY');
    expect(await h.r.get('queue:depth')).toBeNull();
  });
});

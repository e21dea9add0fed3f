import { type RedisServer, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WeChatApiClient, type WeChatApiClientOptions } from './api.js';
import { WeChatApiError, WeChatError } from './errors.js';
import { FakeWeChat } from './fake-wechat.test-helper.js';
import { MemoryTokenCache, RedisTokenCache } from './token-cache.js';

let wx: FakeWeChat;
const clients: Redis[] = [];
let redis: RedisServer | undefined;

beforeEach(async () => {
  wx = await new FakeWeChat().start();
});

afterEach(async () => {
  await wx.stop();
  for (const c of clients.splice(0)) c.disconnect();
  await redis?.stop();
  redis = undefined;
});

function client(opts: Partial<WeChatApiClientOptions> = {}): WeChatApiClient {
  return new WeChatApiClient({ appId: wx.appId, appSecret: wx.secret, baseUrl: wx.url, ...opts });
}

async function caught(p: Promise<unknown>): Promise<WeChatError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(WeChatError);
    return err as WeChatError;
  }
  throw new Error('expected the call to fail');
}

/** Neither the AppSecret nor any issued token may appear in an error or its causes. */
function expectNoSecrets(err: unknown): void {
  const seen: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    seen.push(String((e as Error).message), String((e as Error).stack ?? ''), JSON.stringify(e));
    e = (e as { cause?: unknown }).cause;
  }
  const text = seen.join('\n');
  expect(text).not.toContain(wx.secret);
  expect(text).not.toMatch(/ACCESS_TOKEN_\d+/);
}

describe('WeChatApiClient access token', () => {
  it('uses POST /cgi-bin/stable_token by default and sends a text message with it', async () => {
    const c = client();
    await c.sendText('openid-1', '你好，world');
    const [tokenReq] = wx.tokenRequests();
    expect(tokenReq).toMatchObject({
      method: 'POST',
      path: '/cgi-bin/stable_token',
      body: { grant_type: 'client_credential', appid: wx.appId, secret: wx.secret, force_refresh: false },
    });
    const [send] = wx.apiRequests('/cgi-bin/message/custom/send');
    expect(send!.query['access_token']).toMatch(/^ACCESS_TOKEN_1_/);
    expect(send!.body).toEqual({ touser: 'openid-1', msgtype: 'text', text: { content: '你好，world' } });
  });

  it('uses GET /cgi-bin/token in classic mode', async () => {
    const c = client({ tokenMode: 'classic' });
    const token = await c.getAccessToken();
    expect(token).toMatch(/^ACCESS_TOKEN_1_/);
    expect(wx.tokenRequests()).toEqual([
      {
        method: 'GET',
        path: '/cgi-bin/token',
        query: { grant_type: 'client_credential', appid: wx.appId, secret: wx.secret },
        body: undefined,
      },
    ]);
  });

  it('caches the token across calls', async () => {
    const c = client();
    await c.sendText('u', 'a');
    await c.sendText('u', 'b');
    await c.typing('u', 'Typing');
    expect(await c.getAccessToken()).toMatch(/^ACCESS_TOKEN_1_/);
    expect(wx.tokenRequests()).toHaveLength(1);
    expect(wx.apiRequests()).toHaveLength(3);
  });

  it('refreshes a token that is within refreshAheadMs of expiry', async () => {
    wx.expiresInS = 200; // less than the default 300 s refresh-ahead window
    const c = client();
    const first = await c.getAccessToken();
    const second = await c.getAccessToken();
    expect(second).not.toBe(first);
    expect(wx.tokenRequests()).toHaveLength(2);

    wx.expiresInS = 7200;
    const third = await c.getAccessToken();
    expect(await c.getAccessToken()).toBe(third);
    expect(wx.tokenRequests()).toHaveLength(3);
  });

  it('keeps using a token that is near expiry but still valid when the refresh fails', async () => {
    wx.expiresInS = 200;
    const c = client();
    const first = await c.getAccessToken();
    wx.tokenReplies.push({ status: 503, raw: 'busy' });
    expect(await c.getAccessToken()).toBe(first);
    await c.sendText('u', 'still works');
    expect(wx.apiRequests()).toHaveLength(1);
  });

  it('single-flight: 10 concurrent callers cause one token request', async () => {
    wx.tokenDelayMs = 150;
    const c = client();
    const tokens = await Promise.all(Array.from({ length: 10 }, () => c.getAccessToken()));
    expect(new Set(tokens).size).toBe(1);
    expect(wx.tokenRequests()).toHaveLength(1);
  });

  it('forceRefresh fetches a new token, with force_refresh: true in stable mode', async () => {
    const c = client();
    const first = await c.getAccessToken();
    const second = await c.getAccessToken({ forceRefresh: true });
    expect(second).not.toBe(first);
    expect(wx.tokenRequests().map((r) => (r.body as { force_refresh: boolean }).force_refresh)).toEqual([
      false,
      true,
    ]);
    expect(await c.getAccessToken()).toBe(second);
  });

  it('token endpoint errcodes become WeChatApiError without the secret in the message', async () => {
    const c = new WeChatApiClient({ appId: wx.appId, appSecret: 'wrong-secret-value', baseUrl: wx.url });
    const err = await caught(c.getAccessToken());
    expect(err).toBeInstanceOf(WeChatApiError);
    expect((err as WeChatApiError).errcode).toBe(40125);
    expect(err.code).toBe('WECHAT_API_40125');
    expect(err.message).not.toContain('wrong-secret-value');
  });

  it('a token answer without access_token is WECHAT_HTTP', async () => {
    wx.tokenReplies.push({ json: { expires_in: 7200 } });
    const err = await caught(client().getAccessToken());
    expect(err.code).toBe('WECHAT_HTTP');
  });
});

describe('WeChatApiClient across processes (real Redis)', () => {
  it('two clients sharing a RedisTokenCache make one token request', async () => {
    redis = await startRedis({ appendonly: false });
    const r1 = new Redis(redis.url);
    const r2 = new Redis(redis.url);
    clients.push(r1, r2);
    wx.tokenDelayMs = 200;
    const a = client({ tokenCache: new RedisTokenCache(r1) });
    const b = client({ tokenCache: new RedisTokenCache(r2) });
    const tokens = await Promise.all([
      ...Array.from({ length: 10 }, () => a.getAccessToken()),
      ...Array.from({ length: 10 }, () => b.getAccessToken()),
    ]);
    expect(new Set(tokens).size).toBe(1);
    expect(wx.tokenRequests()).toHaveLength(1);
    await a.sendText('u', 'from a');
    await b.sendText('u', 'from b');
    expect(wx.tokenRequests()).toHaveLength(1);
    // The token is stored under the documented key with a TTL.
    expect(JSON.parse((await r1.get(`wechat:token:${wx.appId}`))!)).toMatchObject({ token: tokens[0] });
    expect(await r1.pttl(`wechat:token:${wx.appId}`)).toBeGreaterThan(0);
  });

  it('after 40001 in both processes, only one refreshes and both retry with the new token', async () => {
    redis = await startRedis({ appendonly: false });
    const r1 = new Redis(redis.url);
    const r2 = new Redis(redis.url);
    clients.push(r1, r2);
    const a = client({ tokenCache: new RedisTokenCache(r1, { keyPrefix: 'wx:t:' }) });
    const b = client({ tokenCache: new RedisTokenCache(r2, { keyPrefix: 'wx:t:' }) });
    await a.getAccessToken();
    await b.getAccessToken();
    expect(wx.tokenRequests()).toHaveLength(1);
    wx.revokeAll();
    wx.tokenDelayMs = 150;
    await Promise.all([a.sendText('u', '1'), b.sendText('u', '2')]);
    expect(wx.tokenRequests()).toHaveLength(2);
    const sends = wx.apiRequests('/cgi-bin/message/custom/send');
    expect(sends).toHaveLength(4);
    expect(sends.slice(2).every((s) => s.query['access_token']?.startsWith('ACCESS_TOKEN_2_'))).toBe(true);
  });

  it('keeps working when Redis goes away, and reports the cache errors', async () => {
    redis = await startRedis({ appendonly: false });
    const r = new Redis(redis.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 100,
    });
    r.on('error', () => {});
    clients.push(r);
    const cacheErrors: unknown[] = [];
    const c = client({ tokenCache: new RedisTokenCache(r), onCacheError: (err) => cacheErrors.push(err) });
    await c.sendText('u', 'before');
    await redis.stop();
    redis = undefined;
    await c.sendText('u', 'after, token from this process');
    await c.getAccessToken({ forceRefresh: true });
    await c.sendText('u', 'after a refresh without the lock');
    expect(wx.apiRequests()).toHaveLength(3);
    expect(cacheErrors.length).toBeGreaterThan(0);
  });
});

describe('WeChatApiClient calls and errors', () => {
  it.each([40001, 40014, 42001])('refreshes and retries once on errcode %i', async (errcode) => {
    const c = client();
    await c.getAccessToken();
    wx.apiReplies.push({ json: { errcode, errmsg: 'token problem' } });
    await c.sendText('u', 'hello');
    // A plain stable_token request first (WeChat still hands out the same token), then a forced one.
    expect(wx.tokenRequests().map((r) => (r.body as { force_refresh: boolean }).force_refresh)).toEqual([
      false,
      false,
      true,
    ]);
    const sends = wx.apiRequests();
    expect(sends).toHaveLength(2);
    expect(sends[0]!.query['access_token']).toMatch(/^ACCESS_TOKEN_1_/);
    expect(sends[1]!.query['access_token']).toMatch(/^ACCESS_TOKEN_2_/);
  });

  it('gives up after one retry when the new token is refused too', async () => {
    const c = client();
    wx.apiReplies.push({ json: { errcode: 40001, errmsg: 'invalid credential' } });
    wx.apiReplies.push({ json: { errcode: 42001, errmsg: 'access_token expired' } });
    const err = await caught(c.sendText('u', 'hello'));
    expect(err).toBeInstanceOf(WeChatApiError);
    expect((err as WeChatApiError).errcode).toBe(42001);
    expect(wx.apiRequests()).toHaveLength(2);
    // first token, then the plain request that returns the same one, then the forced refresh
    expect(wx.tokenRequests()).toHaveLength(3);
    expectNoSecrets(err);
  });

  it('other errcodes are WeChatApiError with the errcode, and are not retried', async () => {
    const c = client();
    wx.apiReplies.push({
      json: { errcode: 45015, errmsg: 'response out of time limit or subscription is canceled' },
    });
    const err = await caught(c.sendText('u', 'late'));
    expect(err).toBeInstanceOf(WeChatApiError);
    expect(err.code).toBe('WECHAT_API_45015');
    expect((err as WeChatApiError).errcode).toBe(45015);
    expect((err as WeChatApiError).errmsg).toContain('out of time limit');
    expect(wx.apiRequests()).toHaveLength(1);
    expect(wx.tokenRequests()).toHaveLength(1);
    expectNoSecrets(err);
  });

  it('HTTP 5xx is WECHAT_HTTP with the status', async () => {
    const c = client();
    wx.apiReplies.push({ status: 502, raw: '<html>bad gateway</html>' });
    const err = await caught(c.sendText('u', 'x'));
    expect(err.code).toBe('WECHAT_HTTP');
    expect(err.httpStatus).toBe(502);
    expectNoSecrets(err);
  });

  it('a 200 answer that is not JSON is WECHAT_HTTP', async () => {
    const c = client();
    wx.apiReplies.push({ raw: 'not json' });
    expect((await caught(c.sendText('u', 'x'))).code).toBe('WECHAT_HTTP');
  });

  it('no answer within timeoutMs is WECHAT_TIMEOUT', async () => {
    const c = client({ timeoutMs: 300 });
    await c.getAccessToken();
    wx.apiReplies.push({ hang: true });
    const err = await caught(c.typing('u', 'Typing'));
    expect(err.code).toBe('WECHAT_TIMEOUT');
    expectNoSecrets(err);

    wx.tokenReplies.push({ hang: true });
    const err2 = await caught(client({ timeoutMs: 300 }).getAccessToken());
    expect(err2.code).toBe('WECHAT_TIMEOUT');
    expectNoSecrets(err2);
  });

  it('a refused connection is WECHAT_HTTP', async () => {
    const c = client();
    await wx.stop();
    const err = await caught(c.sendText('u', 'x'));
    expect(err.code).toBe('WECHAT_HTTP');
    expectNoSecrets(err);
  });

  it('sends image, news and typing with the documented bodies', async () => {
    const c = client();
    await c.sendImage('u', 'MEDIA_ID');
    await c.sendNews('u', {
      title: 'T',
      description: 'D',
      url: 'https://example.com/a',
      picurl: 'https://example.com/p.png',
    });
    await c.sendNews('u', { title: 'T2', url: 'https://example.com/b' });
    await c.typing('u', 'Typing');
    await c.typing('u', 'CancelTyping');
    expect(wx.apiRequests().map((r) => [r.path, r.body])).toEqual([
      ['/cgi-bin/message/custom/send', { touser: 'u', msgtype: 'image', image: { media_id: 'MEDIA_ID' } }],
      [
        '/cgi-bin/message/custom/send',
        {
          touser: 'u',
          msgtype: 'news',
          news: {
            articles: [
              {
                title: 'T',
                description: 'D',
                url: 'https://example.com/a',
                picurl: 'https://example.com/p.png',
              },
            ],
          },
        },
      ],
      [
        '/cgi-bin/message/custom/send',
        { touser: 'u', msgtype: 'news', news: { articles: [{ title: 'T2', url: 'https://example.com/b' }] } },
      ],
      ['/cgi-bin/message/custom/typing', { touser: 'u', command: 'Typing' }],
      ['/cgi-bin/message/custom/typing', { touser: 'u', command: 'CancelTyping' }],
    ]);
  });

  it('refuses a text longer than 2048 UTF-8 bytes without calling WeChat', async () => {
    const c = client();
    const err = await caught(c.sendText('u', '中'.repeat(683)));
    expect(err.code).toBe('WECHAT_BAD_ARGUMENT');
    expect(wx.received).toHaveLength(0);
    await c.sendText('u', '中'.repeat(682));
    expect(wx.apiRequests()).toHaveLength(1);
  });

  it('call() returns the parsed answer for other endpoints', async () => {
    const c = client({ tokenCache: new MemoryTokenCache() });
    wx.apiReplies.push({ json: { errcode: 0, errmsg: 'ok', msgid: 123 } });
    const answer = await c.call<{ msgid: number }>('/cgi-bin/message/custom/send', {
      touser: 'u',
      msgtype: 'text',
      text: { content: 'x' },
    });
    expect(answer.msgid).toBe(123);
  });
});

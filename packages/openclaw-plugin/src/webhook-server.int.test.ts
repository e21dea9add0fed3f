import { freePort } from '@moltage/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { InboundMessage } from './payload.js';
import { recordingLogger } from './test-support/recording-server.js';
import { createWebhookServer, type WebhookServer } from './webhook-server.js';

const TOKEN = 'webhook-token-0123456789';

describe('webhook server', () => {
  let server: WebhookServer;
  let base: string;
  let received: InboundMessage[];
  let waiters: Array<() => void>;

  beforeEach(async () => {
    received = [];
    waiters = [];
    server = createWebhookServer({
      authToken: TOKEN,
      logger: recordingLogger().logger,
      channelDefaults: () => ({}),
      maxBodyBytes: 4096,
      onMessage: async (msg) => {
        received.push(msg);
        for (const w of waiters) w();
      },
    });
    const port = await freePort();
    await server.listen(port, '127.0.0.1');
    base = `http://127.0.0.1:${port}`;
  });
  afterEach(async () => {
    await server.close();
  });

  const nextMessage = () =>
    new Promise<void>((resolve) => {
      waiters.push(resolve);
    });

  function post(body: unknown, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) {
    return fetch(`${base}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  const valid = {
    message_id: 'm1',
    openid: 'oUser1',
    text: '你好',
    msg_type: 'text',
    callback_url: 'http://127.0.0.1:9/callback',
    callback_token: 'cb',
  };

  it('answers 202 at once and hands the message over', async () => {
    const arrived = nextMessage();
    const res = await post(valid);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'accepted', message_id: 'm1' });
    await arrived;
    expect(received[0]).toMatchObject({
      messageId: 'm1',
      openid: 'oUser1',
      text: '你好',
      callbackToken: 'cb',
    });
  });

  it('accepts the community plugin payload on the same path', async () => {
    const arrived = nextMessage();
    const res = await post({
      task: 'hello',
      callback_url: 'http://127.0.0.1:9/cb',
      metadata: { openid: 'oUser2' },
    });
    expect(res.status).toBe(202);
    await arrived;
    expect(received[0]).toMatchObject({ openid: 'oUser2', text: 'hello', shape: 'legacy' });
  });

  it('refuses a missing or wrong bearer token with 401 and runs nothing', async () => {
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: `Basic ${TOKEN}` }]) {
      const res = await post(valid, headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      const body = (await res.json()) as { error: string; reason: string };
      expect(body.error).toBe('unauthorized');
      expect(body.reason).not.toContain(TOKEN);
    }
    expect(received).toEqual([]);
  });

  it('answers 400 with the reason for bodies it cannot use', async () => {
    const cases: Array<[unknown, string]> = [
      ['{not json', 'body is not valid JSON'],
      [{ ...valid, openid: undefined }, 'openid is required'],
      [{ ...valid, callback_url: 'nope' }, 'callback_url must be an absolute http(s) URL'],
      [{ task: 'hi', callback_url: 'http://x/y' }, 'metadata.openid is required'],
    ];
    for (const [body, reason] of cases) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'bad_request', reason });
    }
    expect(received).toEqual([]);
  });

  it('refuses oversized bodies, non-JSON bodies and other methods', async () => {
    const big = await post({ ...valid, text: 'x'.repeat(5000) });
    expect(big.status).toBe(413);
    const form = await post('a=b', {
      authorization: `Bearer ${TOKEN}`,
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(form.status).toBe(415);
    const get = await fetch(`${base}/webhook`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await fetch(`${base}/elsewhere`)).status).toBe(404);
    expect(received).toEqual([]);
  });

  it('runs a message re-sent with the same id only once', async () => {
    const arrived = nextMessage();
    expect((await post(valid)).status).toBe(202);
    await arrived;
    const again = await post(valid);
    expect(again.status).toBe(202);
    expect(await again.json()).toEqual({ status: 'duplicate', message_id: 'm1' });
    expect(received).toHaveLength(1);
  });

  it('reports readiness on GET /health without a token', async () => {
    const res = await fetch(`${base}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', plugin: 'webhook-server', channel: 'moltage' });
  });
});

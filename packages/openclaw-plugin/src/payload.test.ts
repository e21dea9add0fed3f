import { describe, expect, it } from 'vitest';
import { PayloadError } from './errors.js';
import { parseWebhookPayload } from './payload.js';

const moltage = {
  message_id: '24523543534',
  openid: 'oAbC_123-xyz',
  text: '你好',
  msg_type: 'text',
  callback_url: 'http://bridge.local:3000/callback',
  callback_token: 'cb-token',
};

function reasonOf(body: unknown, defaults = {}): string {
  try {
    parseWebhookPayload(body, defaults);
  } catch (err) {
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as PayloadError).statusCode).toBe(400);
    return (err as Error).message;
  }
  throw new Error('payload was accepted');
}

describe('parseWebhookPayload: the bridge payload', () => {
  it('accepts it', () => {
    expect(parseWebhookPayload(moltage)).toEqual({
      messageId: '24523543534',
      openid: 'oAbC_123-xyz',
      text: '你好',
      msgType: 'text',
      callbackUrl: 'http://bridge.local:3000/callback',
      callbackToken: 'cb-token',
      shape: 'moltage',
    });
  });

  it('accepts a numeric WeChat MsgId and a CreateTime in seconds', () => {
    const msg = parseWebhookPayload({ ...moltage, message_id: 1234567890123, timestamp: 1_700_000_000 });
    expect(msg.messageId).toBe('1234567890123');
    expect(msg.timestampMs).toBe(1_700_000_000_000);
  });

  it('falls back to channels.moltage.config for the callback URL and token', () => {
    const { callback_url: _u, callback_token: _t, ...rest } = moltage;
    const msg = parseWebhookPayload(rest, { callbackUrl: 'http://b/callback', callbackToken: 'cfg-token' });
    expect(msg.callbackUrl).toBe('http://b/callback');
    expect(msg.callbackToken).toBe('cfg-token');
  });

  it('prefers the configured callback URL to the request’s, and keeps the request’s token', () => {
    const msg = parseWebhookPayload(moltage, { callbackUrl: 'http://10.0.1.1:3000/callback' });
    expect(msg.callbackUrl).toBe('http://10.0.1.1:3000/callback');
    expect(msg.callbackToken).toBe(moltage.callback_token);
    expect(() =>
      parseWebhookPayload(
        { ...moltage, callback_url: 'file:///etc/passwd' },
        { callbackUrl: 'http://b/callback' },
      ),
    ).toThrow('callback_url must be an absolute http(s) URL');
  });

  it('says which field is wrong', () => {
    expect(reasonOf({ ...moltage, message_id: undefined })).toBe('message_id is required');
    expect(reasonOf({ ...moltage, openid: undefined })).toBe('openid is required');
    expect(reasonOf({ ...moltage, openid: 'bad openid!' })).toMatch(/openid may only contain/);
    expect(reasonOf({ ...moltage, text: '   ' })).toBe('text must not be empty');
    expect(reasonOf({ ...moltage, text: 42 })).toBe('text must be a string');
    expect(reasonOf({ ...moltage, msg_type: undefined })).toBe('msg_type is required');
    expect(reasonOf({ ...moltage, callback_url: 'not a url' })).toBe(
      'callback_url must be an absolute http(s) URL',
    );
    expect(reasonOf({ ...moltage, callback_url: 'file:///etc/passwd' })).toBe(
      'callback_url must be an absolute http(s) URL',
    );
    expect(reasonOf({ ...moltage, callback_url: undefined })).toMatch(/callback_url is required/);
    expect(reasonOf({ ...moltage, text: 'x'.repeat(70_000) })).toMatch(/text is longer than/);
  });

  it('refuses bodies that are not objects or carry neither shape', () => {
    expect(reasonOf([moltage])).toBe('body must be a JSON object');
    expect(reasonOf('hello')).toBe('body must be a JSON object');
    expect(reasonOf({ hello: 'world' })).toMatch(/message_id, openid, text, msg_type and callback_url/);
  });
});

describe('parseWebhookPayload: the community plugin payload', () => {
  const legacy = {
    task: 'What is the weather?',
    callback_url: 'https://bridge.example.com/callback/oAbC_123',
    metadata: { openid: 'oAbC_123', msg_type: 'text', msg_id: 'wx-1', nickname: 'Ann' },
  };

  it('accepts it', () => {
    expect(parseWebhookPayload(legacy)).toEqual({
      messageId: 'wx-1',
      openid: 'oAbC_123',
      text: 'What is the weather?',
      msgType: 'text',
      callbackUrl: 'https://bridge.example.com/callback/oAbC_123',
      nickname: 'Ann',
      shape: 'legacy',
    });
  });

  it('makes up a message id when the bridge sent none', () => {
    const msg = parseWebhookPayload({ task: 'hi', callback_url: 'http://b/c', metadata: { openid: 'o1' } });
    expect(msg.messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(msg.msgType).toBe('text');
  });

  it('needs the openid to keep one session per user', () => {
    expect(reasonOf({ task: 'hi', callback_url: 'http://b/c' })).toBe('metadata.openid is required');
    expect(reasonOf({ task: 'hi', callback_url: 'http://b/c', metadata: {} })).toBe(
      'metadata.openid is required',
    );
    expect(reasonOf({ task: '', metadata: { openid: 'o1' } })).toBe('task must not be empty');
  });
});

import { describe, expect, it } from 'vitest';
import { normalizeTarget, replyText, userAddress, withPerUserSessions } from './addressing.js';

describe('addressing', () => {
  it('addresses a user as moltage:<openid> and reads such targets back', () => {
    expect(userAddress('oAbc_1')).toBe('moltage:oAbc_1');
    expect(normalizeTarget('moltage:oAbc_1')).toBe('oAbc_1');
    expect(normalizeTarget('user:oAbc_1')).toBe('oAbc_1');
    expect(normalizeTarget(' oAbc_1 ')).toBe('oAbc_1');
    expect(normalizeTarget('telegram:123 456')).toBeUndefined();
    expect(normalizeTarget('')).toBeUndefined();
  });

  it('gives every openid its own session unless the config already separates peers', () => {
    expect(withPerUserSessions({}).session?.dmScope).toBe('per-channel-peer');
    expect(withPerUserSessions({ session: { dmScope: 'main' } }).session?.dmScope).toBe('per-channel-peer');
    const perAccount = { session: { dmScope: 'per-account-channel-peer' } };
    expect(withPerUserSessions(perAccount)).toBe(perAccount);
  });

  it('turns reply payloads into WeChat text, media as links', () => {
    expect(replyText({ text: ' hello ' })).toBe('hello');
    expect(replyText({ text: 'chart:', mediaUrls: ['https://x/a.png'], mediaUrl: 'https://x/a.png' })).toBe(
      'chart:\nhttps://x/a.png',
    );
    expect(replyText({})).toBe('');
  });
});

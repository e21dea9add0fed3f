import { describe, expect, it } from 'vitest';
import { type AccountConfig, accountProblems, applyAccountPatch, mask, publicAccount } from './account.js';

const base: AccountConfig = {
  appId: 'wx0123456789abcdef',
  appSecret: '0123456789abcdef0123456789abcdef',
  token: 'token123',
  mode: 'plaintext',
  originalId: 'gh_0123456789ab',
};

describe('account', () => {
  it('a plaintext account needs no AES key; encrypted modes do', () => {
    expect(accountProblems(base)).toEqual([]);
    expect(accountProblems({ ...base, mode: 'safe' })).toEqual(['safe mode needs an encodingAesKey']);
    expect(accountProblems({ ...base, mode: 'safe', encodingAesKey: 'a'.repeat(43) })).toEqual([]);
  });

  it('names each bad field', () => {
    const problems = accountProblems({ ...base, token: 'x', encodingAesKey: 'short', bridgeUrl: 'ftp://x' });
    expect(problems).toHaveLength(3);
    expect(problems.join(' ')).toMatch(/token/);
    expect(problems.join(' ')).toMatch(/encodingAesKey/);
    expect(problems.join(' ')).toMatch(/bridgeUrl/);
  });

  it('patches with null removing optional fields', () => {
    const withUrl = applyAccountPatch(base, { bridgeUrl: 'http://127.0.0.1:3000/wechat' });
    expect(withUrl.bridgeUrl).toBe('http://127.0.0.1:3000/wechat');
    expect(applyAccountPatch(withUrl, { bridgeUrl: null })).not.toHaveProperty('bridgeUrl');
    expect(base).not.toHaveProperty('bridgeUrl');
  });

  it('masks secrets for display', () => {
    expect(mask('abcdefghijkl')).toBe('abc…kl');
    expect(mask('short')).toBe('***');
    expect(mask(undefined)).toBeNull();
    const pub = publicAccount(base);
    expect(JSON.stringify(pub)).not.toContain(base.appSecret);
    expect(JSON.stringify(pub)).not.toContain(base.token);
  });
});

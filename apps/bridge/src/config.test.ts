import { ConfigError } from '@moltage/core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

const required = {
  WECHAT_APPID: 'wx123',
  WECHAT_APPSECRET: 'secret',
  WECHAT_TOKEN: 'token',
  BRIDGE_BASE_URL: 'https://bridge.example.com/',
};

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe('bridge config', () => {
  it('applies the defaults of DESIGN.md', () => {
    const c = loadConfig(required);
    expect(c.PORT).toBe(3000);
    expect(c.HOST).toBe('0.0.0.0');
    expect(c.REDIS_URL).toBe('redis://localhost:6379');
    expect(c.ORCHESTRATOR_URL).toBe('http://orchestrator:8080');
    expect(c.SSH_HOST).toBe('your-server.example.com');
    expect(c.SSH_PORT).toBe(2222);
    expect(c.VM_READY_TIMEOUT_MS).toBe(30_000);
    expect(c.WECHAT_API_BASE).toBe('https://api.weixin.qq.com');
    expect(c.BIND_ALLOW_PRIVATE).toBe(false);
    expect(c.BRIDGE_BASE_URL).toBe('https://bridge.example.com');
    expect(c.WECHAT_ENCODING_AES_KEY).toBeUndefined();
  });

  it('names every missing required variable', () => {
    expect(problems({})).toEqual([
      'Missing required environment variable: WECHAT_APPID',
      'Missing required environment variable: WECHAT_APPSECRET',
      'Missing required environment variable: WECHAT_TOKEN',
      'Missing required environment variable: BRIDGE_BASE_URL',
    ]);
    const { WECHAT_TOKEN: _t, ...rest } = required;
    expect(problems(rest)).toEqual(['Missing required environment variable: WECHAT_TOKEN']);
  });

  it('refuses malformed values', () => {
    expect(problems({ ...required, WECHAT_ENCODING_AES_KEY: 'short' })[0]).toMatch(
      /^Invalid environment variable WECHAT_ENCODING_AES_KEY: /,
    );
    expect(problems({ ...required, WECHAT_ENCODING_AES_KEY: `${'a'.repeat(42)}=` })[0]).toMatch(
      /WECHAT_ENCODING_AES_KEY/,
    );
    expect(problems({ ...required, PORT: '70000' })[0]).toMatch(/^Invalid environment variable PORT/);
    expect(problems({ ...required, BRIDGE_BASE_URL: 'not a url' })[0]).toMatch(/BRIDGE_BASE_URL/);
    expect(problems({ ...required, REDIS_URL: 'http://x' })[0]).toMatch(/REDIS_URL/);
    expect(problems({ ...required, BIND_ALLOW_PRIVATE: 'maybe' })[0]).toMatch(/BIND_ALLOW_PRIVATE/);
  });

  it('accepts a 43-character EncodingAESKey', () => {
    const key = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
    expect(loadConfig({ ...required, WECHAT_ENCODING_AES_KEY: key }).WECHAT_ENCODING_AES_KEY).toBe(key);
  });
});

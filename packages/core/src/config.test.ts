import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, env, parseEnv } from './config.js';

const schema = z.object({
  PORT: env.port(3000),
  WECHAT_TOKEN: z.string(),
  BRIDGE_BASE_URL: env.url(),
  REDIS_URL: env.redisUrl(),
  BIND_ALLOW_PRIVATE: env.bool(false),
});

describe('parseEnv', () => {
  it('applies defaults and coerces types', () => {
    const cfg = parseEnv(schema, { WECHAT_TOKEN: 't', BRIDGE_BASE_URL: 'https://example.com' });
    expect(cfg).toEqual({
      PORT: 3000,
      WECHAT_TOKEN: 't',
      BRIDGE_BASE_URL: 'https://example.com',
      REDIS_URL: 'redis://localhost:6379',
      BIND_ALLOW_PRIVATE: false,
    });
  });

  it('names every missing and every malformed variable', () => {
    let err: unknown;
    try {
      parseEnv(schema, {
        PORT: '99999',
        BRIDGE_BASE_URL: 'ftp://x',
        BIND_ALLOW_PRIVATE: 'maybe',
        WECHAT_TOKEN: '',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toContain('Missing required environment variable: WECHAT_TOKEN');
    expect(problems.some((p) => p.startsWith('Invalid environment variable PORT'))).toBe(true);
    expect(problems.some((p) => p.startsWith('Invalid environment variable BRIDGE_BASE_URL'))).toBe(true);
    expect(problems.some((p) => p.startsWith('Invalid environment variable BIND_ALLOW_PRIVATE'))).toBe(true);
  });

  it('refuses a non-redis REDIS_URL', () => {
    expect(() =>
      parseEnv(schema, { WECHAT_TOKEN: 't', BRIDGE_BASE_URL: 'http://a', REDIS_URL: 'http://localhost' }),
    ).toThrow(/REDIS_URL/);
  });
});

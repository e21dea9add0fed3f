import { ConfigError } from '@moltage/core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('loadConfig', () => {
  it('defaults: port 3100 on 127.0.0.1, plaintext, nothing else set', () => {
    expect(loadConfig([], {})).toMatchObject({
      SIM_PORT: 3100,
      SIM_HOST: '127.0.0.1',
      SIM_MODE: 'plaintext',
      LOG_LEVEL: 'info',
    });
  });

  it('options override the environment', () => {
    const cfg = loadConfig(['--port', '4000', '--bridge-url', 'http://127.0.0.1:3000/wechat'], {
      SIM_PORT: '5000',
      SIM_BRIDGE_URL: 'http://127.0.0.1:9/x',
      SIM_TOKEN: 'envToken1',
    });
    expect(cfg).toMatchObject({
      SIM_PORT: 4000,
      SIM_BRIDGE_URL: 'http://127.0.0.1:3000/wechat',
      SIM_TOKEN: 'envToken1',
    });
  });

  it('--help', () => {
    expect(loadConfig(['-h'], {})).toBeNull();
  });

  it('lists every problem', () => {
    try {
      loadConfig(['--mode', 'weird'], { SIM_PORT: '99999', SIM_BRIDGE_URL: 'nope', SIM_ORIGINAL_ID: 'x' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const p = (err as ConfigError).problems;
      expect(p.some((l) => l.startsWith('Invalid option --mode'))).toBe(true);
      expect(p.some((l) => l.startsWith('Invalid environment variable SIM_PORT'))).toBe(true);
      expect(p.some((l) => l.startsWith('Invalid environment variable SIM_BRIDGE_URL'))).toBe(true);
      expect(p.some((l) => l.startsWith('Invalid environment variable SIM_ORIGINAL_ID'))).toBe(true);
    }
  });
});

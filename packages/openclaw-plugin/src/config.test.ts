import { describe, expect, it } from 'vitest';
import { isChannelEnabled, parseWebhookServerConfig, readChannelDefaults } from './config.js';
import { ConfigError } from './errors.js';

describe('parseWebhookServerConfig', () => {
  it('applies defaults to the minimal config', () => {
    expect(parseWebhookServerConfig({ authToken: 'secret-token' }, {})).toEqual({
      port: 8789,
      host: '0.0.0.0',
      authToken: 'secret-token',
      useNgrok: false,
      ngrokPort: 8789,
    });
  });

  it('reads the seed config keys', () => {
    const cfg = parseWebhookServerConfig(
      {
        port: 9000,
        authToken: 'secret-token',
        useNgrok: true,
        ngrokAuthToken: 'ngrok-token',
        ngrokPort: 18789,
        ngrokRegion: 'eu',
      },
      {},
    );
    expect(cfg).toMatchObject({
      port: 9000,
      useNgrok: true,
      ngrokAuthToken: 'ngrok-token',
      ngrokPort: 18789,
      ngrokRegion: 'eu',
    });
  });

  it('takes the ngrok authtoken from NGROK_AUTHTOKEN when the config has none', () => {
    const cfg = parseWebhookServerConfig(
      { authToken: 'secret-token', useNgrok: true },
      { NGROK_AUTHTOKEN: 'env-token' },
    );
    expect(cfg.ngrokAuthToken).toBe('env-token');
  });

  it('names every bad field at once', () => {
    let caught: unknown;
    try {
      parseWebhookServerConfig({ port: 70000, useNgrok: 'yes', ngrokRegion: 'mars', extra: 1 }, {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const issues = (caught as ConfigError).issues.join('\n');
    expect((caught as ConfigError).code).toBe('OCP_BAD_CONFIG');
    expect(issues).toContain('port');
    expect(issues).toContain('authToken is required');
    expect(issues).toContain('useNgrok');
    expect(issues).toContain('ngrokRegion');
    expect(issues).toContain('extra is not a known option');
  });

  it('refuses a short token', () => {
    expect(() => parseWebhookServerConfig({ authToken: 'short' }, {})).toThrow(
      /authToken must be a string of 8/,
    );
  });
});

describe('readChannelDefaults', () => {
  it('reads channels.moltage.config', () => {
    const cfg = {
      channels: { moltage: { config: { callbackUrl: 'http://bridge:3000/callback', callbackToken: 't' } } },
    };
    expect(readChannelDefaults(cfg)).toEqual({
      callbackUrl: 'http://bridge:3000/callback',
      callbackToken: 't',
    });
  });

  it('ignores a callbackUrl that is not http(s) and says so', () => {
    const issues: string[] = [];
    const cfg = { channels: { moltage: { config: { callbackUrl: 'ftp://x/y' } } } };
    expect(readChannelDefaults(cfg, (i) => issues.push(i))).toEqual({});
    expect(issues[0]).toContain('callbackUrl');
  });

  it('is empty when the channel is not configured', () => {
    expect(readChannelDefaults({})).toEqual({});
    expect(readChannelDefaults(undefined)).toEqual({});
  });

  it('treats the channel as enabled unless enabled is false', () => {
    expect(isChannelEnabled({})).toBe(true);
    expect(isChannelEnabled({ channels: { moltage: { enabled: false } } })).toBe(false);
  });
});

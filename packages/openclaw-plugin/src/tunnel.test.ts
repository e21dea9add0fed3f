import { describe, expect, it } from 'vitest';
import { parseWebhookServerConfig } from './config.js';
import type { PluginError } from './errors.js';
import { silentLogger } from './logger.js';
import { type NgrokModule, ngrokServerAddr, startTunnel } from './tunnel.js';

/** The ngrok cloud cannot be reached from here; this stands in for the @ngrok/ngrok module. */
function fakeNgrok(result: 'ok' | 'hang' | 'fail') {
  const calls: Array<Record<string, unknown>> = [];
  let closed = 0;
  const mod: NgrokModule = {
    forward: async (config) => {
      calls.push(config);
      if (result === 'fail') throw new Error('authentication failed: invalid authtoken');
      if (result === 'hang') return new Promise(() => {});
      return { url: () => 'https://abc123.ngrok.app', close: async () => void closed++ };
    },
  };
  return { mod, calls, closed: () => closed };
}

const cfg = (extra: Record<string, unknown>) =>
  parseWebhookServerConfig({ authToken: 'webhook-token', useNgrok: true, ...extra }, {});

describe('startTunnel', () => {
  it('forwards ngrokPort with the authtoken and the region’s connect address', async () => {
    const ngrok = fakeNgrok('ok');
    const tunnel = await startTunnel(
      cfg({ ngrokAuthToken: 'tok', ngrokPort: 18789, ngrokRegion: 'ap' }),
      silentLogger,
      {
        load: async () => ngrok.mod,
      },
    );
    expect(tunnel.url).toBe('https://abc123.ngrok.app');
    expect(ngrok.calls).toEqual([
      { addr: 18789, authtoken: 'tok', server_addr: 'connect.ap.ngrok-agent.com:443' },
    ]);
    await tunnel.close();
    expect(ngrok.closed()).toBe(1);
  });

  it('tunnels the webhook port when ngrokPort is not set', async () => {
    const ngrok = fakeNgrok('ok');
    await startTunnel(cfg({ port: 9100, ngrokAuthToken: 'tok' }), silentLogger, {
      load: async () => ngrok.mod,
    });
    expect(ngrok.calls[0]).toEqual({ addr: 9100, authtoken: 'tok' });
  });

  it('explains each way it can fail', async () => {
    const noToken = await startTunnel(cfg({}), silentLogger).catch((e: PluginError) => e);
    expect(noToken.code).toBe('OCP_TUNNEL_FAILED');
    expect(noToken.message).toContain('no authtoken is set');

    const missing = await startTunnel(cfg({ ngrokAuthToken: 'tok' }), silentLogger, {
      load: async () => {
        throw new Error("Cannot find package '@ngrok/ngrok'");
      },
    }).catch((e: PluginError) => e);
    expect(missing.message).toMatch(/the @ngrok\/ngrok package could not be loaded/);

    const refused = await startTunnel(cfg({ ngrokAuthToken: 'tok' }), silentLogger, {
      load: async () => fakeNgrok('fail').mod,
    }).catch((e: PluginError) => e);
    expect(refused.message).toBe('ngrok tunnel not started: authentication failed: invalid authtoken');

    const slow = await startTunnel(cfg({ ngrokAuthToken: 'tok' }), silentLogger, {
      load: async () => fakeNgrok('hang').mod,
      timeoutMs: 50,
    }).catch((e: PluginError) => e);
    expect(slow.message).toMatch(/ngrok did not connect within 50 ms/);
  });

  it('prefers an explicit connect address over the region', () => {
    expect(ngrokServerAddr({ ngrokRegion: 'eu' })).toBe('connect.eu.ngrok-agent.com:443');
    expect(ngrokServerAddr({ ngrokRegion: 'eu', ngrokServerAddr: 'connect.example.com:443' })).toBe(
      'connect.example.com:443',
    );
    expect(ngrokServerAddr({})).toBeUndefined();
  });
});

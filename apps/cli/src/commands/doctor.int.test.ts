import { freePort, type RedisServer, startRedis } from '@moltage/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatReport, runChecks } from './doctor.js';

describe('moltage doctor', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ appendonly: false });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('reports a reachable REDIS_URL as ok', async () => {
    const results = await runChecks({ env: { REDIS_URL: redis.url }, ports: [] });
    const r = results.find((c) => c.name === 'Redis');
    expect(r?.status).toBe('ok');
  });

  it('fails on an unreachable REDIS_URL and says what to do', async () => {
    const port = await freePort();
    const results = await runChecks({ env: { REDIS_URL: `redis://127.0.0.1:${port}` }, ports: [] });
    const r = results.find((c) => c.name === 'Redis');
    expect(r?.status).toBe('fail');
    expect(r?.fix).toMatch(/REDIS_URL/);
    expect(formatReport(results)).toMatch(/problem\(s\) must be fixed/);
  });

  it('fails on a Node version that is too old', async () => {
    const results = await runChecks({ env: {}, nodeVersion: '18.19.0', ports: [] });
    expect(results.find((c) => c.name === 'Node.js')?.status).toBe('fail');
  });

  it('reports a port in use with the service it belongs to', async () => {
    const port = redis.port;
    const results = await runChecks({ env: { REDIS_URL: redis.url }, ports: [{ name: 'bridge', port }] });
    const r = results.find((c) => c.name === 'Ports');
    expect(r?.status).toBe('warn');
    expect(r?.detail).toContain(`${port} (bridge)`);
  });

  it('names the image to build when none exists', async () => {
    const results = await runChecks({
      env: { VM_IMAGE_DIR: '/nonexistent-moltage', VM_IMAGE: 'tiny' },
      ports: [],
    });
    const r = results.find((c) => c.name === 'Guest image');
    expect(r?.status).toBe('warn');
    expect(r?.fix).toContain('moltage image build --tiny');
  });
});

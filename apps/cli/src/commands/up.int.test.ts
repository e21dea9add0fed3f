import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ChildService, freePort, spawnService } from '@moltage/testkit';
import { afterEach, describe, expect, it } from 'vitest';

const BIN = resolve(import.meta.dirname, '../../../../bin/moltage.js');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('moltage up (demo mode)', () => {
  let up: ChildService | undefined;
  let dataDir: string | undefined;
  afterEach(async () => {
    await up?.stop('SIGINT', 15_000);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('starts Redis and the simulator, prints where they are, and Ctrl-C stops everything', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'moltage-up-'));
    const simPort = await freePort();
    const env = { ...process.env, SIM_PORT: String(simPort), LOG_LEVEL: 'warn' };
    delete env.REDIS_URL;
    delete env.WECHAT_APPID;
    up = spawnService(process.execPath, [BIN, 'up', '--data-dir', dataDir], { env });
    await up.waitForOutput(/Press Ctrl-C/, 30_000);
    const out = up.output();
    const chat = out.match(/Chat page \(simulated WeChat\)\s+(http:\/\/\S+)/)?.[1];
    expect(chat).toBe(`http://127.0.0.1:${simPort}/`);
    const redisUrl = out.match(/Redis\s+(redis:\/\/\S+)/)?.[1];
    expect(redisUrl).toBeDefined();

    // The chat page is served, and the simulator pushes to the bridge port with the demo account.
    const page = await fetch(chat!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const secrets = JSON.parse(await readFile(join(dataDir, 'demo-secrets.json'), 'utf8'));
    expect(secrets.encodingAesKey).toHaveLength(43);
    expect((await stat(join(dataDir, 'demo-secrets.json'))).mode & 0o077).toBe(0);
    const account = (await (await fetch(`${chat}sim/account`)).json()) as { appId: string; mode: string };
    expect(account.appId).toBe(secrets.appId);
    expect(account.mode).toBe('safe');

    // Its Redis answers and keeps data under the data dir.
    const redisPort = Number(new URL(redisUrl!).port);
    const { createConnection } = await import('node:net');
    const pong = await new Promise<string>((res, rej) => {
      const s = createConnection({ host: '127.0.0.1', port: redisPort }, () => s.write('PING\r\n'));
      s.on('data', (d) => {
        s.destroy();
        res(d.toString());
      });
      s.on('error', rej);
    });
    expect(pong).toContain('PONG');

    // Ctrl-C: every child goes away, and the command exits 0.
    const children = (await readFile(`/proc/${up.pid}/task/${up.pid}/children`, 'utf8'))
      .trim()
      .split(/\s+/)
      .map(Number)
      .filter(Boolean);
    expect(children.length).toBe(2);
    const code = await up.stop('SIGINT', 15_000);
    expect(code).toBe(0);
    expect(up.output()).toContain('stopped.');
    for (const pid of children) expect(alive(pid)).toBe(false);
    await expect(fetch(chat!)).rejects.toThrow();
  });

  it('a second run reuses the demo account', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'moltage-up-'));
    const env = { ...process.env, SIM_PORT: String(await freePort()), LOG_LEVEL: 'warn' };
    delete env.REDIS_URL;
    delete env.WECHAT_APPID;
    up = spawnService(process.execPath, [BIN, 'up', '--data-dir', dataDir], { env });
    await up.waitForOutput(/Press Ctrl-C/, 30_000);
    const first = await readFile(join(dataDir, 'demo-secrets.json'), 'utf8');
    await up.stop('SIGINT', 15_000);
    up = spawnService(process.execPath, [BIN, 'up', '--data-dir', dataDir], { env });
    await up.waitForOutput(/Press Ctrl-C/, 30_000);
    expect(await readFile(join(dataDir, 'demo-secrets.json'), 'utf8')).toBe(first);
  });
});
